//go:build linux

package watch

import (
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// goResult is what a parked request's done got.
type goResult struct {
	body string
	err  error
}

// goRequests sends n requests to url with tr.Go and returns their
// exchanges (by the sent hook) and the channel their outcomes arrive on.
func goRequests(t *testing.T, tr *pollTransport, url string, n int) ([]*exchange, <-chan goResult) {
	t.Helper()
	results := make(chan goResult, n)
	var mu sync.Mutex
	var xs []*exchange
	for range n {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		tr.Go(req, func(x *exchange) {
			mu.Lock()
			xs = append(xs, x)
			mu.Unlock()
		}, func(resp *http.Response, err error) {
			if err != nil {
				results <- goResult{err: err}
				return
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- goResult{body: string(body), err: err}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	return xs, results
}

// A parked blocking query costs no goroutine: n of them wait on the one
// epoll instance. Each wakes when its answer arrives, and reads it; each
// aborted one wakes at once with errAborted. The connections of the
// answered ones go back to the idle list.
func TestParkedRequestsCostNoGoroutine(t *testing.T) {
	const n = 200
	tr := newPollTransport(nil)
	url, ready, answer := parkServer(t, n)
	parked0 := parkedCount()
	before := runtime.NumGoroutine()
	xs, results := goRequests(t, tr, url, n)
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatalf("%d requests not all sent", n)
	}
	if len(xs) != n {
		t.Fatalf("%d exchanges sent, want %d", len(xs), n)
	}
	grown := runtime.NumGoroutine() - before
	t.Logf("%d parked requests: %d more goroutines, %d parked", n, grown, parkedCount()-parked0)
	if grown > 10 {
		t.Errorf("%d parked requests grew the process by %d goroutines, want at most 10", n, grown)
	}
	if got := parkedCount() - parked0; got != n {
		t.Errorf("%d requests parked, want %d", got, n)
	}

	// The server answers the first half, in order; the rest are aborted.
	for i := range n / 2 {
		answer <- i
	}
	for _, x := range xs[n/2:] {
		x.abort()
	}
	answered, aborted := 0, 0
	timeout := time.After(prompt)
	for range n {
		select {
		case r := <-results:
			switch {
			case r.err == nil && r.body == "ok":
				answered++
			case errors.Is(r.err, errAborted):
				aborted++
			default:
				t.Errorf("unexpected outcome: body %q, error %v", r.body, r.err)
			}
		case <-timeout:
			t.Fatalf("%d answered and %d aborted within %v, want %d each", answered, aborted, prompt, n/2)
		}
	}
	// Which exchange the server answers first depends on the order of
	// the accepts: any n/2 of them.
	if answered != n/2 || aborted != n/2 {
		t.Errorf("%d answered, %d aborted; want %d each", answered, aborted, n/2)
	}
	if got := parkedCount() - parked0; got != 0 {
		t.Errorf("%d requests still parked, want 0", got)
	}
	if k := idleConns(tr); k != n/2 {
		t.Errorf("%d idle connections, want the %d answered ones", k, n/2)
	}
}

// A parked request without an answer wakes once its timeout passed (within
// deadlineTick) and fails as a blocked read would: "no answer within".
func TestParkedRequestTimesOut(t *testing.T) {
	tr := newPollTransport(nil)
	tr.timeout = 200 * time.Millisecond
	url, ready, _ := parkServer(t, 1)
	start := time.Now()
	_, results := goRequests(t, tr, url, 1)
	<-ready
	select {
	case r := <-results:
		if r.err == nil || !strings.Contains(r.err.Error(), "no answer within 200ms") {
			t.Errorf("error %v, want no answer within 200ms", r.err)
		}
		if took := time.Since(start); took < tr.timeout {
			t.Errorf("failed after %v, before the timeout", took)
		}
	case <-time.After(prompt):
		t.Fatalf("parked request still waiting %v after its timeout", prompt)
	}
}
