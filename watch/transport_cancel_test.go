package watch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// hangServer is a server that reads one request per connection, reports it on
// got, never answers, and reports on closed when the client closes the
// connection.
func hangServer(t *testing.T) (s *rawServer, got, closed chan int) {
	got, closed = make(chan int, 16), make(chan int, 16)
	s = newRawServer(t, func(n int, c net.Conn) {
		_ = serveHTTP(c, func(i int, req *http.Request) bool {
			got <- n
			return false
		})
		_, _ = io.Copy(io.Discard, c)
		closed <- n
	})
	return s, got, closed
}

func TestPollTransportCancel(t *testing.T) {
	s, got, closed := hangServer(t)
	client, tr := newPollClient(t, nil)

	for i := 0; i < 2; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		ch := async(func() error {
			_, err := getBody(ctx, client, s.url("/v1/kv/k?index=5"))
			return err
		})
		n := recv(t, got, "the request reaching the server")
		if n != i {
			t.Fatalf("request %d came on connection %d: a canceled connection was reused", i, n)
		}
		start := time.Now()
		cancel()
		err := waitErr(t, ch, "canceled request")
		if d := time.Since(start); d > time.Second {
			t.Errorf("canceled request returned after %v", d)
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
		if c := recv(t, closed, "the canceled connection"); c != i {
			t.Errorf("connection %d closed, want %d", c, i)
		}
		if n := idleConns(tr); n != 0 {
			t.Errorf("%d idle connections after cancel, want 0", n)
		}
	}
	if n := s.accepted.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

func TestPollTransportDeadline(t *testing.T) {
	s, got, closed := hangServer(t)
	client, tr := newPollClient(t, nil)

	const timeout, rounds = 50 * time.Millisecond, 4
	for i := 0; i < rounds; i++ {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		_, err := getBody(ctx, client, s.url("/hang"))
		d := time.Since(start)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %v, want context.DeadlineExceeded", err)
		}
		if d < timeout || d > time.Second {
			t.Errorf("returned after %v with a deadline of %v", d, timeout)
		}
		if n := recv(t, got, "request"); n != i {
			t.Fatalf("request %d came on connection %d: a timed-out connection was reused", i, n)
		}
		recv(t, closed, "the timed-out connection")
		if n := idleConns(tr); n != 0 {
			t.Errorf("%d idle connections after a deadline, want 0", n)
		}
	}
	if n := s.accepted.Load(); n != rounds {
		t.Errorf("%d connections, want %d", n, rounds)
	}
}

// A deadline or a cancellation on a reused connection is the caller's, not
// a stale connection: the request is not sent again.
func TestPollTransportDeadlineOnReusedConnection(t *testing.T) {
	got := make(chan int, 16)
	s := newRawServer(t, func(n int, c net.Conn) {
		_ = serveHTTP(c, func(i int, req *http.Request) bool {
			got <- n
			if req.URL.Path == "/ok" {
				writeOK(c, "ok")
			}
			return true
		})
	})
	client, _ := newPollClient(t, nil)
	for i := 0; i < 5; i++ {
		if _, err := getBody(context.Background(), client, s.url("/ok")); err != nil {
			t.Fatal(err)
		}
		recv(t, got, "/ok")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err := getBody(ctx, client, s.url("/hang"))
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("round %d: error %v, want context.DeadlineExceeded", i, err)
		}
		if n := recv(t, got, "/hang"); n != i {
			t.Fatalf("round %d: /hang on connection %d, want %d", i, n, i)
		}
	}
	if n := s.accepted.Load(); n != 5 {
		t.Errorf("%d connections, want 5: one per round, no retry", n)
	}
	select {
	case n := <-got:
		t.Errorf("a request was sent again, on connection %d", n)
	default:
	}
}

// A cancellation while the body is arriving interrupts the read, and the
// connection is dropped.
func TestPollTransportCancelDuringBody(t *testing.T) {
	closed := make(chan struct{})
	s := newRawServer(t, func(n int, c net.Conn) {
		_ = serveHTTP(c, func(i int, req *http.Request) bool {
			fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
			return false
		})
		_, _ = io.Copy(io.Discard, c)
		close(closed)
	})
	client, tr := newPollClient(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url("/"), nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	ch := async(func() error {
		_, err := resp.Body.Read(buf)
		return err
	})
	select {
	case err := <-ch:
		t.Fatalf("read returned before the cancellation: %v", err)
	case <-time.After(20 * time.Millisecond): // only to let the read block
	}
	cancel()
	if err := waitErr(t, ch, "read of a canceled body"); err == nil {
		t.Error("read of a canceled body succeeded")
	}
	_ = waitErr(t, async(resp.Body.Close), "close of a canceled body")
	if n := idleConns(tr); n != 0 {
		t.Errorf("%d idle connections, want 0", n)
	}
	waitClosed(t, closed, "the canceled connection")
}

func TestPollTransportAlreadyCanceled(t *testing.T) {
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	client, _ := newPollClient(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Once with no idle connection (the dial fails), once with one.
	for i := 0; i < 2; i++ {
		_, err := getBody(ctx, client, srv.URL)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("attempt %d: error %v, want context.Canceled", i, err)
		}
		if _, err := getBody(context.Background(), client, srv.URL); err != nil {
			t.Fatal(err)
		}
	}
}

// A cancellation after the body was read but before it was closed may have
// moved the connection's deadline into the past: the connection is not
// kept.
func TestPollTransportCancelBeforeClose(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	client, tr := newPollClient(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "ok" {
		t.Fatalf("body %q, %v", b, err)
	}
	cancel()
	resp.Body.Close()
	if n := idleConns(tr); n != 0 {
		t.Errorf("%d idle connections, want 0", n)
	}
	if _, err := getBody(context.Background(), client, srv.URL); err != nil {
		t.Fatal(err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// A request whose context has no deadline is bounded by the transport's
// timeout: a hung agent fails the query, which then tries the next path.
func TestPollTransportTimeoutWithoutDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c) }() // reads, never answers
		}
	}()
	tr := newPollTransport(nil)
	tr.timeout = 50 * time.Millisecond
	client := &http.Client{Transport: tr}
	start := time.Now()
	_, err = client.Get("http://" + ln.Addr().String() + "/v1/kv/x")
	if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "no answer within 50ms") {
		t.Fatalf("err = %v, want a timeout after 50ms", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > time.Second {
		t.Errorf("failed after %s, want 50ms", d)
	}
	if n := idleConns(tr); n != 0 {
		t.Errorf("%d idle connections after a timeout, want 0", n)
	}
}
