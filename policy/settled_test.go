package policy_test

import (
	"testing"

	"github.com/regiondns/regiondns/policy"
)

func TestSettled(t *testing.T) {
	leader := policy.Instance{Member: "pg-1", Role: policy.RoleLeader, Health: policy.HealthPassing}
	standbyLeader := policy.Instance{Member: "pg-1", Role: policy.RoleStandbyLeader, Health: policy.HealthPassing}
	replica := policy.Instance{Member: "pg-2", Role: policy.RoleReplica, Health: policy.HealthPassing}
	second := policy.Instance{Member: "pg-2", Role: policy.RoleLeader, Health: policy.HealthPassing}
	critical := leader
	critical.Health = policy.HealthCritical
	warning := leader
	warning.Health = policy.HealthWarning
	warningStandbyLeader := standbyLeader
	warningStandbyLeader.Health = policy.HealthWarning
	otherPrimary := policy.Region{Known: true, Members: []policy.Instance{leader}}
	otherWarningPrimary := policy.Region{Known: true, Members: []policy.Instance{warning}}
	otherStandby := policy.Region{Known: true, Members: []policy.Instance{standbyLeader}}
	for _, tc := range []struct {
		name      string
		members   []policy.Instance
		leaderKey string
		config    policy.ClusterConfig
		others    []policy.Region
		warningOK bool
		want      bool
	}{
		{name: "one leader holding the key, primary config", members: []policy.Instance{leader, replica}, leaderKey: "pg-1", config: policy.ConfigPrimary, want: true},
		{name: "one standby leader holding the key, standby config", members: []policy.Instance{standbyLeader, replica}, leaderKey: "pg-1", config: policy.ConfigStandby, want: true},
		{name: "no config key", members: []policy.Instance{leader}, leaderKey: "pg-1", want: true},
		{name: "no leader", members: []policy.Instance{replica}, leaderKey: "pg-1", config: policy.ConfigPrimary},
		{name: "no member"},
		{name: "leader failing its check", members: []policy.Instance{critical, replica}, leaderKey: "pg-1"},
		{name: "two leaders", members: []policy.Instance{leader, second}, leaderKey: "pg-1"},
		{name: "leader key names another member", members: []policy.Instance{leader, replica}, leaderKey: "pg-2"},
		{name: "no leader key", members: []policy.Instance{leader, replica}},
		{name: "standby config, primary leader (being demoted)", members: []policy.Instance{leader}, leaderKey: "pg-1", config: policy.ConfigStandby},
		{name: "primary config, standby leader (being promoted)", members: []policy.Instance{standbyLeader}, leaderKey: "pg-1", config: policy.ConfigPrimary},

		{name: "leader in warning, warning is not passing", members: []policy.Instance{warning, replica}, leaderKey: "pg-1", config: policy.ConfigPrimary},
		{name: "leader in warning, warning is passing", members: []policy.Instance{warning, replica}, leaderKey: "pg-1", config: policy.ConfigPrimary, warningOK: true, want: true},
		{name: "standby leader in warning, warning is passing", members: []policy.Instance{warningStandbyLeader}, leaderKey: "pg-1", config: policy.ConfigStandby, warningOK: true, want: true},
		{name: "a leader in warning beside a passing one, warning is passing", members: []policy.Instance{warning, second}, leaderKey: "pg-1", warningOK: true},

		{name: "primary here and in the other region (split brain)", members: []policy.Instance{leader}, leaderKey: "pg-1", others: []policy.Region{otherPrimary}},
		{name: "primary here, other region's primary in warning, warning is not passing", members: []policy.Instance{leader}, leaderKey: "pg-1", others: []policy.Region{otherWarningPrimary}, want: true},
		{name: "primary here, other region's primary in warning, warning is passing", members: []policy.Instance{leader}, leaderKey: "pg-1", others: []policy.Region{otherWarningPrimary}, warningOK: true},
		{name: "primary here, the other region not read yet", members: []policy.Instance{leader}, leaderKey: "pg-1", others: []policy.Region{{Members: []policy.Instance{leader}}}, want: true},
		{name: "primary here, standby leader in the other region", members: []policy.Instance{leader}, leaderKey: "pg-1", others: []policy.Region{otherStandby}, want: true},
		{name: "standby leader here, primary in the other region", members: []policy.Instance{standbyLeader}, leaderKey: "pg-1", config: policy.ConfigStandby, others: []policy.Region{otherPrimary}, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := policy.Region{Known: true, Members: tc.members, LeaderKey: tc.leaderKey, Config: tc.config}
			if got := policy.Settled(policy.Options{WarningIsPassing: tc.warningOK}, &r, tc.others); got != tc.want {
				t.Errorf("Settled = %v, want %v", got, tc.want)
			}
		})
	}
}

// Settled and Decide count health alike: a region Settled calls at rest is
// one whose leader Decide answers with.
func TestSettledAgreesWithDecide(t *testing.T) {
	warning := policy.Instance{ID: "orders/pg-1", Member: "pg-1", Node: "n1", Role: policy.RoleLeader, Health: policy.HealthWarning}
	for _, warningOK := range []bool{false, true} {
		main := policy.Region{Name: "main", Known: true, Members: []policy.Instance{warning}, LeaderKey: "pg-1", Config: policy.ConfigPrimary}
		o := policy.Options{WarningIsPassing: warningOK}
		d := policy.Decide(policy.Input{Options: o, Main: main, Standby: policy.Region{Name: "standby", Known: true}})
		if settled, leads := policy.Settled(o, &main, nil), d.Main.Leader == "pg-1"; settled != leads {
			t.Errorf("warning_is_passing %v: Settled = %v but Decide's main leader is %q", warningOK, settled, d.Main.Leader)
		}
	}
}
