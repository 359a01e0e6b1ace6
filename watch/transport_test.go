package watch

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// ptPrompt bounds every wait for something that should happen at once: a
// canceled request returning, a closed connection being seen by the server.
// It is an upper bound, never a sleep.
const ptPrompt = 2 * time.Second

// ptServer is a raw TCP server, for tests that need a server to misbehave.
// handle runs on its own goroutine for each accepted connection, numbered
// from 0 in accept order. When the test ends, the listener and every
// connection are closed and the handlers waited for: a handler must return
// once its connection is closed.
type ptServer struct {
	ln       net.Listener
	accepted atomic.Int32

	mu     sync.Mutex
	conns  []net.Conn
	closed bool
	wg     sync.WaitGroup
}

func newPTServer(t *testing.T, handle func(n int, c net.Conn)) *ptServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &ptServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				c.Close()
				return
			}
			s.conns = append(s.conns, c)
			s.wg.Add(1)
			s.mu.Unlock()
			s.accepted.Add(1)
			go func() {
				defer s.wg.Done()
				handle(n, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		s.closed = true
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *ptServer) url(path string) string { return "http://" + s.ln.Addr().String() + path }

// ptServeHTTP reads requests from c (bodies read to their end) and passes
// each to answer, numbered from 0, until answer returns false or reading
// fails. It returns the error that ended reading, nil when answer stopped.
func ptServeHTTP(c net.Conn, answer func(i int, req *http.Request) bool) error {
	br := bufio.NewReader(c)
	for i := 0; ; i++ {
		req, err := http.ReadRequest(br)
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return err
		}
		if !answer(i, req) {
			return nil
		}
	}
}

// ptWriteOK writes a keep-alive 200 answer with body.
func ptWriteOK(c net.Conn, body string) {
	fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

// ptWaitClosed waits for ch to deliver or be closed: typically a server
// handler reporting that the client closed its connection.
func ptWaitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(ptPrompt):
		t.Fatalf("%s: not seen by the server within %v", what, ptPrompt)
	}
}

// ptCountingServer is an httptest server counting the connections it
// accepted.
func ptCountingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

// ptClient returns a client on a new pollTransport, whose idle connections
// are closed when the test ends.
func ptClient(t *testing.T, tlsConfig *tls.Config) (*http.Client, *pollTransport) {
	tr := newPollTransport(tlsConfig)
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}, tr
}

// ptGet GETs url with ctx, reads the body to its end and closes it.
func ptGet(ctx context.Context, c *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(b), nil
}

// ptIdle returns how many idle connections tr keeps in all.
func ptIdle(tr *pollTransport) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, list := range tr.idle {
		n += len(list)
	}
	return n
}

// ptAsync runs f on a goroutine and returns a channel delivering its error.
func ptAsync(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

// ptWait waits for ch, failing the test after ptPrompt.
func ptWait(t *testing.T, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(ptPrompt):
		t.Fatalf("%s: still blocked after %v", what, ptPrompt)
		return nil
	}
}

func TestPollTransportRoundTrip(t *testing.T) {
	srv, _ := ptCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Echo-Method", r.Method)
		w.Header().Set("X-Echo-Header", r.Header.Get("X-Req"))
		w.Header().Set("X-Echo-Query", r.URL.RawQuery)
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		w.WriteHeader(http.StatusTeapot)
		fmt.Fprintf(w, "%s %s body=%q", r.Method, r.URL.Path, body)
	})
	client, _ := ptClient(t, nil)

	for _, tc := range []struct {
		method, body, want string
	}{
		{http.MethodGet, "", `GET /p/a body=""`},
		{http.MethodPost, "hello", `POST /p/a body="hello"`},
		{http.MethodPut, strings.Repeat("x", 100<<10), `PUT /p/a body="` + strings.Repeat("x", 100<<10) + `"`},
	} {
		var rb io.Reader
		if tc.body != "" {
			rb = strings.NewReader(tc.body)
		}
		req, err := http.NewRequest(tc.method, srv.URL+"/p/a?x=1&y=2", rb)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Req", "v1")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.method, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s: reading body: %v", tc.method, err)
		}
		if resp.StatusCode != http.StatusTeapot {
			t.Errorf("%s: status %d, want %d", tc.method, resp.StatusCode, http.StatusTeapot)
		}
		if resp.Proto != "HTTP/1.1" {
			t.Errorf("%s: proto %q", tc.method, resp.Proto)
		}
		for k, want := range map[string]string{
			"X-Echo-Method": tc.method,
			"X-Echo-Header": "v1",
			"X-Echo-Query":  "x=1&y=2",
		} {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("%s: header %s = %q, want %q", tc.method, k, got, want)
			}
		}
		if got := resp.Header.Values("X-Multi"); len(got) != 2 || got[0] != "a" || got[1] != "b" {
			t.Errorf("%s: X-Multi = %q, want [a b]", tc.method, got)
		}
		if string(body) != tc.want {
			t.Errorf("%s: body %.60q, want %.60q", tc.method, body, tc.want)
		}
		if resp.Request != req {
			t.Errorf("%s: resp.Request is not the request", tc.method)
		}
	}
}

