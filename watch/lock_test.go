package watch

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/watch/consultest"
)

// memberKeyPair returns Patroni's members/ key of member in scope orders.
func memberKeyPair(member, role string, timeline, xlog int) *api.KVPair {
	return &api.KVPair{Key: "service/orders/members/" + member,
		Value: fmt.Appendf(nil, `{"role":%q,"state":"running","timeline":%d,"xlog_location":%d}`, role, timeline, xlog)}
}

// lockedConsul is settledConsul with members/ keys: pg-1 primary, pg-2
// replica.
func lockedConsul(t *testing.T, dc string) *consultest.Fake {
	f := settledConsul(t, dc)
	role := "master"
	if dc != "dc1" {
		role = "standby_leader"
	}
	f.Set(func(f *consultest.Fake) {
		f.KV = append(f.KV, memberKeyPair("pg-1", role, 3, 100), memberKeyPair("pg-2", "replica", 3, 100))
	})
	return f
}

// The leader key is followed with a blocking query of its own, on a settled
// scope whose KV prefix is not, and the input says it was read, with the
// roles of the members/ keys.
func TestWatcherFollowsTheLeaderKey(t *testing.T) {
	main, standby := lockedConsul(t, "dc1"), lockedConsul(t, "dc2")
	opts := fastOptions
	opts.KVRefresh = time.Hour
	w := startWatcherWith(t, testConfig(main.URL(), standby.URL()), opts)
	waitFor(t, "ready", w.Ready)
	waitFor(t, "leader key parked at index 10", func() bool { return main.Parked("/v1/kv/service/orders/leader", 10) })
	if kvBlocking(main, 0) {
		t.Error("the KV prefix of a settled scope was followed")
	}
	// It waits five times as long as the services' queries (the first
	// wait of a loop: a random half to all of it).
	keyWait := 5 * opts.WaitTime
	for _, r := range main.Requests() {
		if r.Path != "/v1/kv/service/orders/leader" || r.Index != "10" {
			continue
		}
		ms, err := strconv.ParseInt(strings.TrimSuffix(r.Wait, "ms"), 10, 64)
		if err != nil || ms < keyWait.Milliseconds()/2 || ms > keyWait.Milliseconds() {
			t.Errorf("leader key's blocking query waits %q, want %d to %dms", r.Wait, keyWait.Milliseconds()/2, keyWait.Milliseconds())
		}
	}
	in := w.Inputs()["orders"]
	if !in.Main.LeaderKeyRead || in.Main.LeaderKey != "pg-1" {
		t.Errorf("main leader key %q (read %t), want pg-1 read", in.Main.LeaderKey, in.Main.LeaderKeyRead)
	}
	want := map[string]policy.Role{"pg-1": policy.RoleLeader, "pg-2": policy.RoleReplica}
	for m, r := range want {
		if got := in.Main.KeyRoles[m]; got != r {
			t.Errorf("main key role of %s = %s, want %s", m, got, r)
		}
	}
	if got := in.Standby.KeyRoles["pg-1"]; got != policy.RoleStandbyLeader {
		t.Errorf("standby key role of pg-1 = %s, want standby-leader", got)
	}
}

// A switchover as Patroni writes it: the leader key moves to pg-2 (the
// change is announced at once, and the prefix is read and followed), then
// pg-2's members/ key says primary (seen through the followed prefix, with
// no health change at all): the policy answers pg-2 before its tags change.
func TestWatcherLockMovesBeforeTheTags(t *testing.T) {
	main, standby := lockedConsul(t, "dc1"), lockedConsul(t, "dc2")
	opts := fastOptions
	opts.WaitTime = time.Minute // only changes answer the blocking queries
	opts.KVRefresh = time.Hour
	w := startWatcherWith(t, testConfig(main.URL(), standby.URL()), opts)
	waitFor(t, "ready", w.Ready)
	waitFor(t, "leader key parked at index 10", func() bool { return main.Parked("/v1/kv/service/orders/leader", 10) })
	rw := func() string {
		d := policy.Decide(w.Inputs()["orders"])
		if len(d.RW) != 1 {
			return ""
		}
		return d.RW[0].Member
	}
	if got := rw(); got != "pg-1" {
		t.Fatalf("rw = %q before the switchover, want pg-1", got)
	}
	before := len(main.Requests())

	// pg-1 gives up the lock (its tags still say primary): rw answers
	// nothing at once.
	main.Set(func(f *consultest.Fake) {
		f.Index = 11
		f.KV = slicesDeleteKey(f.KV, "service/orders/leader")
	})
	waitFor(t, "rw empty once the key is gone", func() bool { return rw() == "" })
	waitFor(t, "the prefix followed after the key moved", func() bool { return kvBlocking(main, before) })

	// pg-2 takes the key, then writes its members/ key as primary.
	main.Set(func(f *consultest.Fake) {
		f.Index = 12
		f.KV = append(f.KV, &api.KVPair{Key: "service/orders/leader", Value: []byte("pg-2")})
	})
	waitFor(t, "the key names pg-2", func() bool { return w.Inputs()["orders"].Main.LeaderKey == "pg-2" })
	if got := rw(); got != "" {
		t.Errorf("rw = %q while pg-2 holds the key, not promoted yet; want nothing", got)
	}
	main.Set(func(f *consultest.Fake) {
		f.Index = 13
		f.KV = replaceKey(f.KV, memberKeyPair("pg-2", "master", 4, 200))
	})
	waitFor(t, "rw answers pg-2 by its members/ key, its tags still replica", func() bool { return rw() == "pg-2" })
}

