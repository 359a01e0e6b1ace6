package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/regiondns/regiondns/cache"
	"github.com/regiondns/regiondns/engine"
	"github.com/regiondns/regiondns/watch"
	"github.com/regiondns/regiondns/watch/consultest"
	"github.com/regiondns/regiondns/zones"
)

// testServer is a running engine over two fake regions, with its HTTP
// handler served and its zone file on disk: orders has a leader (pg-1)
// and two replicas (pg-2, pg-3) in main, a standby leader (s-1) and a
// replica (s-2) in standby.
type testServer struct {
	e             *engine.Engine
	main, standby *consultest.Fake
	zonePath      string
	http          *httptest.Server
}

func member(scope, name, addr, tag string) *api.ServiceEntry {
	return &api.ServiceEntry{
		Node:    &api.Node{Node: "n-" + name, Address: addr},
		Service: &api.AgentService{ID: scope + "/" + name, Service: scope, Address: addr, Port: 5432, Tags: []string{tag}},
		Checks:  api.HealthChecks{{CheckID: "service:" + scope + "/" + name, Status: api.HealthPassing}},
	}
}

func startTestServer(t *testing.T) *testServer {
	t.Helper()
	ts := &testServer{main: consultest.New(t, "dc1"), standby: consultest.New(t, "dc2")}
	ts.main.Set(func(f *consultest.Fake) {
		f.Entries["orders"] = []*api.ServiceEntry{
			member("orders", "pg-1", "10.0.0.1", "primary"),
			member("orders", "pg-2", "10.0.0.2", "replica"),
			member("orders", "pg-3", "10.0.0.3", "replica"),
		}
	})
	ts.standby.Set(func(f *consultest.Fake) {
		f.Entries["orders"] = []*api.ServiceEntry{
			member("orders", "s-1", "10.1.0.1", "standby-leader"),
			member("orders", "s-2", "10.1.0.2", "replica"),
		}
	})
	ts.zonePath = filepath.Join(t.TempDir(), "zone.yml")
	zone := fmt.Sprintf("zone: pg.example.internal.\nregions:\n"+
		"  - {name: main, role: main, datacenter: dc1, consul_http: [%q]}\n"+
		"  - {name: standby, role: standby, datacenter: dc2, consul_http: [%q]}\n"+
		"clusters:\n  - {label: orders, scopes: {main: orders, standby: orders}}\n"+
		"  - {label: billing, scopes: {main: billing, standby: billing}}\n", ts.main.URL(), ts.standby.URL())
	if err := os.WriteFile(ts.zonePath, []byte(zone), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := zones.Load(ts.zonePath)
	if err != nil {
		t.Fatal(err)
	}
	opts := watch.Options{WaitTime: 2 * time.Second, MinInterval: time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	w, err := watch.New(cfg, opts, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	m := newMetrics(w)
	ts.e = engine.New(cfg, w, &cache.Store{}, engine.Options{Observer: m, Path: ts.zonePath})
	ts.e.Rebuild()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { w.Run(ctx) })
	wg.Go(func() { ts.e.Run(ctx) })
	ts.http = httptest.NewServer(newHTTPHandler(ts.e, m))
	t.Cleanup(func() { ts.http.Close(); cancel(); wg.Wait() })
	waitUntil(t, "the watcher to be ready", w.Ready)
	ts.e.Rebuild()
	return ts
}

// waitUntil polls cond until it holds or 5 s pass.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
