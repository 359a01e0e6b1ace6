package watch

import (
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/watch/consultest"
)

// settledConsul is a region whose orders scope is at rest: pg-1 leads,
// holds the leader key, and the config agrees: a primary's in dc1, a standby
// cluster's elsewhere.
func settledConsul(t *testing.T, dc string) *consultest.Fake {
	f := consultest.New(t, dc)
	tags, config := []string{"master", "primary"}, `{"ttl":30}`
	if dc != "dc1" {
		tags, config = []string{"standby-leader"}, `{"ttl":30,"standby_cluster":{"host":"10.0.0.1"}}`
	}
	f.Set(func(f *consultest.Fake) {
		f.Entries["orders"] = []*api.ServiceEntry{
			entry("orders", "pg-1", "n1", "10.0.0.1", 5432, api.HealthPassing, tags...),
			entry("orders", "pg-2", "n2", "10.0.0.2", 5432, api.HealthPassing, "replica"),
		}
		f.KV = api.KVPairs{
			{Key: "service/orders/leader", Value: []byte("pg-1")},
			{Key: "service/orders/config", Value: []byte(config)},
		}
	})
	return f
}

// kvBlocking reports whether a KV query with a wait index reached f at or
// after request number from.
func kvBlocking(f *consultest.Fake, from int) bool {
	reqs := f.Requests()
	for _, r := range reqs[min(from, len(reqs)):] {
		if r.Path == "/v1/kv/service/orders/" && r.Index != "" && r.Index != "0" {
			return true
		}
	}
	return false
}

func kvReads(f *consultest.Fake) int {
	n := 0
	for _, r := range f.Requests() {
		if r.Path == "/v1/kv/service/orders/" {
			n++
		}
	}
	return n
}

// Following counts below include each region's control prefix, which is
// always followed (control.go): one loop more than the Patroni resources.

// A settled scope's KV prefix is read once and not followed: no blocking
// query, no loop. The Patroni service and the leader key are followed.
func TestWatcherDoesNotFollowSettledKV(t *testing.T) {
	main, standby := settledConsul(t, "dc1"), settledConsul(t, "dc2")
	opts := fastOptions
	opts.KVRefresh = time.Hour
	w := startWatcherWith(t, testConfig(main.URL(), standby.URL()), opts)
	waitFor(t, "ready", w.Ready)
	waitFor(t, "service parked at index 10", func() bool { return main.Parked("/v1/health/service/orders", 10) })
	waitFor(t, "three loops per region (the service, the leader key, the control prefix)", func() bool {
		st := w.Status()
		return st[0].Following == 3 && st[1].Following == 3 && st[0].Resources == 4
	})
	// A few wait times of the service's blocking query later, still no
	// blocking KV query and no other KV read.
	main.Set(func(f *consultest.Fake) { f.Index = 11 }) // same data, new index
	waitFor(t, "service re-queried at index 11", func() bool { return main.Parked("/v1/health/service/orders", 11) })
	if kvBlocking(main, 0) {
		t.Error("a settled scope's KV prefix was followed with a blocking query")
	}
	if n := kvReads(main); n != 1 {
		t.Errorf("KV prefix read %d times, want once", n)
	}
}

// A change of the Patroni service reads the KV prefix at once, and the
// update announcing the change already carries the new KV: a failover's new
// tags and new leader key reach the policy together. The prefix is then
// followed for KVFollow, and left once the window is over.
func TestWatcherHealthChangeReadsAndFollowsKV(t *testing.T) {
	main, standby := settledConsul(t, "dc1"), settledConsul(t, "dc2")
	opts := fastOptions
	opts.WaitTime = 300 * time.Millisecond
	opts.KVFollow = 500 * time.Millisecond
	opts.KVRefresh = time.Hour
	w := startWatcherWith(t, testConfig(main.URL(), standby.URL()), opts)
	waitFor(t, "ready", w.Ready)
	waitFor(t, "KV idle", func() bool { return w.Status()[0].Following == 3 })
	for len(w.Updates()) > 0 {
		<-w.Updates()
	}
	before := len(main.Requests())

	main.Set(func(f *consultest.Fake) {
		f.Index = 11
		f.Entries["orders"] = []*api.ServiceEntry{
			entry("orders", "pg-1", "n1", "10.0.0.1", 5432, api.HealthPassing, "replica"),
			entry("orders", "pg-2", "n2", "10.0.0.2", 5432, api.HealthPassing, "master", "primary"),
		}
		f.KV[0].Value = []byte("pg-2")
	})
	// The leader key's own query may announce the new key first; the
	// update that announces the new tags carries the new key too.
	deadline := time.After(5 * time.Second)
	for {
		select {
		case <-w.Updates():
		case <-deadline:
			t.Fatal("no update with the new tags after a failover")
		}
		got := w.Inputs()["orders"].Main
		if got.Members[1].Role != policy.RoleLeader {
			continue
		}
		if got.LeaderKey != "pg-2" || !got.LeaderKeyRead {
			t.Errorf("update with pg-2's leader tags: leader key %q (read %t), want pg-2", got.LeaderKey, got.LeaderKeyRead)
		}
		break
	}
	waitFor(t, "KV followed after the change", func() bool { return kvBlocking(main, before) })
	if st := w.Status()[0]; st.Following != 4 {
		t.Errorf("following %d resources in the window, want 4", st.Following)
	}
	// A KV-only change inside the window is seen without a health change.
	main.Set(func(f *consultest.Fake) {
		f.Index = 12
		f.KV = append(f.KV, &api.KVPair{Key: "service/orders/members/pg-2", Value: []byte(`{"timeline":5}`)})
	})
	waitFor(t, "KV change in the window", func() bool { return w.Inputs()["orders"].Main.Timelines["pg-2"] == 5 })
	waitFor(t, "KV left once the window is over", func() bool { return w.Status()[0].Following == 3 })
}

