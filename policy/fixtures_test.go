package policy_test

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/regiondns/regiondns/policy"
)

// fix names a region state the fixtures can build. It is finer than
// policy.State: "none" and "down" both read as StateNone, "conflict" and
// "conflict-unresolved" both as StateConflict, "stale" as StatePrimary.
type fix string

const (
	fixPrimary    fix = "primary"             // one passing leader, two passing replicas, one critical
	fixStandby    fix = "standby"             // passing standby leader, one passing replica, one critical
	fixNone       fix = "none"                // critical leader, one passing replica, one warning
	fixDown       fix = "down"                // nothing passing
	fixConflict   fix = "conflict"            // two passing leaders, leader key names pg-2
	fixUnresolved fix = "conflict-unresolved" // two passing leaders, no leader key
	fixStale      fix = "stale"               // last known primary data, Consul unreachable
	fixUnknown    fix = "unknown"             // never read
)

var allFixes = []fix{fixPrimary, fixStandby, fixNone, fixDown, fixConflict, fixUnresolved, fixStale, fixUnknown}

// site is one side of the fixtures: a region name, the second octet of all
// its addresses, and the timeline each state's leader is on.
type site struct {
	name      string
	octet     byte
	timelines map[fix]int64
}

// The timelines make every split-brain outcome appear in the matrix: the
// promoted standby is one ahead of the main primary, the main conflict's
// key leader is ahead of the promoted standby, the standby's conflict is
// ahead of that, and a stale standby is level with the main primary.
var (
	mainSite = site{name: "eu", octet: 1, timelines: map[fix]int64{
		fixPrimary: 4, fixStandby: 4, fixConflict: 6, fixUnresolved: 6, fixStale: 4,
	}}
	standbySite = site{name: "us", octet: 2, timelines: map[fix]int64{
		fixPrimary: 5, fixStandby: 4, fixConflict: 7, fixUnresolved: 7, fixStale: 4,
	}}
)

func (s site) member(n int) string { return fmt.Sprintf("%s-pg-%d", s.name, n) }
func (s site) node(n int) string   { return fmt.Sprintf("%s-node-%d", s.name, n) }
func (s site) pool(kind string, n int) string {
	return fmt.Sprintf("%s-pool-%s-%d", s.name, kind, n)
}
func (s site) addr(third byte, n int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, s.octet, third, byte(n)})
}

// The third octet says what an address belongs to, so that a member address
// served where a bouncer was expected shows up in a diff.
const (
	octetMember    = 0
	octetBouncer   = 1
	octetPoolRW    = 2
	octetPoolRO    = 3
	portPostgres   = 5432
	portBouncer    = 6432
	portPoolRO     = 6433
	criticalBounce = 3 // the bouncer on node 3 is critical
)

// Pool instances that pass; the others are critical.
var (
	passingPoolRW = []int{1, 2}
	passingPoolRO = []int{1, 3}
)

// regionFixture is a region in a named state and what the policy should read
// from it, written down by hand rather than derived from the code under test.
type regionFixture struct {
	site     site
	fix      fix
	region   policy.Region
	state    policy.State
	leader   int  // member number the region answers with; 0 if none
	writable bool // the leader is a read-write leader
	timeline int64
	replicas []int // passing replicas, ascending
}

func tagsFor(r policy.Role) []string {
	switch r {
	case policy.RoleLeader:
		return []string{"master", "primary"}
	case policy.RoleStandbyLeader:
		return []string{"standby-leader"}
	case policy.RoleReplica:
		return []string{"replica"}
	}
	return nil
}

func (s site) patroni(n int, role policy.Role, h policy.Health) policy.Instance {
	return policy.Instance{
		ID: "orders/" + s.member(n), Member: s.member(n), Node: s.node(n),
		Address: s.addr(octetMember, n), Port: portPostgres,
		Tags: tagsFor(role), Role: role, Health: h,
	}
}

