package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/cache"
	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/watch"
	"github.com/regiondns/regiondns/watch/consultest"
	"github.com/regiondns/regiondns/zones"
)

// readsKV is the orders scope's KV: pg-1 leads at 1 GiB, pg-2 trails by lag.
func readsKV(lag int64) api.KVPairs {
	const lead = 1 << 30
	member := func(name string, v map[string]any) *api.KVPair {
		b, _ := json.Marshal(v)
		return &api.KVPair{Key: "service/orders/members/" + name, Value: b}
	}
	return api.KVPairs{
		{Key: "service/orders/leader", Value: []byte("pg-1")},
		{Key: "service/orders/config", Value: []byte(`{"ttl":30}`)},
		member("pg-1", map[string]any{"role": "master", "xlog_location": lead}),
		member("pg-2", map[string]any{"role": "replica", "xlog_location": lead - lag}),
	}
}

// startReadsEngine runs an engine (its watcher and Run) over orders with
// ro_max_lag 16MB and a settle time of settle seconds: pg-1 leads, pg-2
// trails by lag.
func startReadsEngine(t *testing.T, lag int64, settle int) (*Engine, *consultest.Fake, *recorder) {
	t.Helper()
	main, standby := consultest.New(t, "dc1"), consultest.New(t, "dc2")
	replica := primary("orders", "pg-2", "10.0.0.2")
	replica.Service.Tags = []string{"replica"}
	main.Set(func(f *consultest.Fake) {
		f.Entries["orders"] = []*api.ServiceEntry{primary("orders", "pg-1", "10.0.0.1"), replica}
		f.KV = readsKV(lag)
	})
	path := filepath.Join(t.TempDir(), "zone.yml")
	zone := fmt.Sprintf(`zone: pg.example.internal.
regions:
  - {name: main, role: main, datacenter: dc1, consul_http: [%q]}
  - {name: standby, role: standby, datacenter: dc2, consul_http: [%q]}
clusters:
  - {label: orders, scopes: {main: orders, standby: orders}, ro_max_lag: 16MB, ro_lag_settle: %d}
`, main.URL(), standby.URL(), settle)
	if err := os.WriteFile(path, []byte(zone), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := zones.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	wopts := watch.Options{WaitTime: 2 * time.Second, MinInterval: time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	w, err := watch.New(cfg, wopts, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	obs := &recorder{}
	e := New(cfg, w, &cache.Store{}, Options{Path: path, Observer: obs})
	e.Rebuild()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { w.Run(ctx); done <- struct{}{} }()
	go func() { e.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })
	return e, main, obs
}

// roMembers returns the addresses ro.orders answers.
func roMembers(e *Engine) []string {
	a := e.store.Load().Lookup("ro.orders.pg.example.internal.", dns.TypeA)
	var out []string
	for _, rr := range a.Answer {
		out = append(out, rr.(*dns.A).A.String())
	}
	slices.Sort(out)
	return out
}

func ordersDecision(e *Engine) policy.Decision {
	for _, c := range e.State().Clusters {
		if c.Label == "orders" {
			return c.Decision
		}
	}
	return policy.Decision{}
}

// A replica that falls behind leaves ro at the next change; back under the
// limit (not under half of it) it stays out for the settle time, and the
// engine decides it back in once that is over, with no change in Consul.
func TestEngineLagSettles(t *testing.T) {
	e, main, _ := startReadsEngine(t, 48<<20, 1)
	waitFor(t, "pg-2 out of ro", func() bool { return slices.Equal(roMembers(e), []string{"10.0.0.1"}) })
	if ex := ordersDecision(e).Main.Excluded; len(ex) != 1 || ex[0].Why != "lag 48 MB > 16 MB" {
		t.Errorf("excluded = %+v, want pg-2 lag 48 MB > 16 MB", ex)
	}

	main.Set(func(f *consultest.Fake) { f.KV, f.Index = readsKV(12<<20), f.Index+1 })
	var since time.Time
	waitFor(t, "pg-2 settling", func() bool {
		ex := ordersDecision(e).Main.Excluded
		if len(ex) == 1 && ex[0].Why == "lag 12 MB <= 16 MB, settling for 1s" {
			since = ex[0].UnderLimitSince
			return true
		}
		return false
	})
	if got := roMembers(e); !slices.Equal(got, []string{"10.0.0.1"}) {
		t.Errorf("ro while pg-2 settles = %v, want the leader", got)
	}
	waitFor(t, "pg-2 back in ro after the settle time", func() bool { return slices.Equal(roMembers(e), []string{"10.0.0.2"}) })
	if d := time.Since(since); d < time.Second {
		t.Errorf("pg-2 came back %s after it was first under the limit, want at least the settle time of 1s", d)
	}
	if d := ordersDecision(e); len(d.Main.Excluded) != 0 || !d.Recheck.IsZero() {
		t.Errorf("after settling: excluded %+v, recheck %v; want none", d.Main.Excluded, d.Recheck)
	}
}

// A rewrite of positions that changes no answer builds no snapshot: the
// generation (the SOA serial) stays.
func TestEngineSkipsUnchangedDecisions(t *testing.T) {
	e, main, _ := startReadsEngine(t, 0, 10)
	waitFor(t, "every region read", e.watcher.Ready)
	e.Rebuild()
	waitFor(t, "pg-2 in ro", func() bool { return slices.Equal(roMembers(e), []string{"10.0.0.2"}) })
	gen := e.State().Generation
	main.Set(func(f *consultest.Fake) { f.KV, f.Index = readsKV(1<<20), f.Index+1 })
	waitFor(t, "the new position decided", func() bool {
		for _, c := range e.State().Clusters {
			for _, m := range c.Observed["main"].Members {
				if m.Member == "pg-2" && m.MemberKey != nil && m.MemberKey.XLogLocation == 1<<30-1<<20 {
					return true
				}
			}
		}
		return false
	})
	if got := e.State().Generation; got != gen {
		t.Errorf("generation %d after a change of no answer, want %d", got, gen)
	}
}
