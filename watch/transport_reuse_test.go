package watch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
)

func TestPollTransportReusesConnection(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
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
	client, tr := newPollClient(t, nil)

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
	if n := idleConns(tr); n != 1 {
		t.Errorf("%d idle connections, want 1", n)
	}
}

// Requests in parallel each take a connection of their own and give it
// back: the pool never holds more than were in use at once.
func TestPollTransportConcurrentReuse(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.URL.Path)
	})
	client, tr := newPollClient(t, nil)
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				p := fmt.Sprintf("/%d/%d", w, i)
				body, err := getBody(context.Background(), client, srv.URL+p)
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
	if n, c := idleConns(tr), int(conns.Load()); n != c {
		t.Errorf("%d idle connections, want all %d back", n, c)
	}
}

func TestPollTransportEarlyCloseNotReused(t *testing.T) {
	big := strings.Repeat("z", 256<<10)
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, big)
	})
	client, tr := newPollClient(t, nil)

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
	if n := idleConns(tr); n != 0 {
		t.Errorf("%d idle connections after a body closed early, want 0", n)
	}
	if _, err := resp.Body.Read(buf); err == nil {
		t.Error("read after close succeeded")
	}
	if err := resp.Body.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if body, err := getBody(context.Background(), client, srv.URL+"/big"); err != nil || body != big {
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
	s := newRawServer(t, func(n int, c net.Conn) {
		_ = serveHTTP(c, func(i int, req *http.Request) bool {
			// 10 of 100 bytes, then nothing.
			fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
			return false
		})
		_, _ = io.Copy(io.Discard, c)
		close(closed)
	})
	client, tr := newPollClient(t, nil)
	resp, err := client.Get(s.url("/stall"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	_ = waitErr(t, async(resp.Body.Close), "closing a body whose rest never arrives")
	if n := idleConns(tr); n != 0 {
		t.Errorf("%d idle connections, want 0", n)
	}
	waitClosed(t, closed, "the early-closed connection")
}

// Bytes after the end of an answer are not the next answer: the connection
// is dropped rather than kept out of step.
func TestPollTransportExtraBytesNotReused(t *testing.T) {
	s := newRawServer(t, func(n int, c net.Conn) {
		_ = serveHTTP(c, func(i int, req *http.Request) bool {
			// One write: the extra bytes arrive with the answer.
			_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"))
			return true
		})
	})
	client, tr := newPollClient(t, nil)
	for i := 0; i < 2; i++ {
		if body, err := getBody(context.Background(), client, s.url("/")); err != nil || body != "ok" {
			t.Fatalf("request %d: %q, %v", i, body, err)
		}
		if n := idleConns(tr); n != 0 {
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
			s := newRawServer(t, func(n int, c net.Conn) {
				_ = serveHTTP(c, func(i int, req *http.Request) bool {
					fmt.Fprint(c, tc.answer)
					return true
				})
				closed <- struct{}{}
			})
			client, tr := newPollClient(t, nil)
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
				if n := idleConns(tr); n != 0 {
					t.Fatalf("request %d: %d idle connections, want 0", i, n)
				}
				waitClosed(t, closed, "a connection not to be reused")
			}
			if n := s.accepted.Load(); n != 3 {
				t.Errorf("%d connections for 3 requests, want 3", n)
			}
		})
	}
}

// A body cut short is an error for its reader, and its connection is not
// kept.
func TestPollTransportTruncatedBody(t *testing.T) {
	s := newRawServer(t, func(n int, c net.Conn) {
		_ = serveHTTP(c, func(i int, req *http.Request) bool {
			fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234")
			return false
		})
		c.Close()
	})
	client, tr := newPollClient(t, nil)
	_, err := getBody(context.Background(), client, s.url("/"))
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("error %v, want io.ErrUnexpectedEOF", err)
	}
	if n := idleConns(tr); n != 0 {
		t.Errorf("%d idle connections, want 0", n)
	}
}