func (s site) bouncers() []policy.Instance {
	var out []policy.Instance
	for n := 1; n <= 4; n++ {
		h := policy.HealthPassing
		if n == criticalBounce {
			h = policy.HealthCritical
		}
		out = append(out, policy.Instance{
			ID: "pgbouncer", Member: "pgbouncer", Node: s.node(n),
			Address: s.addr(octetBouncer, n), Port: portBouncer, Health: h,
		})
	}
	// Bouncers on nodes that run no Patroni member must never be picked.
	for n := 101; n <= 102; n++ {
		out = append(out, policy.Instance{
			ID: "pgbouncer", Member: "pgbouncer", Node: fmt.Sprintf("%s-app-%d", s.name, n),
			Address: s.addr(octetBouncer, n), Port: portBouncer,
		})
	}
	return out
}

func (s site) poolInstances(kind string, third byte, port uint16, passing []int) []policy.Instance {
	var out []policy.Instance
	for n := 1; n <= 3; n++ {
		h := policy.HealthCritical
		if slices.Contains(passing, n) {
			h = policy.HealthPassing
		}
		out = append(out, policy.Instance{
			ID: "pgbouncer-" + kind, Member: "pgbouncer-" + kind, Node: s.pool(kind, n),
			Address: s.addr(third, n), Port: port, Health: h,
		})
	}
	return out
}

// build returns the site's region in state f, with all three layouts'
// instances filled in (each layout reads only its own).
func (s site) build(f fix) regionFixture {
	const (
		P = policy.HealthPassing
		W = policy.HealthWarning
		C = policy.HealthCritical
	)
	tl := s.timelines[f]
	fx := regionFixture{site: s, fix: f, timeline: tl}
	r := policy.Region{Name: s.name, Known: true}
	switch f {
	case fixPrimary, fixStale:
		r.Members = []policy.Instance{
			s.patroni(1, policy.RoleLeader, P), s.patroni(2, policy.RoleReplica, P),
			s.patroni(3, policy.RoleReplica, P), s.patroni(4, policy.RoleReplica, C),
		}
		r.LeaderKey = s.member(1)
		r.Stale = f == fixStale
		fx.state, fx.leader, fx.writable, fx.replicas = policy.StatePrimary, 1, true, []int{2, 3}
	case fixStandby:
		r.Members = []policy.Instance{
			s.patroni(1, policy.RoleStandbyLeader, P), s.patroni(2, policy.RoleReplica, P),
			s.patroni(3, policy.RoleReplica, C),
		}
		r.LeaderKey = s.member(1)
		fx.state, fx.leader, fx.replicas = policy.StateStandby, 1, []int{2}
	case fixNone:
		r.Members = []policy.Instance{
			s.patroni(1, policy.RoleLeader, C), s.patroni(2, policy.RoleReplica, P),
			s.patroni(3, policy.RoleReplica, W),
		}
		r.LeaderKey = s.member(1)
		fx.state, fx.replicas, fx.timeline = policy.StateNone, []int{2}, 0
	case fixDown:
		r.Members = []policy.Instance{
			s.patroni(1, policy.RoleLeader, C), s.patroni(2, policy.RoleReplica, C),
			s.patroni(3, policy.RoleReplica, C),
		}
		fx.state, fx.timeline = policy.StateNone, 0
	case fixConflict, fixUnresolved:
		r.Members = []policy.Instance{
			s.patroni(1, policy.RoleLeader, P), s.patroni(2, policy.RoleLeader, P),
			s.patroni(3, policy.RoleReplica, P),
		}
		fx.state, fx.replicas = policy.StateConflict, []int{3}
		if f == fixConflict {
			r.LeaderKey = s.member(2)
			fx.leader, fx.writable = 2, true
		} else {
			fx.timeline = 0
		}
	case fixUnknown:
		r.Known = false
		fx.state, fx.timeline = policy.StateUnknown, 0
		fx.region = r
		return fx
	}
	r.Timelines = map[string]int64{}
	for _, m := range r.Members {
		r.Timelines[m.Member] = tl
	}
	if f == fixConflict || f == fixUnresolved {
		r.Timelines[s.member(1)] = tl - 1 // the old leader, still registered
	}
	r.Bouncers = s.bouncers()
	r.PoolRW = s.poolInstances("rw", octetPoolRW, portBouncer, passingPoolRW)
	r.PoolRO = s.poolInstances("ro", octetPoolRO, portPoolRO, passingPoolRO)
	fx.region = r
	return fx
}

