package main

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/regiondns/regiondns/cache"
	"github.com/regiondns/regiondns/engine"
	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/watch"
	"github.com/regiondns/regiondns/zones"
)

func TestRunCommands(t *testing.T) {
	valid, err := filepath.Abs("../../zones/testdata/valid-full.yml")
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yml")
	if err := os.WriteFile(bad, []byte("zone: pg.example.internal.\nclusterz: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "version", args: []string{"version"}, wantCode: 0, wantStdout: "regiondns dev"},
		{name: "unknown command", args: []string{"serv"}, wantCode: 2, wantStderr: `unknown command "serv"`},
		{name: "check-config valid", args: []string{"check-config"}, env: map[string]string{"REGIONDNS_CONFIG": valid},
			wantCode: 0, wantStdout: "OK"},
		{name: "check-config unknown key", args: []string{"check-config"}, env: map[string]string{"REGIONDNS_CONFIG": bad},
			wantCode: 1, wantStderr: `"clusterz"`},
		{name: "check-config missing file", args: []string{"check-config"},
			env: map[string]string{"REGIONDNS_CONFIG": filepath.Join(t.TempDir(), "none.yml")}, wantCode: 1, wantStderr: "none.yml"},
		{name: "bad duration", args: []string{"check-config"}, env: map[string]string{"REGIONDNS_CONSUL_WAIT": "soon"},
			wantCode: 2, wantStderr: "CONSUL_WAIT"},
		{name: "wait over consul's limit", args: []string{"check-config"}, env: map[string]string{"REGIONDNS_CONSUL_WAIT": "11m"},
			wantCode: 2, wantStderr: "REGIONDNS_CONSUL_WAIT: 11m0s is not valid; want between 1s and 10m"},
		{name: "consul response limit too small", args: []string{"check-config"}, env: map[string]string{"REGIONDNS_CONSUL_MAX_RESPONSE": "1000"},
			wantCode: 2, wantStderr: "REGIONDNS_CONSUL_MAX_RESPONSE: 1000 is not valid; want at least 65536 (bytes)"},
		{name: "bad tcp conns", args: []string{"check-config"}, env: map[string]string{"REGIONDNS_TCP_MAX_CONNS": "0"},
			wantCode: 2, wantStderr: "REGIONDNS_TCP_MAX_CONNS: 0 is not valid"},
		{name: "source share over the bound", args: []string{"check-config"},
			env:      map[string]string{"REGIONDNS_MAX_INFLIGHT": "100", "REGIONDNS_MAX_INFLIGHT_PER_SOURCE": "200"},
			wantCode: 2, wantStderr: "REGIONDNS_MAX_INFLIGHT_PER_SOURCE: 200 is not valid; want 1 to REGIONDNS_MAX_INFLIGHT (100)"},
		{name: "bad RRL slip", args: []string{"check-config"}, env: map[string]string{"REGIONDNS_RRL_SLIP": "-1"},
			wantCode: 2, wantStderr: "REGIONDNS_RRL_SLIP: -1 is not valid"},
		{name: "bad log level", args: []string{"serve"}, env: map[string]string{"REGIONDNS_LOG_LEVEL": "loud"},
			wantCode: 2, wantStderr: `REGIONDNS_LOG_LEVEL: "loud" is not valid`},
		{name: "bad log format", args: []string{"serve"}, env: map[string]string{"REGIONDNS_LOG_FORMAT": "xml"},
			wantCode: 2, wantStderr: `REGIONDNS_LOG_FORMAT: "xml" is not valid`},
		{name: "serve with missing zone file", args: []string{"serve"},
			env: map[string]string{"REGIONDNS_CONFIG": filepath.Join(t.TempDir(), "none.yml")}, wantCode: 1, wantStderr: "none.yml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d (stderr %q)", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout = %q, want it to contain %q", stdout.String(), tt.wantStdout)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr.String(), tt.wantStderr)
			}
		})
	}
}

func TestReadyzNamesTheUnreadRegion(t *testing.T) {
	cfg := &zones.Config{
		Regions: []zones.Region{
			{Name: "main", Role: zones.RoleMain, Datacenter: "dc1", ConsulHTTP: []string{"http://127.0.0.1:1"}},
			{Name: "standby", Role: zones.RoleStandby, Datacenter: "dc2", ConsulHTTP: []string{"http://127.0.0.1:1"}},
		},
		Clusters: []zones.Cluster{{Label: "orders", Scopes: map[string]string{"main": "orders", "standby": "orders"},
			Namespace: "service", Layout: policy.LayoutDirect, Tags: policy.DefaultRoleTags()}},
	}
	w, err := watch.New(cfg, watch.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	// Never run: no region has been read.
	e := engine.New(cfg, w, &cache.Store{}, engine.Options{})
	h := newHTTPHandler(e, testMetrics(t))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "region main") {
		t.Errorf("/readyz before any read = %d %q, want 503 naming region main", rec.Code, rec.Body.String())
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("/healthz = %d, want 200", rec.Code)
	}
}

// TestTuneGC: without GOGC, regiondns collects at gcPercent; an operator's
// GOGC is left as the runtime applied it.
func TestTuneGC(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })

	tuneGC(func(string) string { return "" })
	if got := debug.SetGCPercent(100); got != gcPercent {
		t.Errorf("without GOGC: GC percent %d, want %d", got, gcPercent)
	}
	tuneGC(func(k string) string {
		if k == "GOGC" {
			return "100"
		}
		return ""
	})
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC=100: GC percent %d, want 100 (left alone)", got)
	}
}
