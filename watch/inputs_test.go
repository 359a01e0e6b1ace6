package watch

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/watch/consultest"
	"github.com/regiondns/regiondns/zones"
)

// withClusters returns cfg with a copy of its one cluster per label, each
// with a scope of the same name, changed by edit.
func withClusters(cfg *zones.Config, edit func(cl *zones.Cluster), labels ...string) *zones.Config {
	base := cfg.Clusters[0]
	cfg.Clusters = nil
	for _, label := range labels {
		cl := base
		cl.Label, cl.Scopes = label, map[string]string{"main": label, "standby": label}
		if edit != nil {
			edit(&cl)
		}
		cfg.Clusters = append(cfg.Clusters, cl)
	}
	return cfg
}

// settle waits until every path was queried at index in each fake (the
// loop of each resource finished the read that brought index, and waits
// for the next change), then takes the changes made so far.
func settle(t *testing.T, w *Watcher, index uint64, paths []string, fakes ...*consultest.Fake) {
	t.Helper()
	for _, f := range fakes {
		for _, p := range paths {
			waitFor(t, fmt.Sprintf("%s parked at index %d", p, index), func() bool { return f.Parked(p, index) })
		}
	}
	w.Changes()
}

// changesUntil polls Changes until what they returned, together, satisfies
// done, and returns that union.
func changesUntil(t *testing.T, w *Watcher, what string, done func(map[string]policy.Input) bool) map[string]policy.Input {
	t.Helper()
	got := map[string]policy.Input{}
	waitFor(t, what, func() bool {
		in, all := w.Changes()
		if all {
			t.Errorf("Changes while %s = all, want only the changed clusters", what)
		}
		maps.Copy(got, in)
		return done(got)
	})
	return got
}

func labels(in map[string]policy.Input) []string {
	return slices.Sorted(maps.Keys(in))
}

// A change of one cluster's Patroni service names that cluster alone; the
// other cluster, whose answers came back the same, is not named.
func TestWatcherChangesNamesTheChangedCluster(t *testing.T) {
	main, standby := consultest.New(t, "dc1"), consultest.New(t, "dc2")
	main.Set(func(f *consultest.Fake) {
		f.Entries["orders"] = []*api.ServiceEntry{entry("orders", "pg-1", "n1", "10.0.0.1", 5432, api.HealthPassing, "primary")}
		f.Entries["billing"] = []*api.ServiceEntry{entry("billing", "b-1", "n2", "10.0.1.1", 5432, api.HealthPassing, "primary")}
	})
	w := startWatcher(t, withClusters(testConfig(main.URL(), standby.URL()), nil, "orders", "billing"))
	if in, all := w.Changes(); !all || len(in) != 2 {
		t.Errorf("first Changes = %v all %t, want both clusters and all", labels(in), all)
	}
	paths := []string{"/v1/health/service/orders", "/v1/kv/service/orders/", "/v1/kv/service/orders/leader",
		"/v1/health/service/billing", "/v1/kv/service/billing/", "/v1/kv/service/billing/leader"}
	settle(t, w, 10, paths, main, standby)
	if in, all := w.Changes(); all || len(in) != 0 {
		t.Fatalf("Changes with nothing changed = %v all %t, want none", labels(in), all)
	}

	main.Set(func(f *consultest.Fake) {
		f.Index = 11
		f.Entries["orders"] = append(f.Entries["orders"], entry("orders", "pg-2", "n3", "10.0.0.2", 5432, api.HealthPassing, "replica"))
	})
	got := changesUntil(t, w, "orders' new member", func(in map[string]policy.Input) bool {
		return len(in["orders"].Main.Members) == 2
	})
	// billing's loops read index 11 too (the same answers) and wait again.
	waitFor(t, "billing re-read at index 11", func() bool {
		return main.Parked("/v1/health/service/billing", 11) && main.Parked("/v1/kv/service/billing/", 11) &&
			main.Parked("/v1/kv/service/billing/leader", 11)
	})
	in, _ := w.Changes()
	maps.Copy(got, in)
	if !slices.Equal(labels(got), []string{"orders"}) {
		t.Errorf("changes after orders changed = %v, want [orders]", labels(got))
	}
}