// replaceKey returns pairs with the pair of p's key replaced by p, in its
// place: Consul lists keys in order.
func replaceKey(pairs api.KVPairs, p *api.KVPair) api.KVPairs {
	out := make(api.KVPairs, len(pairs))
	for i, q := range pairs {
		out[i] = q
		if q.Key == p.Key {
			out[i] = p
		}
	}
	return out
}

func slicesDeleteKey(pairs api.KVPairs, key string) api.KVPairs {
	var out api.KVPairs
	for _, p := range pairs {
		if p.Key != key {
			out = append(out, p)
		}
	}
	return out
}

// A prefix without any key (a namespace Patroni does not use) leaves the
// lock unread: the tags alone decide, and a missing leader key drops no
// leader.
func TestWatcherLockUnreadWithoutPatroniKeys(t *testing.T) {
	main, standby := consultest.New(t, "dc1"), consultest.New(t, "dc2")
	main.Set(func(f *consultest.Fake) {
		f.Entries["orders"] = []*api.ServiceEntry{entry("orders", "pg-1", "n1", "10.0.0.1", 5432, api.HealthPassing, "master", "primary")}
	})
	w := startWatcher(t, testConfig(main.URL(), standby.URL()))
	waitFor(t, "ready", w.Ready)
	in := w.Inputs()["orders"]
	if in.Main.LeaderKeyRead {
		t.Error("LeaderKeyRead with no Patroni key under the prefix")
	}
	if d := policy.Decide(in); len(d.RW) != 1 {
		t.Errorf("rw = %v, want pg-1 by its tags", d.RW)
	}
}

// Region.Index is the Consul index of the read that brought the region's
// present data: a members/ key rewritten with a new WAL position moves
// Consul's index but not it; a change the policy reads moves it to the
// index of that read.
func TestWatcherRegionIndexMovesOnlyWithWhatThePolicyReads(t *testing.T) {
	main, standby := lockedConsul(t, "dc1"), lockedConsul(t, "dc2")
	opts := fastOptions
	opts.KVFollow = time.Hour // the prefix is read on every change
	w := startWatcherWith(t, testConfig(main.URL(), standby.URL()), opts)
	waitFor(t, "ready", w.Ready)
	// Follow the prefix: a health change wakes it.
	main.Set(func(f *consultest.Fake) {
		f.Index = 11
		f.Entries["orders"][1].Checks[1].Status = api.HealthWarning
	})
	waitFor(t, "prefix followed", func() bool { return main.Parked("/v1/kv/service/orders/", 11) })
	idx := w.Inputs()["orders"].Main.Index
	if idx != 11 {
		t.Fatalf("main index %d after a change at 11, want 11", idx)
	}
	// Patroni rewrites pg-1's members/ key with a new WAL position.
	main.Set(func(f *consultest.Fake) {
		f.Index = 12
		f.KV = replaceKey(f.KV, memberKeyPair("pg-1", "master", 3, 999))
	})
	waitFor(t, "every query re-parked at 12", func() bool {
		return main.Parked("/v1/kv/service/orders/", 12) && main.Parked("/v1/health/service/orders", 12) &&
			main.Parked("/v1/kv/service/orders/leader", 12)
	})
	if got := w.Inputs()["orders"].Main.Index; got != 11 {
		t.Errorf("main index %d after a rewrite that changes nothing read, want 11", got)
	}
	// pg-2 goes critical: the index of that read.
	main.Set(func(f *consultest.Fake) {
		f.Index = 13
		f.Entries["orders"][1].Checks[1].Status = api.HealthCritical
	})
	waitFor(t, "main index 13", func() bool { return w.Inputs()["orders"].Main.Index == 13 })
	if got := w.Inputs()["orders"].Standby.Index; got != 10 {
		t.Errorf("standby index %d, want 10: nothing changed there", got)
	}
}