func TestPollTransportConsulKV(t *testing.T) {
	var seen []string
	var mu sync.Mutex
	srv, conns := ptCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path+" index="+r.URL.Query().Get("index"))
		mu.Unlock()
		if r.URL.Path != "/v1/kv/k" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Consul-Index", "7")
		w.Header().Set("X-Consul-Knownleader", "true")
		w.Header().Set("X-Consul-Lastcontact", "0")
		fmt.Fprint(w, `[{"Key":"k","Value":"dg==","ModifyIndex":7}]`)
	})
	tr := newPollTransport(nil)
	t.Cleanup(tr.CloseIdleConnections)
	c, err := newClient("http://"+srv.Listener.Addr().String(), "", tr)
	if err != nil {
		t.Fatal(err)
	}

	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		pair, meta, err := c.KV().Get("k", (&api.QueryOptions{WaitIndex: uint64(i)}).WithContext(ctx))
		cancel()
		if err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
		if pair == nil || pair.Key != "k" || string(pair.Value) != "v" {
			t.Fatalf("get %d: pair %+v, want k=v", i, pair)
		}
		if meta.LastIndex != 7 {
			t.Errorf("get %d: LastIndex %d, want 7", i, meta.LastIndex)
		}
		if !meta.KnownLeader {
			t.Errorf("get %d: KnownLeader false", i)
		}
	}
	// A missing key is a nil pair, not an error: the 404 went through.
	pair, _, err := c.KV().Get("missing", nil)
	if err != nil || pair != nil {
		t.Errorf("missing key: %+v, %v; want nil, nil", pair, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := "GET /v1/kv/k index=2"; len(seen) != 4 || seen[2] != want {
		t.Errorf("server saw %q, want 4 requests, the third %q", seen, want)
	}
	// consul/api reads its answers to the end: one connection for all.
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 4 consul/api requests, want 1", n)
	}
}

func TestPollTransportReusesConnection(t *testing.T) {
	srv, conns := ptCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/length":
			fmt.Fprint(w, "fixed")
		case "/chunked":
			// Flushing before the end makes the answer chunked.
			fmt.Fprint(w, "chu")
			w.(http.Flusher).Flush()
			fmt.Fprint(w, "nked")
		case "/empty":
			w.WriteHeader(http.StatusOK)
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
		}
	})
	client, tr := ptClient(t, nil)

	paths := []string{"/length", "/chunked", "/empty", "/nocontent"}
	const rounds = 5
	for i := 0; i < rounds; i++ {
		for _, p := range paths {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+p, nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			if err := resp.Body.Close(); err != nil {
				t.Fatalf("%s: close: %v", p, err)
			}
			want := map[string]string{"/length": "fixed", "/chunked": "chunked"}[p]
			if string(b) != want {
				t.Fatalf("%s: body %q, want %q", p, b, want)
			}
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d requests used %d connections, want 1", rounds*len(paths), n)
	}
	if n := ptIdle(tr); n != 1 {
		t.Errorf("%d idle connections, want 1", n)
	}
}

// Requests in parallel each take a connection of their own and give it
// back: the pool never holds more than were in use at once.
func TestPollTransportConcurrentReuse(t *testing.T) {
	srv, conns := ptCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.URL.Path)
	})
	client, tr := ptClient(t, nil)
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				p := fmt.Sprintf("/%d/%d", w, i)
				body, err := ptGet(context.Background(), client, srv.URL+p)
				if err == nil && body != p {
					err = fmt.Errorf("%s: body %q", p, body)
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := conns.Load(); n < 1 || n > workers {
		t.Errorf("%d connections for %d workers", n, workers)
	}
	if n, c := ptIdle(tr), int(conns.Load()); n != c {
		t.Errorf("%d idle connections, want all %d back", n, c)
	}
}

func TestPollTransportEarlyCloseNotReused(t *testing.T) {
	big := strings.Repeat("z", 256<<10)
	srv, conns := ptCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, big)
	})
	client, tr := ptClient(t, nil)

	resp, err := client.Get(srv.URL + "/big")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	if err := resp.Body.Close(); err != nil {
		t.Errorf("close before EOF: %v", err)
	}
	if n := ptIdle(tr); n != 0 {
		t.Errorf("%d idle connections after a body closed early, want 0", n)
	}
	if _, err := resp.Body.Read(buf); err == nil {
		t.Error("read after close succeeded")
	}
	if err := resp.Body.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if body, err := ptGet(context.Background(), client, srv.URL+"/big"); err != nil || body != big {
		t.Fatalf("next request: %d bytes, %v", len(body), err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2: the early-closed one must not be reused", n)
	}
}

