package policy_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regiondns/regiondns/policy"
)

// readAt is the time of the read that delivered the control in these
// tests; pins expire an hour later unless a row says otherwise.
var readAt = time.Date(2030, 1, 2, 15, 0, 0, 0, time.UTC)

func pinTo(region string) *policy.Pin {
	return &policy.Pin{Active: region, Reason: "DR drill", Expires: readAt.Add(time.Hour)}
}

// promoted is the standby site promoted and electing a leader: its config
// has no standby_cluster, its members run, none passes as leader.
func promoted() regionFixture {
	fx := standbySite.build(fixNone)
	fx.region.Config = policy.ConfigPrimary
	fx.region.Timelines[standbySite.member(2)] = 9
	return fx
}

// TestPin runs every pin rule: a valid pin chooses the active region, even
// against the split-brain rule; a pin to a region without a primary
// applies only when the other region has none either (rw then answers
// nothing); expired, unknown-region and unreadable pins are ignored and
// say why; the choice without a pin is kept whenever a pin is ignored.
func TestPin(t *testing.T) {
	tests := []struct {
		name          string
		main, standby regionFixture
		pin           *policy.Pin
		readAt        time.Time // zero: readAt
		wantActive    string
		wantApplied   bool
		wantIgnored   policy.PinIgnored
		wantRW        bool // rw answers the active region's leader
		wantReason    []string
	}{
		{
			name: "no pin", main: mainSite.build(fixPrimary), standby: standbySite.build(fixStandby),
			wantActive: "eu", wantRW: true, wantReason: []string{"main region is primary"},
		},
		{
			name: "pin to the region the rules choose", main: mainSite.build(fixPrimary), standby: standbySite.build(fixStandby),
			pin: pinTo("eu"), wantActive: "eu", wantApplied: true, wantRW: true,
			wantReason: []string{"pinned to region eu until 2030-01-02T16:00:00Z (DR drill); the rules alone: main region is primary"},
		},
		{
			name: "DR drill: pin to main against a promoted standby that wins on timeline",
			main: mainSite.build(fixPrimary), standby: standbySite.build(fixPrimary),
			pin: pinTo("eu"), wantActive: "eu", wantApplied: true, wantRW: true,
			wantReason: []string{"pinned to region eu", "the rules alone: split brain", "promoted standby region wins on timeline 5 > 4"},
		},
		{
			name: "pin to the promoted standby against a main that wins on timeline",
			main: mainSite.build(fixConflict), standby: standbySite.build(fixPrimary),
			pin: pinTo("us"), wantActive: "us", wantApplied: true, wantRW: true,
			wantReason: []string{"pinned to region us", "main region wins on timeline 6 > 5"},
		},
		{
			name: "pin to a standby cluster while main is primary is unsafe",
			main: mainSite.build(fixPrimary), standby: standbySite.build(fixStandby),
			pin: pinTo("us"), wantActive: "eu", wantIgnored: policy.PinUnsafe, wantRW: true,
			wantReason: []string{"main region is primary; pin to region us ignored as unsafe: it has no primary and region eu has one"},
		},
		{
			name: "pin to a main region that lost its primary while the standby has one is unsafe",
			main: mainSite.build(fixNone), standby: standbySite.build(fixPrimary),
			pin: pinTo("eu"), wantActive: "us", wantIgnored: policy.PinUnsafe, wantRW: true,
			wantReason: []string{"standby region was promoted", "pin to region eu ignored as unsafe: it has no primary and region us has one"},
		},
		{
			name: "pin to a promoted standby still electing while main is primary is unsafe",
			main: mainSite.build(fixPrimary), standby: promoted(),
			pin: pinTo("us"), wantActive: "us", wantIgnored: policy.PinUnsafe,
			wantReason: []string{"split brain", "pin to region us ignored as unsafe"},
		},
		{
			name: "pin to a main conflict without a leader key while the standby is primary is unsafe",
			main: mainSite.build(fixUnresolved), standby: standbySite.build(fixPrimary),
			pin: pinTo("eu"), wantActive: "us", wantIgnored: policy.PinUnsafe, wantRW: true,
			wantReason: []string{"ignored as unsafe"},
		},
		{
			name: "pin to main without a primary when neither region has one applies: rw answers nothing",
			main: mainSite.build(fixNone), standby: standbySite.build(fixStandby),
			pin: pinTo("eu"), wantActive: "eu", wantApplied: true,
			wantReason: []string{"pinned to region eu", "the rules alone: no leader"},
		},
		{
			name: "pin to a standby cluster when neither region has a primary applies: rw answers nothing",
			main: mainSite.build(fixDown), standby: standbySite.build(fixStandby),
			pin: pinTo("us"), wantActive: "us", wantApplied: true,
			wantReason: []string{"pinned to region us"},
		},
		{
			name: "pin to a stale region decides on its last known primary",
			main: mainSite.build(fixStale), standby: standbySite.build(fixPrimary),
			pin: pinTo("eu"), wantActive: "eu", wantApplied: true, wantRW: true,
			wantReason: []string{"pinned to region eu"},
		},
		{
			name: "a pin read just before its expiry applies",
			main: mainSite.build(fixPrimary), standby: standbySite.build(fixPrimary),
			pin: pinTo("eu"), readAt: readAt.Add(time.Hour - time.Nanosecond), wantActive: "eu", wantApplied: true, wantRW: true,
			wantReason: []string{"pinned to region eu"},
		},
		{
			name: "a pin read at its expiry is expired",
			main: mainSite.build(fixPrimary), standby: standbySite.build(fixPrimary),
			pin: pinTo("eu"), readAt: readAt.Add(time.Hour), wantActive: "us", wantIgnored: policy.PinExpired, wantRW: true,
			wantReason: []string{"promoted standby region wins on timeline 5 > 4; pin to region eu ignored: expired at 2030-01-02T16:00:00Z"},
		},
		{
			name: "a pin read after its expiry is expired",
			main: mainSite.build(fixPrimary), standby: standbySite.build(fixPrimary),
			pin: pinTo("eu"), readAt: readAt.Add(48 * time.Hour), wantActive: "us", wantIgnored: policy.PinExpired, wantRW: true,
			wantReason: []string{"ignored: expired"},
		},
		{
			name: "a pin to an unknown region is ignored",
			main: mainSite.build(fixPrimary), standby: standbySite.build(fixPrimary),
			pin: pinTo("ap"), wantActive: "us", wantIgnored: policy.PinUnknownRegion, wantRW: true,
			wantReason: []string{`pin ignored: region "ap" is unknown; want eu or us`},
		},
		{
			name: "a pin that cannot be read is ignored",
			main: mainSite.build(fixPrimary), standby: standbySite.build(fixPrimary),
			pin: ptr(policy.ParsePin([]byte("eu"))), wantActive: "us", wantIgnored: policy.PinInvalid, wantRW: true,
			wantReason: []string{"pin ignored: not a JSON object"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at := tt.readAt
			if at.IsZero() {
				at = readAt
			}
			in := policy.Input{Options: direct(), Main: tt.main.region, Standby: tt.standby.region,
				Control: policy.Control{Pin: tt.pin, ReadAt: at, Source: "eu"}}
			d := policy.Decide(in)
			if d.Active != tt.wantActive {
				t.Errorf("active = %s, want %s (reason %q)", d.Active, tt.wantActive, d.Reason)
			}
			active, passive := tt.main, tt.standby
			if tt.wantActive == tt.standby.site.name {
				active, passive = tt.standby, tt.main
			}
			if d.Passive != passive.site.name {
				t.Errorf("passive = %s, want %s", d.Passive, passive.site.name)
			}
			var wantRW []policy.Endpoint
			if tt.wantRW {
				wantRW = active.wantWrite(policy.LayoutDirect)
			}
			checkEndpoints(t, "RW", d.RW, wantRW)
			checkEndpoints(t, "RO", d.RO, active.wantRead(policy.LayoutDirect, tt.wantRW))
			// The passive region's names follow the choice too.
			checkEndpoints(t, "PassiveRW", d.PassiveRW, passive.wantWrite(policy.LayoutDirect))
			for _, want := range tt.wantReason {
				if !strings.Contains(d.Reason, want) {
					t.Errorf("reason %q does not contain %q", d.Reason, want)
				}
			}
			if tt.pin == nil {
				if d.Pin != nil {
					t.Errorf("pin state %+v without a pin", d.Pin)
				}
				return
			}
			if d.Pin == nil {
				t.Fatal("no pin state for a pin")
			}
			if d.Pin.Applied != tt.wantApplied || d.Pin.Ignored != tt.wantIgnored {
				t.Errorf("pin applied %t ignored %q, want %t %q (%s)", d.Pin.Applied, d.Pin.Ignored, tt.wantApplied, tt.wantIgnored, d.Pin.Why)
			}
			if d.Pin.Region != tt.pin.Active || !d.Pin.Expires.Equal(tt.pin.Expires) || d.Pin.Why == "" {
				t.Errorf("pin state %+v does not describe pin %+v", d.Pin, tt.pin)
			}
			if !strings.Contains(d.Reason, d.Pin.Why) {
				t.Errorf("reason %q does not say %q", d.Reason, d.Pin.Why)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestDrain runs every drain rule: a drained passing replica leaves the
// read names of its region (ro, passive-ro), in every layout; a region
// whose replicas are all drained falls back as without replicas; a drained
// leader (or standby leader) stays in rw and passive-rw and is reported
// as not drained; drains of members that are not passing replicas change
// nothing.
func TestDrain(t *testing.T) {
	eu, us := mainSite, standbySite
	tests := []struct {
		name           string
		drains         []string
		layout         policy.Layout
		fallback       policy.ROFallback
		wantRO         []int // main members in ro
		wantPassiveRO  []int // standby members in passive-ro
		wantDrained    []string
		wantNotApplied []string
	}{
		{name: "no drain", wantRO: []int{2, 3}, wantPassiveRO: []int{2}},
		{name: "a main replica", drains: []string{"eu-pg-2"}, wantRO: []int{3}, wantPassiveRO: []int{2},
			wantDrained: []string{"eu-pg-2"}},
		{name: "every main replica falls back to the leader", drains: []string{"eu-pg-3", "eu-pg-2"},
			wantRO: []int{1}, wantPassiveRO: []int{2}, wantDrained: []string{"eu-pg-2", "eu-pg-3"}},
		{name: "every main replica with ro_fallback none", drains: []string{"eu-pg-2", "eu-pg-3"}, fallback: policy.FallbackNone,
			wantRO: nil, wantPassiveRO: []int{2}, wantDrained: []string{"eu-pg-2", "eu-pg-3"}},
		{name: "the main leader is not drained", drains: []string{"eu-pg-1"}, wantRO: []int{2, 3}, wantPassiveRO: []int{2},
			wantNotApplied: []string{"eu-pg-1"}},
		{name: "the standby replica falls back to the standby leader", drains: []string{"us-pg-2"}, wantRO: []int{2, 3},
			wantPassiveRO: []int{1}, wantDrained: []string{"us-pg-2"}},
		{name: "the standby leader is not drained", drains: []string{"us-pg-1", "eu-pg-3"}, wantRO: []int{2},
			wantPassiveRO: []int{2}, wantDrained: []string{"eu-pg-3"}, wantNotApplied: []string{"us-pg-1"}},
		{name: "a critical replica and an unknown member change nothing", drains: []string{"eu-pg-4", "eu-pg-9"},
			wantRO: []int{2, 3}, wantPassiveRO: []int{2}},
		{name: "bouncer-per-node: the drained replica's bouncer leaves", drains: []string{"eu-pg-2"}, layout: policy.LayoutBouncerPerNode,
			wantRO: []int{3}, wantPassiveRO: []int{2}, wantDrained: []string{"eu-pg-2"}},
		{name: "pool-fleet: one replica of two drained keeps the ro pool", drains: []string{"eu-pg-2"}, layout: policy.LayoutPoolFleet,
			wantRO: []int{3}, wantPassiveRO: []int{2}, wantDrained: []string{"eu-pg-2"}},
		{name: "pool-fleet: every replica drained answers the rw pool", drains: []string{"eu-pg-2", "eu-pg-3"}, layout: policy.LayoutPoolFleet,
			wantRO: []int{1}, wantPassiveRO: []int{2}, wantDrained: []string{"eu-pg-2", "eu-pg-3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			layout := cmpOr(tt.layout, policy.LayoutDirect)
			fallback := cmpOr(tt.fallback, policy.FallbackLeader)
			main, standby := eu.build(fixPrimary), us.build(fixStandby)
			var drains []policy.Drain
			for _, m := range tt.drains {
				drains = append(drains, policy.Drain{Member: m, Reason: "maintenance"})
			}
			slices.SortFunc(drains, func(a, b policy.Drain) int { return strings.Compare(a.Member, b.Member) })
			d := policy.Decide(policy.Input{
				Options: policy.Options{Layout: layout, ROFallback: fallback},
				Main:    main.region, Standby: standby.region,
				Control: policy.Control{Drains: drains, ReadAt: readAt},
			})
			checkEndpoints(t, "RW", d.RW, main.wantWrite(layout))
			checkEndpoints(t, "PassiveRW", d.PassiveRW, standby.wantWrite(layout))
			checkEndpoints(t, "RO", d.RO, withReplicas(main, tt.wantRO).wantRead(layout, fallback == policy.FallbackLeader))
			checkEndpoints(t, "PassiveRO", d.PassiveRO, withReplicas(standby, tt.wantPassiveRO).wantRead(layout, true))
			if !slices.Equal(d.Drained, tt.wantDrained) || !slices.Equal(d.DrainNotApplied, tt.wantNotApplied) {
				t.Errorf("drained %q not applied %q, want %q and %q", d.Drained, d.DrainNotApplied, tt.wantDrained, tt.wantNotApplied)
			}
			// What the region reports is what Consul says: drains change
			// the answers, not the reading.
			if want := main.view(); !slices.Equal(d.Main.Replicas, want.Replicas) {
				t.Errorf("main replicas %q, want %q", d.Main.Replicas, want.Replicas)
			}
			if d.Pin != nil {
				t.Errorf("pin state %+v without a pin", d.Pin)
			}
		})
	}
}

// withReplicas returns fx answering members as its read endpoints: the
// leader alone (fx.leader in members) when every replica is drained, so
// that wantRead falls back to it.
func withReplicas(fx regionFixture, members []int) regionFixture {
	fx.replicas = nil
	for _, n := range members {
		if n != fx.leader {
			fx.replicas = append(fx.replicas, n)
		}
	}
	return fx
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// A drained member and a pin are decided on together: the pinned region's
// read names leave the drained replica out.
func TestPinAndDrain(t *testing.T) {
	d := policy.Decide(policy.Input{Options: direct(), Main: mainSite.build(fixPrimary).region,
		Standby: standbySite.build(fixPrimary).region,
		Control: policy.Control{Pin: pinTo("eu"), Drains: []policy.Drain{{Member: "eu-pg-3"}}, ReadAt: readAt}})
	if d.Active != "eu" || d.Pin == nil || !d.Pin.Applied {
		t.Fatalf("active %s pin %+v, want eu and applied", d.Active, d.Pin)
	}
	checkEndpoints(t, "RO", d.RO, []policy.Endpoint{mainSite.memberEP(2)})
}

func TestControlDrained(t *testing.T) {
	c := policy.Control{Drains: []policy.Drain{{Member: "pg-2"}, {Member: "pg-3"}}}
	for member, want := range map[string]bool{"pg-2": true, "pg-3": true, "pg-1": false, "PG-2": false, "": false} {
		if got := c.Drained(member); got != want {
			t.Errorf("Drained(%q) = %t, want %t", member, got, want)
		}
	}
}

func TestParsePin(t *testing.T) {
	long := strings.Repeat("é", policy.MaxReasonBytes)
	tests := []struct {
		value string
		want  policy.Pin
	}{
		{value: `{"active":"main","reason":"drill","expires":"2030-01-02T16:00:00Z"}`,
			want: policy.Pin{Active: "main", Reason: "drill", Expires: readAt.Add(time.Hour)}},
		{value: `{"active":"main","expires":"2030-01-02T18:00:00+02:00","extra":1}`,
			want: policy.Pin{Active: "main", Expires: readAt.Add(time.Hour)}},
		{value: `{"active":"main","reason":"` + long + `","expires":"2030-01-02T16:00:00Z"}`,
			want: policy.Pin{Active: "main", Reason: strings.Repeat("é", policy.MaxReasonBytes/2), Expires: readAt.Add(time.Hour)}},
		{value: `main`, want: policy.Pin{Invalid: `not a JSON object {"active": region, "reason": text, "expires": RFC 3339 time}`}},
		{value: `{"active":7}`, want: policy.Pin{Invalid: `not a JSON object {"active": region, "reason": text, "expires": RFC 3339 time}`}},
		{value: `{"expires":"2030-01-02T16:00:00Z"}`, want: policy.Pin{Invalid: "active: missing; want a region name"}},
		{value: `{"active":"main"}`, want: policy.Pin{Active: "main", Invalid: "expires: missing; want an RFC 3339 time, such as 2030-01-02T15:04:05Z"}},
		{value: `{"active":"main","expires":"in 2 hours"}`,
			want: policy.Pin{Active: "main", Invalid: `expires: "in 2 hours" is not valid; want an RFC 3339 time, such as 2030-01-02T15:04:05Z`}},
	}
	for _, tt := range tests {
		got := policy.ParsePin([]byte(tt.value))
		if got.Active != tt.want.Active || got.Reason != tt.want.Reason || !got.Expires.Equal(tt.want.Expires) || got.Invalid != tt.want.Invalid {
			t.Errorf("ParsePin(%.40q) = %+v, want %+v", tt.value, got, tt.want)
		}
		if got.Expires.Location() != time.UTC {
			t.Errorf("ParsePin(%.40q) expires in %v, want UTC", tt.value, got.Expires.Location())
		}
	}
}

func TestParseDrain(t *testing.T) {
	tests := []struct{ value, reason string }{
		{value: "", reason: ""},
		{value: " kernel patch\n", reason: "kernel patch"},
		{value: `{"reason":"VACUUM FULL"}`, reason: "VACUUM FULL"},
		{value: `{"by":"alice"}`, reason: ""},
		{value: `{"reason":5}`, reason: ""},
		{value: strings.Repeat("x", 300), reason: strings.Repeat("x", policy.MaxReasonBytes)},
	}
	for _, tt := range tests {
		if got := policy.ParseDrain("pg-2", []byte(tt.value)); got != (policy.Drain{Member: "pg-2", Reason: tt.reason}) {
			t.Errorf("ParseDrain(%.40q) = %+v, want reason %q", tt.value, got, tt.reason)
		}
	}
}

// Two instances that read the same keys at the same time decide alike,
// whatever order Consul listed the drains in, after the watcher sorted
// them.
func TestControlDeterministic(t *testing.T) {
	in := policy.Input{Options: direct(), Main: mainSite.build(fixPrimary).region, Standby: standbySite.build(fixPrimary).region,
		Control: policy.Control{Pin: pinTo("eu"), Drains: []policy.Drain{{Member: "eu-pg-2"}, {Member: "us-pg-2"}}, ReadAt: readAt}}
	a, b := policy.Decide(in), policy.Decide(in)
	if a.Reason != b.Reason || !slices.Equal(a.RO, b.RO) || !slices.Equal(a.PassiveRO, b.PassiveRO) || *a.Pin != *b.Pin {
		t.Errorf("two decisions of one input differ:\n%+v\n%+v", a, b)
	}
}
