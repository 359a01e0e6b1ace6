package policy_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/regiondns/regiondns/policy"
)

func TestWarningIsPassing(t *testing.T) {
	tests := []struct {
		name    string
		layout  policy.Layout
		mutate  func(*policy.Region)
		warning bool
		wantRW  func() []policy.Endpoint
		wantRO  func() []policy.Endpoint
	}{
		{
			name: "warning leader does not count", layout: policy.LayoutDirect,
			mutate: warnMember(1), warning: false,
			wantRW: none, wantRO: eps(mainSite.memberEP(2), mainSite.memberEP(3)),
		},
		{
			name: "warning leader counts when configured", layout: policy.LayoutDirect,
			mutate: warnMember(1), warning: true,
			wantRW: eps(mainSite.memberEP(1)), wantRO: eps(mainSite.memberEP(2), mainSite.memberEP(3)),
		},
		{
			name: "warning replica does not count", layout: policy.LayoutDirect,
			mutate: warnMember(4), warning: false,
			wantRW: eps(mainSite.memberEP(1)), wantRO: eps(mainSite.memberEP(2), mainSite.memberEP(3)),
		},
		{
			name: "warning replica counts when configured", layout: policy.LayoutDirect,
			mutate: warnMember(4), warning: true,
			wantRW: eps(mainSite.memberEP(1)), wantRO: eps(mainSite.memberEP(2), mainSite.memberEP(3), mainSite.memberEP(4)),
		},
		{
			name: "warning bouncer does not count", layout: policy.LayoutBouncerPerNode,
			mutate: warnBouncer(1), warning: false,
			wantRW: none, wantRO: eps(mainSite.bouncerEP(2)),
		},
		{
			name: "warning bouncer counts when configured", layout: policy.LayoutBouncerPerNode,
			mutate: warnBouncer(1), warning: true,
			wantRW: eps(mainSite.bouncerEP(1)), wantRO: eps(mainSite.bouncerEP(2)),
		},
		{
			name: "warning pool instance does not count", layout: policy.LayoutPoolFleet,
			mutate: warnPool, warning: false,
			wantRW: eps(mainSite.poolEP("rw", 1), mainSite.poolEP("rw", 2)),
			wantRO: eps(mainSite.poolEP("ro", 1), mainSite.poolEP("ro", 3)),
		},
		{
			name: "warning pool instance counts when configured", layout: policy.LayoutPoolFleet,
			mutate: warnPool, warning: true,
			wantRW: eps(mainSite.poolEP("rw", 1), mainSite.poolEP("rw", 2), mainSite.poolEP("rw", 3)),
			wantRO: eps(mainSite.poolEP("ro", 1), mainSite.poolEP("ro", 2), mainSite.poolEP("ro", 3)),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mainSite.build(fixPrimary)
			tt.mutate(&m.region)
			o := policy.Options{Layout: tt.layout, ROFallback: policy.FallbackNone, WarningIsPassing: tt.warning}
			d := decide(o, m, standbySite.build(fixStandby))
			checkEndpoints(t, "RW", d.RW, tt.wantRW())
			checkEndpoints(t, "RO", d.RO, tt.wantRO())
		})
	}
}

func eps(e ...policy.Endpoint) func() []policy.Endpoint {
	return func() []policy.Endpoint { return e }
}

func none() []policy.Endpoint { return nil }

// warnMember sets member n to warning; member 4 was critical.
func warnMember(n int) func(*policy.Region) {
	return func(r *policy.Region) { r.Members[n-1].Health = policy.HealthWarning }
}

func warnBouncer(n int) func(*policy.Region) {
	return func(r *policy.Region) { r.Bouncers[n-1].Health = policy.HealthWarning }
}

// warnPool lifts the critical pool instances to warning.
func warnPool(r *policy.Region) {
	for _, pool := range [][]policy.Instance{r.PoolRW, r.PoolRO} {
		for i := range pool {
			if pool[i].Health == policy.HealthCritical {
				pool[i].Health = policy.HealthWarning
			}
		}
	}
}

func shuffleRegion(rng *rand.Rand, r *policy.Region) {
	for _, list := range [][]policy.Instance{r.Members, r.Bouncers, r.PoolRW, r.PoolRO} {
		rng.Shuffle(len(list), func(i, j int) { list[i], list[j] = list[j], list[i] })
	}
}