// Closing a body early must not wait for the rest of it: a blocking query's
// answer may be slow to arrive, and the connection is dropped anyway.
func TestPollTransportEarlyCloseDoesNotBlock(t *testing.T) {
	closed := make(chan struct{})
	s := newPTServer(t, func(n int, c net.Conn) {
		_ = ptServeHTTP(c, func(i int, req *http.Request) bool {
			// 10 of 100 bytes, then nothing.
			fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
			return false
		})
		_, _ = io.Copy(io.Discard, c)
		close(closed)
	})
	client, tr := ptClient(t, nil)
	resp, err := client.Get(s.url("/stall"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	_ = ptWait(t, ptAsync(resp.Body.Close), "closing a body whose rest never arrives")
	if n := ptIdle(tr); n != 0 {
		t.Errorf("%d idle connections, want 0", n)
	}
	ptWaitClosed(t, closed, "the early-closed connection")
}

// Bytes after the end of an answer are not the next answer: the connection
// is dropped rather than kept out of step.
func TestPollTransportExtraBytesNotReused(t *testing.T) {
	s := newPTServer(t, func(n int, c net.Conn) {
		_ = ptServeHTTP(c, func(i int, req *http.Request) bool {
			// One write: the extra bytes arrive with the answer.
			_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"))
			return true
		})
	})
	client, tr := ptClient(t, nil)
	for i := 0; i < 2; i++ {
		if body, err := ptGet(context.Background(), client, s.url("/")); err != nil || body != "ok" {
			t.Fatalf("request %d: %q, %v", i, body, err)
		}
		if n := ptIdle(tr); n != 0 {
			t.Errorf("request %d: %d idle connections, want 0", i, n)
		}
	}
	if n := s.accepted.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// The client decides from the response alone: the servers below keep their
// connections open, and the client still must not use them again.
func TestPollTransportConnectionCloseNotReused(t *testing.T) {
	for _, tc := range []struct {
		name, answer string
		reqClose     bool
	}{
		{"Connection: close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", false},
		{"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false},
		{"request Close", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			closed := make(chan struct{}, 3)
			s := newPTServer(t, func(n int, c net.Conn) {
				_ = ptServeHTTP(c, func(i int, req *http.Request) bool {
					fmt.Fprint(c, tc.answer)
					return true
				})
				closed <- struct{}{}
			})
			client, tr := ptClient(t, nil)
			for i := 0; i < 3; i++ {
				req, _ := http.NewRequest(http.MethodGet, s.url("/"), nil)
				req.Close = tc.reqClose
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != "ok" {
					t.Fatalf("body %q", b)
				}
				if n := ptIdle(tr); n != 0 {
					t.Fatalf("request %d: %d idle connections, want 0", i, n)
				}
				ptWaitClosed(t, closed, "a connection not to be reused")
			}
			if n := s.accepted.Load(); n != 3 {
				t.Errorf("%d connections for 3 requests, want 3", n)
			}
		})
	}
}

// ptHang is a server that reads one request per connection, reports it on
// got, never answers, and reports on closed when the client closes the
// connection.
func ptHang(t *testing.T) (s *ptServer, got, closed chan int) {
	got, closed = make(chan int, 16), make(chan int, 16)
	s = newPTServer(t, func(n int, c net.Conn) {
		_ = ptServeHTTP(c, func(i int, req *http.Request) bool {
			got <- n
			return false
		})
		_, _ = io.Copy(io.Discard, c)
		closed <- n
	})
	return s, got, closed
}

func ptRecv(t *testing.T, ch <-chan int, what string) int {
	t.Helper()
	select {
	case n := <-ch:
		return n
	case <-time.After(ptPrompt):
		t.Fatalf("%s: nothing after %v", what, ptPrompt)
		return -1
	}
}

func TestPollTransportCancel(t *testing.T) {
	s, got, closed := ptHang(t)
	client, tr := ptClient(t, nil)

	for i := 0; i < 2; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		ch := ptAsync(func() error {
			_, err := ptGet(ctx, client, s.url("/v1/kv/k?index=5"))
			return err
		})
		n := ptRecv(t, got, "the request reaching the server")
		if n != i {
			t.Fatalf("request %d came on connection %d: a canceled connection was reused", i, n)
		}
		start := time.Now()
		cancel()
		err := ptWait(t, ch, "canceled request")
		if d := time.Since(start); d > time.Second {
			t.Errorf("canceled request returned after %v", d)
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
		if c := ptRecv(t, closed, "the canceled connection"); c != i {
			t.Errorf("connection %d closed, want %d", c, i)
		}
		if n := ptIdle(tr); n != 0 {
			t.Errorf("%d idle connections after cancel, want 0", n)
		}
	}
	if n := s.accepted.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

func TestPollTransportDeadline(t *testing.T) {
	s, got, closed := ptHang(t)
	client, tr := ptClient(t, nil)

	const timeout, rounds = 50 * time.Millisecond, 4
	for i := 0; i < rounds; i++ {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		_, err := ptGet(ctx, client, s.url("/hang"))
		d := time.Since(start)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %v, want context.DeadlineExceeded", err)
		}
		if d < timeout || d > time.Second {
			t.Errorf("returned after %v with a deadline of %v", d, timeout)
		}
		if n := ptRecv(t, got, "request"); n != i {
			t.Fatalf("request %d came on connection %d: a timed-out connection was reused", i, n)
		}
		ptRecv(t, closed, "the timed-out connection")
		if n := ptIdle(tr); n != 0 {
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
	s := newPTServer(t, func(n int, c net.Conn) {
		_ = ptServeHTTP(c, func(i int, req *http.Request) bool {
			got <- n
			if req.URL.Path == "/ok" {
				ptWriteOK(c, "ok")
			}
			return true
		})
	})
	client, _ := ptClient(t, nil)
	for i := 0; i < 5; i++ {
		if _, err := ptGet(context.Background(), client, s.url("/ok")); err != nil {
			t.Fatal(err)
		}
		ptRecv(t, got, "/ok")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err := ptGet(ctx, client, s.url("/hang"))
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("round %d: error %v, want context.DeadlineExceeded", i, err)
		}
		if n := ptRecv(t, got, "/hang"); n != i {
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
	s := newPTServer(t, func(n int, c net.Conn) {
		_ = ptServeHTTP(c, func(i int, req *http.Request) bool {
			fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
			return false
		})
		_, _ = io.Copy(io.Discard, c)
		close(closed)
	})
	client, tr := ptClient(t, nil)
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
	ch := ptAsync(func() error {
		_, err := resp.Body.Read(buf)
		return err
	})
	select {
	case err := <-ch:
		t.Fatalf("read returned before the cancellation: %v", err)
	case <-time.After(20 * time.Millisecond): // only to let the read block
	}
	cancel()
	if err := ptWait(t, ch, "read of a canceled body"); err == nil {
		t.Error("read of a canceled body succeeded")
	}
	_ = ptWait(t, ptAsync(resp.Body.Close), "close of a canceled body")
	if n := ptIdle(tr); n != 0 {
		t.Errorf("%d idle connections, want 0", n)
	}
	ptWaitClosed(t, closed, "the canceled connection")
}

func TestPollTransportAlreadyCanceled(t *testing.T) {
	srv, _ := ptCountingServer(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	client, _ := ptClient(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Once with no idle connection (the dial fails), once with one.
	for i := 0; i < 2; i++ {
		_, err := ptGet(ctx, client, srv.URL)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("attempt %d: error %v, want context.Canceled", i, err)
		}
		if _, err := ptGet(context.Background(), client, srv.URL); err != nil {
			t.Fatal(err)
		}
	}
}

// ptCounts counts the requests a ptServer saw on each connection.
type ptCounts struct {
	mu sync.Mutex
	n  map[int]int
}

func (c *ptCounts) add(conn int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[int]int{}
	}
	c.n[conn]++
}

func (c *ptCounts) get() map[int]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[int]int{}
	for k, v := range c.n {
		m[k] = v
	}
	return m
}

func ptSameCounts(got, want map[int]int) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// The agent closed an idle keep-alive connection: the next GET goes out on
// a new connection and succeeds.
func TestPollTransportRetryStaleConnection(t *testing.T) {
	var counts ptCounts
	idleClosed := make(chan struct{})
	s := newPTServer(t, func(n int, c net.Conn) {
		_ = ptServeHTTP(c, func(i int, req *http.Request) bool {
			counts.add(n)
			ptWriteOK(c, fmt.Sprintf("conn%d", n))
			return n != 0
		})
		if n == 0 { // answered once, then closed while idle
			c.Close()
			close(idleClosed)
		}
	})
	client, tr := ptClient(t, nil)
	if body, err := ptGet(context.Background(), client, s.url("/a")); err != nil || body != "conn0" {
		t.Fatalf("first request: %q, %v", body, err)
	}
	if n := ptIdle(tr); n != 1 {
		t.Fatalf("%d idle connections, want 1", n)
	}
	ptWaitClosed(t, idleClosed, "closing the idle connection")
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		req, _ := http.NewRequest(method, s.url("/b"), nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s on a stale connection: %v", method, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if method == http.MethodGet && string(b) != "conn1" {
			t.Errorf("GET: body %q, want conn1", b)
		}
	}
	if got, want := counts.get(), map[int]int{0: 1, 1: 2}; !ptSameCounts(got, want) {
		t.Errorf("requests per connection %v, want %v", got, want)
	}
	if n := s.accepted.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// The retry is made once: a new connection that fails too is an error.
func TestPollTransportRetryOnce(t *testing.T) {
	var counts ptCounts
	idleClosed := make(chan struct{})
	s := newPTServer(t, func(n int, c net.Conn) {
		_ = ptServeHTTP(c, func(i int, req *http.Request) bool {
			counts.add(n)
			if n == 0 {
				ptWriteOK(c, "ok")
			}
			return false // every connection closes after one request
		})
		c.Close()
		if n == 0 {
			close(idleClosed)
		}
	})
	client, _ := ptClient(t, nil)
	if _, err := ptGet(context.Background(), client, s.url("/")); err != nil {
		t.Fatal(err)
	}
	ptWaitClosed(t, idleClosed, "closing the idle connection")
	ch := ptAsync(func() error {
		_, err := ptGet(context.Background(), client, s.url("/"))
		return err
	})
	if err := ptWait(t, ch, "request on a failing server"); err == nil {
		t.Fatal("request succeeded on a server that does not answer")
	}
	if got, want := counts.get(), map[int]int{0: 1, 1: 1}; !ptSameCounts(got, want) {
		t.Errorf("requests per connection %v, want %v", got, want)
	}
	if n := s.accepted.Load(); n != 2 {
		t.Errorf("%d connections, want 2: the stale one and one retry", n)
	}
}

// ptParallel has n GETs to url in flight at once, so that they use n
// connections, and waits for their answers. The server must hold each
// first request until release is closed after n arrived on arrived.
func ptParallel(t *testing.T, client *http.Client, url string, n int, arrived <-chan int, release chan struct{}) {
	t.Helper()
	released := false
	defer func() {
		if !released { // the test failed: let the server go on
			close(release)
		}
	}()
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := ptGet(context.Background(), client, url)
			errs <- err
		}()
	}
	for i := 0; i < n; i++ {
		ptRecv(t, arrived, "parallel request")
	}
	close(release)
	released = true
	for i := 0; i < n; i++ {
		if err := ptWait(t, errs, "parallel request"); err != nil {
			t.Fatal(err)
		}
	}
}

// All idle connections went stale together (the agent restarted): the GET
// still succeeds, on a new connection after one stale one; the other stale
// ones stay idle for the requests that will find them so.
func TestPollTransportRetryManyStaleConnections(t *testing.T) {
	const n = 3
	var counts ptCounts
	arrived, closed := make(chan int, n), make(chan int, n)
	release := make(chan struct{})
	s := newPTServer(t, func(conn int, c net.Conn) {
		_ = ptServeHTTP(c, func(i int, req *http.Request) bool {
			counts.add(conn)
			if conn < n {
				arrived <- conn
				<-release
			}
			ptWriteOK(c, fmt.Sprintf("conn%d", conn))
			return conn >= n
		})
		if conn < n {
			c.Close()
			closed <- conn
		}
	})
	client, tr := ptClient(t, nil)
	ptParallel(t, client, s.url("/"), n, arrived, release)
	for i := 0; i < n; i++ {
		ptRecv(t, closed, "server closing an idle connection")
	}
	if got := ptIdle(tr); got != n {
		t.Fatalf("%d idle connections, want %d", got, n)
	}
	body, err := ptGet(context.Background(), client, s.url("/"))
	if err != nil {
		t.Fatalf("GET with only stale idle connections: %v", err)
	}
	if body != fmt.Sprintf("conn%d", n) {
		t.Errorf("answer %q from the wrong connection", body)
	}
	want := map[int]int{n: 1}
	for i := 0; i < n; i++ {
		want[i] = 1
	}
	if got := counts.get(); !ptSameCounts(got, want) {
		t.Errorf("requests per connection %v, want %v", got, want)
	}
	if got := s.accepted.Load(); got != n+1 {
		t.Errorf("%d connections, want %d", got, n+1)
	}
	if got := ptIdle(tr); got != n {
		t.Errorf("%d idle connections, want %d: the %d stale ones not tried and the new one", got, n, n-1)
	}
}

// Once any of the answer arrived, the request is not sent again: the
// server may have acted on it, and a broken answer is the server's.
func TestPollTransportNoRetryAfterPartialAnswer(t *testing.T) {
	for _, tc := range []struct{ name, answer string }{
		{"partial header", "HTTP/1.1 200 OK\r\nContent-Len"},
		{"one byte", "H"},
		{"garbage", "garbage\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var counts ptCounts
			s := newPTServer(t, func(n int, c net.Conn) {
				_ = ptServeHTTP(c, func(i int, req *http.Request) bool {
					counts.add(n)
					if i == 0 {
						ptWriteOK(c, "ok")
						return true
					}
					fmt.Fprint(c, tc.answer)
					return false
				})
				c.Close()
			})
			client, tr := ptClient(t, nil)
			if _, err := ptGet(context.Background(), client, s.url("/")); err != nil {
				t.Fatal(err)
			}
			body, err := ptGet(context.Background(), client, s.url("/"))
			if err == nil {
				t.Fatalf("second request succeeded (%q) after a broken answer", body)
			}
			if got, want := counts.get(), map[int]int{0: 2}; !ptSameCounts(got, want) {
				t.Errorf("requests per connection %v, want %v", got, want)
			}
			if n := s.accepted.Load(); n != 1 {
				t.Errorf("%d connections, want 1: no retry", n)
			}
			if n := ptIdle(tr); n != 0 {
				t.Errorf("%d idle connections, want 0", n)
			}
		})
	}
}

// A body cut short is an error for its reader, and its connection is not
// kept.
func TestPollTransportTruncatedBody(t *testing.T) {
	s := newPTServer(t, func(n int, c net.Conn) {
		_ = ptServeHTTP(c, func(i int, req *http.Request) bool {
			fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234")
			return false
		})
		c.Close()
	})
	client, tr := ptClient(t, nil)
	_, err := ptGet(context.Background(), client, s.url("/"))
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("error %v, want io.ErrUnexpectedEOF", err)
	}
	if n := ptIdle(tr); n != 0 {
		t.Errorf("%d idle connections, want 0", n)
	}
}

// Only GET and HEAD are sent again: a POST on a stale connection fails.
func TestPollTransportNoRetryPost(t *testing.T) {
	var counts ptCounts
	idleClosed := make(chan struct{})
	s := newPTServer(t, func(n int, c net.Conn) {
		_ = ptServeHTTP(c, func(i int, req *http.Request) bool {
			counts.add(n)
			ptWriteOK(c, "ok")
			return n != 0
		})
		if n == 0 {
			c.Close()
			close(idleClosed)
		}
	})
	client, _ := ptClient(t, nil)
	if _, err := ptGet(context.Background(), client, s.url("/")); err != nil {
		t.Fatal(err)
	}
	ptWaitClosed(t, idleClosed, "closing the idle connection")
	resp, err := client.Post(s.url("/"), "text/plain", strings.NewReader("x"))
	if err == nil {
		resp.Body.Close()
		t.Fatal("POST on a stale connection succeeded: it was sent again")
	}
	if n := s.accepted.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
	if got, want := counts.get(), map[int]int{0: 1}; !ptSameCounts(got, want) {
		t.Errorf("requests per connection %v, want %v", got, want)
	}
}

func TestPollTransportTLS(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			http.Error(w, "not TLS", http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "tls %s", r.URL.Path)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshakes
	srv.StartTLS()
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "https://127.0.0.1:") {
		t.Fatalf("server URL %s", srv.URL)
	}
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())

	t.Run("trusted", func(t *testing.T) {
		cfg := &tls.Config{RootCAs: pool}
		client, tr := ptClient(t, cfg)
		before := conns.Load()
		for i := 0; i < 3; i++ {
			body, err := ptGet(context.Background(), client, srv.URL+"/x")
			if err != nil {
				t.Fatal(err)
			}
			if body != "tls /x" {
				t.Fatalf("body %q", body)
			}
		}
		if n := conns.Load() - before; n != 1 {
			t.Errorf("%d TLS connections for 3 requests, want 1", n)
		}
		if n := ptIdle(tr); n != 1 {
			t.Errorf("%d idle connections, want 1", n)
		}
		if cfg.ServerName != "" {
			t.Errorf("the caller's tls.Config was changed: ServerName %q", cfg.ServerName)
		}
	})
	t.Run("server name from config", func(t *testing.T) {
		// The certificate names example.com: a configured name is the one
		// verified, not the URL's host.
		client, _ := ptClient(t, &tls.Config{RootCAs: pool, ServerName: "example.com"})
		if _, err := ptGet(context.Background(), client, srv.URL); err != nil {
			t.Fatal(err)
		}
		client, _ = ptClient(t, &tls.Config{RootCAs: pool, ServerName: "other.test"})
		_, err := ptGet(context.Background(), client, srv.URL)
		var herr x509.HostnameError
		if !errors.As(err, &herr) {
			t.Errorf("error %v, want an x509.HostnameError", err)
		}
	})
	for name, cfg := range map[string]*tls.Config{"empty config": {}, "nil config": nil} {
		t.Run(name, func(t *testing.T) {
			client, tr := ptClient(t, cfg)
			_, err := ptGet(context.Background(), client, srv.URL)
			var uerr x509.UnknownAuthorityError
			if !errors.As(err, &uerr) {
				t.Errorf("error %v, want an x509.UnknownAuthorityError", err)
			}
			var verr *tls.CertificateVerificationError
			if !errors.As(err, &verr) {
				t.Errorf("error %v, want a tls.CertificateVerificationError", err)
			}
			if n := ptIdle(tr); n != 0 {
				t.Errorf("%d idle connections, want 0", n)
			}
		})
	}
}

