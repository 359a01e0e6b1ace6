package policy_test

import (
	"strings"
	"testing"

	"github.com/regiondns/regiondns/policy"
)

func decide(o policy.Options, main, standby regionFixture) policy.Decision {
	return policy.Decide(policy.Input{Options: o, Main: main.region, Standby: standby.region})
}

func direct() policy.Options {
	return policy.Options{Layout: policy.LayoutDirect, ROFallback: policy.FallbackLeader}
}

// withTimelines sets every member's timeline to tl; 0 removes the data.
func withTimelines(fx regionFixture, tl int64) regionFixture {
	if tl == 0 {
		fx.region.Timelines = nil
		return fx
	}
	for m := range fx.region.Timelines {
		fx.region.Timelines[m] = tl
	}
	return fx
}

func TestSplitBrainTimeline(t *testing.T) {
	tests := []struct {
		name              string
		mainTL, standbyTL int64
		wantActive        string
		wantReason        string
	}{
		{name: "main ahead wins", mainTL: 6, standbyTL: 5, wantActive: "eu", wantReason: "main region wins on timeline 6 > 5"},
		{name: "promoted standby ahead wins", mainTL: 4, standbyTL: 5, wantActive: "us", wantReason: "promoted standby region wins on timeline 5 > 4"},
		{name: "equal timelines go to standby", mainTL: 5, standbyTL: 5, wantActive: "us", wantReason: "timelines do not decide"},
		{name: "main timeline unknown goes to standby", mainTL: 0, standbyTL: 5, wantActive: "us", wantReason: "timelines do not decide"},
		{name: "standby timeline unknown goes to standby", mainTL: 9, standbyTL: 0, wantActive: "us", wantReason: "timelines do not decide"},
		{name: "no timelines go to standby", mainTL: 0, standbyTL: 0, wantActive: "us", wantReason: "timelines do not decide"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := withTimelines(mainSite.build(fixPrimary), tt.mainTL)
			s := withTimelines(standbySite.build(fixPrimary), tt.standbyTL)
			d := decide(direct(), m, s)
			if !d.SplitBrain {
				t.Fatalf("SplitBrain = false, want true (reason %q)", d.Reason)
			}
			if d.Main.Timeline != tt.mainTL || d.Standby.Timeline != tt.standbyTL {
				t.Errorf("view timelines = %d/%d, want %d/%d", d.Main.Timeline, d.Standby.Timeline, tt.mainTL, tt.standbyTL)
			}
			winner, loser := m, s
			if tt.wantActive == "us" {
				winner, loser = s, m
			}
			if d.Active != winner.site.name || d.Passive != loser.site.name {
				t.Errorf("active/passive = %s/%s, want %s/%s", d.Active, d.Passive, winner.site.name, loser.site.name)
			}
			if !strings.Contains(d.Reason, tt.wantReason) {
				t.Errorf("reason %q does not contain %q", d.Reason, tt.wantReason)
			}
			// Both leaders are served, each under its own names only.
			checkEndpoints(t, "RW", d.RW, []policy.Endpoint{winner.site.memberEP(1)})
			checkEndpoints(t, "PassiveRW", d.PassiveRW, []policy.Endpoint{loser.site.memberEP(1)})
		})
	}
}

func TestConflict(t *testing.T) {
	tests := []struct {
		name       string
		leaderKey  string
		wantLeader int // 0: no leader may be answered
	}{
		{name: "leader key names the first leader", leaderKey: "eu-pg-1", wantLeader: 1},
		{name: "leader key names the second leader", leaderKey: "eu-pg-2", wantLeader: 2},
		{name: "no leader key", leaderKey: ""},
		{name: "leader key names a replica", leaderKey: "eu-pg-3"},
		{name: "leader key names a critical leader", leaderKey: "eu-pg-4"},
		{name: "leader key names an absent member", leaderKey: "eu-pg-9"},
		{name: "leader key differs in case", leaderKey: "EU-PG-1"},
	}
	for _, tt := range tests {
		for _, side := range []string{"main", "standby"} {
			t.Run(side+"/"+tt.name, func(t *testing.T) {
				s := mainSite
				if side == "standby" {
					s = standbySite
				}
				fx := s.build(fixConflict)
				fx.region.Members = append(fx.region.Members, s.patroni(4, policy.RoleLeader, policy.HealthCritical))
				fx.region.LeaderKey = strings.Replace(tt.leaderKey, "eu", s.name, 1)
				fx.region.LeaderKey = strings.Replace(fx.region.LeaderKey, "EU", strings.ToUpper(s.name), 1)

				// Main conflicts against a standby cluster; a standby conflict
				// against a main without a leader, so that a resolved one makes
				// the standby active and an unresolved one leaves it passive.
				var d policy.Decision
				var view policy.RegionView
				rw, ro := &d.RW, &d.RO
				if side == "main" {
					d = decide(direct(), fx, standbySite.build(fixStandby))
					view = d.Main
				} else {
					d = decide(direct(), mainSite.build(fixNone), fx)
					view = d.Standby
					if tt.wantLeader == 0 {
						rw, ro = &d.PassiveRW, &d.PassiveRO
					}
				}
				if view.State != policy.StateConflict {
					t.Errorf("state = %s, want conflict", view.State)
				}
				var want []policy.Endpoint
				wantName := ""
				if tt.wantLeader != 0 {
					want = []policy.Endpoint{s.memberEP(tt.wantLeader)}
					wantName = s.member(tt.wantLeader)
				}
				if view.Leader != wantName {
					t.Errorf("view leader = %q, want %q", view.Leader, wantName)
				}
				checkEndpoints(t, "write name", *rw, want)
				// The replica keeps serving reads whatever the leaders do.
				checkEndpoints(t, "read name", *ro, []policy.Endpoint{s.memberEP(3)})
				if d.SplitBrain {
					t.Errorf("SplitBrain with one region writable: %q", d.Reason)
				}
			})
		}
	}
}