// A change of a Patroni service reads its scope's KV prefixes in every
// region at once, with a read that does not block: the prefix of a region
// where nothing changed answers at once too, and the change is announced
// without waiting for a blocking query that has nothing to say.
func TestWatcherWakeReadsEveryPrefixAtOnce(t *testing.T) {
	main, standby := lockedConsul(t, "dc1"), lockedConsul(t, "dc2")
	opts := fastOptions
	opts.WaitTime = time.Minute
	opts.KVRefresh = time.Hour
	w := startWatcherWith(t, testConfig(main.URL(), standby.URL()), opts)
	waitFor(t, "ready", w.Ready)
	waitFor(t, "KV idle in both regions", func() bool {
		st := w.Status()
		return st[0].Following == 3 && st[1].Following == 3
	})
	before := len(standby.Requests())
	main.Set(func(f *consultest.Fake) {
		f.Index = 11
		f.Entries["orders"][1].Checks[1].Status = api.HealthCritical
	})
	waitFor(t, "the change", func() bool { return w.Inputs()["orders"].Main.Members[1].Health == policy.HealthCritical })
	waitFor(t, "the standby prefix read without a wait index", func() bool {
		for _, r := range standby.Requests()[before:] {
			if r.Path == "/v1/kv/service/orders/" && (r.Index == "" || r.Index == "0") {
				return true
			}
		}
		return false
	})
}

// The role a Patroni check tests, from its output (Consul does not return
// its URL), and the health of the instance's other checks.
func TestRoleCheck(t *testing.T) {
	check := func(id, service, status, output string) *api.HealthCheck {
		return &api.HealthCheck{CheckID: id, ServiceID: service, Status: status, Output: output}
	}
	serf := check("serfHealth", "", api.HealthPassing, "Agent alive and reachable")
	for _, tc := range []struct {
		name      string
		checks    api.HealthChecks
		wantRole  policy.Role
		wantOther policy.Health
	}{
		{"a promoted member's /replica check, failing", api.HealthChecks{serf,
			check("service:orders/pg-2", "orders/pg-2", api.HealthCritical, "HTTP GET http://10.0.0.2:8008/replica: 503 Service Unavailable Output: {}")},
			policy.RoleReplica, policy.HealthPassing},
		{"a leader's check", api.HealthChecks{serf,
			check("service:orders/pg-2", "orders/pg-2", api.HealthPassing, "HTTP GET http://10.0.0.2:8008/primary: 200 OK Output: {}")},
			policy.RoleLeader, policy.HealthPassing},
		{"Patroni 3.0's /master", api.HealthChecks{serf,
			check("service:orders/pg-2", "orders/pg-2", api.HealthPassing, "HTTP GET http://10.0.0.2:8008/master: 200 OK Output: {}")},
			policy.RoleLeader, policy.HealthPassing},
		{"a standby leader's check, the node failing", api.HealthChecks{check("serfHealth", "", api.HealthCritical, "Agent not live or unreachable"),
			check("service:orders/pg-2", "orders/pg-2", api.HealthPassing, "HTTP GET https://[fd00::2]:8008/standby-leader: 200 OK Output: {}")},
			policy.RoleStandbyLeader, policy.HealthCritical},
		{"a check that is not Patroni's", api.HealthChecks{serf,
			check("service:orders/pg-2", "orders/pg-2", api.HealthCritical, "TCP connect 10.0.0.2:5432: connection refused")},
			policy.RoleUnknown, policy.HealthCritical},
		{"another endpoint", api.HealthChecks{serf,
			check("service:orders/pg-2", "orders/pg-2", api.HealthWarning, "HTTP GET http://10.0.0.2:8008/health: 429 Too Many Requests")},
			policy.RoleUnknown, policy.HealthWarning},
		{"another service's check", api.HealthChecks{serf,
			check("service:pgbouncer", "pgbouncer", api.HealthCritical, "HTTP GET http://10.0.0.2:8008/replica: 503")},
			policy.RoleUnknown, policy.HealthCritical},
		{"a second check of the service counts with the others", api.HealthChecks{serf,
			check("service:orders/pg-2", "orders/pg-2", api.HealthCritical, "HTTP GET http://10.0.0.2:8008/replica: 503"),
			check("disk", "orders/pg-2", api.HealthWarning, "disk 91% full")},
			policy.RoleReplica, policy.HealthWarning},
	} {
		role, other := roleCheck(tc.checks, "orders/pg-2")
		if role != tc.wantRole || other != tc.wantOther {
			t.Errorf("%s: role %s, other checks %s; want %s, %s", tc.name, role, other, tc.wantRole, tc.wantOther)
		}
	}
}
