// Package consultest is a fake Consul HTTP API of one datacenter, for
// tests of code that reads Consul through blocking queries: health/service
// answers from Entries, KV prefixes from KV, and a query whose index is
// the current one blocks until the next Set or its wait time.
package consultest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// Fake is the Consul HTTP API of one datacenter. Its exported fields are
// what it answers; change them only inside Set, which holds the lock they
// are read under.
type Fake struct {
	// Index is the X-Consul-Index of every answer. Set does not move it:
	// a test that wants its blocking queries answered as a change moves it
	// itself, in any direction (backwards and 0 included, to test how a
	// client copes).
	Index uint64
	// Entries answers /v1/health/service/<name> by service name; a name
	// without entries answers an empty list.
	Entries map[string][]*api.ServiceEntry
	// KV answers /v1/kv/<key> with the pair of that key, and
	// /v1/kv/<prefix>?recurse with every pair under the prefix; without
	// one, 404, as Consul does.
	KV api.KVPairs
	// Status, when non-zero, fails every request with this code, as an
	// ACL denial (403) or a server error (500) does.
	Status int

	dc      string
	srv     *httptest.Server
	mu      sync.Mutex
	held    map[string]chan struct{} // by path, guarded by mu
	seen    []Request                // guarded by mu
	changed chan struct{}            // closed and replaced by Set, guarded by mu
}

// Request is what the fake recorded of one query, from its URL.
type Request struct {
	// Path is the URL path, such as /v1/health/service/orders.
	Path string
	// DC is the dc parameter, "" when the query named none.
	DC string
	// Index is the index parameter as sent: "" without one.
	Index string
	// Wait is the wait parameter as sent: "" without one.
	Wait string
}

// New starts a fake serving datacenter dc at Index 10, with no entries and
// no keys, and closes it when the test ends. A query for another dc
// answers 500 "No path to datacenter", as an agent outside a federation
// does.
func New(tb testing.TB, dc string) *Fake {
	f := &Fake{Index: 10, Entries: map[string][]*api.ServiceEntry{}, dc: dc,
		held: map[string]chan struct{}{}, changed: make(chan struct{})}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	tb.Cleanup(f.srv.Close)
	return f
}

// URL is the fake's base address, http://127.0.0.1:port.
func (f *Fake) URL() string { return f.srv.URL }

// Server is the underlying server, for tests that take the agent away
// (close its listener and connections) while queries are in flight.
func (f *Fake) Server() *httptest.Server { return f.srv }

// Set runs fn with the fake locked, then wakes every blocked query, which
// answers with the state fn left; a query still at the current Index
// blocks again only on its next request.
func (f *Fake) Set(fn func(f *Fake)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
	close(f.changed)
	f.changed = make(chan struct{})
}

// Hold makes every query of path, from now on, wait until release is
// called (or the client gives up) before it is answered. Calling release
// more than once is harmless.
func (f *Fake) Hold(path string) (release func()) {
	hold := make(chan struct{})
	f.mu.Lock()
	f.held[path] = hold
	f.mu.Unlock()
	return sync.OnceFunc(func() { close(hold) })
}

// Requests returns every query received so far, in order of arrival
// (recorded before it was held, failed or blocked).
func (f *Fake) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Request(nil), f.seen...)
}

// Parked reports whether path was queried at index: the client finished
// the read that brought index and waits for the next change.
func (f *Fake) Parked(path string, index uint64) bool {
	want := strconv.FormatUint(index, 10)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.seen {
		if r.Path == path && r.Index == want {
			return true
		}
	}
	return false
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f.mu.Lock()
	f.seen = append(f.seen, Request{Path: r.URL.Path, DC: q.Get("dc"), Index: q.Get("index"), Wait: q.Get("wait")})
	if hold := f.held[r.URL.Path]; hold != nil {
		f.mu.Unlock()
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
		f.mu.Lock()
	}
	if f.Status != 0 {
		code := f.Status
		f.mu.Unlock()
		http.Error(w, "Permission denied", code)
		return
	}
	if dc := q.Get("dc"); dc != "" && dc != f.dc {
		f.mu.Unlock()
		http.Error(w, "No path to datacenter", http.StatusInternalServerError)
		return
	}
	// Block while the client's index is current, as Consul does.
	if idx, _ := strconv.ParseUint(q.Get("index"), 10, 64); idx != 0 && idx == f.Index {
		ch := f.changed
		f.mu.Unlock()
		wait, _ := time.ParseDuration(q.Get("wait"))
		select {
		case <-ch:
		case <-time.After(wait):
		case <-r.Context().Done():
			return
		}
		f.mu.Lock()
	}
	defer f.mu.Unlock()
	w.Header().Set("X-Consul-Index", strconv.FormatUint(f.Index, 10))
	w.Header().Set("X-Consul-KnownLeader", "true")
	switch {
	case strings.HasPrefix(r.URL.Path, "/v1/health/service/"):
		json.NewEncoder(w).Encode(f.Entries[strings.TrimPrefix(r.URL.Path, "/v1/health/service/")])
	case strings.HasPrefix(r.URL.Path, "/v1/kv/"):
		// A key, or with ?recurse every key under a prefix; none: 404.
		key := strings.TrimPrefix(r.URL.Path, "/v1/kv/")
		_, recurse := q["recurse"]
		var pairs api.KVPairs
		for _, p := range f.KV {
			if p.Key == key || (recurse && strings.HasPrefix(p.Key, key)) {
				pairs = append(pairs, p)
			}
		}
		if len(pairs) == 0 {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode(pairs)
	default:
		http.NotFound(w, r)
	}
}
