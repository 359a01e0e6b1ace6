package engine

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/watch/consultest"
	"github.com/regiondns/regiondns/zones"
)

func TestAnswersString(t *testing.T) {
	if got, want := AnswersOf(policy.Decision{Active: "main"}).String(),
		"active=main rw=[] ro=[] passive-rw=[] passive-ro=[] split_brain=false"; got != want {
		t.Errorf("answers of an empty decision = %q, want %q", got, want)
	}
	d := policy.Decision{Active: "main", RW: []policy.Endpoint{{Member: "pg-1", Address: netip.MustParseAddr("10.0.0.1"), Port: 5432}},
		RO:  []policy.Endpoint{{Node: "pool-1", Address: netip.MustParseAddr("10.0.1.1"), Port: 6432}},
		Pin: &policy.PinState{Region: "main", Applied: true}}
	if got, want := AnswersOf(d).String(),
		"active=main rw=[pg-1@10.0.0.1:5432] ro=[pool-1@10.0.1.1:6432] passive-rw=[] passive-ro=[] split_brain=false pinned=main"; got != want {
		t.Errorf("answers = %q, want %q", got, want)
	}
	d.Pin.Applied = false
	if got := AnswersOf(d).String(); strings.Contains(got, "pinned") {
		t.Errorf("answers with an ignored pin = %q, want no pinned", got)
	}
}

// recorder is an Observer that keeps what it is told, one line per call.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf(format, args...))
}

func (r *recorder) Built(gen uint64, _ time.Duration) { r.add("built %d", gen) }
func (r *recorder) Decided(cfg *zones.Config, cluster string, d policy.Decision) {
	labels := make([]string, len(cfg.Clusters))
	for i, cl := range cfg.Clusters {
		labels[i] = cl.Label
	}
	r.add("decided %s active=%s rw=%d under %v", cluster, d.Active, len(d.RW), labels)
}
func (r *recorder) Changed(cluster string) { r.add("changed %s", cluster) }
func (r *recorder) Forgot(cluster string)  { r.add("forgot %s", cluster) }
func (r *recorder) Reloaded(err error) {
	if err != nil {
		r.add("reload failed")
		return
	}
	r.add("reloaded")
}

// take returns the calls recorded since the last take.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.events
	r.events = nil
	return ev
}

// matching returns the events that start with prefix.
func matching(events []string, prefix string) []string {
	var out []string
	for _, e := range events {
		if strings.HasPrefix(e, prefix) {
			out = append(out, e)
		}
	}
	return out
}

// The Observer hears of every snapshot, in generation order; of each
// cluster decided again, with the configuration it was decided under; of
// a change of answers (not of a first decision); of every reload's result;
// and of the clusters a reload removes, before the rebuild that follows.
func TestEngineReportsToObserver(t *testing.T) {
	te, release := startEngine(t)
	te.ready(t, release)
	ev := te.obs.take()
	built := matching(ev, "built ")
	for i, b := range built {
		if want := fmt.Sprintf("built %d", i+1); b != want {
			t.Fatalf("snapshot %d reported as %q, want %q (events %q)", i, b, want, ev)
		}
	}
	te.mu.Lock()
	gen := te.gen
	te.mu.Unlock()
	if gen != uint64(len(built)) {
		t.Errorf("%d snapshots reported, engine at generation %d", len(built), gen)
	}
	for _, want := range []string{
		"decided orders active=main rw=1 under [orders billing]",
		"decided billing active=main rw=1 under [orders billing]",
	} {
		if !slices.Contains(ev, want) {
			t.Errorf("no %q in %q", want, ev)
		}
	}
	if c := matching(ev, "changed "); len(c) != 0 {
		t.Errorf("first decisions reported as changes: %q", c)
	}

	te.main.Set(func(f *consultest.Fake) {
		f.Index = 11
		f.Entries["orders"] = []*api.ServiceEntry{primary("orders", "pg-2", "10.0.0.2")}
	})
	waitFor(t, "rw.orders to answer the new primary", func() bool {
		te.Rebuild()
		return te.rw("orders") == "10.0.0.2"
	})
	if c := matching(te.obs.take(), "changed "); !slices.Equal(c, []string{"changed orders"}) {
		t.Errorf("changes after a new orders primary = %q, want [changed orders]", c)
	}

	if err := os.WriteFile(te.path, []byte("zone: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := te.Reload(); err == nil {
		t.Fatal("reload of a broken zone file succeeded")
	}
	if ev := te.obs.take(); !slices.Equal(ev, []string{"reload failed"}) {
		t.Errorf("a failed reload reported %q, want [reload failed] alone", ev)
	}

	writeZone(t, te.path, te.main.URL(), te.standby.URL(), "orders")
	if err := te.Reload(); err != nil {
		t.Fatal(err)
	}
	ev = te.obs.take()
	te.mu.Lock()
	gen = te.gen
	te.mu.Unlock()
	if len(ev) < 3 || !slices.Equal(ev[:3], []string{"forgot billing", "reloaded", fmt.Sprintf("built %d", gen)}) {
		t.Errorf("a reload that removes billing reported %q, want forgot billing, reloaded, then the rebuild", ev)
	}
	for _, e := range matching(ev, "decided ") {
		if !strings.HasSuffix(e, "under [orders]") {
			t.Errorf("after the reload: %q, want decided under [orders]", e)
		}
	}
}
