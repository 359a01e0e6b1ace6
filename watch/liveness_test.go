package watch

import (
	"io"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/regiondns/regiondns/watch/consultest"
	"github.com/regiondns/regiondns/zones"
)

// startCheckedWatcher runs a Watcher for cfg whose blocking queries wait
// far longer than the test, and whose agents are checked every 20 ms and
// must answer within 100 ms: only a liveness check can move a read off a
// hung agent in time.
func startCheckedWatcher(t *testing.T, cfg *zones.Config) *Watcher {
	t.Helper()
	opts := fastOptions
	opts.WaitTime = time.Minute
	w, err := New(cfg, opts, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	w.transport.probeInterval, w.transport.probeTimeout = 20*time.Millisecond, 100*time.Millisecond
	runWatcher(t, w)
	return w
}

// The region's first agent accepts connections and never answers: the
// region is read through its second agent, fresh.
func TestWatcherLeavesABlackholedAgent(t *testing.T) {
	hole := newRawServer(t, func(n int, c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	second, standby := consultest.New(t, "dc1"), consultest.New(t, "dc2")
	second.Set(func(f *consultest.Fake) {
		f.Entries["orders"] = []*api.ServiceEntry{entry("orders", "pg-1", "n1", "10.0.0.1", 5432, api.HealthPassing, "master", "primary")}
	})
	cfg := testConfig(hole.url(""), standby.URL())
	cfg.Regions[0].ConsulHTTP = append(cfg.Regions[0].ConsulHTTP, second.URL())
	w := startCheckedWatcher(t, cfg)
	waitFor(t, "main read through its second agent", func() bool {
		st := w.Status()[0]
		return w.Inputs()["orders"].Main.Known && !st.Stale && slices.Equal(st.Via, []string{second.URL()})
	})
}

// The agent a region is read through stops answering in the middle of a
// blocking query (its process is stopped): the query is given up, the
// region is read through its other agent, and a change made meanwhile
// arrives long before the query's wait time.
func TestWatcherLeavesAnAgentThatStopsAnswering(t *testing.T) {
	first, second, standby := consultest.New(t, "dc1"), consultest.New(t, "dc1"), consultest.New(t, "dc2")
	leader := func(member, addr string) func(f *consultest.Fake) {
		return func(f *consultest.Fake) {
			f.Entries["orders"] = []*api.ServiceEntry{entry("orders", member, "n-"+member, addr, 5432, api.HealthPassing, "master", "primary")}
			f.Index++
		}
	}
	first.Set(leader("pg-1", "10.0.0.1"))
	second.Set(leader("pg-1", "10.0.0.1"))
	cfg := testConfig(first.URL(), standby.URL())
	cfg.Regions[0].ConsulHTTP = append(cfg.Regions[0].ConsulHTTP, second.URL())
	w := startCheckedWatcher(t, cfg)
	waitFor(t, "main parked on its first agent", func() bool {
		return first.Parked("/v1/health/service/orders", first.Index) && slices.Equal(w.Status()[0].Via, []string{first.URL()})
	})

	// The first agent stops: nothing it is asked is answered any more.
	for _, p := range []string{probePath, "/v1/health/service/orders", "/v1/kv/service/orders/", "/v1/kv/service/orders/leader", "/v1/kv/regiondns/"} {
		t.Cleanup(first.Hold(p))
	}
	start := time.Now()
	second.Set(leader("pg-2", "10.0.0.2"))
	waitFor(t, "the new leader, read through the second agent", func() bool {
		m := w.Inputs()["orders"].Main
		return len(m.Members) == 1 && m.Members[0].Member == "pg-2" && !m.Stale
	})
	t.Logf("the change arrived %v after the first agent stopped", time.Since(start))
	// Every loop of the region leaves the first agent once its check
	// fails, each on its own (the leader key's and the control prefix's
	// too, whose queries were given up with the others).
	waitFor(t, "main read through the second agent alone", func() bool {
		return slices.Equal(w.Status()[0].Via, []string{second.URL()})
	})
}
