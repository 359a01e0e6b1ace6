package policy_test

import (
	"strings"
	"testing"

	"github.com/regiondns/regiondns/policy"
)

// lockState is what Patroni's KV says of one region: the member the leader
// key names (0: the key is gone) and the role in each member's members/
// key, by member number.
type lockState struct {
	key   int
	roles map[int]policy.Role
}

// withLock returns fx with its leader key read and set as l says.
func withLock(fx regionFixture, l lockState) regionFixture {
	r := &fx.region
	r.LeaderKeyRead = true
	r.LeaderKey = ""
	if l.key != 0 {
		r.LeaderKey = fx.site.member(l.key)
	}
	r.KeyRoles = map[string]policy.Role{}
	for n, role := range l.roles {
		r.KeyRoles[fx.site.member(n)] = role
	}
	return fx
}

// setMember changes member n's tags (role) and health in fx.
func setMember(fx regionFixture, n int, role policy.Role, h policy.Health) regionFixture {
	members := append([]policy.Instance(nil), fx.region.Members...)
	for i := range members {
		if members[i].Member == fx.site.member(n) {
			members[i] = fx.site.patroni(n, role, h)
		}
	}
	fx.region.Members = members
	return fx
}

const (
	P = policy.HealthPassing
	W = policy.HealthWarning
	C = policy.HealthCritical

	leader  = policy.RoleLeader
	replica = policy.RoleReplica
	sleader = policy.RoleStandbyLeader
)