// ptParkServer accepts n connections and reads one request header from
// each, all on one goroutine, then exits that goroutine and leaves the
// connections open, never answering. ready is closed once all n requests
// were read: the server side then runs no goroutine at all.
func ptParkServer(t *testing.T, n int) (url string, ready <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	readyCh, stopped := make(chan struct{}), make(chan struct{})
	var held []net.Conn
	go func() {
		defer close(stopped)
		buf := make([]byte, 4<<10)
		for len(held) < n {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			var got []byte
			for !bytes.Contains(got, []byte("\r\n\r\n")) {
				m, err := c.Read(buf)
				if err != nil {
					return
				}
				got = append(got, buf[:m]...)
			}
		}
		close(readyCh)
	}()
	t.Cleanup(func() {
		ln.Close()
		<-stopped
		for _, c := range held {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String() + "/v1/health/service/x?index=9&wait=5m", readyCh
}

// ptParked parks n requests through rt on a server that never answers and
// returns by how many goroutines the process grew once all are parked. It
// then cancels them and checks that each returns context.Canceled.
func ptParked(t *testing.T, rt http.RoundTripper, n int) (grown, before int) {
	t.Helper()
	url, ready := ptParkServer(t, n)
	client := &http.Client{Transport: rt}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	before = runtime.NumGoroutine()
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := ptGet(ctx, client, url)
			errs <- err
		}()
	}
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatalf("%d requests not all parked", n)
	}
	grown = runtime.NumGoroutine() - before
	cancel()
	timeout := time.After(ptPrompt)
	for i := 0; i < n; i++ {
		select {
		case err := <-errs:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("parked request: error %v, want context.Canceled", err)
			}
		case <-timeout:
			t.Fatalf("%d of %d canceled requests still blocked after %v", n-i, n, ptPrompt)
		}
	}
	return grown, before
}

