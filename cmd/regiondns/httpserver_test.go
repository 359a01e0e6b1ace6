package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regiondns/regiondns/cache"
	"github.com/regiondns/regiondns/engine"
	"github.com/regiondns/regiondns/zones"
)

// httpSettings returns the settings the binary reads with env set.
func httpSettings(t *testing.T, env map[string]string) settings {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	s, err := loadSettings()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// countingListener counts the connections it accepted and has not closed:
// the descriptors the server holds, whatever wraps them. A connection
// counts from before Accept returns it until after its descriptor is closed.
type countingListener struct {
	net.Listener
	accepted, open, peak atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.accepted.Add(1)
	n := l.open.Add(1)
	for p := l.peak.Load(); n > p && !l.peak.CompareAndSwap(p, n); p = l.peak.Load() {
	}
	return &countedConn{Conn: c, l: l}, nil
}

type countedConn struct {
	net.Conn
	l    *countingListener
	once sync.Once
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}

// startHTTP serves h (nil: regiondns's HTTP handler) as serve does with s,
// on a loopback port, until the test ends.
func startHTTP(t *testing.T, s settings, h http.Handler) *countingListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	if h == nil {
		h = newHTTPHandler(engine.New(&zones.Config{}, testMetricsWatcher(t), &cache.Store{}, engine.Options{}), testMetrics(t))
	}
	srv, sln := newHTTPServer(s, h, cl)
	done := make(chan struct{})
	go func() { srv.Serve(sln); close(done) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return cl
}

// dial opens a connection to addr, closed when the test ends.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

const healthzRequest = "GET /healthz HTTP/1.1\r\nHost: regiondns\r\n\r\n"

// waitClosed reads c until the server closes it, for at most limit, and
// returns how long that took.
func waitClosed(t *testing.T, c net.Conn, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, c)
	elapsed := time.Since(start)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %s", limit)
	}
	return elapsed
}

// 1,000 keep-alive connections, each after one request, hold the HTTP port:
// the server never holds more connections than REGIONDNS_HTTP_MAX_CONNS,
// and once it has taken them all from the listen queue, a new client still
// gets /healthz within a second, because the longest-idle connections
// yield to it.
func TestHTTPConnectionsBounded(t *testing.T) {
	s := httpSettings(t, nil)
	cl := startHTTP(t, s, nil)
	addr := cl.Addr().String()
	for range 1000 {
		c := dial(t, addr)
		if _, err := io.WriteString(c, healthzRequest); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for cl.accepted.Load() < 1000 {
		if time.Now().After(deadline) {
			t.Fatalf("server took %d of 1,000 connections from the listen queue in 30 s", cl.accepted.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}

	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{}}
	start := time.Now()
	resp, err := client.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("new client behind 1,000 keep-alive connections: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz = %d, want 200", resp.StatusCode)
	}
	t.Logf("new client answered in %s", time.Since(start).Round(time.Millisecond))
	client.CloseIdleConnections()

	if peak := cl.peak.Load(); peak != int64(s.HTTPMaxConns) {
		t.Errorf("at most %d connections open at once, want the bound, %d", peak, s.HTTPMaxConns)
	}
}

// Connections in the middle of a request are never closed to make room,
// and a new connection accepted while every other one is busy is served,
// not closed as the only idle one: with a bound of 2, a second request is
// served while the first is in its handler; with both in their handler, a
// third client waits for a slot, then gets its answer, and the request
// still in its handler completes.
func TestHTTPBusyConnectionsKept(t *testing.T) {
	s := httpSettings(t, map[string]string{"REGIONDNS_HTTP_MAX_CONNS": "2"})
	entered, releaseOne, releaseAll := make(chan struct{}), make(chan struct{}), make(chan struct{})
	closeAll := sync.OnceFunc(func() { close(releaseAll) })
	mux := http.NewServeMux()
	mux.HandleFunc("GET /busy", func(w http.ResponseWriter, _ *http.Request) {
		entered <- struct{}{}
		select {
		case <-releaseOne:
		case <-releaseAll:
		}
		io.WriteString(w, "done\n")
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	cl := startHTTP(t, s, mux)
	t.Cleanup(closeAll)
	addr := cl.Addr().String()

	// get sends GET path on a new connection and reports the status, or
	// the error that ended the connection.
	get := func(path string) <-chan string {
		c := dial(t, addr)
		result := make(chan string, 1)
		go func() {
			if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: regiondns\r\n\r\n"); err != nil {
				result <- err.Error()
				return
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				result <- err.Error()
				return
			}
			resp.Body.Close()
			result <- resp.Status
		}()
		return result
	}
	// One after the other: at the bound a connection whose request has not
	// been read yet is idle, and may yield.
	enter := func(what string, result <-chan string) {
		t.Helper()
		select {
		case <-entered:
		case got := <-result:
			t.Fatalf("%s: %s before its handler ran", what, got)
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: handler not entered", what)
		}
	}
	first := get("/busy")
	enter("first busy request", first)
	second := get("/busy")
	enter("second busy request", second)
	third := get("/healthz")
	// One busy request completes; its connection goes idle and yields.
	releaseOne <- struct{}{}
	wait := func(what string, result <-chan string) {
		t.Helper()
		select {
		case got := <-result:
			if got != "200 OK" {
				t.Errorf("%s: %s, want 200 OK", what, got)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no answer", what)
		}
	}
	var busy <-chan string
	select {
	case got := <-first:
		busy = second
		if got != "200 OK" {
			t.Errorf("first busy request: %s, want 200 OK", got)
		}
	case got := <-second:
		busy = first
		if got != "200 OK" {
			t.Errorf("second busy request: %s, want 200 OK", got)
		}
	}
	wait("client waiting for a slot", third)
	closeAll()
	wait("request kept in its handler", busy)
	if peak := cl.peak.Load(); peak > 2 {
		t.Errorf("%d connections open at once, want at most 2", peak)
	}
}

// A keep-alive connection that sends nothing after its request is closed
// after REGIONDNS_HTTP_IDLE_TIMEOUT.
func TestHTTPIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	s := httpSettings(t, map[string]string{"REGIONDNS_HTTP_IDLE_TIMEOUT": idle.String()})
	c := dial(t, startHTTP(t, s, nil).Addr().String())
	if _, err := io.WriteString(c, healthzRequest); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("/healthz = %d (close %v), want 200 and a kept-alive connection", resp.StatusCode, resp.Close)
	}
	if d := waitClosed(t, c, 5*time.Second); d < idle/2 {
		t.Errorf("idle connection closed after %s, before the idle timeout %s", d, idle)
	}
}

// A client that sends its request header a byte at a time (slowloris) is
// cut at REGIONDNS_HTTP_READ_HEADER_TIMEOUT, however steadily it sends.
func TestHTTPSlowHeader(t *testing.T) {
	const header = 300 * time.Millisecond
	s := httpSettings(t, map[string]string{"REGIONDNS_HTTP_READ_HEADER_TIMEOUT": header.String()})
	c := dial(t, startHTTP(t, s, nil).Addr().String())
	stop := make(chan struct{})
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		req := "GET /healthz HTTP/1.1\r\nHost: regiondns\r\nX-Slow: " + strings.Repeat("a", 1<<20)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			if _, err := c.Write([]byte{req[i]}); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-sent })
	if d := waitClosed(t, c, 3*time.Second); d < header/2 {
		t.Errorf("slow client cut after %s, before the header timeout %s", d, header)
	}
}