// view is the RegionView the policy should report for the fixture.
func (fx regionFixture) view() policy.RegionView {
	v := policy.RegionView{
		Name: fx.site.name, State: fx.state, Timeline: fx.timeline,
		Stale: fx.region.Stale || !fx.region.Known,
	}
	if fx.leader != 0 {
		v.Leader = fx.site.member(fx.leader)
	}
	for _, n := range fx.replicas {
		v.Replicas = append(v.Replicas, fx.site.member(n))
	}
	return v
}

// Expected endpoints, one builder per layout, from the fixture's numbering.

func (s site) memberEP(n int) policy.Endpoint {
	return policy.Endpoint{
		Target: s.member(n), Region: s.name, Member: s.member(n), Node: s.node(n),
		Address: s.addr(octetMember, n), Port: portPostgres,
	}
}

func (s site) bouncerEP(n int) policy.Endpoint {
	return policy.Endpoint{
		Target: s.member(n), Region: s.name, Member: s.member(n), Node: s.node(n),
		Address: s.addr(octetBouncer, n), Port: portBouncer,
	}
}

func (s site) poolEP(kind string, n int) policy.Endpoint {
	third, port := byte(octetPoolRW), uint16(portBouncer)
	if kind == "ro" {
		third, port = octetPoolRO, portPoolRO
	}
	return policy.Endpoint{
		Target: s.pool(kind, n), Region: s.name, Node: s.pool(kind, n),
		Address: s.addr(third, n), Port: port,
	}
}

// wantWrite is what reaches the fixture's leader in the layout.
func (fx regionFixture) wantWrite(l policy.Layout) []policy.Endpoint {
	s := fx.site
	if fx.leader == 0 {
		return nil
	}
	switch l {
	case policy.LayoutDirect:
		return []policy.Endpoint{s.memberEP(fx.leader)}
	case policy.LayoutBouncerPerNode:
		if fx.leader == criticalBounce {
			return nil
		}
		return []policy.Endpoint{s.bouncerEP(fx.leader)}
	default:
		var out []policy.Endpoint
		for _, n := range passingPoolRW {
			out = append(out, s.poolEP("rw", n))
		}
		return out
	}
}

// wantRead is what reaches the fixture's passing replicas in the layout,
// falling back to the leader when allowed.
func (fx regionFixture) wantRead(l policy.Layout, fallbackToLeader bool) []policy.Endpoint {
	s := fx.site
	var out []policy.Endpoint
	switch l {
	case policy.LayoutDirect:
		for _, n := range fx.replicas {
			out = append(out, s.memberEP(n))
		}
	case policy.LayoutBouncerPerNode:
		for _, n := range fx.replicas {
			if n != criticalBounce {
				out = append(out, s.bouncerEP(n))
			}
		}
	default:
		if len(fx.replicas) > 0 {
			for _, n := range passingPoolRO {
				out = append(out, s.poolEP("ro", n))
			}
		}
	}
	if len(out) == 0 && fallbackToLeader {
		return fx.wantWrite(l)
	}
	return out
}

// checkEndpoints compares endpoint lists exactly, order included; nil and
// empty are the same answer.
func checkEndpoints(t *testing.T, name string, got, want []policy.Endpoint) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %s\nwant %s", name, fmtEndpoints(got), fmtEndpoints(want))
	}
}

func fmtEndpoints(eps []policy.Endpoint) string {
	parts := make([]string, 0, len(eps))
	for _, e := range eps {
		parts = append(parts, fmt.Sprintf("%s{%s %s %s %s:%d}", e.Target, e.Region, e.Member, e.Node, e.Address, e.Port))
	}
	return "[" + strings.Join(parts, " ") + "]"
}
