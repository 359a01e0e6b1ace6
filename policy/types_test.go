package policy_test

import (
	"strings"
	"testing"

	"github.com/regiondns/regiondns/policy"
)

func TestRoleTagsClassify(t *testing.T) {
	custom := policy.RoleTags{Leader: []string{"rw"}, Replica: []string{"ro"}, StandbyLeader: []string{"dr-leader"}}
	tests := []struct {
		name string
		tags policy.RoleTags
		in   []string
		want policy.Role
	}{
		{name: "patroni 3.x leader", tags: policy.DefaultRoleTags(), in: []string{"master", "primary"}, want: policy.RoleLeader},
		{name: "patroni 4.x leader", tags: policy.DefaultRoleTags(), in: []string{"primary", "master"}, want: policy.RoleLeader},
		{name: "patroni 2.x leader: master only", tags: policy.DefaultRoleTags(), in: []string{"master"}, want: policy.RoleLeader},
		{name: "primary only", tags: policy.DefaultRoleTags(), in: []string{"primary"}, want: policy.RoleLeader},
		{name: "replica", tags: policy.DefaultRoleTags(), in: []string{"replica"}, want: policy.RoleReplica},
		{name: "standby leader", tags: policy.DefaultRoleTags(), in: []string{"standby-leader"}, want: policy.RoleStandbyLeader},
		{name: "static service tags around the role", tags: policy.DefaultRoleTags(), in: []string{"pg16", "replica", "eu-west"}, want: policy.RoleReplica},
		{name: "leader beats replica", tags: policy.DefaultRoleTags(), in: []string{"replica", "master"}, want: policy.RoleLeader},
		{name: "leader beats standby leader", tags: policy.DefaultRoleTags(), in: []string{"standby-leader", "primary"}, want: policy.RoleLeader},
		{name: "leader listed first beats standby leader", tags: policy.DefaultRoleTags(), in: []string{"primary", "standby-leader"}, want: policy.RoleLeader},
		{name: "standby leader beats replica listed after", tags: policy.DefaultRoleTags(), in: []string{"standby-leader", "replica"}, want: policy.RoleStandbyLeader},
		{name: "standby leader beats replica listed before", tags: policy.DefaultRoleTags(), in: []string{"replica", "standby-leader"}, want: policy.RoleStandbyLeader},
		{name: "all three", tags: policy.DefaultRoleTags(), in: []string{"replica", "standby-leader", "master"}, want: policy.RoleLeader},
		{name: "upper case leader", tags: policy.DefaultRoleTags(), in: []string{"MASTER"}, want: policy.RoleLeader},
		{name: "mixed case standby leader", tags: policy.DefaultRoleTags(), in: []string{"Standby-Leader"}, want: policy.RoleStandbyLeader},
		{name: "mixed case replica", tags: policy.DefaultRoleTags(), in: []string{"Replica"}, want: policy.RoleReplica},
		{name: "no tags", tags: policy.DefaultRoleTags(), in: nil, want: policy.RoleUnknown},
		{name: "unrelated tags", tags: policy.DefaultRoleTags(), in: []string{"pg16", "leader", "standby"}, want: policy.RoleUnknown},
		{name: "near miss is not a match", tags: policy.DefaultRoleTags(), in: []string{"masters", "replica-1"}, want: policy.RoleUnknown},
		{name: "custom leader", tags: custom, in: []string{"ro", "RW"}, want: policy.RoleLeader},
		{name: "custom standby leader", tags: custom, in: []string{"ro", "dr-leader"}, want: policy.RoleStandbyLeader},
		{name: "custom tags ignore patroni defaults", tags: custom, in: []string{"master", "replica"}, want: policy.RoleUnknown},
		{name: "empty role tags classify nothing", tags: policy.RoleTags{}, in: []string{"master"}, want: policy.RoleUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.tags.Classify(tt.in); got != tt.want {
				t.Errorf("Classify(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestLabel(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "already a label", in: "pg-node-1", want: "pg-node-1"},
		{name: "underscores", in: "pg_node_1", want: "pg-node-1"},
		{name: "upper case", in: "PG-Node-1", want: "pg-node-1"},
		{name: "dots", in: "node1.dc1.consul", want: "node1-dc1-consul"},
		{name: "leading and trailing junk", in: "_pg1.", want: "pg1"},
		{name: "non-ascii", in: "pgé1", want: "pg-1"},
		{name: "exactly 63", in: strings.Repeat("a", 63), want: strings.Repeat("a", 63)},
		{name: "longer than 63", in: strings.Repeat("b", 80), want: strings.Repeat("b", 63)},
		{name: "cut ending on a hyphen", in: strings.Repeat("c", 62) + "_d", want: strings.Repeat("c", 62)},
		{name: "empty", in: "", want: "endpoint"},
		{name: "nothing usable", in: "__..", want: "endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := policy.Label(tt.in)
			if got != tt.want {
				t.Errorf("Label(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if len(got) > 63 {
				t.Errorf("Label(%q) is %d octets long", tt.in, len(got))
			}
		})
	}
}

func TestStrings(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{name: "leader", got: policy.RoleLeader.String(), want: "leader"},
		{name: "standby leader", got: policy.RoleStandbyLeader.String(), want: "standby-leader"},
		{name: "replica", got: policy.RoleReplica.String(), want: "replica"},
		{name: "unknown role", got: policy.RoleUnknown.String(), want: "unknown"},
		{name: "passing", got: policy.HealthPassing.String(), want: "passing"},
		{name: "warning", got: policy.HealthWarning.String(), want: "warning"},
		{name: "critical", got: policy.HealthCritical.String(), want: "critical"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("String() = %q, want %q", tt.got, tt.want)
			}
		})
	}
}
