package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/regiondns/regiondns/cache"
	"github.com/regiondns/regiondns/engine"
	"github.com/regiondns/regiondns/watch"
	"github.com/regiondns/regiondns/watch/consultest"
	"github.com/regiondns/regiondns/zones"
)

// fleetWords name the fleet's clusters, so that a screenshot of the status
// page looks like a fleet: orders-000, billing-000, ...
var fleetWords = []string{"orders", "billing", "ledger", "search", "auth", "catalog", "payments", "events"}

// fleetCluster is what one cluster of a test fleet goes through.
type fleetCluster int

const (
	fleetHealthy    fleetCluster = iota
	fleetSplitBrain              // the standby region promoted while main still leads
	fleetNoLeader                // main's leader failing, standby not promoted: rw NODATA
	fleetReplicaOut              // a main replica failing its check
)

// fleetKind is what cluster i of a fleet goes through: mostly healthy, a
// few of each problem, spread over the fleet (three split brains and three
// clusters without rw in 1,000, so that the first screen of the status
// page shows every kind of row).
func fleetKind(i int) fleetCluster {
	switch {
	case i%333 == 7:
		return fleetSplitBrain
	case i%333 == 23:
		return fleetNoLeader
	case i%10 == 3:
		return fleetReplicaOut
	}
	return fleetHealthy
}

// fleetLabel is the label (and Patroni scope, in both regions) of cluster i.
func fleetLabel(i int) string {
	return fmt.Sprintf("%s-%03d", fleetWords[i%len(fleetWords)], i/len(fleetWords))
}

// startFleet starts an engine over n clusters in two fake Consul
// datacenters, each cluster a Patroni cluster as fleetKind says (main: a
// leader and two replicas; standby: a standby leader and a replica), waits
// until every region has been read without error and the decisions are
// built, and
// returns it with the metrics it reports to. The watcher runs until the
// test ends.
func startFleet(t testing.TB, n int) (*engine.Engine, *metrics) {
	t.Helper()
	main, standby := consultest.New(t, "dc1"), consultest.New(t, "dc2")
	var zone strings.Builder
	fmt.Fprintf(&zone, "zone: pg.example.internal.\nregions:\n"+
		"  - {name: main, role: main, datacenter: dc1, consul_http: [%q]}\n"+
		"  - {name: standby, role: standby, datacenter: dc2, consul_http: [%q]}\nclusters:\n", main.URL(), standby.URL())
	main.Set(func(f *consultest.Fake) {
		for i := range n {
			fleetRegion(f, i, "main", 10)
		}
	})
	standby.Set(func(f *consultest.Fake) {
		for i := range n {
			fleetRegion(f, i, "standby", 20)
		}
	})
	for i := range n {
		l := fleetLabel(i)
		fmt.Fprintf(&zone, "  - {label: %s, scopes: {main: %s, standby: %s}}\n", l, l, l)
	}
	path := filepath.Join(t.TempDir(), "zone.yml")
	if err := os.WriteFile(path, []byte(zone.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := zones.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	opts := watch.Options{WaitTime: 30 * time.Second, MinInterval: time.Millisecond,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		FirstReads: 16, FirstReadWait: time.Minute}
	w, err := watch.New(cfg, opts, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	m := newMetrics(w)
	e := engine.New(cfg, w, &cache.Store{}, engine.Options{Observer: m, Path: path})
	e.Rebuild()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	// Generous: thousands of first reads on a machine shared with -race.
	deadline := time.Now().Add(3 * time.Minute)
	for !fleetRead(w) {
		if time.Now().After(deadline) {
			t.Fatalf("the watcher of %d clusters has not read every region within 3 min: %+v", n, w.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.Rebuild()
	return e, m
}

// fleetRead reports whether w has read every resource of every region
// and none is failing: a first read that failed counts as ready, but
// would leave a region stale.
func fleetRead(w *watch.Watcher) bool {
	if !w.Ready() {
		return false
	}
	for _, st := range w.Status() {
		if st.Stale || st.Failing > 0 {
			return false
		}
	}
	return true
}

// fleetRegion registers cluster i's members in region (pg-m1, pg-m2, ...
// in main, pg-s1, ... in standby), addresses in 10.<net>.0.0/16, with
// Patroni's keys.
func fleetRegion(f *consultest.Fake, i int, region string, net int) {
	scope, kind := fleetLabel(i), fleetKind(i)
	addr := func(m int) string { return fmt.Sprintf("10.%d.%d.%d", net+i/250, i%250, m+1) }
	member := func(m int) string { return fmt.Sprintf("pg-%s%d", region[:1], m+1) }
	leaderTag, leaderRole, config, timeline := "primary", "primary", `{"ttl":30}`, 3
	replicas := 2
	if region == "standby" {
		leaderTag, leaderRole, config, replicas = "standby-leader", "standby_leader", `{"standby_cluster":{"host":"10.10.0.1"}}`, 1
		if kind == fleetSplitBrain {
			leaderTag, leaderRole, config, timeline = "primary", "primary", `{"ttl":30}`, 4
		}
	}
	leaderHealth := api.HealthPassing
	if region == "main" && kind == fleetNoLeader {
		leaderHealth = api.HealthCritical
	}
	prefix := "service/" + scope + "/"
	f.Entries[scope] = append(f.Entries[scope], fleetEntry(scope, member(0), addr(0), leaderTag, leaderHealth))
	f.KV = append(f.KV,
		&api.KVPair{Key: prefix + "leader", Value: []byte(member(0))},
		&api.KVPair{Key: prefix + "config", Value: []byte(config)},
		&api.KVPair{Key: prefix + "members/" + member(0), Value: fmt.Appendf(nil, `{"role":%q,"timeline":%d}`, leaderRole, timeline)})
	for m := 1; m <= replicas; m++ {
		health := api.HealthPassing
		if region == "main" && kind == fleetReplicaOut && m == replicas {
			health = api.HealthCritical
		}
		f.Entries[scope] = append(f.Entries[scope], fleetEntry(scope, member(m), addr(m), "replica", health))
		f.KV = append(f.KV, &api.KVPair{Key: prefix + "members/" + member(m),
			Value: fmt.Appendf(nil, `{"role":"replica","timeline":%d}`, timeline)})
	}
}

// fleetEntry is one Patroni member of scope as Consul's health endpoint
// returns it.
func fleetEntry(scope, member, addr, tag, health string) *api.ServiceEntry {
	return &api.ServiceEntry{
		Node:    &api.Node{Node: "n-" + member, Address: addr},
		Service: &api.AgentService{ID: scope + "/" + member, Service: scope, Address: addr, Port: 5432, Tags: []string{tag}},
		Checks:  api.HealthChecks{{CheckID: "service:" + scope + "/" + member, Status: health}},
	}
}