// TestLockDrivenLeader covers the rules of Patroni's lock in one region
// (the main one, against a standby cluster): who rw answers, and what ro
// and the region's reading say, for each combination of leader key,
// members/ keys, tags and health.
func TestLockDrivenLeader(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(regionFixture) regionFixture
		// wantRW is the member rw answers, 0 for none; wantRO the members
		// ro answers.
		wantRW    int
		wantRO    []int
		wantState policy.State
	}{
		{
			name: "key, members/ key and tags agree",
			mutate: func(fx regionFixture) regionFixture {
				return withLock(fx, lockState{key: 1, roles: map[int]policy.Role{1: leader, 2: replica, 3: replica}})
			},
			wantRW: 1, wantRO: []int{2, 3}, wantState: policy.StatePrimary,
		},
		{
			name: "key names a member whose members/ key says primary before its tags do: answered",
			mutate: func(fx regionFixture) regionFixture {
				fx = setMember(fx, 1, replica, P)
				return withLock(fx, lockState{key: 2, roles: map[int]policy.Role{1: replica, 2: leader, 3: replica}})
			},
			wantRW: 2, wantRO: []int{1, 3}, wantState: policy.StatePrimary,
		},
		{
			name: "key names a member whose members/ key is still a replica (not promoted yet): not answered",
			mutate: func(fx regionFixture) regionFixture {
				return withLock(fx, lockState{key: 2, roles: map[int]policy.Role{1: leader, 2: replica, 3: replica}})
			},
			// The old leader, still tagged, is not named by the key.
			wantRW: 0, wantRO: []int{2, 3}, wantState: policy.StateNone,
		},
		{
			name: "key names a promoted member whose node is critical: not answered",
			mutate: func(fx regionFixture) regionFixture {
				fx = setMember(fx, 1, replica, P)
				fx = setMember(fx, 2, replica, C)
				return withLock(fx, lockState{key: 2, roles: map[int]policy.Role{1: replica, 2: leader, 3: replica}})
			},
			wantRW: 0, wantRO: []int{1, 3}, wantState: policy.StateNone,
		},
		{
			name: "key names a promoted member whose /replica check is critical, its node passing: answered",
			mutate: func(fx regionFixture) regionFixture {
				fx = setMember(fx, 1, replica, P)
				fx = setMember(fx, 2, replica, C)
				fx.region.Members[1].CheckRole, fx.region.Members[1].OtherHealth = replica, P
				return withLock(fx, lockState{key: 2, roles: map[int]policy.Role{1: replica, 2: leader, 3: replica}})
			},
			wantRW: 2, wantRO: []int{1, 3}, wantState: policy.StatePrimary,
		},
		{
			name: "key names a promoted member whose /replica check is critical and its node too: not answered",
			mutate: func(fx regionFixture) regionFixture {
				fx = setMember(fx, 1, replica, P)
				fx = setMember(fx, 2, replica, C)
				fx.region.Members[1].CheckRole, fx.region.Members[1].OtherHealth = replica, C
				return withLock(fx, lockState{key: 2, roles: map[int]policy.Role{1: replica, 2: leader, 3: replica}})
			},
			wantRW: 0, wantRO: []int{1, 3}, wantState: policy.StateNone,
		},
		{
			name: "key names a promoted member whose /primary check is critical: not answered",
			mutate: func(fx regionFixture) regionFixture {
				fx = setMember(fx, 1, replica, P)
				fx = setMember(fx, 2, leader, C)
				fx.region.Members[1].CheckRole, fx.region.Members[1].OtherHealth = leader, P
				return withLock(fx, lockState{key: 2, roles: map[int]policy.Role{1: replica, 2: leader, 3: replica}})
			},
			wantRW: 0, wantRO: []int{1, 3}, wantState: policy.StateNone,
		},
		{
			name: "key names a promoted member in warning: not critical, answered",
			mutate: func(fx regionFixture) regionFixture {
				fx = setMember(fx, 1, replica, P)
				fx = setMember(fx, 2, replica, W)
				return withLock(fx, lockState{key: 2, roles: map[int]policy.Role{1: replica, 2: leader, 3: replica}})
			},
			wantRW: 2, wantRO: []int{1, 3}, wantState: policy.StatePrimary,
		},
		{
			name: "key expired while the tags still say primary: not answered",
			mutate: func(fx regionFixture) regionFixture {
				return withLock(fx, lockState{key: 0, roles: map[int]policy.Role{1: leader, 2: replica, 3: replica}})
			},
			wantRW: 0, wantRO: []int{2, 3}, wantState: policy.StateNone,
		},
		{
			name: "key names another member, the old leader still tagged and passing: not answered",
			mutate: func(fx regionFixture) regionFixture {
				return withLock(fx, lockState{key: 3, roles: map[int]policy.Role{1: leader, 2: replica, 3: replica}})
			},
			wantRW: 0, wantRO: []int{2, 3}, wantState: policy.StateNone,
		},
		{
			name: "new leader tagged while the old one is too: the key picks, never two leaders",
			mutate: func(fx regionFixture) regionFixture {
				fx = setMember(fx, 2, leader, P)
				return withLock(fx, lockState{key: 2, roles: map[int]policy.Role{1: replica, 2: leader, 3: replica}})
			},
			wantRW: 2, wantRO: []int{3}, wantState: policy.StateConflict,
		},
		{
			name: "tags say primary and the key names it, members/ key behind (replica): answered as before",
			mutate: func(fx regionFixture) regionFixture {
				return withLock(fx, lockState{key: 1, roles: map[int]policy.Role{1: replica}})
			},
			wantRW: 1, wantRO: []int{2, 3}, wantState: policy.StatePrimary,
		},
		{
			name: "no members/ key for the named member: its tags decide",
			mutate: func(fx regionFixture) regionFixture {
				return withLock(fx, lockState{key: 1})
			},
			wantRW: 1, wantRO: []int{2, 3}, wantState: policy.StatePrimary,
		},
		{
			name: "leader key never read: the tags alone decide, as before",
			mutate: func(fx regionFixture) regionFixture {
				fx.region.LeaderKey = ""
				return fx
			},
			wantRW: 1, wantRO: []int{2, 3}, wantState: policy.StatePrimary,
		},
		{
			name: "a promoted member that is not registered yet cannot be answered",
			mutate: func(fx regionFixture) regionFixture {
				return withLock(fx, lockState{key: 5, roles: map[int]policy.Role{1: leader, 5: leader}})
			},
			wantRW: 0, wantRO: []int{2, 3}, wantState: policy.StateNone,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.mutate(mainSite.build(fixPrimary))
			d := decide(direct(), m, standbySite.build(fixStandby))
			var want []policy.Endpoint
			if tt.wantRW != 0 {
				want = []policy.Endpoint{mainSite.memberEP(tt.wantRW)}
			}
			checkEndpoints(t, "RW", d.RW, want)
			var wantRO []policy.Endpoint
			for _, n := range tt.wantRO {
				wantRO = append(wantRO, mainSite.memberEP(n))
			}
			if len(wantRO) == 0 && tt.wantRW != 0 {
				wantRO = want
			}
			checkEndpoints(t, "RO", d.RO, wantRO)
			if d.Main.State != tt.wantState {
				t.Errorf("main state = %s, want %s (%s)", d.Main.State, tt.wantState, d.Reason)
			}
			if d.Active != "eu" {
				t.Errorf("active = %s, want eu: the standby cluster is never rw before a promotion (%s)", d.Active, d.Reason)
			}
			// The standby leader keeps answering passive-rw.
			checkEndpoints(t, "PassiveRW", d.PassiveRW, []policy.Endpoint{standbySite.memberEP(1)})
		})
	}
}

