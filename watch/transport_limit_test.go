package watch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// limitClient returns a client on a pollTransport bounding bodies to
// maxBody and keeping keep bytes of error bodies.
func limitClient(t *testing.T, maxBody int64, keep int) (*http.Client, *pollTransport) {
	client, tr := newPollClient(t, nil)
	tr.maxBody, tr.errorBodyKeep = maxBody, keep
	return client, tr
}

// A body up to the limit is read whole and its connection reused; one byte
// more fails with ErrResponseTooLarge, whether the length is announced or
// the body is chunked, and the connection is closed.
func TestPollTransportBodyLimit(t *testing.T) {
	const limit = 1000
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		var n int
		fmt.Sscan(r.URL.Query().Get("n"), &n)
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", fmt.Sprint(n))
		}
		for range n / 100 {
			io.WriteString(w, strings.Repeat("x", 100))
			w.(http.Flusher).Flush()
		}
		io.WriteString(w, strings.Repeat("x", n%100))
	})
	client, tr := limitClient(t, limit, 0)
	for _, chunked := range []string{"", "1"} {
		url := func(n int) string { return fmt.Sprintf("%s/?n=%d&chunked=%s", srv.URL, n, chunked) }
		for range 2 {
			body, err := getBody(context.Background(), client, url(limit))
			if err != nil || len(body) != limit {
				t.Fatalf("chunked %q: a body of exactly the limit: %d bytes, %v", chunked, len(body), err)
			}
		}
		if n := idleConns(tr); n != 1 {
			t.Errorf("chunked %q: %d idle connections after bodies within the limit, want 1", chunked, n)
		}
		before := conns.Load()
		body, err := getBody(context.Background(), client, url(limit+1))
		if !errors.Is(err, ErrResponseTooLarge) {
			t.Errorf("chunked %q: a body over the limit: %d bytes, %v; want ErrResponseTooLarge", chunked, len(body), err)
		}
		if n := idleConns(tr); n != 0 {
			t.Errorf("chunked %q: %d idle connections after a body over the limit, want 0", chunked, n)
		}
		if _, err := getBody(context.Background(), client, url(10)); err != nil {
			t.Fatal(err)
		}
		if n := conns.Load() - before; n != 1 {
			t.Errorf("chunked %q: %d new connections, want 1: the one closed after the body over the limit", chunked, n)
		}
	}
}

// The body of an answer that is not a success is read before RoundTrip
// returns: its first bytes are kept, the connection is reused, and one
// longer than the limit fails the request.
func TestPollTransportErrorBody(t *testing.T) {
	const limit, keep = 10000, 100
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		var n int
		fmt.Sscan(r.URL.Query().Get("n"), &n)
		w.WriteHeader(http.StatusInternalServerError)
		for i := range n {
			w.Write([]byte{'a' + byte(i%26)})
			if i%1000 == 0 {
				w.(http.Flusher).Flush() // chunked
			}
		}
	})
	client, tr := limitClient(t, limit, keep)
	want := func(n int) string {
		var b strings.Builder
		for i := range min(n, keep) {
			b.WriteByte('a' + byte(i%26))
		}
		return b.String()
	}
	for _, n := range []int{0, 10, keep, keep + 1, limit} {
		resp, err := client.Get(fmt.Sprintf("%s/?n=%d", srv.URL, n))
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if n := idleConns(tr); n != 1 {
			t.Errorf("%d idle connections before the body is read, want 1: it was read already", n)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != want(n) || resp.StatusCode != http.StatusInternalServerError {
			t.Errorf("n=%d: %d %q, %v; want 500 %q", n, resp.StatusCode, b, err, want(n))
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
	_, err := client.Get(fmt.Sprintf("%s/?n=%d", srv.URL, limit+1))
	if !errors.Is(err, ErrResponseTooLarge) {
		t.Errorf("an error body over the limit: %v, want ErrResponseTooLarge", err)
	}
}

// A header that never ends is cut at maxHeaderBytes.
func TestPollTransportHeaderLimit(t *testing.T) {
	s := newRawServer(t, func(n int, c net.Conn) {
		_ = serveHTTP(c, func(i int, req *http.Request) bool {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Long: ")
			chunk := strings.Repeat("y", 4096)
			for range 2 * maxHeaderBytes / len(chunk) {
				if _, err := io.WriteString(c, chunk); err != nil {
					return false
				}
			}
			return false
		})
	})
	client, _ := newPollClient(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), prompt)
	defer cancel()
	_, err := getBody(ctx, client, s.url("/"))
	if !errors.Is(err, errHeaderTooLarge) {
		t.Errorf("error %v, want errHeaderTooLarge", err)
	}
}