// A resource several clusters read (a region's PgBouncer service) names
// every one of them, and no cluster that does not read it.
func TestWatcherChangesNamesEveryClusterOfASharedResource(t *testing.T) {
	main, standby := consultest.New(t, "dc1"), consultest.New(t, "dc2")
	main.Set(func(f *consultest.Fake) {
		f.Entries["pgbouncer"] = []*api.ServiceEntry{entry("pgbouncer", "pgb-1", "n1", "10.0.0.1", 6432, api.HealthPassing)}
	})
	bouncers := func(cl *zones.Cluster) {
		if cl.Label != "events" {
			cl.Layout, cl.PgBouncer.Service = policy.LayoutBouncerPerNode, "pgbouncer"
		}
	}
	w := startWatcher(t, withClusters(testConfig(main.URL(), standby.URL()), bouncers, "orders", "billing", "events"))
	paths := []string{"/v1/health/service/pgbouncer", "/v1/health/service/events", "/v1/kv/service/events/", "/v1/kv/service/events/leader"}
	settle(t, w, 10, paths, main, standby)

	main.Set(func(f *consultest.Fake) {
		f.Index = 11
		f.Entries["pgbouncer"][0].Checks[1].Status = api.HealthCritical
	})
	got := changesUntil(t, w, "both bouncer clusters", func(in map[string]policy.Input) bool {
		_, orders := in["orders"]
		_, billing := in["billing"]
		return orders && billing
	})
	waitFor(t, "events re-read at index 11", func() bool {
		return main.Parked("/v1/health/service/events", 11) && main.Parked("/v1/kv/service/events/", 11) &&
			main.Parked("/v1/kv/service/events/leader", 11)
	})
	in, _ := w.Changes()
	maps.Copy(got, in)
	if !slices.Equal(labels(got), []string{"billing", "orders"}) {
		t.Errorf("changes after the shared service changed = %v, want [billing orders]", labels(got))
	}
	if b := got["billing"].Main.Bouncers; len(b) != 1 || b[0].Health != policy.HealthCritical {
		t.Errorf("billing's bouncers = %+v, want the one critical", b)
	}
}

// A read that fails names the clusters that read the resource: staleness
// is part of their answers.
func TestWatcherChangesNamesAFailingCluster(t *testing.T) {
	main, standby := consultest.New(t, "dc1"), consultest.New(t, "dc2")
	w := startWatcher(t, testConfig(main.URL(), standby.URL()))
	settle(t, w, 10, []string{"/v1/health/service/orders", "/v1/kv/service/orders/"}, main, standby)

	main.Set(func(f *consultest.Fake) { f.Status = http.StatusInternalServerError })
	changesUntil(t, w, "orders stale", func(in map[string]policy.Input) bool { return in["orders"].Main.Stale })
}

// Reconfigure names every cluster of the new configuration, and a change
// marked for a cluster it removed is dropped.
func TestWatcherChangesAfterReconfigure(t *testing.T) {
	main, standby := consultest.New(t, "dc1"), consultest.New(t, "dc2")
	w := startWatcher(t, withClusters(testConfig(main.URL(), standby.URL()), nil, "orders", "billing"))
	settle(t, w, 10, []string{"/v1/health/service/orders", "/v1/health/service/billing"}, main, standby)

	if err := w.Reconfigure(testConfig(main.URL(), standby.URL())); err != nil {
		t.Fatal(err)
	}
	in, all := w.Changes()
	if !all || !slices.Equal(labels(in), []string{"orders"}) {
		t.Errorf("Changes after Reconfigure = %v all %t, want [orders] and all", labels(in), all)
	}
	// The removed cluster's last read, finishing after Reconfigure.
	w.dirtyMu.Lock()
	w.dirty = map[string]struct{}{"billing": {}}
	w.dirtyMu.Unlock()
	if in, all := w.Changes(); all || len(in) != 0 {
		t.Errorf("Changes naming a removed cluster = %v all %t, want none", labels(in), all)
	}
}
