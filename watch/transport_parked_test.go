package watch

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"
)

// parkServer accepts n connections and reads one request header from each,
// all on one goroutine, and closes ready; then, for each connection i sent
// on answer, writes a 200 answer "ok" on it; the others are never
// answered. It runs that one goroutine and no other.
func parkServer(t *testing.T, n int) (url string, ready <-chan struct{}, answer chan<- int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	readyCh, answerCh, stopped := make(chan struct{}), make(chan int), make(chan struct{})
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
		for i := range answerCh {
			writeOK(held[i], "ok")
		}
	}()
	t.Cleanup(func() {
		close(answerCh)
		ln.Close()
		<-stopped
		for _, c := range held {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String() + "/v1/health/service/x?index=9&wait=5m", readyCh, answerCh
}

// parkRequests parks n requests through rt on a server that never answers and
// returns by how many goroutines the process grew once all are parked. It
// then cancels them and checks that each returns context.Canceled.
func parkRequests(t *testing.T, rt http.RoundTripper, n int) (grown, before int) {
	t.Helper()
	url, ready, _ := parkServer(t, n)
	client := &http.Client{Transport: rt}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	before = runtime.NumGoroutine()
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := getBody(ctx, client, url)
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
	timeout := time.After(prompt)
	for i := 0; i < n; i++ {
		select {
		case err := <-errs:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("parked request: error %v, want context.Canceled", err)
			}
		case <-timeout:
			t.Fatalf("%d of %d canceled requests still blocked after %v", n-i, n, prompt)
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
		grown, before := parkRequests(t, tr, n)
		t.Logf("%d parked requests: %d more goroutines", n, grown)
		if grown > n+10 {
			t.Errorf("%d parked requests grew the process by %d goroutines, want at most %d", n, grown, n+10)
		}
		if k := idleConns(tr); k != 0 {
			t.Errorf("%d idle connections after cancel, want 0", k)
		}
		// Nothing stays behind once the requests returned.
		deadline := time.Now().Add(prompt)
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
		grown, _ := parkRequests(t, tr, n)
		t.Logf("%d parked requests: %d more goroutines", n, grown)
		if grown < 2*n {
			t.Errorf("net/http's Transport grew by only %d goroutines for %d requests: the measure is broken", grown, n)
		}
	})
}