// A standby cluster with two standby leaders has not been promoted: the
// leader key picks which one passive-rw answers, and rw must not name it.
func TestTwoStandbyLeadersAreNotAPromotion(t *testing.T) {
	standbyFx := standbySite.build(fixStandby)
	standbyFx.region.Members = append(standbyFx.region.Members,
		standbySite.patroni(4, policy.RoleStandbyLeader, policy.HealthPassing))
	standbyFx.region.LeaderKey = standbySite.member(4)

	tests := []struct {
		name       string
		main       fix
		wantRW     []policy.Endpoint
		wantActive string
	}{
		{name: "main has no leader", main: fixNone, wantRW: nil, wantActive: "eu"},
		{name: "main is primary", main: fixPrimary, wantRW: []policy.Endpoint{mainSite.memberEP(1)}, wantActive: "eu"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := decide(direct(), mainSite.build(tt.main), standbyFx)
			if d.Active != tt.wantActive || d.SplitBrain {
				t.Errorf("active = %s, split brain = %v (reason %q); want %s without split brain", d.Active, d.SplitBrain, d.Reason, tt.wantActive)
			}
			checkEndpoints(t, "RW", d.RW, tt.wantRW)
			checkEndpoints(t, "PassiveRW", d.PassiveRW, []policy.Endpoint{standbySite.memberEP(4)})
		})
	}
}

func TestROFallback(t *testing.T) {
	tests := []struct {
		name     string
		layout   policy.Layout
		fallback policy.ROFallback
		mutate   func(*policy.Region)
		// wantLeader: ro answers what rw does; otherwise nothing.
		wantLeader bool
	}{
		{
			name: "direct, no passing replica, leader", layout: policy.LayoutDirect, fallback: policy.FallbackLeader,
			mutate: criticalReplicas, wantLeader: true,
		},
		{
			name: "direct, no passing replica, none", layout: policy.LayoutDirect, fallback: policy.FallbackNone,
			mutate: criticalReplicas, wantLeader: false,
		},
		{
			name: "bouncer-per-node, no passing replica, leader", layout: policy.LayoutBouncerPerNode, fallback: policy.FallbackLeader,
			mutate: criticalReplicas, wantLeader: true,
		},
		{
			name: "bouncer-per-node, no passing replica, none", layout: policy.LayoutBouncerPerNode, fallback: policy.FallbackNone,
			mutate: criticalReplicas, wantLeader: false,
		},
		{
			name: "bouncer-per-node, replicas pass but their bouncers do not, leader", layout: policy.LayoutBouncerPerNode, fallback: policy.FallbackLeader,
			mutate: func(r *policy.Region) { r.Bouncers[1].Health = policy.HealthCritical }, wantLeader: true,
		},
		{
			name: "pool-fleet, no passing replica, leader", layout: policy.LayoutPoolFleet, fallback: policy.FallbackLeader,
			mutate: criticalReplicas, wantLeader: true,
		},
		{
			name: "pool-fleet, no passing replica, none", layout: policy.LayoutPoolFleet, fallback: policy.FallbackNone,
			mutate: criticalReplicas, wantLeader: false,
		},
		{
			name: "pool-fleet, replicas pass but the ro pool does not, leader", layout: policy.LayoutPoolFleet, fallback: policy.FallbackLeader,
			mutate: func(r *policy.Region) {
				for i := range r.PoolRO {
					r.PoolRO[i].Health = policy.HealthCritical
				}
			},
			wantLeader: true,
		},
		{
			name: "unset fallback means leader", layout: policy.LayoutDirect, fallback: "",
			mutate: criticalReplicas, wantLeader: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := mainSite.build(fixPrimary)
			tt.mutate(&fx.region)
			d := decide(policy.Options{Layout: tt.layout, ROFallback: tt.fallback}, fx, standbySite.build(fixStandby))
			checkEndpoints(t, "RW", d.RW, fx.wantWrite(tt.layout))
			var want []policy.Endpoint
			if tt.wantLeader {
				want = fx.wantWrite(tt.layout)
			}
			checkEndpoints(t, "RO", d.RO, want)
		})
	}
}

