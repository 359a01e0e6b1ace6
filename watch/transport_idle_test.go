package watch

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

func TestPollTransportCloseIdleConnections(t *testing.T) {
	const n = 3
	closed := make(chan int, 2*n)
	arrived := make(chan int, n)
	release := make(chan struct{})
	s := newRawServer(t, func(conn int, c net.Conn) {
		_ = serveHTTP(c, func(i int, req *http.Request) bool {
			if conn < n && i == 0 {
				arrived <- conn
				<-release
			}
			writeOK(c, "ok")
			return true
		})
		closed <- conn
	})
	client, tr := newPollClient(t, nil)
	getParallel(t, client, s.url("/"), n, arrived, release)
	if k := idleConns(tr); k != n {
		t.Fatalf("%d idle connections, want %d", k, n)
	}

	// One to another agent, kept under its own key.
	otherClosed := make(chan struct{})
	o := newRawServer(t, func(conn int, c net.Conn) {
		_ = serveHTTP(c, func(i int, req *http.Request) bool {
			writeOK(c, "other")
			return true
		})
		close(otherClosed)
	})
	if body, err := getBody(context.Background(), client, o.url("/")); err != nil || body != "other" {
		t.Fatalf("other agent: %q, %v", body, err)
	}
	tr.mu.Lock()
	keys := len(tr.idle)
	tr.mu.Unlock()
	if k := idleConns(tr); k != n+1 || keys != 2 {
		t.Fatalf("%d idle connections under %d keys, want %d under 2", k, keys, n+1)
	}

	client.CloseIdleConnections()
	if k := idleConns(tr); k != 0 {
		t.Errorf("%d idle connections after CloseIdleConnections", k)
	}
	seen := map[int]bool{}
	for i := 0; i < n; i++ {
		seen[recv(t, closed, "idle connection closed")] = true
	}
	if len(seen) != n {
		t.Errorf("closed connections %v, want %d distinct", seen, n)
	}
	waitClosed(t, otherClosed, "the other agent's idle connection")

	// The next request dials anew.
	if _, err := getBody(context.Background(), client, s.url("/")); err != nil {
		t.Fatal(err)
	}
	if k := s.accepted.Load(); k != n+1 {
		t.Errorf("%d connections, want %d", k, n+1)
	}
}

// ageIdle makes every idle connection of tr look idle since d ago.
func ageIdle(tr *pollTransport, d time.Duration) {
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
	s := newRawServer(t, func(n int, c net.Conn) {
		_ = serveHTTP(c, func(i int, req *http.Request) bool {
			writeOK(c, fmt.Sprintf("conn%d", n))
			return true
		})
		closed <- n
	})
	client, tr := newPollClient(t, nil)
	get := func(want string) {
		t.Helper()
		body, err := getBody(context.Background(), client, s.url("/"))
		if err != nil {
			t.Fatal(err)
		}
		if body != want {
			t.Fatalf("answer from %s, want %s", body, want)
		}
	}
	get("conn0")
	// Idle for a while, but less than idleTimeout: reused.
	ageIdle(tr, idleTimeout-10*time.Second)
	get("conn0")
	// Idle too long: closed, and a new connection dialed.
	ageIdle(tr, idleTimeout+time.Second)
	get("conn1")
	if n := recv(t, closed, "the expired idle connection"); n != 0 {
		t.Errorf("connection %d closed, want 0", n)
	}
	if n := idleConns(tr); n != 1 {
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
	s := newRawServer(t, func(conn int, c net.Conn) {
		mu.Lock()
		remote[c.RemoteAddr().String()] = conn
		mu.Unlock()
		_ = serveHTTP(c, func(i int, req *http.Request) bool {
			if i == 0 {
				arrived <- conn
				<-release
			}
			writeOK(c, fmt.Sprint(conn))
			return true
		})
		closed <- conn
	})
	client, tr := newPollClient(t, nil)
	getParallel(t, client, s.url("/"), n, arrived, release)
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
		body, err := getBody(context.Background(), client, s.url("/"))
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
		got[recv(t, closed, "expired idle connection")] = true
	}
	if !got[num[1]] || !got[num[2]] {
		t.Errorf("closed connections %v, want %d and %d", got, num[1], num[2])
	}
	if k := idleConns(tr); k != 1 {
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
	s := newRawServer(t, func(n int, c net.Conn) {
		_ = serveHTTP(c, func(i int, req *http.Request) bool {
			arrived <- n
			<-release
			writeOK(c, "ok")
			return true
		})
		closed <- n
	})
	client, tr := newPollClient(t, nil)
	key := "http://" + s.ln.Addr().String()
	ch := async(func() error {
		_, err := getBody(context.Background(), client, s.url("/"))
		return err
	})
	recv(t, arrived, "request")
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
	if err := waitErr(t, ch, "request"); err != nil {
		t.Fatal(err)
	}
	recv(t, closed, "the connection that found the idle list full")
	tr.mu.Lock()
	k := len(tr.idle[key])
	tr.mu.Unlock()
	if k != maxIdlePerHost {
		t.Errorf("%d idle connections, want %d", k, maxIdlePerHost)
	}
}
