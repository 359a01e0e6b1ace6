package engine

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/watch/consultest"
)

// newPrimary makes pg-<n> at 10.0.0.<n> the primary of orders in main, at
// a new index, and waits until rw.orders answers it.
func (te *testEngine) newPrimary(t *testing.T, n int) {
	t.Helper()
	addr := fmt.Sprintf("10.0.0.%d", n)
	te.main.Set(func(f *consultest.Fake) {
		f.Index++
		f.Entries["orders"] = []*api.ServiceEntry{primary("orders", fmt.Sprintf("pg-%d", n), addr)}
	})
	waitFor(t, "rw.orders to answer "+addr, func() bool {
		te.Rebuild()
		return te.rw("orders") == addr
	})
}

// Every change of a cluster's answers is kept with its time, before, after
// and why, under an ID one more than the change before it, of whichever
// cluster; History filters by cluster and by ID, and /debug/state carries
// each cluster's own. First decisions are not changes.
func TestEngineHistory(t *testing.T) {
	te, release := startEngine(t)
	te.ready(t, release)
	if h, latest, ok := te.History("", 0); len(h) != 0 || latest != 0 || !ok {
		t.Fatalf("history after the first decisions = %v (latest %d, ok %t), want none", h, latest, ok)
	}

	te.newPrimary(t, 2)
	te.main.Set(func(f *consultest.Fake) {
		f.Index++
		f.Entries["billing"] = []*api.ServiceEntry{primary("billing", "b-2", "10.0.1.2")}
	})
	waitFor(t, "rw.billing to answer b-2", func() bool {
		te.Rebuild()
		return te.rw("billing") == "10.0.1.2"
	})
	te.newPrimary(t, 3)

	all, latest, ok := te.History("", 0)
	if !ok || latest != 3 || len(all) != 3 {
		t.Fatalf("history = %+v (latest %d, ok %t), want 3 changes", all, latest, ok)
	}
	for i, want := range []struct{ cluster, before, after string }{
		{"orders", "pg-1@10.0.0.1:5432", "pg-2@10.0.0.2:5432"},
		{"billing", "b-1@10.0.1.1:5432", "b-2@10.0.1.2:5432"},
		{"orders", "pg-2@10.0.0.2:5432", "pg-3@10.0.0.3:5432"},
	} {
		c := all[i]
		if c.ID != uint64(i+1) || c.Cluster != want.cluster || !slices.Equal(c.Before.RW, []string{want.before}) ||
			!slices.Equal(c.After.RW, []string{want.after}) || c.After.Active != "main" || c.Why != "main region is primary" || c.Time.IsZero() {
			t.Errorf("change %d = %+v, want id %d of %s from %s to %s", i, c, i+1, want.cluster, want.before, want.after)
		}
	}
	if i := 1; !all[i].Time.After(all[i-1].Time) && !all[i].Time.Equal(all[i-1].Time) {
		t.Errorf("change times go backwards: %v then %v", all[i-1].Time, all[i].Time)
	}

	orders, _, _ := te.History("orders", 0)
	if len(orders) != 2 || orders[0].ID != 1 || orders[1].ID != 3 {
		t.Errorf("history of orders = %+v, want changes 1 and 3", orders)
	}
	since, _, _ := te.History("", 1)
	if len(since) != 2 || since[0].ID != 2 || since[1].ID != 3 {
		t.Errorf("history since 1 = %+v, want changes 2 and 3", since)
	}
	if h, _, _ := te.History("orders", 3); len(h) != 0 {
		t.Errorf("history of orders since 3 = %+v, want none", h)
	}
	if _, _, ok := te.History("nosuch", 0); ok {
		t.Error("history of a cluster that is not configured: ok")
	}

	st := te.State()
	if st.LatestChangeID != 3 {
		t.Errorf("state latest change id = %d, want 3", st.LatestChangeID)
	}
	for _, cs := range st.Clusters {
		want, _, _ := te.History(cs.Label, 0)
		if len(cs.History) != len(want) || (len(want) > 0 && cs.History[len(want)-1].ID != want[len(want)-1].ID) {
			t.Errorf("state of %s: history %+v, want %+v", cs.Label, cs.History, want)
		}
	}

	// A reload that removes billing forgets its history; IDs go on.
	writeZone(t, te.path, te.main.URL(), te.standby.URL(), "orders")
	if err := te.Reload(); err != nil {
		t.Fatal(err)
	}
	if h, _, _ := te.History("", 0); len(h) != 2 || h[0].Cluster != "orders" || h[1].Cluster != "orders" {
		t.Errorf("history after billing was removed = %+v, want orders' two changes", h)
	}
	te.newPrimary(t, 4)
	if h, latest, _ := te.History("orders", 3); len(h) != 1 || h[0].ID != 4 || latest != 4 {
		t.Errorf("next change after the reload: %+v (latest %d), want id 4", h, latest)
	}
}