// The reason for the transport: a parked blocking query costs its caller's
// goroutine and nothing else.
func TestPollTransportGoroutinesPerParkedRequest(t *testing.T) {
	const n = 200
	t.Run("pollTransport", func(t *testing.T) {
		tr := newPollTransport(nil)
		grown, before := ptParked(t, tr, n)
		t.Logf("%d parked requests: %d more goroutines", n, grown)
		if grown > n+10 {
			t.Errorf("%d parked requests grew the process by %d goroutines, want at most %d", n, grown, n+10)
		}
		if k := ptIdle(tr); k != 0 {
			t.Errorf("%d idle connections after cancel, want 0", k)
		}
		// Nothing stays behind once the requests returned.
		deadline := time.Now().Add(ptPrompt)
		for runtime.NumGoroutine() > before+5 {
			if time.Now().After(deadline) {
				t.Fatalf("%d goroutines after all requests returned, %d before", runtime.NumGoroutine(), before)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	// The measure above can fail: net/http's Transport, with its read and
	// write goroutines per connection, grows by about 3 per request.
	t.Run("net/http baseline", func(t *testing.T) {
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		grown, _ := ptParked(t, tr, n)
		t.Logf("%d parked requests: %d more goroutines", n, grown)
		if grown < 2*n {
			t.Errorf("net/http's Transport grew by only %d goroutines for %d requests: the measure is broken", grown, n)
		}
	})
}

func TestPollTransportUnsupportedScheme(t *testing.T) {
	tr := newPollTransport(nil)
	for _, u := range []string{"ftp://127.0.0.1/x", "unix:///tmp/consul.sock", "HTTP2://127.0.0.1/"} {
		body := &ptBody{Reader: strings.NewReader("x")}
		req, err := http.NewRequest(http.MethodPut, u, body)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := tr.RoundTrip(req)
		if resp != nil || !errors.Is(err, errNoScheme) {
			t.Errorf("%s: %v, %v; want errNoScheme", u, resp, err)
		}
		if !body.closed.Load() {
			t.Errorf("%s: request body not closed", u)
		}
	}
	client := &http.Client{Transport: tr}
	if _, err := client.Get("ftp://127.0.0.1/x"); !errors.Is(err, errNoScheme) {
		t.Errorf("through http.Client: %v, want errNoScheme", err)
	}
}

type ptBody struct {
	io.Reader
	closed atomic.Bool
}

func (b *ptBody) Close() error { b.closed.Store(true); return nil }

// The transport closes the request body, as a RoundTripper must, on success
// and on failure alike.
func TestPollTransportClosesRequestBody(t *testing.T) {
	srv, _ := ptCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s", b)
	})
	client, _ := ptClient(t, nil)
	for _, url := range []string{srv.URL, "http://" + ptClosedAddr(t)} {
		body := &ptBody{Reader: strings.NewReader("payload")}
		req, _ := http.NewRequest(http.MethodPut, url, body)
		req.ContentLength = int64(len("payload"))
		resp, err := client.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "payload" {
				t.Errorf("%s: echoed %q", url, b)
			}
		}
		if !body.closed.Load() {
			t.Errorf("%s (err %v): request body not closed", url, err)
		}
	}
}

// ptClosedAddr returns an address where nothing listens.
func ptClosedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestPollTransportCloseIdleConnections(t *testing.T) {
	const n = 3
	closed := make(chan int, 2*n)
	arrived := make(chan int, n)
	release := make(chan struct{})
	s := newPTServer(t, func(conn int, c net.Conn) {
		_ = ptServeHTTP(c, func(i int, req *http.Request) bool {
			if conn < n && i == 0 {
				arrived <- conn
				<-release
			}
			ptWriteOK(c, "ok")
			return true
		})
		closed <- conn
	})
	client, tr := ptClient(t, nil)
	ptParallel(t, client, s.url("/"), n, arrived, release)
	if k := ptIdle(tr); k != n {
		t.Fatalf("%d idle connections, want %d", k, n)
	}

	// One to another agent, kept under its own key.
	otherClosed := make(chan struct{})
	o := newPTServer(t, func(conn int, c net.Conn) {
		_ = ptServeHTTP(c, func(i int, req *http.Request) bool {
			ptWriteOK(c, "other")
			return true
		})
		close(otherClosed)
	})
	if body, err := ptGet(context.Background(), client, o.url("/")); err != nil || body != "other" {
		t.Fatalf("other agent: %q, %v", body, err)
	}
	tr.mu.Lock()
	keys := len(tr.idle)
	tr.mu.Unlock()
	if k := ptIdle(tr); k != n+1 || keys != 2 {
		t.Fatalf("%d idle connections under %d keys, want %d under 2", k, keys, n+1)
	}

	client.CloseIdleConnections()
	if k := ptIdle(tr); k != 0 {
		t.Errorf("%d idle connections after CloseIdleConnections", k)
	}
	seen := map[int]bool{}
	for i := 0; i < n; i++ {
		seen[ptRecv(t, closed, "idle connection closed")] = true
	}
	if len(seen) != n {
		t.Errorf("closed connections %v, want %d distinct", seen, n)
	}
	ptWaitClosed(t, otherClosed, "the other agent's idle connection")

	// The next request dials anew.
	if _, err := ptGet(context.Background(), client, s.url("/")); err != nil {
		t.Fatal(err)
	}
	if k := s.accepted.Load(); k != n+1 {
		t.Errorf("%d connections, want %d", k, n+1)
	}
}

// ptAge makes every idle connection of tr look idle since d ago.
func ptAge(tr *pollTransport, d time.Duration) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, list := range tr.idle {
		for _, pc := range list {
			pc.idleFrom = time.Now().Add(-d)
		}
	}
}