// A scope that is not settled (here: no leader at all) has its KV prefix
// followed: a KV-only change is seen at once.
func TestWatcherFollowsUnsettledKV(t *testing.T) {
	main, standby := settledConsul(t, "dc1"), settledConsul(t, "dc2")
	main.Set(func(f *consultest.Fake) {
		f.Entries["orders"] = []*api.ServiceEntry{entry("orders", "pg-2", "n2", "10.0.0.2", 5432, api.HealthPassing, "replica")}
	})
	opts := fastOptions
	opts.KVRefresh = time.Hour
	w := startWatcherWith(t, testConfig(main.URL(), standby.URL()), opts)
	waitFor(t, "ready", w.Ready)
	waitFor(t, "KV followed", func() bool { return kvBlocking(main, 0) && w.Status()[0].Following == 4 })
	main.Set(func(f *consultest.Fake) {
		f.Index = 11
		f.KV[1].Value = []byte(`{"standby_cluster":{"host":"10.1.0.1"}}`)
	})
	waitFor(t, "config change seen", func() bool { return w.Inputs()["orders"].Main.Config == policy.ConfigStandby })
}

// A KV prefix that is not followed is still read every KVRefresh: an
// operator's edit that no health change announces is seen.
func TestWatcherRefreshesIdleKV(t *testing.T) {
	main, standby := settledConsul(t, "dc1"), settledConsul(t, "dc2")
	opts := fastOptions
	opts.KVRefresh = 200 * time.Millisecond
	w := startWatcherWith(t, testConfig(main.URL(), standby.URL()), opts)
	waitFor(t, "ready", w.Ready)
	main.Set(func(f *consultest.Fake) {
		// Only the KV changes, and the scope stays settled.
		f.KV = append(f.KV, &api.KVPair{Key: "service/orders/members/pg-1", Value: []byte(`{"timeline":7}`)})
	})
	waitFor(t, "KV change seen through the refresh", func() bool { return w.Inputs()["orders"].Main.Timelines["pg-1"] == 7 })
	waitFor(t, "a few refreshes", func() bool { return kvReads(main) >= 4 })
	if kvBlocking(main, 0) {
		t.Error("refresh reads blocked; want plain reads")
	}
}

// In a split brain (a primary in each region) both regions' KV prefixes are
// followed: a timeline, read from a member key, decides which region wins.
func TestWatcherFollowsKVInSplitBrain(t *testing.T) {
	main, standby := settledConsul(t, "dc1"), settledConsul(t, "dc2")
	opts := fastOptions
	opts.KVRefresh = time.Hour
	opts.KVFollow = time.Millisecond // the window alone keeps nothing followed
	w := startWatcherWith(t, testConfig(main.URL(), standby.URL()), opts)
	waitFor(t, "ready", w.Ready)
	waitFor(t, "KV idle in both regions", func() bool {
		st := w.Status()
		return st[0].Following == 3 && st[1].Following == 3
	})

	// The standby cluster is promoted: its leader becomes a primary.
	standby.Set(func(f *consultest.Fake) {
		f.Index = 11
		f.Entries["orders"][0] = entry("orders", "pg-1", "n1", "10.0.0.1", 5432, api.HealthPassing, "master", "primary")
		f.KV[1].Value = []byte(`{"ttl":30}`)
	})
	waitFor(t, "both regions' KV followed", func() bool {
		st := w.Status()
		return st[0].Following == 4 && st[1].Following == 4
	})
	main.Set(func(f *consultest.Fake) {
		f.Index = 12
		f.KV = append(f.KV, &api.KVPair{Key: "service/orders/members/pg-1", Value: []byte(`{"timeline":9}`)})
	})
	waitFor(t, "the main region's new timeline", func() bool { return w.Inputs()["orders"].Main.Timelines["pg-1"] == 9 })
}

// Whether a leader in warning settles its scope is the policy's rule: with
// warning_is_passing set the leader answers rw, its scope is at rest and its
// KV prefix is left; without it the scope has no leader and its KV prefix is
// followed.
func TestWatcherFollowsKVByThePolicysPassingRule(t *testing.T) {
	for _, tc := range []struct {
		name             string
		warningIsPassing bool
		followed         bool
	}{
		{name: "warning is passing", warningIsPassing: true, followed: false},
		{name: "warning is not passing", warningIsPassing: false, followed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			main, standby := settledConsul(t, "dc1"), settledConsul(t, "dc2")
			main.Set(func(f *consultest.Fake) {
				f.Entries["orders"][0] = entry("orders", "pg-1", "n1", "10.0.0.1", 5432, api.HealthWarning, "master", "primary")
			})
			cfg := testConfig(main.URL(), standby.URL())
			cfg.WarningIsPassing = tc.warningIsPassing
			opts := fastOptions
			opts.KVRefresh = time.Hour
			w := startWatcherWith(t, cfg, opts)
			waitFor(t, "ready", w.Ready)
			if tc.followed {
				waitFor(t, "KV followed", func() bool { return kvBlocking(main, 0) && w.Status()[0].Following == 4 })
				return
			}
			waitFor(t, "KV left: only the service, the leader key and the control prefix followed", func() bool { return w.Status()[0].Following == 3 })
			main.Set(func(f *consultest.Fake) { f.Index = 11 }) // same data, new index
			waitFor(t, "service re-queried at index 11", func() bool { return main.Parked("/v1/health/service/orders", 11) })
			if kvBlocking(main, 0) {
				t.Error("the KV prefix of a scope whose leader is in warning was followed with warning_is_passing set")
			}
		})
	}
}
