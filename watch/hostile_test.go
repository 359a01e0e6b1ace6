package watch

// Tests of what a hostile or broken Consul (or a proxy in front of it) can
// send: answers too large to hold, error pages that echo the request's
// token, ports that do not fit, and of a token file others can read.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/watch/consultest"
	"github.com/regiondns/regiondns/zones"
)

// logBuffer collects log output for a test; safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newLoggedWatcher builds a Watcher for cfg whose log goes to the returned
// buffer, every read error logged (no rate limit); it does not run it.
func newLoggedWatcher(t *testing.T, cfg *zones.Config, opts Options) (*Watcher, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	w, err := New(cfg, opts, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	w.errLog = newRateLimiter(0)
	return w, logs
}

// bigBody is a Consul answer of size bytes: a JSON list of health entries
// (valid, every entry a Patroni member) or an error page.
func bigBody(size int, valid bool) []byte {
	if !valid {
		return bytes.Repeat([]byte("<p>Internal Server Error</p>\n"), size/28+1)[:size]
	}
	one, _ := json.Marshal(entry("orders", "pg-1", "node-1", "10.0.0.1", 5432, api.HealthPassing, "replica"))
	b := make([]byte, 0, size+len(one))
	b = append(b, '[')
	for len(b) < size-len(one)-1 {
		b = append(b, one...)
		b = append(b, ',')
	}
	b = append(b, one...)
	return append(b, ']')
}

// bigConsul answers every request with body, status 200 for valid JSON and
// 500 otherwise, in chunks (no Content-Length) unless withLength.
func bigConsul(t *testing.T, body []byte, valid, withLength bool) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Consul-Index", "7")
		if withLength {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		if !valid {
			w.WriteHeader(http.StatusInternalServerError)
		}
		for b := body; len(b) > 0; {
			n := min(len(b), 64<<10)
			if _, err := w.Write(b[:n]); err != nil {
				return // the client stopped reading
			}
			w.(http.Flusher).Flush()
			b = b[n:]
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// A 30 MiB answer, valid JSON or an error page, fails the read with
// ErrResponseTooLarge at the default limit of 8 MiB, and the read
// allocates no more than the limit allows: decoding stops there, and of an
// error page only the first bytes are kept.
func TestFetchBoundsMemory(t *testing.T) {
	const size = 30 << 20
	for _, tc := range []struct {
		name       string
		valid      bool
		withLength bool
		bound      uint64
	}{
		{"error page, chunked", false, false, 64 << 20},
		{"error page, with length", false, true, 64 << 20},
		{"health JSON, chunked", true, false, 96 << 20},
		{"health JSON, with length", true, true, 96 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := bigConsul(t, bigBody(size, tc.valid), tc.valid, tc.withLength)
			tr, err := newTransport(time.Second, DefaultOptions.MaxResponse)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(tr.CloseIdleConnections)
			p, err := newPath(srv.URL, "", tr)
			if err != nil {
				t.Fatal(err)
			}
			tags := policy.DefaultRoleTags()
			r := &resource{key: resourceKey{region: "main", kind: kindHealth, name: "orders"}, tags: &tags}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()

			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			res, _, err := r.fetch(ctx, p, 0, time.Second)
			runtime.ReadMemStats(&after)

			if !errors.Is(err, ErrResponseTooLarge) {
				t.Errorf("read of a 30 MiB answer: %d instances, error %v; want ErrResponseTooLarge", len(res.instances), err)
			}
			grown := after.TotalAlloc - before.TotalAlloc
			t.Logf("the read allocated %d MiB", grown>>20)
			if grown > tc.bound {
				t.Errorf("the read allocated %d MiB, want under %d MiB", grown>>20, tc.bound>>20)
			}
		})
	}
}

// Through the Watcher: the region goes stale with an error that names the
// resource, the datacenter and the limit, in its status and its log; the
// other region's agents are not asked (they would answer the same).
func TestWatcherResponseTooLarge(t *testing.T) {
	const limit = 1 << 20
	big := bigConsul(t, bigBody(30<<20, true), true, false)
	standby := consultest.New(t, "dc2")
	opts := fastOptions
	opts.MaxResponse = limit
	w, logs := newLoggedWatcher(t, testConfig(big.URL, standby.URL()), opts)
	runWatcher(t, w)
	want := fmt.Sprintf("in dc1: response larger than REGIONDNS_CONSUL_MAX_RESPONSE (%d bytes)", limit)
	waitFor(t, "main stale with the size error", func() bool {
		st := w.Status()[0]
		return st.Stale && strings.Contains(st.LastError, want)
	})
	if st := w.Status()[0]; !strings.Contains(st.LastError, "consul health/service/orders in dc1") &&
		!strings.Contains(st.LastError, "consul kv/service/orders/ in dc1") &&
		!strings.Contains(st.LastError, "consul kv/regiondns/ in dc1") &&
		!strings.Contains(st.LastError, "consul kv/service/orders/leader in dc1") {
		t.Errorf("last error %q does not name the resource", st.LastError)
	}
	waitFor(t, "a log line naming the size limit for health/service/orders", func() bool {
		return strings.Contains(logs.String(), "consul health/service/orders "+want)
	})
	for _, r := range standby.Requests() {
		if r.DC == "dc1" {
			t.Errorf("a read over the size limit was tried through the standby agent: %+v", r)
		}
	}
}

// echoConsul answers every request 500 with a body that quotes the token
// the request carried, and the tokens also, each written by enc, as a
// proxy that echoes request headers in its error page would. A request
// carrying marker has "after reload" in its answer.
type echoConsul struct {
	srv    *httptest.Server
	mu     sync.Mutex
	marker string
	also   []string
	seen   map[string]bool // the tokens requests carried; guarded by mu
}

func newEchoConsul(t *testing.T, enc func(string) string, marker string, also ...string) *echoConsul {
	e := &echoConsul{marker: marker, also: also, seen: map[string]bool{}}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := r.Header.Get("X-Consul-Token")
		e.mu.Lock()
		e.seen[tok] = true
		e.mu.Unlock()
		var b strings.Builder
		if tok == e.marker {
			b.WriteString("after reload\n")
		}
		fmt.Fprintf(&b, "X-Consul-Token: %s\n%s\n", enc(tok), enc(tok))
		for _, a := range e.also {
			fmt.Fprintf(&b, "%s\n", enc(a))
		}
		http.Error(w, b.String(), http.StatusInternalServerError)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *echoConsul) saw(token string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.seen[token]
}

// writeToken writes a token file with mode 0600.
func writeToken(t *testing.T, path, token string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Every token the process knows (CONSUL_HTTP_TOKEN, CONSUL_HTTP_TOKEN_FILE,
// a region's token_file, before and after a reload rotates it) is redacted
// from the last error of /debug/state and from the log, however an error
// page in front of Consul echoes it.
func TestWatcherRedactsEchoedTokens(t *testing.T) {
	const (
		envToken  = "11111111-aaaa-4bbb-8ccc-dddddddddddd"
		fileToken = "22222222-eeee-4fff-8aaa-bbbbbbbbbbbb"
		// Not a UUID: URL encoding changes it, and it holds a header name.
		mainToken  = "s3cret+main/token=1"
		afterToken = "33333333-cccc-4ddd-8eee-ffffffffffff"
	)
	for _, tc := range []struct {
		name string
		enc  func(string) string
		// leak returns the part of the encoded token that must not appear.
		leak func(string) string
	}{
		{"as sent", func(s string) string { return s }, nil},
		{"lower case", strings.ToLower, nil},
		{"upper case", strings.ToUpper, nil},
		{"URL-encoded", url.QueryEscape, nil},
		{"JSON-quoted", func(s string) string { b, _ := json.Marshal(s); return string(b) }, nil},
		{"basic auth", func(s string) string {
			return "Basic " + base64.StdEncoding.EncodeToString([]byte("user:"+s))
		}, func(enc string) string { return enc[len("Basic ")+8 : len(enc)-4] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			envFile, mainFile := filepath.Join(dir, "env-token"), filepath.Join(dir, "main-token")
			writeToken(t, envFile, fileToken)
			writeToken(t, mainFile, mainToken)
			t.Setenv("CONSUL_HTTP_TOKEN", envToken)
			t.Setenv("CONSUL_HTTP_TOKEN_FILE", envFile)
			agent := newEchoConsul(t, tc.enc, afterToken, envToken, fileToken, mainToken)
			cfg := testConfig(agent.srv.URL, agent.srv.URL)
			cfg.Regions[0].TokenFile = mainFile

			w, logs := newLoggedWatcher(t, cfg, fastOptions)
			runWatcher(t, w)
			check := func(when string, tokens ...string) {
				t.Helper()
				texts := map[string]string{"log": logs.String()}
				for _, st := range w.Status() {
					texts["last error of "+st.Name] = st.LastError
					if !strings.Contains(st.LastError, Redacted) {
						t.Errorf("%s: last error of %s = %q, want a redacted echo", when, st.Name, st.LastError)
					}
				}
				for what, text := range texts {
					for _, tok := range tokens {
						leak := tc.enc(tok)
						if tc.leak != nil {
							leak = tc.leak(leak)
						}
						// Its first 12 bytes: no part of a token is left
						// either.
						if strings.Contains(strings.ToLower(text), strings.ToLower(leak[:12])) {
							t.Errorf("%s: %s holds %q (token %s):\n%s", when, what, leak, tok, text)
						}
					}
				}
			}
			waitFor(t, "both regions failing with an echo", func() bool {
				st := w.Status()
				return agent.saw(mainToken) && agent.saw(fileToken) &&
					strings.Contains(st[0].LastError, "500") && strings.Contains(st[1].LastError, "500")
			})
			check("before the reload", envToken, fileToken, mainToken)

			t.Log("the main region's token file is rotated, and the configuration reloaded")
			writeToken(t, mainFile, afterToken)
			if err := w.Reconfigure(cfg); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "an echo of the new token in the status and the log", func() bool {
				return strings.Contains(w.Status()[0].LastError, "after reload") && strings.Contains(logs.String(), "after reload")
			})
			check("after the reload", envToken, fileToken, mainToken, afterToken)
		})
	}
}

// A region token file that group or others can read is reported in the
// region's status and the log; once it is private again (and the
// configuration reloaded), the warning is gone.
func TestWatcherWarnsOfOpenTokenFile(t *testing.T) {
	main, standby := consultest.New(t, "dc1"), consultest.New(t, "dc2")
	dir := t.TempDir()
	open, private := filepath.Join(dir, "open"), filepath.Join(dir, "private")
	writeToken(t, open, "aaaaaaaa-0000-4000-8000-000000000001")
	writeToken(t, private, "aaaaaaaa-0000-4000-8000-000000000002")
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(main.URL(), standby.URL())
	cfg.Regions[0].TokenFile, cfg.Regions[1].TokenFile = open, private
	w, logs := newLoggedWatcher(t, cfg, fastOptions)
	st := w.Status()
	if !strings.Contains(st[0].TokenFileWarning, open) || !strings.Contains(st[0].TokenFileWarning, "0644") {
		t.Errorf("main token_file_warning = %q, want it to name %s and mode 0644", st[0].TokenFileWarning, open)
	}
	if st[1].TokenFileWarning != "" {
		t.Errorf("standby token_file_warning = %q for a 0600 file, want none", st[1].TokenFileWarning)
	}
	if l := logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "region=main") || strings.Contains(l, "region=standby") {
		t.Errorf("log = %q, want one warning, for main", l)
	}
	b, err := json.Marshal(st[0])
	if err != nil || !strings.Contains(string(b), `"token_file_warning":`) {
		t.Errorf("status JSON %s (%v) has no token_file_warning", b, err)
	}

	if err := os.Chmod(open, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := w.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	if st := w.Status(); st[0].TokenFileWarning != "" {
		t.Errorf("main token_file_warning = %q after chmod 600 and a reload, want none", st[0].TokenFileWarning)
	}
}

// A port outside 1-65535 leaves its instance out, with a warning, instead
// of being cut to 16 bits.
func TestWatcherIgnoresPortsOutOfRange(t *testing.T) {
	main, standby := consultest.New(t, "dc1"), consultest.New(t, "dc2")
	main.Set(func(f *consultest.Fake) {
		f.Entries["orders"] = []*api.ServiceEntry{
			entry("orders", "pg-1", "n1", "10.0.0.1", 5432, api.HealthPassing, "master", "primary"),
			entry("orders", "pg-2", "n2", "10.0.0.2", 65536+5432, api.HealthPassing, "replica"),
			entry("orders", "pg-3", "n3", "10.0.0.3", 0, api.HealthPassing, "replica"),
			entry("orders", "pg-4", "n4", "10.0.0.4", -1, api.HealthPassing, "replica"),
			entry("orders", "pg-5", "n5", "10.0.0.5", 65535, api.HealthPassing, "replica"),
		}
	})
	w, logs := newLoggedWatcher(t, testConfig(main.URL(), standby.URL()), fastOptions)
	runWatcher(t, w)
	waitFor(t, "main region known", func() bool { return w.Inputs()["orders"].Main.Known })
	var got []string
	for _, m := range w.Inputs()["orders"].Main.Members {
		got = append(got, fmt.Sprintf("%s:%d", m.Member, m.Port))
	}
	if want := "pg-1:5432 pg-5:65535"; strings.Join(got, " ") != want {
		t.Errorf("members %v, want %s", got, want)
	}
	// The warning is logged right after the read is stored.
	waitFor(t, "the warning", func() bool { return strings.Contains(logs.String(), "consul instances ignored") })
	for _, want := range []string{"consul instances ignored", "count=3", "orders/pg-2: port 70968 is outside 1-65535"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log does not say %q:\n%s", want, logs)
		}
	}
}
