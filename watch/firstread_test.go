package watch

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// holdingConsul answers every request after hold (no instances, no keys),
// and counts the first requests of each path and datacenter in flight at
// once. Requests for a path in stuck, and blocking queries at its index
// (5), wait until the test ends.
type holdingConsul struct {
	srv     *httptest.Server
	hold    time.Duration
	stuck   map[string]bool
	release chan struct{}

	mu             sync.Mutex
	inFlight, most int
	seen           map[string]time.Time // first request per path and dc
}

func newHoldingConsul(t *testing.T, hold time.Duration, stuck ...string) *holdingConsul {
	h := &holdingConsul{hold: hold, stuck: map[string]bool{}, release: make(chan struct{}), seen: map[string]time.Time{}}
	for _, p := range stuck {
		h.stuck[p] = true
	}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.URL.Path + "?dc=" + r.URL.Query().Get("dc")
		h.mu.Lock()
		_, again := h.seen[key]
		if !again {
			h.seen[key] = time.Now()
			h.inFlight++
			h.most = max(h.most, h.inFlight)
		}
		h.mu.Unlock()
		if !again {
			defer func() {
				h.mu.Lock()
				h.inFlight--
				h.mu.Unlock()
			}()
		}
		if h.stuck[r.URL.Path] || r.URL.Query().Get("index") == "5" {
			// Stuck, or a blocking query at the current index, which
			// waits as Consul's would.
			select {
			case <-h.release:
			case <-r.Context().Done():
			}
		}
		time.Sleep(h.hold)
		w.Header().Set("X-Consul-Index", "5")
		if strings.HasPrefix(r.URL.Path, "/v1/kv/") {
			http.NotFound(w, r) // no keys
			return
		}
		w.Write([]byte("[]"))
	}))
	t.Cleanup(func() { close(h.release); h.srv.Close() })
	return h
}

func (h *holdingConsul) stats() (most int, seen map[string]time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	seen = make(map[string]time.Time, len(h.seen))
	for k, v := range h.seen {
		seen[k] = v
	}
	return h.most, seen
}

func labelsN(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("c%02d", i)
	}
	return out
}

// TestWatcherBoundsFirstReads: at start, at most FirstReads first reads are
// in flight at once, also when they take longer in all than FirstReadWait
// (they make progress: no read jumps the queue), and every resource is
// still read. The resources waiting for a turn wait without a goroutine.
func TestWatcherBoundsFirstReads(t *testing.T) {
	h := newHoldingConsul(t, 30*time.Millisecond)
	cfg := withClusters(testConfig(h.srv.URL, h.srv.URL), nil, labelsN(20)...)
	opts := fastOptions
	// 61 reads of 30 ms, 4 at a time: about 450 ms.
	opts.FirstReads, opts.FirstReadWait = 4, 100*time.Millisecond
	before := runtime.NumGoroutine()
	w := startWatcherWith(t, cfg, opts)
	time.Sleep(50 * time.Millisecond)
	// 4 reads (and the fake's handlers of them), not 61 waiting loops.
	if grown := runtime.NumGoroutine() - before; grown > 30 {
		t.Errorf("%d more goroutines while 61 first reads wait for 4 turns, want at most 30", grown)
	}
	waitFor(t, "every first read", w.Ready)
	most, seen := h.stats()
	if most > 4 {
		t.Errorf("%d first reads in flight at once, want at most 4", most)
	}
	if most < 2 {
		t.Errorf("at most %d read in flight: the reads did not overlap at all", most)
	}
	// 20 clusters: a health service, a KV prefix and a leader key each,
	// and the control prefix, in two regions served by the same fake, as
	// its own agent (no dc). A liveness check of the agent (probePath) is
	// not a resource.
	delete(seen, probePath+"?dc=")
	if len(seen) != 61 {
		t.Errorf("%d paths read, want 61: %v", len(seen), seen)
	}
}

// TestWatcherFirstReadDoesNotWaitForAStuckAgent: first reads stuck at an
// agent that does not answer hold their turns, and the other reads start
// anyway after FirstReadWait.
func TestWatcherFirstReadDoesNotWaitForAStuckAgent(t *testing.T) {
	// Every service is stuck: whichever reads take the two turns first,
	// at least two stuck ones hold them before all the KV prefixes are read.
	var stuck []string
	for _, l := range labelsN(6) {
		stuck = append(stuck, "/v1/health/service/"+l)
	}
	h := newHoldingConsul(t, 0, stuck...)
	cfg := withClusters(testConfig(h.srv.URL, closedAddr(t)), nil, labelsN(6)...)
	opts := fastOptions
	opts.FirstReads, opts.FirstReadWait = 2, 200*time.Millisecond
	startWatcherWith(t, cfg, opts)
	waitFor(t, "the first read of every path", func() bool {
		_, seen := h.stats()
		return len(seen) >= 18
	})
}
