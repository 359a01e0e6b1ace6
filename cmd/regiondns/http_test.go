package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
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

// /debug/state is read by operators and by the e2e tests: its document
// keeps its shape and its values, here for a cluster with a leader and a
// replica in main, nothing in standby, after a failed reload. Values that
// depend on the clock or the run (times, request counts, addresses) are
// masked; testdata/debug-state.json is the rest, byte for byte.
func TestDebugStateDocument(t *testing.T) {
	main, standby := consultest.New(t, "dc1"), consultest.New(t, "dc2")
	main.Set(func(f *consultest.Fake) {
		f.Entries["orders"] = []*api.ServiceEntry{
			stateEntry("pg-1", "10.0.0.1", "primary", api.HealthPassing),
			stateEntry("pg-2", "10.0.0.2", "replica", api.HealthWarning),
		}
		f.KV = api.KVPairs{
			{Key: "service/orders/leader", Value: []byte("pg-1")},
			{Key: "service/orders/members/pg-1", Value: []byte(`{"role":"primary","timeline":3}`)},
			{Key: "service/orders/members/pg-2", Value: []byte(`{"role":"replica","timeline":3}`)},
		}
	})
	path := filepath.Join(t.TempDir(), "zone.yml")
	zone := fmt.Sprintf("zone: pg.example.internal.\nregions:\n"+
		"  - {name: main, role: main, datacenter: dc1, consul_http: [%q]}\n"+
		"  - {name: standby, role: standby, datacenter: dc2, consul_http: [%q]}\n"+
		"clusters:\n  - {label: orders, scopes: {main: orders, standby: orders}}\n", main.URL(), standby.URL())
	if err := os.WriteFile(path, []byte(zone), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := zones.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	opts := watch.Options{WaitTime: 2 * time.Second, MinInterval: time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	w, err := watch.New(cfg, opts, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	e := engine.New(cfg, w, &cache.Store{}, engine.Options{Observer: newMetrics(w), Path: path})
	e.Rebuild()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(5 * time.Second)
	for !w.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for the watcher to be ready")
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.Rebuild()
	if err := os.WriteFile(path, []byte(zone+"bogus_key: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if e.Reload() == nil {
		t.Fatal("reload of a zone file with an unknown key succeeded")
	}

	rec := httptest.NewRecorder()
	newHTTPHandler(e, testMetrics(t)).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/state", nil))
	if ct := rec.Header().Get("Content-Type"); rec.Code != http.StatusOK || ct != "application/json" {
		t.Fatalf("/debug/state = %d %q, want 200 application/json", rec.Code, ct)
	}
	got := maskState(rec.Body.Bytes(), path, map[string]string{
		strings.TrimPrefix(main.URL(), "http://"): "<main agent>", strings.TrimPrefix(standby.URL(), "http://"): "<standby agent>"})
	want, err := os.ReadFile("testdata/debug-state.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("/debug/state, masked =\n%s\nwant (testdata/debug-state.json)\n%s", got, want)
	}
}

// stateEntry is a passing-or-not Patroni member of scope orders.
func stateEntry(member, addr, role, health string) *api.ServiceEntry {
	return &api.ServiceEntry{
		Node:    &api.Node{Node: "n-" + member, Address: addr},
		Service: &api.AgentService{ID: "orders/" + member, Service: "orders", Address: addr, Port: 5432, Tags: []string{role}},
		Checks:  api.HealthChecks{{CheckID: "service:orders/" + member, Status: health}},
	}
}

// volatileValue matches the values of /debug/state that vary between runs
// (times, request counts, followed resources), on one line each as served.
var volatileValue = regexp.MustCompile(`("(?:built_at|loaded_at|last_contact|requests|following|read_at)": )[^,\n]*`)

// maskState returns a /debug/state document as served, with the values
// that vary between runs replaced by "<masked>" and the zone file's path
// and the agents' addresses by names. Only values are masked: a key added,
// dropped, renamed or moved still shows.
func maskState(body []byte, path string, agents map[string]string) []byte {
	s := volatileValue.ReplaceAllString(string(body), `$1"<masked>"`)
	s = strings.ReplaceAll(s, path, "<zone file>")
	for addr, name := range agents {
		s = strings.ReplaceAll(s, addr, name)
	}
	return []byte(s)
}