// TestLockSwitchover walks a switchover from member 1 to member 2 step by
// step, in the order Patroni writes: rw answers the old leader, then
// nothing while neither holds the lock as primary, then the new leader as
// soon as its members/ key says primary, never both.
func TestLockSwitchover(t *testing.T) {
	steps := []struct {
		name   string
		tags   map[int]policy.Role
		lock   lockState
		wantRW int
	}{
		{"before", map[int]policy.Role{1: leader, 2: replica}, lockState{1, map[int]policy.Role{1: leader, 2: replica}}, 1},
		{"old leader demoting: key released, tags still primary", map[int]policy.Role{1: leader, 2: replica}, lockState{0, map[int]policy.Role{1: leader, 2: replica}}, 0},
		{"candidate took the key, not promoted", map[int]policy.Role{1: leader, 2: replica}, lockState{2, map[int]policy.Role{1: leader, 2: replica}}, 0},
		{"old leader re-registered as replica", map[int]policy.Role{1: replica, 2: replica}, lockState{2, map[int]policy.Role{1: replica, 2: replica}}, 0},
		{"candidate promoted: members/ key primary, tags still replica", map[int]policy.Role{1: replica, 2: replica}, lockState{2, map[int]policy.Role{1: replica, 2: leader}}, 2},
		{"candidate's tags follow", map[int]policy.Role{1: replica, 2: leader}, lockState{2, map[int]policy.Role{1: replica, 2: leader}}, 2},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			fx := mainSite.build(fixPrimary)
			for n, role := range st.tags {
				fx = setMember(fx, n, role, P)
			}
			fx = withLock(fx, st.lock)
			d := decide(direct(), fx, standbySite.build(fixStandby))
			var want []policy.Endpoint
			if st.wantRW != 0 {
				want = []policy.Endpoint{mainSite.memberEP(st.wantRW)}
			}
			checkEndpoints(t, "RW", d.RW, want)
			if len(d.RW) > 1 {
				t.Errorf("rw answers %d endpoints", len(d.RW))
			}
		})
	}
}

