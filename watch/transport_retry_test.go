package watch

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// connCounts counts the requests a rawServer saw on each connection.
type connCounts struct {
	mu sync.Mutex
	n  map[int]int
}

func (c *connCounts) add(conn int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[int]int{}
	}
	c.n[conn]++
}

func (c *connCounts) get() map[int]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[int]int{}
	for k, v := range c.n {
		m[k] = v
	}
	return m
}

func sameCounts(got, want map[int]int) bool {
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
	var counts connCounts
	idleClosed := make(chan struct{})
	s := newRawServer(t, func(n int, c net.Conn) {
		_ = serveHTTP(c, func(i int, req *http.Request) bool {
			counts.add(n)
			writeOK(c, fmt.Sprintf("conn%d", n))
			return n != 0
		})
		if n == 0 { // answered once, then closed while idle
			c.Close()
			close(idleClosed)
		}
	})
	client, tr := newPollClient(t, nil)
	if body, err := getBody(context.Background(), client, s.url("/a")); err != nil || body != "conn0" {
		t.Fatalf("first request: %q, %v", body, err)
	}
	if n := idleConns(tr); n != 1 {
		t.Fatalf("%d idle connections, want 1", n)
	}
	waitClosed(t, idleClosed, "closing the idle connection")
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
	if got, want := counts.get(), map[int]int{0: 1, 1: 2}; !sameCounts(got, want) {
		t.Errorf("requests per connection %v, want %v", got, want)
	}
	if n := s.accepted.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// The retry is made once: a new connection that fails too is an error.
func TestPollTransportRetryOnce(t *testing.T) {
	var counts connCounts
	idleClosed := make(chan struct{})
	s := newRawServer(t, func(n int, c net.Conn) {
		_ = serveHTTP(c, func(i int, req *http.Request) bool {
			counts.add(n)
			if n == 0 {
				writeOK(c, "ok")
			}
			return false // every connection closes after one request
		})
		c.Close()
		if n == 0 {
			close(idleClosed)
		}
	})
	client, _ := newPollClient(t, nil)
	if _, err := getBody(context.Background(), client, s.url("/")); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, idleClosed, "closing the idle connection")
	ch := async(func() error {
		_, err := getBody(context.Background(), client, s.url("/"))
		return err
	})
	if err := waitErr(t, ch, "request on a failing server"); err == nil {
		t.Fatal("request succeeded on a server that does not answer")
	}
	if got, want := counts.get(), map[int]int{0: 1, 1: 1}; !sameCounts(got, want) {
		t.Errorf("requests per connection %v, want %v", got, want)
	}
	if n := s.accepted.Load(); n != 2 {
		t.Errorf("%d connections, want 2: the stale one and one retry", n)
	}
}

// All idle connections went stale together (the agent restarted): the GET
// still succeeds, on a new connection after one stale one; the other stale
// ones stay idle for the requests that will find them so.
func TestPollTransportRetryManyStaleConnections(t *testing.T) {
	const n = 3
	var counts connCounts
	arrived, closed := make(chan int, n), make(chan int, n)
	release := make(chan struct{})
	s := newRawServer(t, func(conn int, c net.Conn) {
		_ = serveHTTP(c, func(i int, req *http.Request) bool {
			counts.add(conn)
			if conn < n {
				arrived <- conn
				<-release
			}
			writeOK(c, fmt.Sprintf("conn%d", conn))
			return conn >= n
		})
		if conn < n {
			c.Close()
			closed <- conn
		}
	})
	client, tr := newPollClient(t, nil)
	getParallel(t, client, s.url("/"), n, arrived, release)
	for i := 0; i < n; i++ {
		recv(t, closed, "server closing an idle connection")
	}
	if got := idleConns(tr); got != n {
		t.Fatalf("%d idle connections, want %d", got, n)
	}
	body, err := getBody(context.Background(), client, s.url("/"))
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
	if got := counts.get(); !sameCounts(got, want) {
		t.Errorf("requests per connection %v, want %v", got, want)
	}
	if got := s.accepted.Load(); got != n+1 {
		t.Errorf("%d connections, want %d", got, n+1)
	}
	if got := idleConns(tr); got != n {
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
			var counts connCounts
			s := newRawServer(t, func(n int, c net.Conn) {
				_ = serveHTTP(c, func(i int, req *http.Request) bool {
					counts.add(n)
					if i == 0 {
						writeOK(c, "ok")
						return true
					}
					fmt.Fprint(c, tc.answer)
					return false
				})
				c.Close()
			})
			client, tr := newPollClient(t, nil)
			if _, err := getBody(context.Background(), client, s.url("/")); err != nil {
				t.Fatal(err)
			}
			body, err := getBody(context.Background(), client, s.url("/"))
			if err == nil {
				t.Fatalf("second request succeeded (%q) after a broken answer", body)
			}
			if got, want := counts.get(), map[int]int{0: 2}; !sameCounts(got, want) {
				t.Errorf("requests per connection %v, want %v", got, want)
			}
			if n := s.accepted.Load(); n != 1 {
				t.Errorf("%d connections, want 1: no retry", n)
			}
			if n := idleConns(tr); n != 0 {
				t.Errorf("%d idle connections, want 0", n)
			}
		})
	}
}

// Only GET and HEAD are sent again: a POST on a stale connection fails.
func TestPollTransportNoRetryPost(t *testing.T) {
	var counts connCounts
	idleClosed := make(chan struct{})
	s := newRawServer(t, func(n int, c net.Conn) {
		_ = serveHTTP(c, func(i int, req *http.Request) bool {
			counts.add(n)
			writeOK(c, "ok")
			return n != 0
		})
		if n == 0 {
			c.Close()
			close(idleClosed)
		}
	})
	client, _ := newPollClient(t, nil)
	if _, err := getBody(context.Background(), client, s.url("/")); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, idleClosed, "closing the idle connection")
	resp, err := client.Post(s.url("/"), "text/plain", strings.NewReader("x"))
	if err == nil {
		resp.Body.Close()
		t.Fatal("POST on a stale connection succeeded: it was sent again")
	}
	if n := s.accepted.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
	if got, want := counts.get(), map[int]int{0: 1}; !sameCounts(got, want) {
		t.Errorf("requests per connection %v, want %v", got, want)
	}
}
