package watch

import (
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
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestPollTransportRoundTrip(t *testing.T) {
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Echo-Method", r.Method)
		w.Header().Set("X-Echo-Header", r.Header.Get("X-Req"))
		w.Header().Set("X-Echo-Query", r.URL.RawQuery)
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		w.WriteHeader(http.StatusTeapot)
		fmt.Fprintf(w, "%s %s body=%q", r.Method, r.URL.Path, body)
	})
	client, _ := newPollClient(t, nil)

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
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
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
	p, err := newPath("http://"+srv.Listener.Addr().String(), "", tr)
	if err != nil {
		t.Fatal(err)
	}
	key := &resource{key: resourceKey{region: "main", kind: kindKey, name: "k"}}
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, idx, err := key.fetch(ctx, p, uint64(i), 0)
		cancel()
		if err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
		if res.key != "v" {
			t.Fatalf("get %d: value %q, want v", i, res.key)
		}
		if idx != 7 {
			t.Errorf("get %d: index %d, want 7", i, idx)
		}
	}
	// A missing key is an empty value, not an error: the 404 went through.
	missing := &resource{key: resourceKey{region: "main", kind: kindKey, name: "missing"}}
	if res, _, err := missing.fetch(context.Background(), p, 0, 0); err != nil || res.key != "" {
		t.Errorf("missing key: %q, %v; want \"\", nil", res.key, err)
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
		client, tr := newPollClient(t, cfg)
		before := conns.Load()
		for i := 0; i < 3; i++ {
			body, err := getBody(context.Background(), client, srv.URL+"/x")
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
		if n := idleConns(tr); n != 1 {
			t.Errorf("%d idle connections, want 1", n)
		}
		if cfg.ServerName != "" {
			t.Errorf("the caller's tls.Config was changed: ServerName %q", cfg.ServerName)
		}
	})
	t.Run("server name from config", func(t *testing.T) {
		// The certificate names example.com: a configured name is the one
		// verified, not the URL's host.
		client, _ := newPollClient(t, &tls.Config{RootCAs: pool, ServerName: "example.com"})
		if _, err := getBody(context.Background(), client, srv.URL); err != nil {
			t.Fatal(err)
		}
		client, _ = newPollClient(t, &tls.Config{RootCAs: pool, ServerName: "other.test"})
		_, err := getBody(context.Background(), client, srv.URL)
		var herr x509.HostnameError
		if !errors.As(err, &herr) {
			t.Errorf("error %v, want an x509.HostnameError", err)
		}
	})
	for name, cfg := range map[string]*tls.Config{"empty config": {}, "nil config": nil} {
		t.Run(name, func(t *testing.T) {
			client, tr := newPollClient(t, cfg)
			_, err := getBody(context.Background(), client, srv.URL)
			var uerr x509.UnknownAuthorityError
			if !errors.As(err, &uerr) {
				t.Errorf("error %v, want an x509.UnknownAuthorityError", err)
			}
			var verr *tls.CertificateVerificationError
			if !errors.As(err, &verr) {
				t.Errorf("error %v, want a tls.CertificateVerificationError", err)
			}
			if n := idleConns(tr); n != 0 {
				t.Errorf("%d idle connections, want 0", n)
			}
		})
	}
}

func TestPollTransportUnsupportedScheme(t *testing.T) {
	tr := newPollTransport(nil)
	for _, u := range []string{"ftp://127.0.0.1/x", "unix:///tmp/consul.sock", "HTTP2://127.0.0.1/"} {
		body := &closeRecorder{Reader: strings.NewReader("x")}
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

type closeRecorder struct {
	io.Reader
	closed atomic.Bool
}

func (b *closeRecorder) Close() error { b.closed.Store(true); return nil }

// The transport closes the request body, as a RoundTripper must, on success
// and on failure alike.
func TestPollTransportClosesRequestBody(t *testing.T) {
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s", b)
	})
	client, _ := newPollClient(t, nil)
	for _, url := range []string{srv.URL, closedAddr(t)} {
		body := &closeRecorder{Reader: strings.NewReader("payload")}
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
