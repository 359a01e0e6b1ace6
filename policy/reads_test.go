package policy_test

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regiondns/regiondns/policy"
)

// The read-quality fixture: one region "eu" with a leader pg-1 at WAL
// position leaderPos and replicas pg-2 and pg-3, each with a member key.
const (
	mb        = int64(1) << 20
	leaderPos = 1000 * mb
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func readsMember(name string, role policy.Role, n byte) policy.Instance {
	return policy.Instance{
		ID: "orders/" + name, Member: name, Node: "node-" + name,
		Address: netip.AddrFrom4([4]byte{10, 0, 0, n}), Port: 5432, Role: role, Health: policy.HealthPassing,
	}
}

// readsRegion returns region name with a leader (or standby leader) and
// the two replicas, every member key at the leader's position.
func readsRegion(name string, leaderRole policy.Role) policy.Region {
	r := policy.Region{
		Name: name, Known: true, LeaderKey: "pg-1",
		Members: []policy.Instance{
			readsMember("pg-1", leaderRole, 1), readsMember("pg-2", policy.RoleReplica, 2), readsMember("pg-3", policy.RoleReplica, 3),
		},
		MemberData: map[string]policy.MemberKey{
			"pg-1": {XLogLocation: leaderPos},
			"pg-2": {XLogLocation: leaderPos, ReplicationState: "streaming"},
			"pg-3": {XLogLocation: leaderPos, ReplicationState: "streaming"},
		},
		Optime: leaderPos,
	}
	if name != "eu" {
		for i := range r.Members {
			r.Members[i].Address = netip.AddrFrom4([4]byte{10, 1, 0, byte(i + 1)})
		}
	}
	return r
}

// setKey changes one member key of r.
func setKey(r *policy.Region, member string, f func(*policy.MemberKey)) {
	data := make(map[string]policy.MemberKey, len(r.MemberData))
	for k, v := range r.MemberData {
		data[k] = v
	}
	k := data[member]
	f(&k)
	data[member] = k
	r.MemberData = data
}

func members(eps []policy.Endpoint) []string {
	var out []string
	for _, e := range eps {
		out = append(out, e.Member)
	}
	return out
}

func exclusions(v policy.RegionView) []string {
	var out []string
	for _, e := range v.Excluded {
		out = append(out, e.Member+" "+string(e.State)+": "+e.Why)
	}
	return out
}

func lagOptions(limit int64) policy.Options {
	return policy.Options{Layout: policy.LayoutDirect, ROMaxLag: limit, ROLagSettle: 10 * time.Second}
}

func TestReadQuality(t *testing.T) {
	tests := []struct {
		name     string
		opts     policy.Options
		edit     func(r *policy.Region)
		wantRO   []string
		excluded []string
	}{
		{
			name:   "no limit: positions do not matter",
			opts:   policy.Options{},
			edit:   func(r *policy.Region) { setKey(r, "pg-3", func(k *policy.MemberKey) { k.XLogLocation = 1 }) },
			wantRO: []string{"pg-2", "pg-3"},
		},
		{
			name: "lag exactly at the limit serves",
			opts: lagOptions(16 * mb),
			edit: func(r *policy.Region) {
				setKey(r, "pg-3", func(k *policy.MemberKey) { k.XLogLocation = leaderPos - 16*mb })
			},
			wantRO: []string{"pg-2", "pg-3"},
		},
		{
			name: "one byte over the limit lags",
			opts: lagOptions(16 * mb),
			edit: func(r *policy.Region) {
				setKey(r, "pg-3", func(k *policy.MemberKey) { k.XLogLocation = leaderPos - 16*mb - 1 })
			},
			wantRO:   []string{"pg-2"},
			excluded: []string{"pg-3 lagging: lag 16777217 B > 16777216 B"},
		},
		{
			name: "lag in Patroni's units",
			opts: lagOptions(16 * mb),
			edit: func(r *policy.Region) {
				setKey(r, "pg-3", func(k *policy.MemberKey) { k.XLogLocation = leaderPos - 48*mb })
			},
			wantRO:   []string{"pg-2"},
			excluded: []string{"pg-3 lagging: lag 48 MB > 16 MB"},
		},
		{
			name: "a replica ahead of the status key's optime has no lag",
			opts: lagOptions(1),
			edit: func(r *policy.Region) {
				setKey(r, "pg-2", func(k *policy.MemberKey) { k.XLogLocation = leaderPos + mb })
			},
			wantRO: []string{"pg-2", "pg-3"},
		},
		{
			name: "the leader's member key counts when newer than the status key",
			opts: lagOptions(16 * mb),
			edit: func(r *policy.Region) {
				r.Optime = leaderPos - 40*mb
				setKey(r, "pg-3", func(k *policy.MemberKey) { k.XLogLocation = leaderPos - 20*mb })
			},
			wantRO:   []string{"pg-2"},
			excluded: []string{"pg-3 lagging: lag 20 MB > 16 MB"},
		},
		{
			name: "the status key counts when newer than the leader's member key",
			opts: lagOptions(16 * mb),
			edit: func(r *policy.Region) {
				setKey(r, "pg-1", func(k *policy.MemberKey) { k.XLogLocation = leaderPos - 40*mb })
				setKey(r, "pg-3", func(k *policy.MemberKey) { k.XLogLocation = leaderPos - 20*mb })
			},
			wantRO:   []string{"pg-2"},
			excluded: []string{"pg-3 lagging: lag 20 MB > 16 MB"},
		},
		{
			name: "replay_lsn (Patroni 4.1) is compared, not xlog_location",
			opts: lagOptions(16 * mb),
			edit: func(r *policy.Region) {
				setKey(r, "pg-3", func(k *policy.MemberKey) {
					k.ReceiveLSN, k.ReplayLSN = leaderPos, leaderPos-17*mb
				})
			},
			wantRO:   []string{"pg-2"},
			excluded: []string{"pg-3 lagging: lag 17 MB > 16 MB"},
		},
		{
			name:     "a replica without a member key lags",
			opts:     lagOptions(16 * mb),
			edit:     func(r *policy.Region) { delete(r.MemberData, "pg-3") },
			wantRO:   []string{"pg-2"},
			excluded: []string{"pg-3 lagging: lag unknown (no WAL position in its member key)"},
		},
		{
			name:     "a replica without a position lags",
			opts:     lagOptions(16 * mb),
			edit:     func(r *policy.Region) { setKey(r, "pg-2", func(k *policy.MemberKey) { k.XLogLocation = 0 }) },
			wantRO:   []string{"pg-3"},
			excluded: []string{"pg-2 lagging: lag unknown (no WAL position in its member key)"},
		},
		{
			name: "without the leader's position every replica lags: ro falls back to the leader",
			opts: lagOptions(16 * mb),
			edit: func(r *policy.Region) {
				r.Optime = 0
				setKey(r, "pg-1", func(k *policy.MemberKey) { k.XLogLocation = 0 })
			},
			wantRO: []string{"pg-1"},
			excluded: []string{
				"pg-2 lagging: lag unknown (no WAL position of the leader)",
				"pg-3 lagging: lag unknown (no WAL position of the leader)",
			},
		},
		{
			name: "noloadbalance is left out without any option",
			opts: policy.Options{},
			edit: func(r *policy.Region) {
				setKey(r, "pg-2", func(k *policy.MemberKey) { k.NoLoadBalance = true })
			},
			wantRO:   []string{"pg-3"},
			excluded: []string{"pg-2 noloadbalance: noloadbalance"},
		},
		{
			name: "noloadbalance is told before lag",
			opts: lagOptions(16 * mb),
			edit: func(r *policy.Region) {
				setKey(r, "pg-2", func(k *policy.MemberKey) { k.NoLoadBalance, k.XLogLocation = true, 1 })
			},
			wantRO:   []string{"pg-3"},
			excluded: []string{"pg-2 noloadbalance: noloadbalance"},
		},
		{
			name: "not streaming with ro_require_streaming",
			opts: policy.Options{RORequireStreaming: true},
			edit: func(r *policy.Region) {
				setKey(r, "pg-2", func(k *policy.MemberKey) { k.ReplicationState = "in archive recovery" })
			},
			wantRO:   []string{"pg-3"},
			excluded: []string{"pg-2 not_streaming: not streaming (in archive recovery)"},
		},
		{
			name: "no replication_state (Patroni before 3.1) is not excluded",
			opts: policy.Options{RORequireStreaming: true},
			edit: func(r *policy.Region) {
				setKey(r, "pg-2", func(k *policy.MemberKey) { k.ReplicationState = "" })
			},
			wantRO: []string{"pg-2", "pg-3"},
		},
		{
			name: "not streaming without ro_require_streaming serves",
			opts: policy.Options{},
			edit: func(r *policy.Region) {
				setKey(r, "pg-2", func(k *policy.MemberKey) { k.ReplicationState = "in archive recovery" })
			},
			wantRO: []string{"pg-2", "pg-3"},
		},
		{
			name: "lag is told before streaming",
			opts: policy.Options{ROMaxLag: 16 * mb, RORequireStreaming: true},
			edit: func(r *policy.Region) {
				setKey(r, "pg-2", func(k *policy.MemberKey) { k.ReplicationState, k.XLogLocation = "in archive recovery", leaderPos-32*mb })
			},
			wantRO:   []string{"pg-3"},
			excluded: []string{"pg-2 lagging: lag 32 MB > 16 MB"},
		},
		{
			name: "an unhealthy replica is listed",
			opts: policy.Options{},
			edit: func(r *policy.Region) {
				r.Members = slices.Clone(r.Members)
				r.Members[2].Health = policy.HealthCritical
			},
			wantRO:   []string{"pg-2"},
			excluded: []string{"pg-3 unhealthy: critical"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			main := readsRegion("eu", policy.RoleLeader)
			tt.edit(&main)
			d := policy.Decide(policy.Input{Options: tt.opts, Main: main, Standby: policy.Region{Name: "us", Known: true}, Now: t0})
			if got := members(d.RO); !slices.Equal(got, tt.wantRO) {
				t.Errorf("ro = %v, want %v (excluded %q)", got, tt.wantRO, exclusions(d.Main))
			}
			if got := members(d.Main.RO); !slices.Equal(got, tt.wantRO) {
				t.Errorf("ro.eu = %v, want %v", got, tt.wantRO)
			}
			if got := exclusions(d.Main); !slices.Equal(got, tt.excluded) {
				t.Errorf("excluded = %q, want %q", got, tt.excluded)
			}
			var serving []string
			for _, m := range tt.wantRO {
				if m != "pg-1" {
					serving = append(serving, m)
				}
			}
			if !slices.Equal(d.Main.Replicas, serving) {
				t.Errorf("view replicas = %v, want %v", d.Main.Replicas, serving)
			}
		})
	}
}

// TestReadQualityStandbyRegion: a standby cluster's replicas are measured
// against the standby leader's position, in passive-ro and ro.<region>;
// once the standby region is promoted, against its new leader, in ro.
func TestReadQualityStandbyRegion(t *testing.T) {
	opts := lagOptions(16 * mb)
	main := readsRegion("eu", policy.RoleLeader)
	standby := readsRegion("us", policy.RoleStandbyLeader)
	// The standby cluster trails the main one by far more than the limit;
	// its own replicas trail its standby leader by 8 and 24 MB.
	standby.Optime = 0
	setKey(&standby, "pg-1", func(k *policy.MemberKey) { k.XLogLocation = 500 * mb })
	setKey(&standby, "pg-2", func(k *policy.MemberKey) { k.XLogLocation = 492 * mb })
	setKey(&standby, "pg-3", func(k *policy.MemberKey) { k.XLogLocation = 476 * mb })

	d := policy.Decide(policy.Input{Options: opts, Main: main, Standby: standby, Now: t0})
	if got := members(d.PassiveRO); !slices.Equal(got, []string{"pg-2"}) {
		t.Errorf("passive-ro = %v, want [pg-2] (excluded %q)", got, exclusions(d.Standby))
	}
	if got := members(d.Standby.RO); !slices.Equal(got, []string{"pg-2"}) {
		t.Errorf("ro.us = %v, want [pg-2]", got)
	}
	if want := []string{"pg-3 lagging: lag 24 MB > 16 MB"}; !slices.Equal(exclusions(d.Standby), want) {
		t.Errorf("standby excluded = %q, want %q", exclusions(d.Standby), want)
	}

	// Promoted, with the main region down: the same replicas, against the
	// promoted leader's position (its member key, and a status key).
	main.Members = nil
	promoted := standby
	promoted.Members = slices.Clone(standby.Members)
	promoted.Members[0].Role = policy.RoleLeader
	promoted.Config = policy.ConfigPrimary
	promoted.Optime = 510 * mb
	d = policy.Decide(policy.Input{Options: opts, Main: main, Standby: promoted, Now: t0})
	if d.Active != "us" {
		t.Fatalf("active = %s, want us (%s)", d.Active, d.Reason)
	}
	if got := members(d.RO); len(got) != 1 || got[0] != "pg-1" {
		t.Errorf("ro = %v, want the leader pg-1: pg-2 lags 18 MB, pg-3 34 MB (excluded %q)", got, exclusions(d.Standby))
	}
	if want := []string{"pg-2 lagging: lag 18 MB > 16 MB", "pg-3 lagging: lag 34 MB > 16 MB"}; !slices.Equal(exclusions(d.Standby), want) {
		t.Errorf("excluded = %q, want %q", exclusions(d.Standby), want)
	}
}

// TestLagHysteresis follows a replica out of the read names and back: it
// leaves at once when over the limit, and returns at once under half the
// limit, or after it stayed at or under the limit for the settle time.
func TestLagHysteresis(t *testing.T) {
	opts := lagOptions(16 * mb)
	type step struct {
		at       time.Duration // after t0
		lag      int64
		wantIn   bool
		wantWhy  string
		recheck  time.Duration // want Decision.Recheck after t0; 0: none
		wantHeld bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "oscillating around the limit stays out", steps: []step{
			{at: 0, lag: 10 * mb, wantIn: true},
			{at: 1 * time.Second, lag: 17 * mb, wantWhy: "lag 17 MB > 16 MB", wantHeld: true},
			{at: 2 * time.Second, lag: 15 * mb, wantWhy: "lag 15 MB <= 16 MB, settling for 10s", recheck: 12 * time.Second, wantHeld: true},
			{at: 3 * time.Second, lag: 17 * mb, wantWhy: "lag 17 MB > 16 MB", wantHeld: true},
			{at: 4 * time.Second, lag: 15 * mb, wantWhy: "lag 15 MB <= 16 MB, settling for 10s", recheck: 14 * time.Second, wantHeld: true},
			{at: 13 * time.Second, lag: 12 * mb, wantWhy: "lag 12 MB <= 16 MB, settling for 10s", recheck: 14 * time.Second, wantHeld: true},
			{at: 14 * time.Second, lag: 12 * mb, wantIn: true},
			{at: 15 * time.Second, lag: 15 * mb, wantIn: true},
		}},
		{name: "under half the limit returns at once", steps: []step{
			{at: 0, lag: 40 * mb, wantWhy: "lag 40 MB > 16 MB", wantHeld: true},
			{at: 1 * time.Second, lag: 8 * mb, wantIn: true},
		}},
		{name: "just over half the limit settles", steps: []step{
			{at: 0, lag: 40 * mb, wantWhy: "lag 40 MB > 16 MB", wantHeld: true},
			{at: 1 * time.Second, lag: 8*mb + 1, wantWhy: "lag 8.0 MB <= 16 MB, settling for 10s", recheck: 11 * time.Second, wantHeld: true},
			{at: 11 * time.Second, lag: 8*mb + 1, wantIn: true},
		}},
		{name: "a replica never held out serves under the limit", steps: []step{
			{at: 0, lag: 16 * mb, wantIn: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var prev policy.Decision
			for i, s := range tt.steps {
				main := readsRegion("eu", policy.RoleLeader)
				setKey(&main, "pg-3", func(k *policy.MemberKey) { k.XLogLocation = leaderPos - s.lag })
				main.LagHeld = prev.LagHeld("eu")
				now := t0.Add(s.at)
				d := policy.Decide(policy.Input{Options: opts, Main: main, Standby: policy.Region{Name: "us", Known: true}, Now: now})
				in := slices.Contains(members(d.RO), "pg-3")
				if in != s.wantIn {
					t.Fatalf("step %d (+%s, lag %d MB): pg-3 in ro = %v, want %v (excluded %q)", i, s.at, s.lag>>20, in, s.wantIn, exclusions(d.Main))
				}
				if !s.wantIn {
					if len(d.Main.Excluded) != 1 || d.Main.Excluded[0].Why != s.wantWhy {
						t.Errorf("step %d: excluded %q, want pg-3 %q", i, exclusions(d.Main), s.wantWhy)
					}
				}
				var wantRecheck time.Time
				if s.recheck > 0 {
					wantRecheck = t0.Add(s.recheck)
				}
				if !d.Recheck.Equal(wantRecheck) {
					t.Errorf("step %d: recheck %v, want %v", i, d.Recheck, wantRecheck)
				}
				if _, held := d.LagHeld("eu")["pg-3"]; held != s.wantHeld {
					t.Errorf("step %d: pg-3 held for the next decision = %v, want %v", i, held, s.wantHeld)
				}
				prev = d
			}
		})
	}
}

// TestLagHeldCarry: Decision.LagHeld hands a decision's lag exclusions of
// one region to the next input, and nothing else.
func TestLagHeldCarry(t *testing.T) {
	d := policy.Decision{
		Main: policy.RegionView{Name: "eu", Excluded: []policy.Exclusion{
			{Member: "pg-2", State: policy.ReplicaLagging, UnderLimitSince: t0},
			{Member: "pg-3", State: policy.ReplicaLagging},
			{Member: "pg-4", State: policy.ReplicaNoLoadBalance},
		}},
		Standby: policy.RegionView{Name: "us", Excluded: []policy.Exclusion{{Member: "pg-9", State: policy.ReplicaUnhealthy}}},
	}
	if got, want := d.LagHeld("eu"), map[string]time.Time{"pg-2": t0, "pg-3": {}}; !reflect.DeepEqual(got, want) {
		t.Errorf("LagHeld(eu) = %v, want %v", got, want)
	}
	if got := d.LagHeld("us"); got != nil {
		t.Errorf("LagHeld(us) = %v, want nil", got)
	}
	if got := d.LagHeld("elsewhere"); got != nil {
		t.Errorf("LagHeld(elsewhere) = %v, want nil", got)
	}
}

func TestFollowsReads(t *testing.T) {
	for _, tt := range []struct {
		opts policy.Options
		want bool
	}{
		{policy.Options{}, false},
		{policy.Options{ROLagSettle: time.Second}, false},
		{policy.Options{ROMaxLag: 1}, true},
		{policy.Options{RORequireStreaming: true}, true},
	} {
		if got := tt.opts.FollowsReads(); got != tt.want {
			t.Errorf("%+v.FollowsReads() = %v, want %v", tt.opts, got, tt.want)
		}
	}
}

// TestReadQualityAllLayouts: an excluded replica leaves every layout's
// read names; in pool-fleet, the RO pool serves while a replica does.
func TestReadQualityAllLayouts(t *testing.T) {
	for _, layout := range policy.Layouts {
		t.Run(string(layout), func(t *testing.T) {
			fx := mainSite.build(fixPrimary) // replicas 2 and 3 pass
			r := fx.region
			r.MemberData = map[string]policy.MemberKey{
				mainSite.member(2): {NoLoadBalance: true},
				mainSite.member(3): {NoLoadBalance: true},
			}
			d := policy.Decide(policy.Input{Options: policy.Options{Layout: layout}, Main: r, Standby: standbySite.build(fixStandby).region})
			checkEndpoints(t, "ro", d.RO, fx.wantWrite(layout))
			checkEndpoints(t, "ro."+mainSite.name, d.Main.RO, fx.wantWrite(layout))
			var states []string
			for _, e := range d.Main.Excluded {
				states = append(states, string(e.State))
			}
			if want := "noloadbalance,noloadbalance,unhealthy"; strings.Join(states, ",") != want {
				t.Errorf("excluded states = %v, want %s", states, want)
			}
		})
	}
}

// TestRegionPinnedAcrossPromotion: ro.<region> answers its own region's
// replicas before and after the standby region's promotion, whichever
// region ro and passive-ro follow.
func TestRegionPinnedAcrossPromotion(t *testing.T) {
	main := readsRegion("eu", policy.RoleLeader)
	standby := readsRegion("us", policy.RoleStandbyLeader)
	promoted := standby
	promoted.Members = slices.Clone(standby.Members)
	promoted.Members[0].Role = policy.RoleLeader
	promoted.Config = policy.ConfigPrimary
	mainDown := main
	mainDown.Members = slices.Clone(main.Members)
	mainDown.Members[0].Health = policy.HealthCritical
	mainGone := main
	mainGone.Members = nil

	for _, tt := range []struct {
		name            string
		main, standby   policy.Region
		active          string
		wantEU, wantUS  []string // members, in region eu and us
		wantRO, wantPRO []string
	}{
		{name: "before", main: main, standby: standby, active: "eu",
			wantEU: []string{"pg-2", "pg-3"}, wantUS: []string{"pg-2", "pg-3"}, wantRO: []string{"pg-2", "pg-3"}, wantPRO: []string{"pg-2", "pg-3"}},
		{name: "promoted, main leader down", main: mainDown, standby: promoted, active: "us",
			wantEU: []string{"pg-2", "pg-3"}, wantUS: []string{"pg-2", "pg-3"}, wantRO: []string{"pg-2", "pg-3"}, wantPRO: []string{"pg-2", "pg-3"}},
		{name: "promoted, main region gone", main: mainGone, standby: promoted, active: "us",
			wantEU: nil, wantUS: []string{"pg-2", "pg-3"}, wantRO: []string{"pg-2", "pg-3"}, wantPRO: nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := policy.Decide(policy.Input{Main: tt.main, Standby: tt.standby})
			if d.Active != tt.active {
				t.Fatalf("active = %s, want %s (%s)", d.Active, tt.active, d.Reason)
			}
			for _, c := range []struct {
				name   string
				eps    []policy.Endpoint
				region string
				want   []string
			}{
				{"ro.eu", d.Main.RO, "eu", tt.wantEU},
				{"ro.us", d.Standby.RO, "us", tt.wantUS},
				{"ro", d.RO, tt.active, tt.wantRO},
				{"passive-ro", d.PassiveRO, d.Passive, tt.wantPRO},
			} {
				if got := members(c.eps); !slices.Equal(got, c.want) {
					t.Errorf("%s = %v, want %v", c.name, got, c.want)
				}
				for _, e := range c.eps {
					if e.Region != c.region {
						t.Errorf("%s answers %+v, not from region %s", c.name, e, c.region)
					}
				}
			}
		})
	}
}
