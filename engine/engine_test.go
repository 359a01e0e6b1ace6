package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
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

func primary(scope, member, addr string) *api.ServiceEntry {
	return &api.ServiceEntry{
		Node:    &api.Node{Node: "n-" + member, Address: addr},
		Service: &api.AgentService{ID: scope + "/" + member, Service: scope, Address: addr, Port: 5432, Tags: []string{"primary"}},
		Checks:  api.HealthChecks{{CheckID: "service:" + scope + "/" + member, Status: api.HealthPassing}},
	}
}

// writeZone writes a zone file of the clusters, each with a scope of its
// own name in both regions.
func writeZone(t *testing.T, path, mainAddr, standbyAddr string, labels ...string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "zone: pg.example.internal.\nregions:\n"+
		"  - {name: main, role: main, datacenter: dc1, consul_http: [%q]}\n"+
		"  - {name: standby, role: standby, datacenter: dc2, consul_http: [%q]}\nclusters:\n", mainAddr, standbyAddr)
	for _, l := range labels {
		fmt.Fprintf(&b, "  - {label: %s, scopes: {main: %s, standby: %s}}\n", l, l, l)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a log destination safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines returns the log lines whose message is msg and whose cluster is
// label.
func (s *syncBuffer) lines(msg, label string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for line := range strings.Lines(s.b.String()) {
		var rec struct{ Msg, Cluster string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == msg && rec.Cluster == label {
			n++
		}
	}
	return n
}

// testEngine is an engine over two fake regions; the test runs its
// rebuilds, the watcher runs on its own.
type testEngine struct {
	*Engine
	main, standby *consultest.Fake
	log           *syncBuffer
	obs           *recorder
}

// startEngine starts an engine for orders and billing, whose main region
// has a primary each (10.0.0.1, 10.0.1.1) and whose standby region is
// empty, and rebuilds once, as serve does before the watcher runs. The
// standby region's billing KV prefix is held: the watcher is not ready
// until the caller releases it.
func startEngine(t *testing.T) (te *testEngine, release func()) {
	t.Helper()
	main, standby := consultest.New(t, "dc1"), consultest.New(t, "dc2")
	main.Set(func(f *consultest.Fake) {
		f.Entries["orders"] = []*api.ServiceEntry{primary("orders", "pg-1", "10.0.0.1")}
		f.Entries["billing"] = []*api.ServiceEntry{primary("billing", "b-1", "10.0.1.1")}
	})
	release = standby.Hold("/v1/kv/service/billing/")
	log, obs := &syncBuffer{}, &recorder{}
	e := newEngine(t, main, standby, Options{Logger: slog.New(slog.NewJSONHandler(log, nil)), Observer: obs}, "orders", "billing")
	e.Rebuild()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.watcher.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return &testEngine{Engine: e, main: main, standby: standby, log: log, obs: obs}, release
}

// newEngine returns an engine, and its watcher, for the clusters of labels
// in the regions of main and standby, with opts and the zone file it
// writes; nothing runs yet.
func newEngine(t *testing.T, main, standby *consultest.Fake, opts Options, labels ...string) *Engine {
	t.Helper()
	path := filepath.Join(t.TempDir(), "zone.yml")
	writeZone(t, path, main.URL(), standby.URL(), labels...)
	cfg, err := zones.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	wopts := watch.Options{WaitTime: 2 * time.Second, MinInterval: time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	w, err := watch.New(cfg, wopts, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	opts.Path = path
	return New(cfg, w, &cache.Store{}, opts)
}

// waitParked waits until every path was queried at index in f.
func waitParked(t *testing.T, f *consultest.Fake, index uint64, paths ...string) {
	t.Helper()
	for _, p := range paths {
		waitFor(t, fmt.Sprintf("%s parked at index %d", p, index), func() bool { return f.Parked(p, index) })
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ready brings te to its first ready rebuild: every resource but the held
// one is read and decided first, then the held one is released and read.
func (te *testEngine) ready(t *testing.T, release func()) {
	t.Helper()
	waitParked(t, te.main, 10, "/v1/health/service/orders", "/v1/kv/service/orders/",
		"/v1/health/service/billing", "/v1/kv/service/billing/", "/v1/kv/regiondns/")
	waitParked(t, te.standby, 10, "/v1/health/service/orders", "/v1/kv/service/orders/", "/v1/health/service/billing",
		"/v1/kv/regiondns/")
	te.Rebuild()
	if te.watcher.Ready() {
		t.Fatal("watcher ready with billing's standby KV prefix held")
	}
	release()
	waitParked(t, te.standby, 10, "/v1/kv/service/billing/")
	te.Rebuild()
	if !te.watcher.Ready() {
		t.Fatal("watcher not ready once every resource was read")
	}
}

// rw returns the address rw.<label> answers, or its result when it has
// none.
func (te *testEngine) rw(label string) string {
	a := te.store.Load().Lookup("rw."+label+".pg.example.internal.", dns.TypeA)
	if a.Result != cache.Success {
		return a.Result.String()
	}
	return a.Answer[0].(*dns.A).A.String()
}

// The first rebuild after every region was read logs every cluster's
// decision, also those decided before and unchanged since.
func TestEngineFirstReadyLogsEveryCluster(t *testing.T) {
	te, release := startEngine(t)
	te.ready(t, release)
	for _, label := range []string{"orders", "billing"} {
		if n := te.log.lines("decision", label); n != 1 {
			t.Errorf("%d decision lines for %s, want 1", n, label)
		}
	}
	if got := te.rw("orders"); got != "10.0.0.1" {
		t.Errorf("rw.orders = %s, want 10.0.0.1", got)
	}
	if got := te.rw("billing"); got != "10.0.1.1" {
		t.Errorf("rw.billing = %s, want 10.0.1.1", got)
	}
}

// A change of one cluster decides that cluster again, and the others keep
// their decisions: the very values decided before.
func TestEngineDecidesOnlyChangedClusters(t *testing.T) {
	te, release := startEngine(t)
	te.ready(t, release)
	te.mu.Lock()
	billing := te.decisions["billing"]
	te.mu.Unlock()
	if len(billing.RW) != 1 {
		t.Fatalf("billing rw = %+v, want its primary", billing.RW)
	}

	te.main.Set(func(f *consultest.Fake) {
		f.Index = 11
		f.Entries["orders"] = []*api.ServiceEntry{primary("orders", "pg-2", "10.0.0.2")}
	})
	waitFor(t, "rw.orders to answer the new primary", func() bool {
		te.Rebuild()
		return te.rw("orders") == "10.0.0.2"
	})
	// billing's loops read index 11 too (the same answers).
	waitParked(t, te.main, 11, "/v1/health/service/billing", "/v1/kv/service/billing/")
	te.Rebuild()

	te.mu.Lock()
	after := te.decisions["billing"]
	te.mu.Unlock()
	if len(after.RW) != 1 || &after.RW[0] != &billing.RW[0] {
		t.Errorf("billing decided again after only orders changed: rw %p, was %p", after.RW, billing.RW)
	}
	if got := te.rw("billing"); got != "10.0.1.1" {
		t.Errorf("rw.billing = %s, want 10.0.1.1", got)
	}
	if n := te.log.lines("decision changed", "orders"); n != 1 {
		t.Errorf("%d decision changed lines for orders, want 1", n)
	}
}

// A reload decides every cluster of the new configuration, and forgets
// the removed ones.
func TestEngineReloadDecidesTheNewConfiguration(t *testing.T) {
	te, release := startEngine(t)
	te.ready(t, release)
	te.main.Set(func(f *consultest.Fake) {
		f.Entries["events"] = []*api.ServiceEntry{primary("events", "e-1", "10.0.2.1")}
	})
	writeZone(t, te.path, te.main.URL(), te.standby.URL(), "orders", "events")
	if err := te.Reload(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "rw.events to answer its primary", func() bool {
		te.Rebuild()
		return te.rw("events") == "10.0.2.1"
	})
	if got := te.rw("orders"); got != "10.0.0.1" {
		t.Errorf("rw.orders = %s, want 10.0.0.1", got)
	}
	if got := te.rw("billing"); got != "nxdomain" {
		t.Errorf("rw.billing after its removal = %s, want nxdomain", got)
	}
	te.mu.Lock()
	_, decided := te.decisions["billing"]
	_, input := te.inputs["billing"]
	te.mu.Unlock()
	if decided || input {
		t.Errorf("billing after its removal: decision %t, input %t; want neither", decided, input)
	}
}

// Under a stream of changes to several clusters, with the engine's own run
// loop rebuilding as the watcher announces them, the incremental result
// once things settle is the full one: every cluster's decision is what
// deciding its current input gives, and every answer is what a snapshot
// built from scratch gives. A change marked while a rebuild takes the
// marks must reach a later rebuild, never be lost.
func TestEngineIncrementalMatchesFull(t *testing.T) {
	labels := []string{"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7"}
	main, standby := consultest.New(t, "dc1"), consultest.New(t, "dc2")
	e := newEngine(t, main, standby, Options{}, labels...)
	w, cfg := e.watcher, e.cfg
	e.Rebuild()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { w.Run(ctx) })
	wg.Go(func() { e.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	r := rand.New(rand.NewPCG(7, 7))
	for i := range 60 {
		label := labels[r.IntN(len(labels))]
		main.Set(func(f *consultest.Fake) {
			f.Index++
			switch r.IntN(3) {
			case 0:
				delete(f.Entries, label)
			default:
				f.Entries[label] = []*api.ServiceEntry{primary(label, fmt.Sprintf("m%d", i), fmt.Sprintf("10.1.%d.%d", i, r.IntN(4)+1))}
			}
		})
		time.Sleep(time.Duration(r.IntN(3)) * time.Millisecond)
	}
	var final uint64
	main.Set(func(f *consultest.Fake) { final = f.Index })
	for _, l := range labels {
		waitParked(t, main, final, "/v1/health/service/"+l)
	}
	waitFor(t, "the watcher to be ready", w.Ready)
	// The last announcement may still be on its way to the run loop: one
	// more rebuild under the engine's lock takes whatever is marked.
	e.Rebuild()

	e.mu.Lock()
	defer e.mu.Unlock()
	inputs := w.Inputs()
	want := make(map[string]policy.Decision, len(labels))
	for _, l := range labels {
		want[l] = policy.Decide(inputs[l])
		if !reflect.DeepEqual(e.decisions[l], want[l]) {
			t.Errorf("%s: decision %+v, want %+v", l, e.decisions[l], want[l])
		}
	}
	got, full := e.store.Load(), cache.Build(cfg, want, 1)
	for _, l := range labels {
		for _, name := range []string{"rw", "ro", "passive-rw", "passive-ro"} {
			q := name + "." + l + ".pg.example.internal."
			for _, qtype := range []uint16{dns.TypeA, dns.TypeSRV, dns.TypeTXT} {
				g, f := got.Lookup(q, qtype), full.Lookup(q, qtype)
				if fmt.Sprint(g.Result, g.Answer, g.Extra) != fmt.Sprint(f.Result, f.Answer, f.Extra) {
					t.Errorf("%s %s: got %v %v, want %v %v", q, dns.TypeToString[qtype], g.Result, g.Answer, f.Result, f.Answer)
				}
			}
		}
	}
}

// A reload that drops clusters (a valid but truncated zone file) says
// which at warning level; one that drops none does not warn.
func TestEngineReloadWarnsOfRemovedClusters(t *testing.T) {
	te, release := startEngine(t)
	release()
	writeZone(t, te.path, te.main.URL(), te.standby.URL(), "orders", "billing")
	if err := te.Reload(); err != nil {
		t.Fatal(err)
	}
	const warning = "zone file reload removed clusters; their names now answer NXDOMAIN"
	if n := te.log.lines(warning, ""); n != 0 {
		t.Errorf("a reload that keeps every cluster warned %d times", n)
	}
	writeZone(t, te.path, te.main.URL(), te.standby.URL(), "orders")
	if err := te.Reload(); err != nil {
		t.Fatal(err)
	}
	if n := te.log.lines(warning, ""); n != 1 {
		t.Fatalf("a reload that removes billing warned %d times, want once", n)
	}
	te.log.mu.Lock()
	out := te.log.b.String()
	te.log.mu.Unlock()
	if !strings.Contains(out, `"level":"WARN","msg":"`+warning) || !strings.Contains(out, `"removed":["billing"]`) {
		t.Errorf("log %s: want a WARN line naming billing", out)
	}
}