// pprof is served only with REGIONDNS_PPROF=true, and then a profile or
// trace longer than the write timeout is refused.
func TestHTTPPprof(t *testing.T) {
	paths := []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine", "/debug/pprof/symbol",
		"/debug/pprof/profile?seconds=1", "/debug/pprof/trace?seconds=1"}
	tests := []struct {
		name  string
		env   map[string]string
		codes map[string]int // by path; every other path of paths: 404
	}{
		{name: "default", env: nil},
		{name: "false", env: map[string]string{"REGIONDNS_PPROF": "false"}},
		{name: "true", env: map[string]string{"REGIONDNS_PPROF": "true"}, codes: map[string]int{
			"/debug/pprof/": 200, "/debug/pprof/heap?debug=1": 200, "/debug/pprof/goroutine": 200, "/debug/pprof/symbol": 200,
			"/debug/pprof/profile?seconds=86400": 400, "/debug/pprof/trace?seconds=86400": 400,
			"/debug/pprof/heap?seconds=86400": 400, "/debug/pprof/trace?seconds=NaN": 400,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := "http://" + startHTTP(t, httpSettings(t, tt.env), nil).Addr().String()
			client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
			t.Cleanup(client.CloseIdleConnections)
			want := map[string]int{"/healthz": 200}
			for _, p := range paths {
				want[p] = http.StatusNotFound
			}
			for p, code := range tt.codes {
				want[p] = code
			}
			if tt.codes != nil {
				// Profiles that take time are checked only where they are refused.
				delete(want, "/debug/pprof/profile?seconds=1")
				delete(want, "/debug/pprof/trace?seconds=1")
			}
			for p, code := range want {
				resp, err := client.Get(base + p)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != code {
					t.Errorf("GET %s = %d, want %d", p, resp.StatusCode, code)
				}
			}
		})
	}
}

// The HTTP settings refuse zero, which net/http takes as no limit.
func TestHTTPSettingsValidation(t *testing.T) {
	for _, tt := range []struct{ env, value, want string }{
		{"REGIONDNS_HTTP_MAX_CONNS", "0", "REGIONDNS_HTTP_MAX_CONNS: 0 is not valid; want a positive number"},
		{"REGIONDNS_HTTP_READ_HEADER_TIMEOUT", "0s", "REGIONDNS_HTTP_READ_HEADER_TIMEOUT: 0s is not valid; want a positive duration"},
		{"REGIONDNS_HTTP_READ_TIMEOUT", "0s", "REGIONDNS_HTTP_READ_TIMEOUT: 0s is not valid"},
		{"REGIONDNS_HTTP_WRITE_TIMEOUT", "-1s", "REGIONDNS_HTTP_WRITE_TIMEOUT: -1s is not valid"},
		{"REGIONDNS_HTTP_IDLE_TIMEOUT", "0s", "REGIONDNS_HTTP_IDLE_TIMEOUT: 0s is not valid"},
		{"REGIONDNS_PPROF", "yes", "REGIONDNS_PPROF"},
	} {
		t.Run(tt.env, func(t *testing.T) {
			t.Setenv(tt.env, tt.value)
			_, err := loadSettings()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s=%s: error %v, want %q", tt.env, tt.value, err, tt.want)
			}
		})
	}
}