// TestLockAcrossRegions: the lock rules in the standby region, split brain
// by timeline, and stale regions.
func TestLockAcrossRegions(t *testing.T) {
	tests := []struct {
		name          string
		main, standby func() regionFixture
		wantActive    string
		wantRW        []policy.Endpoint
		wantPassiveRW []policy.Endpoint
		wantSplit     bool
		wantStale     bool
		wantReason    string
	}{
		{
			name: "standby leader by its members/ key before its tags: passive-rw, never rw",
			main: func() regionFixture { return mainSite.build(fixNone) },
			standby: func() regionFixture {
				fx := setMember(standbySite.build(fixStandby), 1, replica, P)
				return withLock(fx, lockState{key: 1, roles: map[int]policy.Role{1: sleader}})
			},
			wantActive: "eu", wantPassiveRW: []policy.Endpoint{standbySite.memberEP(1)},
			wantReason: "no leader",
		},
		{
			name: "standby promoted: members/ key primary before its tags, main without leader: rw moves",
			main: func() regionFixture { return mainSite.build(fixNone) },
			standby: func() regionFixture {
				return withLock(standbySite.build(fixStandby), lockState{key: 1, roles: map[int]policy.Role{1: leader}})
			},
			wantActive: "us", wantRW: []policy.Endpoint{standbySite.memberEP(1)},
			wantReason: "standby region was promoted",
		},
		{
			name: "standby promoted, its /standby-leader check critical until the new one runs: rw moves",
			main: func() regionFixture { return mainSite.build(fixNone) },
			standby: func() regionFixture {
				fx := setMember(standbySite.build(fixStandby), 1, sleader, C)
				fx.region.Members[0].CheckRole, fx.region.Members[0].OtherHealth = sleader, P
				return withLock(fx, lockState{key: 1, roles: map[int]policy.Role{1: leader}})
			},
			wantActive: "us", wantRW: []policy.Endpoint{standbySite.memberEP(1)},
			wantReason: "standby region was promoted",
		},
		{
			name: "split brain with a lock-driven leader: the higher timeline wins",
			main: func() regionFixture {
				fx := setMember(mainSite.build(fixPrimary), 1, replica, P)
				return withLock(fx, lockState{key: 1, roles: map[int]policy.Role{1: leader}})
			},
			standby: func() regionFixture {
				return withLock(standbySite.build(fixStandby), lockState{key: 1, roles: map[int]policy.Role{1: leader}})
			},
			// Main is on timeline 4, the standby's fixture on 4: equal,
			// the promoted standby wins.
			wantActive: "us", wantRW: []policy.Endpoint{standbySite.memberEP(1)},
			wantPassiveRW: []policy.Endpoint{mainSite.memberEP(1)}, wantSplit: true,
			wantReason: "timelines do not decide",
		},
		{
			name: "stale main, last known key names a promoted member: answered, marked stale",
			main: func() regionFixture {
				fx := setMember(mainSite.build(fixStale), 1, replica, P)
				return withLock(fx, lockState{key: 2, roles: map[int]policy.Role{2: leader}})
			},
			standby:    func() regionFixture { return standbySite.build(fixStandby) },
			wantActive: "eu", wantRW: []policy.Endpoint{mainSite.memberEP(2)},
			wantPassiveRW: []policy.Endpoint{standbySite.memberEP(1)}, wantStale: true,
			wantReason: "main region is primary",
		},
		{
			name: "stale main whose last known key was gone: no leader, marked stale",
			main: func() regionFixture {
				return withLock(mainSite.build(fixStale), lockState{key: 0, roles: map[int]policy.Role{1: leader}})
			},
			standby:    func() regionFixture { return standbySite.build(fixStandby) },
			wantActive: "eu", wantPassiveRW: []policy.Endpoint{standbySite.memberEP(1)}, wantStale: true,
			wantReason: "no leader",
		},
		{
			name: "stale main leader, a promotion observed in the standby region still takes effect",
			main: func() regionFixture {
				return withLock(mainSite.build(fixStale), lockState{key: 1, roles: map[int]policy.Role{1: leader}})
			},
			standby: func() regionFixture {
				fx := withTimelines(standbySite.build(fixStandby), 5)
				return withLock(fx, lockState{key: 1, roles: map[int]policy.Role{1: leader}})
			},
			wantActive: "us", wantRW: []policy.Endpoint{standbySite.memberEP(1)},
			wantPassiveRW: []policy.Endpoint{mainSite.memberEP(1)}, wantSplit: true, wantStale: true,
			wantReason: "promoted standby region wins on timeline 5 > 4",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := decide(direct(), tt.main(), tt.standby())
			if d.Active != tt.wantActive || d.SplitBrain != tt.wantSplit || d.Stale != tt.wantStale {
				t.Errorf("active %s split %t stale %t, want %s %t %t (%s)",
					d.Active, d.SplitBrain, d.Stale, tt.wantActive, tt.wantSplit, tt.wantStale, d.Reason)
			}
			checkEndpoints(t, "RW", d.RW, tt.wantRW)
			checkEndpoints(t, "PassiveRW", d.PassiveRW, tt.wantPassiveRW)
			if !strings.Contains(d.Reason, tt.wantReason) {
				t.Errorf("reason %q does not contain %q", d.Reason, tt.wantReason)
			}
		})
	}
}

// TestLockLayouts: a lock-driven leader is reached through every layout
// as a tagged one is: its node's PgBouncer, the region's RW pool.
func TestLockLayouts(t *testing.T) {
	for _, layout := range policy.Layouts {
		t.Run(string(layout), func(t *testing.T) {
			tagged := withLock(mainSite.build(fixPrimary), lockState{key: 1, roles: map[int]policy.Role{1: leader}})
			fx := withLock(setMember(mainSite.build(fixPrimary), 1, replica, P), lockState{key: 1, roles: map[int]policy.Role{1: leader}})
			o := policy.Options{Layout: layout, ROFallback: policy.FallbackLeader}
			want := decide(o, tagged, standbySite.build(fixStandby))
			got := decide(o, fx, standbySite.build(fixStandby))
			checkEndpoints(t, "RW", got.RW, want.RW)
			if len(got.RW) == 0 {
				t.Error("rw is empty")
			}
		})
	}
}

// TestKeyRole maps the role names Patroni writes in its members/ keys.
func TestKeyRole(t *testing.T) {
	for in, want := range map[string]policy.Role{
		"master": leader, "primary": leader, "standby_leader": sleader, "replica": replica,
		"uninitialized": policy.RoleUnknown, "": policy.RoleUnknown, "Master": policy.RoleUnknown,
	} {
		if got := policy.KeyRole(in); got != want {
			t.Errorf("KeyRole(%q) = %s, want %s", in, got, want)
		}
	}
}