func TestPollTransportIdleTimeout(t *testing.T) {
	closed := make(chan int, 4)
	s := newPTServer(t, func(n int, c net.Conn) {
		_ = ptServeHTTP(c, func(i int, req *http.Request) bool {
			ptWriteOK(c, fmt.Sprintf("conn%d", n))
			return true
		})
		closed <- n
	})
	client, tr := ptClient(t, nil)
	get := func(want string) {
		t.Helper()
		body, err := ptGet(context.Background(), client, s.url("/"))
		if err != nil {
			t.Fatal(err)
		}
		if body != want {
			t.Fatalf("answer from %s, want %s", body, want)
		}
	}
	get("conn0")
	// Idle for a while, but less than idleTimeout: reused.
	ptAge(tr, idleTimeout-10*time.Second)
	get("conn0")
	// Idle too long: closed, and a new connection dialed.
	ptAge(tr, idleTimeout+time.Second)
	get("conn1")
	if n := ptRecv(t, closed, "the expired idle connection"); n != 0 {
		t.Errorf("connection %d closed, want 0", n)
	}
	if n := ptIdle(tr); n != 1 {
		t.Errorf("%d idle connections, want 1", n)
	}
	if n := s.accepted.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// The most recently used idle connection is taken first; expired ones met
// on the way are closed.
func TestPollTransportIdleOrder(t *testing.T) {
	const n = 3
	closed := make(chan int, n)
	arrived := make(chan int, n)
	release := make(chan struct{})
	var mu sync.Mutex
	remote := map[string]int{} // client address: connection number
	s := newPTServer(t, func(conn int, c net.Conn) {
		mu.Lock()
		remote[c.RemoteAddr().String()] = conn
		mu.Unlock()
		_ = ptServeHTTP(c, func(i int, req *http.Request) bool {
			if i == 0 {
				arrived <- conn
				<-release
			}
			ptWriteOK(c, fmt.Sprint(conn))
			return true
		})
		closed <- conn
	})
	client, tr := ptClient(t, nil)
	ptParallel(t, client, s.url("/"), n, arrived, release)
	key := "http://" + s.ln.Addr().String()
	tr.mu.Lock()
	list := append([]*pollConn(nil), tr.idle[key]...)
	tr.mu.Unlock()
	if len(list) != n {
		t.Fatalf("%d idle connections under %s, want %d", len(list), key, n)
	}
	mu.Lock()
	var num [n]int
	for i, pc := range list {
		num[i] = remote[pc.LocalAddr().String()]
	}
	mu.Unlock()
	setIdle := func(ages ...time.Duration) {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		for i, age := range ages {
			list[i].idleFrom = time.Now().Add(-age)
		}
	}
	get := func(want int) {
		t.Helper()
		body, err := ptGet(context.Background(), client, s.url("/"))
		if err != nil {
			t.Fatal(err)
		}
		if body != fmt.Sprint(want) {
			t.Fatalf("answered on connection %s, want %d", body, want)
		}
	}
	expired := idleTimeout + time.Second

	// The most recent is fresh: taken (and put back last); the expired one
	// below it is not even looked at.
	setIdle(0, expired, 0)
	get(num[2])
	// The two most recent expired: both closed, the oldest taken.
	setIdle(0, expired, expired)
	get(num[0])
	got := map[int]bool{}
	for i := 0; i < 2; i++ {
		got[ptRecv(t, closed, "expired idle connection")] = true
	}
	if !got[num[1]] || !got[num[2]] {
		t.Errorf("closed connections %v, want %d and %d", got, num[1], num[2])
	}
	if k := ptIdle(tr); k != 1 {
		t.Errorf("%d idle connections, want 1", k)
	}
	if k := s.accepted.Load(); k != n {
		t.Errorf("%d connections, want %d", k, n)
	}
}

// A connection coming back to a full idle list is closed.
func TestPollTransportMaxIdlePerHost(t *testing.T) {
	closed := make(chan int, 1)
	arrived := make(chan int, 1)
	release := make(chan struct{})
	s := newPTServer(t, func(n int, c net.Conn) {
		_ = ptServeHTTP(c, func(i int, req *http.Request) bool {
			arrived <- n
			<-release
			ptWriteOK(c, "ok")
			return true
		})
		closed <- n
	})
	client, tr := ptClient(t, nil)
	key := "http://" + s.ln.Addr().String()
	ch := ptAsync(func() error {
		_, err := ptGet(context.Background(), client, s.url("/"))
		return err
	})
	ptRecv(t, arrived, "request")
	// While the request is out, fill its agent's idle list with
	// placeholders (no connection: they are taken out before the end).
	full := make([]*pollConn, maxIdlePerHost)
	for i := range full {
		full[i] = &pollConn{key: key, idleFrom: time.Now()}
	}
	tr.mu.Lock()
	tr.idle[key] = full
	tr.mu.Unlock()
	defer func() {
		tr.mu.Lock()
		tr.idle = map[string][]*pollConn{}
		tr.mu.Unlock()
	}()
	close(release)
	if err := ptWait(t, ch, "request"); err != nil {
		t.Fatal(err)
	}
	ptRecv(t, closed, "the connection that found the idle list full")
	tr.mu.Lock()
	k := len(tr.idle[key])
	tr.mu.Unlock()
	if k != maxIdlePerHost {
		t.Errorf("%d idle connections, want %d", k, maxIdlePerHost)
	}
}

// A cancellation after the body was read but before it was closed may have
// moved the connection's deadline into the past: the connection is not
// kept.
func TestPollTransportCancelBeforeClose(t *testing.T) {
	srv, conns := ptCountingServer(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	client, tr := ptClient(t, nil)
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
	if n := ptIdle(tr); n != 0 {
		t.Errorf("%d idle connections, want 0", n)
	}
	if _, err := ptGet(context.Background(), client, srv.URL); err != nil {
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
	if n := ptIdle(tr); n != 0 {
		t.Errorf("%d idle connections after a timeout, want 0", n)
	}
}
