package main

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/watch/consultest"
)

// ctlRun runs regiondns ctl against ts (its zone file, and its HTTP
// handler as --server unless noServer) and returns the exit code and
// output.
func (ts *testServer) ctl(t *testing.T, noServer bool, args ...string) (int, string, string) {
	t.Helper()
	args = append(args, "--config", ts.zonePath, "--wait", "5s")
	if !noServer {
		args = append(args, "--server", ts.http.URL)
	}
	var stdout, stderr bytes.Buffer
	code := run(append([]string{"ctl"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// key returns the value of key in f's KV, and whether it is there.
func key(f *consultest.Fake, k string) ([]byte, bool) {
	var v []byte
	found := false
	f.Set(func(f *consultest.Fake) {
		for _, p := range f.KV {
			if p.Key == k {
				v, found = p.Value, true
			}
		}
	})
	return v, found
}

func wantOutput(t *testing.T, what, out string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(out, s) {
			t.Errorf("%s: output does not contain %q:\n%s", what, s, out)
		}
	}
}

// ctl pin writes the pin to both regions' KV as the JSON the server reads,
// says what the answers will become, and returns once the server applies
// it; ctl unpin removes it from both, and the server lets go.
func TestCtlPinRoundTrip(t *testing.T) {
	ts := startTestServer(t)
	start := time.Now()
	code, out, errOut := ts.ctl(t, false, "pin", "orders", "main", "--reason", "DR drill", "--for", "2h")
	if code != 0 {
		t.Fatalf("ctl pin = %d: %s%s", code, out, errOut)
	}
	wantOutput(t, "ctl pin", out,
		"wrote regiondns/pin/orders in region main (datacenter dc1", "wrote regiondns/pin/orders in region standby (datacenter dc2",
		"the answers of orders will become:", "active      main (unchanged)", "rw          pg-1@10.0.0.1:5432 (unchanged)",
		"pin: applied: pinned to region main until", "(DR drill)", "the server applies it (control keys read from region main")
	for _, f := range []*consultest.Fake{ts.main, ts.standby} {
		v, ok := key(f, "regiondns/pin/orders")
		p := policy.ParsePin(v)
		if !ok || p.Invalid != "" || p.Active != "main" || p.Reason != "DR drill" ||
			p.Expires.Before(start.Add(2*time.Hour-time.Second)) || p.Expires.After(time.Now().Add(2*time.Hour)) {
			t.Errorf("pin key = %q (present %t), want main for 2h", v, ok)
		}
	}
	cs, err := (&ctl{o: ctlOptions{server: ts.http.URL}}).serverCluster("orders")
	if err != nil || cs.Decision.Pin == nil || !cs.Decision.Pin.Applied {
		t.Fatalf("server decision after ctl pin: %+v, %v; want the pin applied", cs, err)
	}

	code, out, errOut = ts.ctl(t, false, "unpin", "orders")
	if code != 0 {
		t.Fatalf("ctl unpin = %d: %s%s", code, out, errOut)
	}
	wantOutput(t, "ctl unpin", out, "removed regiondns/pin/orders in region main", "removed regiondns/pin/orders in region standby",
		"the server applies it")
	for _, f := range []*consultest.Fake{ts.main, ts.standby} {
		if v, ok := key(f, "regiondns/pin/orders"); ok {
			t.Errorf("pin key after unpin = %q, want none", v)
		}
	}
	if cs, _ := (&ctl{o: ctlOptions{server: ts.http.URL}}).serverCluster("orders"); cs == nil || cs.Decision.Pin != nil {
		t.Errorf("server decision after ctl unpin: %+v, want no pin", cs)
	}
}

// A pin the policy would ignore is written, and ctl says it will be
// ignored and why.
func TestCtlPinUnsafe(t *testing.T) {
	ts := startTestServer(t)
	code, out, errOut := ts.ctl(t, false, "pin", "orders", "standby", "--reason", "drill", "--for", "1h")
	if code != 0 {
		t.Fatalf("ctl pin = %d: %s%s", code, out, errOut)
	}
	wantOutput(t, "ctl pin to a standby cluster", out, "active      main (unchanged)",
		"pin: IGNORED (unsafe): pin to region standby ignored as unsafe: it has no primary and region main has one")
}

// ctl drain takes a replica out of ro as the server sees it, and says so
// beforehand; ctl undrain puts it back. A drain of the leader is written
// but said not to apply.
func TestCtlDrainRoundTrip(t *testing.T) {
	ts := startTestServer(t)
	code, out, errOut := ts.ctl(t, false, "drain", "orders", "pg-2", "--reason", "VACUUM FULL")
	if code != 0 {
		t.Fatalf("ctl drain = %d: %s%s", code, out, errOut)
	}
	wantOutput(t, "ctl drain", out, "wrote regiondns/drain/orders/pg-2 in region main",
		"ro          pg-3@10.0.0.3:5432 (was pg-2@10.0.0.2:5432 pg-3@10.0.0.3:5432)", "drained: pg-2", "the server applies it")
	for _, f := range []*consultest.Fake{ts.main, ts.standby} {
		if v, _ := key(f, "regiondns/drain/orders/pg-2"); policy.ParseDrain("pg-2", v).Reason != "VACUUM FULL" {
			t.Errorf("drain key = %q, want the reason", v)
		}
	}
	cs, err := (&ctl{o: ctlOptions{server: ts.http.URL}}).serverCluster("orders")
	if err != nil || len(cs.Decision.RO) != 1 || cs.Decision.RO[0].Member != "pg-3" {
		t.Fatalf("server ro after the drain: %+v, %v; want pg-3 alone", cs.Decision.RO, err)
	}

	code, out, errOut = ts.ctl(t, false, "undrain", "orders", "pg-2")
	if code != 0 {
		t.Fatalf("ctl undrain = %d: %s%s", code, out, errOut)
	}
	wantOutput(t, "ctl undrain", out, "removed regiondns/drain/orders/pg-2 in region main",
		"ro          pg-2@10.0.0.2:5432 pg-3@10.0.0.3:5432 (was pg-3@10.0.0.3:5432)", "the server applies it")
	if _, ok := key(ts.main, "regiondns/drain/orders/pg-2"); ok {
		t.Error("drain key left after undrain")
	}

	code, out, errOut = ts.ctl(t, false, "drain", "orders", "pg-1")
	if code != 0 {
		t.Fatalf("ctl drain of the leader = %d: %s%s", code, out, errOut)
	}
	wantOutput(t, "ctl drain of the leader", out, "rw          pg-1@10.0.0.1:5432 (unchanged)",
		"NOT drained, leading a region (a switchover is Patroni's job): pg-1")

	code, out, _ = ts.ctl(t, false, "state", "orders")
	if code != 0 {
		t.Fatalf("ctl state = %d", code)
	}
	wantOutput(t, "ctl state", out, "control keys under regiondns/: from region main", "orders: active region main",
		"rw          pg-1@10.0.0.1:5432", "pin: none", "pg-1: NOT drained: it leads a region", "last change #")
}

// The names ctl is given are checked before anything is written.
func TestCtlRefuses(t *testing.T) {
	ts := startTestServer(t)
	tests := []struct {
		name    string
		args    []string
		code    int
		wantErr string
	}{
		{name: "unknown cluster", args: []string{"pin", "ordres", "main", "--reason", "x", "--for", "1h"}, code: 1,
			wantErr: `cluster "ordres" is not in the zone file; want one of orders, billing`},
		{name: "unknown region", args: []string{"pin", "orders", "east", "--reason", "x", "--for", "1h"}, code: 1,
			wantErr: `region "east" is not in the zone file; want one of main, standby`},
		{name: "no reason", args: []string{"pin", "orders", "main", "--for", "1h"}, code: 2, wantErr: "pin needs --reason"},
		{name: "no duration", args: []string{"pin", "orders", "main", "--reason", "x"}, code: 2, wantErr: "--for 0s is not valid"},
		{name: "too long", args: []string{"pin", "orders", "main", "--reason", "x", "--for", "2000h"}, code: 2,
			wantErr: "--for 2000h0m0s is not valid; want a duration up to 720h0m0s"},
		{name: "unknown member", args: []string{"drain", "orders", "pg-9"}, code: 1,
			wantErr: `member "pg-9" of cluster orders is not known to the server; want one of pg-1, pg-2, pg-3, s-1, s-2 (or --force`},
		{name: "missing argument", args: []string{"drain", "orders"}, code: 2, wantErr: `drain takes <cluster> <member>, not ["orders"]`},
		{name: "unknown command", args: []string{"pinn", "orders"}, code: 2, wantErr: `unknown command "pinn"`},
		{name: "unknown flag", args: []string{"unpin", "orders", "--reason", "x"}, code: 2, wantErr: "flag provided but not defined: -reason"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := ts.ctl(t, false, tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("ctl %q = %d %q, want %d and %q (stdout %q)", tt.args, code, errOut, tt.code, tt.wantErr, out)
			}
		})
	}
	ts.main.Set(func(f *consultest.Fake) {
		if len(f.KV) != 0 {
			t.Errorf("refused commands wrote %d keys", len(f.KV))
		}
	})
	// --force drains a member the server does not know (it may register
	// later).
	if code, out, errOut := ts.ctl(t, false, "drain", "orders", "pg-9", "--force"); code != 0 {
		t.Errorf("ctl drain --force = %d: %s%s", code, out, errOut)
	}
}

// Without --server, ctl checks the zone file only, writes, and says how to
// see more; ctl state reads the keys from Consul. A region that cannot be
// written is an error naming it, after the other region was written.
func TestCtlWithoutServer(t *testing.T) {
	ts := startTestServer(t)
	code, out, errOut := ts.ctl(t, true, "drain", "orders", "pg-2")
	if code != 0 {
		t.Fatalf("ctl drain = %d: %s%s", code, out, errOut)
	}
	wantOutput(t, "ctl drain without --server", out, "member pg-2 not checked", "wrote regiondns/drain/orders/pg-2 in region main",
		"run with --server")
	code, out, errOut = ts.ctl(t, true, "pin", "orders", "main", "--reason", "drill", "--for", "1h")
	if code != 0 {
		t.Fatalf("ctl pin = %d: %s%s", code, out, errOut)
	}
	code, out, _ = ts.ctl(t, true, "state")
	if code != 0 {
		t.Fatalf("ctl state = %d", code)
	}
	wantOutput(t, "ctl state without --server", out, "control keys under regiondns/ in region main",
		"pin of orders: to region main until", "(drill)", "drain of orders member pg-2")

	ts.standby.Set(func(f *consultest.Fake) { f.Status = http.StatusForbidden })
	code, out, errOut = ts.ctl(t, true, "undrain", "orders", "pg-2")
	if code != 1 || !strings.Contains(errOut, "region standby") || !strings.Contains(out, "removed regiondns/drain/orders/pg-2 in region main") {
		t.Errorf("ctl undrain with the standby region denied = %d %q %q, want 1, main written, standby named", code, out, errOut)
	}
	if _, ok := key(ts.main, "regiondns/drain/orders/pg-2"); ok {
		t.Error("the main region's key was not removed")
	}
	var standbyKeys []string
	ts.standby.Set(func(f *consultest.Fake) {
		for _, p := range f.KV {
			standbyKeys = append(standbyKeys, p.Key)
		}
	})
	if !slices.Contains(standbyKeys, "regiondns/drain/orders/pg-2") {
		t.Errorf("standby keys = %q, want the drain still there (the write was denied)", standbyKeys)
	}
}