// Two instances of regiondns that list the same Consul data in a different
// order must answer the same.
func TestDecideIsDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, row := range matrix {
		for _, layout := range policy.Layouts {
			t.Run(fmt.Sprintf("main=%s/standby=%s/%s", row.main, row.standby, layout), func(t *testing.T) {
				o := policy.Options{Layout: layout, ROFallback: policy.FallbackLeader}
				want := decide(o, mainSite.build(row.main), standbySite.build(row.standby))
				for range 10 {
					m, s := mainSite.build(row.main), standbySite.build(row.standby)
					shuffleRegion(rng, &m.region)
					shuffleRegion(rng, &s.region)
					if got := decide(o, m, s); !reflect.DeepEqual(got, want) {
						t.Fatalf("shuffled input changed the decision:\n got %+v\nwant %+v", got, want)
					}
				}
			})
		}
	}
}

// Pool instances whose node names differ only in characters Label replaces
// share one target; if they also share an address and port, nothing but the
// node tells them apart, and Consul's listing order must still not matter.
func TestDecideIsDeterministicOnLabelCollisions(t *testing.T) {
	addr := netip.MustParseAddr("10.1.2.1")
	pool := []policy.Instance{
		{ID: "pgbouncer-rw", Node: "Pool_A", Address: addr, Port: 6432},
		{ID: "pgbouncer-rw", Node: "pool-a", Address: addr, Port: 6432},
		{ID: "pgbouncer-rw", Node: "pool.a", Address: addr, Port: 6432},
	}
	decideWith := func(order []int) policy.Decision {
		m := mainSite.build(fixPrimary)
		m.region.PoolRW = nil
		for _, i := range order {
			m.region.PoolRW = append(m.region.PoolRW, pool[i])
		}
		return decide(policy.Options{Layout: policy.LayoutPoolFleet}, m, standbySite.build(fixStandby))
	}
	want := decideWith([]int{0, 1, 2})
	for _, order := range [][]int{{0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}} {
		if got := decideWith(order); !reflect.DeepEqual(got.RW, want.RW) {
			t.Errorf("pool order %v changed rw:\n got %s\nwant %s", order, fmtEndpoints(got.RW), fmtEndpoints(want.RW))
		}
	}
	if len(want.RW) != 3 {
		t.Errorf("rw = %s, want three endpoints", fmtEndpoints(want.RW))
	}
}

func TestTargetsAreUniqueLabels(t *testing.T) {
	long := strings.Repeat("a", 70)
	bouncer := func(node string, last byte) policy.Instance {
		return policy.Instance{ID: "pgbouncer", Node: node, Address: netip.AddrFrom4([4]byte{10, 1, 1, last}), Port: 6432}
	}
	member := func(name, node string, role policy.Role) policy.Instance {
		return policy.Instance{ID: "orders/" + name, Member: name, Node: node, Address: netip.MustParseAddr("10.1.0.1"), Port: 5432, Role: role}
	}
	tests := []struct {
		name        string
		members     []policy.Instance
		bouncers    []policy.Instance
		wantTargets []string // of rw followed by ro
	}{
		{
			name:        "two bouncers on the leader's node",
			members:     []policy.Instance{member("pg-1", "n1", policy.RoleLeader)},
			bouncers:    []policy.Instance{bouncer("n1", 2), bouncer("n1", 1)},
			wantTargets: []string{"pg-1", "pg-1-2", "pg-1", "pg-1-2"}, // ro falls back to the leader
		},
		{
			name:        "three bouncers on the leader's node",
			members:     []policy.Instance{member("pg-1", "n1", policy.RoleLeader)},
			bouncers:    []policy.Instance{bouncer("n1", 3), bouncer("n1", 1), bouncer("n1", 2)},
			wantTargets: []string{"pg-1", "pg-1-2", "pg-1-3", "pg-1", "pg-1-2", "pg-1-3"},
		},
		{
			name:        "the same bouncer listed twice is one endpoint",
			members:     []policy.Instance{member("pg-1", "n1", policy.RoleLeader)},
			bouncers:    []policy.Instance{bouncer("n1", 1), bouncer("n1", 1)},
			wantTargets: []string{"pg-1", "pg-1"},
		},
		{
			name: "a suffix does not collide with another member's name",
			members: []policy.Instance{
				member("db", "n0", policy.RoleLeader),
				member("db-1", "n1", policy.RoleReplica), member("db-1-2", "n2", policy.RoleReplica),
			},
			bouncers:    []policy.Instance{bouncer("n0", 9), bouncer("n1", 1), bouncer("n1", 2), bouncer("n2", 3)},
			wantTargets: []string{"db", "db-1", "db-1-3", "db-1-2"},
		},
		{
			name:        "a suffix keeps a long name within 63 octets",
			members:     []policy.Instance{member(long, "n1", policy.RoleLeader)},
			bouncers:    []policy.Instance{bouncer("n1", 1), bouncer("n1", 2)},
			wantTargets: []string{long[:63], long[:61] + "-2", long[:63], long[:61] + "-2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := policy.Decide(policy.Input{
				Options: policy.Options{Layout: policy.LayoutBouncerPerNode},
				Main:    policy.Region{Name: "eu", Known: true, Members: tt.members, Bouncers: tt.bouncers},
			})
			var got []string
			for _, list := range [][]policy.Endpoint{d.RW, d.RO} {
				seen := map[string]bool{}
				for _, e := range list {
					got = append(got, e.Target)
					if seen[e.Target] {
						t.Errorf("target %q appears twice in %s", e.Target, fmtEndpoints(list))
					}
					seen[e.Target] = true
					if policy.Label(e.Target) != e.Target {
						t.Errorf("target %q is not a valid label", e.Target)
					}
				}
			}
			if !slices.Equal(got, tt.wantTargets) {
				t.Errorf("targets = %q, want %q", got, tt.wantTargets)
			}
		})
	}
}

