package policy

import (
	"net/netip"
	"strings"
	"testing"
)

func promotionMember(name string, role Role, health Health, addr string) Instance {
	return Instance{ID: "acme/" + name, Member: name, Node: name, Address: netip.MustParseAddr(addr), Port: 5432, Role: role, Health: health}
}

// TestPromotedStandbyBetweenLeaders covers a standby region whose Patroni
// config no longer holds standby_cluster (it was promoted) while it has no
// read-write leader: a switchover or failover inside the promoted region.
// The answer must never fall back to the other region's leader unless that
// leader's timeline is higher.
func TestPromotedStandbyBetweenLeaders(t *testing.T) {
	mainPrimary := Region{Name: "main", Known: true,
		Members: []Instance{
			promotionMember("m1", RoleLeader, HealthPassing, "10.0.1.1"),
			promotionMember("m2", RoleReplica, HealthPassing, "10.0.1.2"),
		},
		Timelines: map[string]int64{"m1": 2, "m2": 2}, Config: ConfigPrimary}
	mainNone := mainPrimary
	mainNone.Members = []Instance{promotionMember("m2", RoleReplica, HealthPassing, "10.0.1.2")}
	standby := func(cfg ClusterConfig, tl int64, members ...Instance) Region {
		r := Region{Name: "standby", Known: true, Members: members, Config: cfg, Timelines: map[string]int64{}}
		for _, m := range members {
			r.Timelines[m.Member] = tl
		}
		return r
	}
	s1Replica := promotionMember("s1", RoleReplica, HealthPassing, "10.0.2.1")
	s2Replica := promotionMember("s2", RoleReplica, HealthPassing, "10.0.2.2")
	s1StandbyLeader := promotionMember("s1", RoleStandbyLeader, HealthPassing, "10.0.2.1")
	s1Critical := promotionMember("s1", RoleReplica, HealthCritical, "10.0.2.1")

	tests := []struct {
		name                string
		main, standby       Region
		wantActive          string
		wantRW, wantRO      []string
		wantSplit, promoted bool
		wantReason          string
	}{
		{name: "promoted region electing, higher timeline: NODATA, never the old main",
			main: mainPrimary, standby: standby(ConfigPrimary, 3, s1Replica, s2Replica),
			wantActive: "standby", wantRO: []string{"10.0.2.1", "10.0.2.2"}, wantSplit: true, promoted: true,
			wantReason: "promoted standby region is electing one; promoted standby region wins on timeline 3 > 2"},
		{name: "promoted region electing, equal timelines: the promoted region still wins",
			main: mainPrimary, standby: standby(ConfigPrimary, 2, s1Replica, s2Replica),
			wantActive: "standby", wantRO: []string{"10.0.2.1", "10.0.2.2"}, wantSplit: true, promoted: true,
			wantReason: "timelines do not decide; promoted standby region wins"},
		{name: "promoted region electing, lower timeline: the main leader wins",
			main: mainPrimary, standby: standby(ConfigPrimary, 1, s1Replica, s2Replica),
			wantActive: "main", wantRW: []string{"10.0.1.1"}, wantRO: []string{"10.0.1.2"}, wantSplit: true, promoted: true,
			wantReason: "main region wins on timeline 2 > 1"},
		{name: "promotion seen before the new leader's tags, main down",
			main: mainNone, standby: standby(ConfigPrimary, 2, s1StandbyLeader, s2Replica),
			wantActive: "standby", wantRO: []string{"10.0.2.2"}, promoted: true,
			wantReason: "standby region was promoted and is electing a leader"},
		{name: "still a standby cluster: main stays active",
			main: mainNone, standby: standby(ConfigStandby, 2, s1StandbyLeader, s2Replica),
			wantActive: "main", wantRO: []string{"10.0.1.2"},
			wantReason: "no leader"},
		{name: "config unknown: no promotion is assumed",
			main: mainPrimary, standby: standby(ConfigUnknown, 3, s1Replica),
			wantActive: "main", wantRW: []string{"10.0.1.1"}, wantRO: []string{"10.0.1.2"},
			wantReason: "main region is primary"},
		{name: "every check critical during the role change, member keys present: still a claim",
			main: mainPrimary, standby: func() Region {
				r := standby(ConfigPrimary, 3, s1Critical)
				r.MemberKeys = []string{"s1", "s2"}
				return r
			}(),
			wantActive: "standby", wantSplit: true, promoted: true,
			wantReason: "promoted standby region wins on timeline 3 > 2"},
		{name: "promoted config but nothing passing and no member key: not a claim",
			main: mainPrimary, standby: standby(ConfigPrimary, 3, s1Critical),
			wantActive: "main", wantRW: []string{"10.0.1.1"}, wantRO: []string{"10.0.1.2"},
			wantReason: "main region is primary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(Input{Options: Options{Layout: LayoutDirect}, Main: tt.main, Standby: tt.standby})
			if d.Active != tt.wantActive || d.SplitBrain != tt.wantSplit || d.Standby.Promoted != tt.promoted {
				t.Errorf("active %s split %t promoted %t, want %s %t %t (%s)",
					d.Active, d.SplitBrain, d.Standby.Promoted, tt.wantActive, tt.wantSplit, tt.promoted, d.Reason)
			}
			if got := addrs(d.RW); strings.Join(got, ",") != strings.Join(tt.wantRW, ",") {
				t.Errorf("rw = %v, want %v", got, tt.wantRW)
			}
			if got := addrs(d.RO); strings.Join(got, ",") != strings.Join(tt.wantRO, ",") {
				t.Errorf("ro = %v, want %v", got, tt.wantRO)
			}
			if !strings.Contains(d.Reason, tt.wantReason) {
				t.Errorf("reason = %q, want it to contain %q", d.Reason, tt.wantReason)
			}
		})
	}
}

func addrs(eps []Endpoint) []string {
	var out []string
	for _, e := range eps {
		out = append(out, e.Address.String())
	}
	return out
}