// History keeps the last Options.History changes of each cluster.
func TestEngineHistoryBound(t *testing.T) {
	main, standby := consultest.New(t, "dc1"), consultest.New(t, "dc2")
	main.Set(func(f *consultest.Fake) {
		f.Entries["orders"] = []*api.ServiceEntry{primary("orders", "pg-1", "10.0.0.1")}
	})
	e := newEngine(t, main, standby, Options{History: 2}, "orders")
	e.Rebuild()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.watcher.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "ready", e.watcher.Ready)
	te := &testEngine{Engine: e, main: main, standby: standby}
	waitFor(t, "rw.orders", func() bool {
		te.Rebuild()
		return te.rw("orders") == "10.0.0.1"
	})
	for n := 2; n <= 5; n++ {
		te.newPrimary(t, n)
	}
	h, latest, _ := te.History("orders", 0)
	if len(h) != 2 || h[0].ID != 3 || h[1].ID != 4 || latest != 4 || h[1].After.RW[0] != "pg-5@10.0.0.5:5432" {
		t.Errorf("history = %+v (latest %d), want the last two of four changes", h, latest)
	}
}

// A pin in the main region's control prefix chooses the active region;
// it is logged when it applies and when it is ignored, the change it
// makes is in the history (pinned), and the TXT says so.
func TestEnginePins(t *testing.T) {
	main, standby := consultest.New(t, "dc1"), consultest.New(t, "dc2")
	main.Set(func(f *consultest.Fake) {
		f.Entries["orders"] = []*api.ServiceEntry{primary("orders", "pg-1", "10.0.0.1")}
		f.KV = api.KVPairs{{Key: "regiondns/pin/orders", Value: []byte(`{"active":"standby","reason":"drill","expires":"2099-01-01T00:00:00Z"}`)}}
	})
	log := &syncBuffer{}
	e := newEngine(t, main, standby, Options{Logger: slog.New(slog.NewJSONHandler(log, nil))}, "orders")
	e.Rebuild()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.watcher.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "ready", e.watcher.Ready)
	te := &testEngine{Engine: e, main: main, standby: standby, log: log}
	waitFor(t, "the unsafe pin to be ignored", func() bool {
		te.Rebuild()
		return te.rw("orders") == "10.0.0.1" && log.lines("pin ignored", "orders") == 1
	})
	if txt := te.txt("rw.orders"); !strings.Contains(txt, "pin to region standby ignored as unsafe: it has no primary and region main has one") {
		t.Errorf("rw TXT = %q, want the pin reported unsafe", txt)
	}

	standby.Set(func(f *consultest.Fake) {
		f.Index++
		f.Entries["orders"] = []*api.ServiceEntry{primary("orders", "s-1", "10.0.2.1")}
	})
	waitFor(t, "the pin to apply once the standby region has a primary", func() bool {
		te.Rebuild()
		return te.rw("orders") == "10.0.2.1" && log.lines("pin applied", "orders") == 1
	})
	if txt := te.txt("rw.orders"); !strings.Contains(txt, "pinned to region standby until 2099-01-01T00:00:00Z (drill)") {
		t.Errorf("rw TXT = %q, want pinned", txt)
	}
	h, _, _ := te.History("orders", 0)
	if n := len(h); n == 0 || h[n-1].After.Pinned != "standby" || h[n-1].After.Active != "standby" || !strings.Contains(h[n-1].Why, "pinned") {
		t.Errorf("history = %+v, want the last change pinned to standby", h)
	}

	main.Set(func(f *consultest.Fake) { f.Index++; f.KV = nil })
	waitFor(t, "the removed pin", func() bool {
		te.Rebuild()
		return log.lines("pin removed", "orders") == 1
	})
}

// txt returns the TXT line of name under the test zone.
func (te *testEngine) txt(name string) string {
	a := te.store.Load().Lookup(name+".pg.example.internal.", dns.TypeTXT)
	if len(a.Answer) != 1 {
		return fmt.Sprintf("%d TXT records", len(a.Answer))
	}
	return strings.Join(a.Answer[0].(*dns.TXT).Txt, "")
}