// TestTargetsNeverNameLabels: a member named like one of a cluster's name
// labels would have the SRV target ro.<region>.<cluster>, which is the
// region-pinned read name: such targets get a label of their own, unique
// among the answer's targets.
func TestTargetsNeverNameLabels(t *testing.T) {
	member := func(name string, n byte, role policy.Role) policy.Instance {
		return policy.Instance{ID: "orders/" + name, Member: name, Node: "n" + name,
			Address: netip.AddrFrom4([4]byte{10, 0, 0, n}), Port: 5432, Role: role, Health: policy.HealthPassing}
	}
	tests := []struct {
		name    string
		members []policy.Instance
		wantRW  []string
		wantRO  []string
	}{
		{
			name:    "replicas named ro and sync",
			members: []policy.Instance{member("pg-1", 1, policy.RoleLeader), member("ro", 2, policy.RoleReplica), member("sync", 3, policy.RoleReplica)},
			wantRW:  []string{"pg-1"}, wantRO: []string{"ro-2", "sync-2"},
		},
		{
			name:    "a leader named rw",
			members: []policy.Instance{member("rw", 1, policy.RoleLeader), member("passive-ro", 2, policy.RoleReplica)},
			wantRW:  []string{"rw-2"}, wantRO: []string{"passive-ro-2"},
		},
		{
			name:    "the suffix skips a member's own name",
			members: []policy.Instance{member("pg-1", 1, policy.RoleLeader), member("ro", 2, policy.RoleReplica), member("ro-2", 3, policy.RoleReplica)},
			wantRW:  []string{"pg-1"}, wantRO: []string{"ro-3", "ro-2"},
		},
		{
			name:    "upper case is the same label",
			members: []policy.Instance{member("pg-1", 1, policy.RoleLeader), member("RO", 2, policy.RoleReplica)},
			wantRW:  []string{"pg-1"}, wantRO: []string{"ro-2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := policy.Decide(policy.Input{Main: policy.Region{Name: "eu", Known: true, Members: tt.members}})
			targets := func(eps []policy.Endpoint) []string {
				var out []string
				for _, e := range eps {
					out = append(out, e.Target)
				}
				return out
			}
			if got := targets(d.RW); !slices.Equal(got, tt.wantRW) {
				t.Errorf("rw targets = %q, want %q", got, tt.wantRW)
			}
			for name, eps := range map[string][]policy.Endpoint{"ro": d.RO, "ro.eu": d.Main.RO} {
				if got := targets(eps); !slices.Equal(got, tt.wantRO) {
					t.Errorf("%s targets = %q, want %q", name, got, tt.wantRO)
				}
			}
		})
	}
}
