package watch

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// checkedClient returns a client on a pollTransport checking its agents
// every interval, each check answered within timeout.
func checkedClient(t *testing.T, interval, timeout time.Duration) (*http.Client, *pollTransport) {
	client, tr := newPollClient(t, nil)
	tr.probeInterval, tr.probeTimeout = interval, timeout
	return client, tr
}

// agentCount returns how many agents tr keeps state for.
func agentCount(tr *pollTransport) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.agents)
}

// An agent that stops answering (its liveness checks go unanswered) fails
// the request waiting on it at once, and the next requests without sending
// them; once it answers its checks again, requests go through. A request
// that waits long on an agent that answers its checks is left alone.
func TestPollTransportLivenessCheck(t *testing.T) {
	var stopped atomic.Bool
	var probes, blocks atomic.Int32
	s := newRawServer(t, func(n int, c net.Conn) {
		_ = serveHTTP(c, func(i int, req *http.Request) bool {
			switch req.URL.Path {
			case probePath:
				probes.Add(1)
				if !stopped.Load() {
					writeOK(c, `"127.0.0.1:8300"`)
				}
			case "/block":
				blocks.Add(1) // a blocking query: never answered
			default:
				writeOK(c, "ok")
			}
			return true
		})
	})
	client, tr := checkedClient(t, 20*time.Millisecond, 100*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	ch := async(func() error {
		_, err := getBody(ctx, client, s.url("/block"))
		return err
	})
	waitFor(t, "liveness checks while the request waits", func() bool { return probes.Load() >= 5 })
	select {
	case err := <-ch:
		t.Fatalf("a request to an agent that answers its checks returned: %v", err)
	default:
	}

	stopped.Store(true)
	start := time.Now()
	err := waitErr(t, ch, "the request to an agent that stopped answering")
	if !errors.Is(err, errAgentUnresponsive) || !strings.Contains(err.Error(), s.url("")) {
		t.Fatalf("error %v, want errAgentUnresponsive naming the agent", err)
	}
	t.Logf("failed %v after the agent stopped: %v", time.Since(start), err)

	sent := blocks.Load()
	if _, err := getBody(ctx, client, s.url("/block")); !errors.Is(err, errAgentUnresponsive) {
		t.Errorf("request to a down agent: %v, want errAgentUnresponsive at once", err)
	}
	if n := blocks.Load(); n != sent {
		t.Errorf("a request to a down agent was sent")
	}

	stopped.Store(false)
	waitFor(t, "requests going through once the agent answers again", func() bool {
		body, err := getBody(ctx, client, s.url("/ok"))
		return err == nil && body == "ok"
	})
	waitFor(t, "the checks stopping with no request out", func() bool { return agentCount(tr) == 0 })
}

// An agent that accepts connections and never answers anything (a stopped
// process, whose kernel still accepts): the first request to it fails once
// its check times out, not after the request's own timeout.
func TestPollTransportBlackholedAgent(t *testing.T) {
	s := newRawServer(t, func(n int, c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	client, tr := checkedClient(t, 20*time.Millisecond, 100*time.Millisecond)
	tr.timeout = time.Minute
	start := time.Now()
	_, err := getBody(context.Background(), client, s.url("/v1/health/service/orders?index=7&wait=60s"))
	if !errors.Is(err, errAgentUnresponsive) {
		t.Fatalf("error %v, want errAgentUnresponsive", err)
	}
	if d := time.Since(start); d > prompt {
		t.Errorf("failed after %v, want within %v", d, prompt)
	}
}

// A TLS handshake with an agent that accepts and never answers is bounded
// by the dial timeout when the request has no deadline.
func TestPollTransportTLSHandshakeTimeout(t *testing.T) {
	s := newRawServer(t, func(n int, c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	client, tr := newPollClient(t, nil)
	tr.dialer.Timeout = 100 * time.Millisecond
	url := "https://" + s.ln.Addr().String() + "/"
	ch := async(func() error {
		_, err := getBody(context.Background(), client, url)
		return err
	})
	if err := waitErr(t, ch, "a TLS handshake that is never answered"); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("error %v, want a timeout", err)
	}
}
