package watch

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// prompt bounds every wait for something that should happen at once: a
// canceled request returning, a closed connection being seen by the server.
// It is an upper bound, never a sleep.
const prompt = 2 * time.Second

// rawServer is a raw TCP server, for tests that need a server to misbehave.
// handle runs on its own goroutine for each accepted connection, numbered
// from 0 in accept order. When the test ends, the listener and every
// connection are closed and the handlers waited for: a handler must return
// once its connection is closed.
type rawServer struct {
	ln       net.Listener
	accepted atomic.Int32

	mu     sync.Mutex
	conns  []net.Conn
	closed bool
	wg     sync.WaitGroup
}

func newRawServer(t *testing.T, handle func(n int, c net.Conn)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln}
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

func (s *rawServer) url(path string) string { return "http://" + s.ln.Addr().String() + path }

// serveHTTP reads requests from c (bodies read to their end) and passes
// each to answer, numbered from 0, until answer returns false or reading
// fails. It returns the error that ended reading, nil when answer stopped.
func serveHTTP(c net.Conn, answer func(i int, req *http.Request) bool) error {
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

// writeOK writes a keep-alive 200 answer with body.
func writeOK(c net.Conn, body string) {
	fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

// waitClosed waits for ch to deliver or be closed: typically a server
// handler reporting that the client closed its connection.
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(prompt):
		t.Fatalf("%s: not seen by the server within %v", what, prompt)
	}
}

// countingServer is an httptest server counting the connections it
// accepted.
func countingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
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

// newPollClient returns a client on a new pollTransport, whose idle connections
// are closed when the test ends.
func newPollClient(t *testing.T, tlsConfig *tls.Config) (*http.Client, *pollTransport) {
	tr := newPollTransport(tlsConfig)
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}, tr
}

// getBody GETs url with ctx, reads the body to its end and closes it.
func getBody(ctx context.Context, c *http.Client, url string) (string, error) {
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

// idleConns returns how many idle connections tr keeps in all.
func idleConns(tr *pollTransport) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, list := range tr.idle {
		n += len(list)
	}
	return n
}

// async runs f on a goroutine and returns a channel delivering its error.
func async(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

// waitErr waits for ch, failing the test after prompt.
func waitErr(t *testing.T, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(prompt):
		t.Fatalf("%s: still blocked after %v", what, prompt)
		return nil
	}
}

func recv(t *testing.T, ch <-chan int, what string) int {
	t.Helper()
	select {
	case n := <-ch:
		return n
	case <-time.After(prompt):
		t.Fatalf("%s: nothing after %v", what, prompt)
		return -1
	}
}

// getParallel has n GETs to url in flight at once, so that they use n
// connections, and waits for their answers. The server must hold each
// first request until release is closed after n arrived on arrived.
func getParallel(t *testing.T, client *http.Client, url string, n int, arrived <-chan int, release chan struct{}) {
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
			_, err := getBody(context.Background(), client, url)
			errs <- err
		}()
	}
	for i := 0; i < n; i++ {
		recv(t, arrived, "parallel request")
	}
	close(release)
	released = true
	for i := 0; i < n; i++ {
		if err := waitErr(t, errs, "parallel request"); err != nil {
			t.Fatal(err)
		}
	}
}