func criticalReplicas(r *policy.Region) {
	for i := range r.Members {
		if r.Members[i].Role == policy.RoleReplica {
			r.Members[i].Health = policy.HealthCritical
		}
	}
}

// passive-ro falls back to the passive leader whatever ROFallback says: the
// standby region's applications have nowhere else to read.
func TestPassiveROFallsBackToPassiveLeader(t *testing.T) {
	for _, layout := range policy.Layouts {
		for _, fb := range []policy.ROFallback{policy.FallbackLeader, policy.FallbackNone} {
			t.Run(string(layout)+"/"+string(fb), func(t *testing.T) {
				s := standbySite.build(fixStandby)
				criticalReplicas(&s.region)
				d := decide(policy.Options{Layout: layout, ROFallback: fb}, mainSite.build(fixPrimary), s)
				checkEndpoints(t, "PassiveRO", d.PassiveRO, s.wantWrite(layout))
				if len(d.PassiveRO) == 0 {
					t.Error("passive-ro is empty, want the standby leader")
				}
			})
		}
	}
}

func TestPassiveRegionNeverAnswersRWOrRO(t *testing.T) {
	tests := []struct {
		name          string
		main, standby fix
		fallback      policy.ROFallback
		mutateMain    func(*policy.Region)
		wantRW        []policy.Endpoint
		wantRO        []policy.Endpoint
	}{
		{
			name: "main primary without replicas, fallback none", main: fixPrimary, standby: fixStandby,
			fallback: policy.FallbackNone, mutateMain: criticalReplicas,
			wantRW: []policy.Endpoint{mainSite.memberEP(1)}, wantRO: nil,
		},
		{
			name: "no leader anywhere: main stays active", main: fixNone, standby: fixStandby,
			fallback: policy.FallbackLeader, mutateMain: func(*policy.Region) {},
			wantRW: nil, wantRO: []policy.Endpoint{mainSite.memberEP(2)},
		},
		{
			name: "main down, standby not promoted", main: fixDown, standby: fixStandby,
			fallback: policy.FallbackLeader, mutateMain: func(*policy.Region) {},
			wantRW: nil, wantRO: nil,
		},
		{
			name: "main never read, standby not promoted", main: fixUnknown, standby: fixStandby,
			fallback: policy.FallbackLeader, mutateMain: func(*policy.Region) {},
			wantRW: nil, wantRO: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, s := mainSite.build(tt.main), standbySite.build(tt.standby)
			tt.mutateMain(&m.region)
			d := decide(policy.Options{Layout: policy.LayoutDirect, ROFallback: tt.fallback}, m, s)
			if d.Active != "eu" || d.Passive != "us" {
				t.Errorf("active/passive = %s/%s, want eu/us", d.Active, d.Passive)
			}
			checkEndpoints(t, "RW", d.RW, tt.wantRW)
			checkEndpoints(t, "RO", d.RO, tt.wantRO)
			checkEndpoints(t, "PassiveRW", d.PassiveRW, []policy.Endpoint{standbySite.memberEP(1)})
		})
	}
}

func TestStaleRegion(t *testing.T) {
	tests := []struct {
		name              string
		main, standby     fix
		mainTL, standbyTL int64
		wantActive        string
		wantSplit         bool
	}{
		{name: "stale main, promoted standby ahead: promotion takes effect", main: fixStale, standby: fixPrimary, mainTL: 4, standbyTL: 5, wantActive: "us", wantSplit: true},
		{name: "stale main, promoted standby, no timelines: promotion takes effect", main: fixStale, standby: fixPrimary, wantActive: "us", wantSplit: true},
		{name: "stale main, standby not promoted: last known primary served", main: fixStale, standby: fixStandby, mainTL: 4, standbyTL: 4, wantActive: "eu"},
		{name: "stale promoted standby, main without leader: stays active", main: fixNone, standby: fixStale, standbyTL: 5, wantActive: "us"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := withTimelines(mainSite.build(tt.main), tt.mainTL)
			s := withTimelines(standbySite.build(tt.standby), tt.standbyTL)
			d := decide(direct(), m, s)
			if d.Active != tt.wantActive || d.SplitBrain != tt.wantSplit || !d.Stale {
				t.Errorf("active=%s split=%v stale=%v, want active=%s split=%v stale=true (reason %q)",
					d.Active, d.SplitBrain, d.Stale, tt.wantActive, tt.wantSplit, d.Reason)
			}
			active := m
			if tt.wantActive == "us" {
				active = s
			}
			checkEndpoints(t, "RW", d.RW, active.wantWrite(policy.LayoutDirect))
		})
	}
}

func TestZeroOptionsAreDirectWithLeaderFallback(t *testing.T) {
	m := mainSite.build(fixPrimary)
	criticalReplicas(&m.region)
	d := decide(policy.Options{}, m, standbySite.build(fixStandby))
	checkEndpoints(t, "RW", d.RW, []policy.Endpoint{mainSite.memberEP(1)})
	checkEndpoints(t, "RO", d.RO, []policy.Endpoint{mainSite.memberEP(1)})
}
