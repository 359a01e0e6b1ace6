package watch

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/watch/consultest"
	"github.com/regiondns/regiondns/zones"
)

func entry(scope, member, node, addr string, port int, status string, tags ...string) *api.ServiceEntry {
	return &api.ServiceEntry{
		Node:    &api.Node{Node: node, Address: addr},
		Service: &api.AgentService{ID: scope + "/" + member, Service: scope, Address: addr, Port: port, Tags: tags},
		Checks: api.HealthChecks{
			{CheckID: "serfHealth", Status: api.HealthPassing},
			{CheckID: "service:" + scope + "/" + member, Status: status},
		},
	}
}

// closedAddr returns an HTTP address nothing listens on.
func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func testConfig(mainAddr, standbyAddr string) *zones.Config {
	return &zones.Config{
		Zone: "pg.example.internal.",
		Regions: []zones.Region{
			{Name: "main", Role: zones.RoleMain, Datacenter: "dc1", ConsulHTTP: []string{mainAddr}},
			{Name: "standby", Role: zones.RoleStandby, Datacenter: "dc2", ConsulHTTP: []string{standbyAddr}},
		},
		Clusters: []zones.Cluster{{
			Label: "orders", Scopes: map[string]string{"main": "orders", "standby": "orders"},
			Namespace: "service", Layout: policy.LayoutDirect, Tags: policy.DefaultRoleTags(),
			ROFallback: policy.FallbackLeader,
		}},
	}
}

var fastOptions = Options{WaitTime: 2 * time.Second, MinInterval: time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}

func startWatcher(t *testing.T, cfg *zones.Config) *Watcher {
	t.Helper()
	return startWatcherWith(t, cfg, fastOptions)
}

func startWatcherWith(t *testing.T, cfg *zones.Config, opts Options) *Watcher {
	t.Helper()
	w, err := New(cfg, opts, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	runWatcher(t, w)
	return w
}

// runWatcher runs w until the test ends.
func runWatcher(t *testing.T, w *Watcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("watcher did not stop within 5s of cancel")
		}
	})
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWatcherReadsMembersAndKV(t *testing.T) {
	main, standby := consultest.New(t, "dc1"), consultest.New(t, "dc2")
	main.Set(func(f *consultest.Fake) {
		f.Entries["orders"] = []*api.ServiceEntry{
			entry("orders", "pg-1", "n1", "10.0.0.1", 5432, api.HealthPassing, "master", "primary"),
			entry("orders", "pg-2", "n2", "10.0.0.2", 5432, api.HealthCritical, "replica"),
		}
		f.KV = api.KVPairs{
			{Key: "service/orders/leader", Value: []byte("pg-1")},
			{Key: "service/orders/members/pg-1", Value: []byte(`{"role":"master","timeline":4}`)},
		}
	})
	w := startWatcher(t, testConfig(main.URL(), standby.URL()))
	waitFor(t, "main region known", func() bool { return w.Inputs()["orders"].Main.Known })

	got := w.Inputs()["orders"].Main
	want := []policy.Instance{
		{ID: "orders/pg-1", Member: "pg-1", Node: "n1", Address: netip.MustParseAddr("10.0.0.1"), Port: 5432,
			Tags: []string{"master", "primary"}, Role: policy.RoleLeader, Health: policy.HealthPassing},
		{ID: "orders/pg-2", Member: "pg-2", Node: "n2", Address: netip.MustParseAddr("10.0.0.2"), Port: 5432,
			Tags: []string{"replica"}, Role: policy.RoleReplica, Health: policy.HealthCritical,
			OtherHealth: policy.HealthCritical},
	}
	if fmt.Sprint(got.Members) != fmt.Sprint(want) {
		t.Errorf("members = %+v, want %+v", got.Members, want)
	}
	if got.LeaderKey != "pg-1" || got.Timelines["pg-1"] != 4 {
		t.Errorf("kv = leader %q timelines %v, want pg-1 and timeline 4", got.LeaderKey, got.Timelines)
	}
	if got.Stale {
		t.Error("main region stale, want fresh")
	}
	waitFor(t, "ready once both regions were read", w.Ready)
	if st := w.Status()[0]; st.Requests == 0 || st.Errors != 0 {
		t.Errorf("main status counts %d requests, %d errors; want some requests and no error", st.Requests, st.Errors)
	}
}

// A scope with characters Patroni replaces in its service name is watched
// under Patroni's name for it: "Orders+EU" registers "ordersu0043eu".
func TestWatcherWatchesPatronisServiceName(t *testing.T) {
	main, standby := consultest.New(t, "dc1"), consultest.New(t, "dc2")
	main.Set(func(f *consultest.Fake) {
		f.Entries["ordersu0043eu"] = []*api.ServiceEntry{
			entry("Orders+EU", "pg-1", "n1", "10.0.0.1", 5432, api.HealthPassing, "master", "primary"),
		}
		f.KV = api.KVPairs{{Key: "service/Orders+EU/leader", Value: []byte("pg-1")}}
	})
	cfg := testConfig(main.URL(), standby.URL())
	cfg.Clusters[0].Scopes["main"] = "Orders+EU"
	w := startWatcher(t, cfg)
	waitFor(t, "main region known", func() bool { return w.Inputs()["orders"].Main.Known })
	got := w.Inputs()["orders"].Main
	if len(got.Members) != 1 || got.Members[0].Member != "pg-1" || got.LeaderKey != "pg-1" {
		t.Errorf("main region: members %+v, leader key %q; want pg-1 read from service ordersu0043eu and leading", got.Members, got.LeaderKey)
	}
}

func TestWatcherBlockingIndex(t *testing.T) {
	main, standby := consultest.New(t, "dc1"), consultest.New(t, "dc2")
	w := startWatcher(t, testConfig(main.URL(), standby.URL()))
	waitFor(t, "first read", func() bool { return w.Inputs()["orders"].Main.Known })

	// The next query blocks on index 10; a change answers it at index 11.
	main.Set(func(f *consultest.Fake) {
		f.Index = 11
		f.Entries["orders"] = []*api.ServiceEntry{entry("orders", "pg-1", "n1", "10.0.0.1", 5432, api.HealthPassing, "primary")}
	})
	waitFor(t, "change seen", func() bool { return len(w.Inputs()["orders"].Main.Members) == 1 })
	waitFor(t, "query at index 11", func() bool { return main.Parked("/v1/health/service/orders", 11) })

	// An index that goes backwards resets to 0: a full read, not a wait.
	main.Set(func(f *consultest.Fake) { f.Index = 5 })
	waitFor(t, "reset to index 0 after the index went backwards", func() bool {
		reqs := main.Requests()
		for i, r := range reqs {
			if r.Path == "/v1/health/service/orders" && r.Index == "11" {
				for _, later := range reqs[i+1:] {
					if later.Path == r.Path && (later.Index == "" || later.Index == "0") {
						return true
					}
				}
			}
		}
		return false
	})

	// An index of 0 is treated as 1, so the loop blocks instead of spinning.
	main.Set(func(f *consultest.Fake) { f.Index = 0 })
	waitFor(t, "query at index 1 after index 0", func() bool { return main.Parked("/v1/health/service/orders", 1) })
}

func TestWatcherFallsBackToOtherRegion(t *testing.T) {
	// The main region's own agent is down; the standby region's agent answers
	// for dc1 when asked with ?dc=dc1, as a federated agent does.
	standbyAgent := consultest.New(t, "dc1")
	standbyAgent.Set(func(f *consultest.Fake) {
		f.Entries["orders"] = []*api.ServiceEntry{entry("orders", "pg-1", "n1", "10.0.0.1", 5432, api.HealthPassing, "primary")}
	})
	w := startWatcher(t, testConfig(closedAddr(t), standbyAgent.URL()))
	waitFor(t, "main region read through the standby agent", func() bool {
		m := w.Inputs()["orders"].Main
		return m.Known && !m.Stale && len(m.Members) == 1
	})
	var viaDC bool
	for _, r := range standbyAgent.Requests() {
		viaDC = viaDC || (r.Path == "/v1/health/service/orders" && r.DC == "dc1")
	}
	if !viaDC {
		t.Error("no query with dc=dc1 reached the standby region's agent")
	}
	st := w.Status()[0]
	if st.Stale || len(st.Via) == 0 || !strings.Contains(st.Via[0], "?dc=dc1") {
		t.Errorf("main status = %+v, want fresh, read via ...?dc=dc1", st)
	}
}

// A region whose own agent goes away while its blocking queries are parked
// is read through the other region's agent, and the status says so at once,
// not after the next change (up to a wait time later).
func TestWatcherStatusShowsFallbackAtOnce(t *testing.T) {
	own, other := consultest.New(t, "dc1"), consultest.New(t, "dc1")
	for _, f := range []*consultest.Fake{own, other} {
		f.Set(func(f *consultest.Fake) {
			f.Entries["orders"] = []*api.ServiceEntry{entry("orders", "pg-1", "n1", "10.0.0.1", 5432, api.HealthPassing, "primary")}
		})
	}
	opts := fastOptions
	opts.WaitTime = time.Minute // a parked query returns only on a change
	w := startWatcherWith(t, testConfig(own.URL(), other.URL()), opts)
	waitFor(t, "main read through its own agent", func() bool {
		st := w.Status()[0]
		return st.Ready && !st.Stale && len(st.Via) == 1 && st.Via[0] == own.URL()
	})
	// The agent dies: no new connection, the parked queries cut off.
	own.Server().Listener.Close()
	own.Server().CloseClientConnections()
	own.Server().Close()
	want := other.URL() + "?dc=dc1"
	waitFor(t, "main read through "+want, func() bool {
		st := w.Status()[0]
		return !st.Stale && len(st.Via) == 1 && st.Via[0] == want
	})
}

// A region whose Consul answers again after an outage is fresh at the first
// successful read, not only after the next change (up to a wait time later).
func TestWatcherRecoversAtOnce(t *testing.T) {
	main, standby := consultest.New(t, "dc1"), consultest.New(t, "dc2")
	main.Set(func(f *consultest.Fake) {
		f.Entries["orders"] = []*api.ServiceEntry{entry("orders", "pg-1", "n1", "10.0.0.1", 5432, api.HealthPassing, "primary")}
	})
	opts := fastOptions
	opts.WaitTime = time.Minute // a parked query returns only on a change
	w := startWatcherWith(t, testConfig(main.URL(), standby.URL()), opts)
	waitFor(t, "main read", func() bool { st := w.Status()[0]; return st.Ready && !st.Stale })
	main.Set(func(f *consultest.Fake) { f.Status = http.StatusInternalServerError })
	waitFor(t, "main stale", func() bool { return w.Status()[0].Stale })
	main.Set(func(f *consultest.Fake) { f.Status = 0 })
	waitFor(t, "main fresh again", func() bool { return !w.Status()[0].Stale })
	if m := w.Inputs()["orders"].Main; m.Stale || len(m.Members) != 1 {
		t.Errorf("main after the outage = %+v, want fresh with its member", m)
	}
}

func TestWatcherUnreachableRegion(t *testing.T) {
	standby := consultest.New(t, "dc2")
	w := startWatcher(t, testConfig(closedAddr(t), standby.URL()))
	waitFor(t, "ready after the first failed read", w.Ready)
	in := w.Inputs()["orders"]
	if in.Main.Known || !in.Main.Stale {
		t.Errorf("main = known %t stale %t, want unknown and stale", in.Main.Known, in.Main.Stale)
	}
	if st := w.Status()[0]; !st.Stale || !strings.Contains(st.LastError, ErrUnreachable.Error()) {
		t.Errorf("main status = %+v, want stale with %q", st, ErrUnreachable)
	}
	// Every try of an unreachable region fails: its own agent, and the
	// standby agent asked for dc1 (which this fake does not serve). A try
	// in flight is counted as a request before it fails, so the counts
	// are compared between tries.
	var st RegionStatus
	deadline := time.Now().Add(5 * time.Second)
	for st = w.Status()[0]; st.Errors == 0 || st.Errors != st.Requests; st = w.Status()[0] {
		if time.Now().After(deadline) {
			t.Fatalf("main status counts %d requests, %d errors; want every request failed", st.Requests, st.Errors)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestWatcherKeepsLastKnownWhenConsulGoesAway(t *testing.T) {
	main, standby := consultest.New(t, "dc1"), consultest.New(t, "dc2")
	main.Set(func(f *consultest.Fake) {
		f.Entries["orders"] = []*api.ServiceEntry{entry("orders", "pg-1", "n1", "10.0.0.1", 5432, api.HealthPassing, "primary")}
	})
	w := startWatcher(t, testConfig(main.URL(), standby.URL()))
	waitFor(t, "first read", func() bool { return w.Inputs()["orders"].Main.Known })
	main.Server().CloseClientConnections()
	main.Server().Close()
	waitFor(t, "main stale", func() bool { return w.Inputs()["orders"].Main.Stale })
	if m := w.Inputs()["orders"].Main; len(m.Members) != 1 || !m.Known {
		t.Errorf("main after outage = %+v, want the last known member kept", m)
	}
}

func TestWatcherACLDenialNeverLogsToken(t *testing.T) {
	const secret = "9c1f3f2e-secret-token-value"
	t.Setenv("CONSUL_HTTP_TOKEN", secret)
	main, standby := consultest.New(t, "dc1"), consultest.New(t, "dc2")
	main.Set(func(f *consultest.Fake) { f.Status = http.StatusForbidden })
	w := startWatcher(t, testConfig(main.URL(), standby.URL()))
	waitFor(t, "ready", w.Ready)
	st := w.Status()[0]
	if !st.Stale || !strings.Contains(st.LastError, "403") {
		t.Errorf("main status = %+v, want stale with a 403 error", st)
	}
	if strings.Contains(fmt.Sprintf("%+v", w.Status()), secret) {
		t.Error("status contains the ACL token")
	}
	// A denial is not an outage: it must not fall through to the other
	// region's agents, which would hide the misconfiguration.
	for _, r := range standby.Requests() {
		if r.DC == "dc1" {
			t.Errorf("denied query was retried through the standby agent: %+v", r)
		}
	}
}

func TestConvertEntries(t *testing.T) {
	noAddr := entry("orders", "pg-3", "n3", "", 5432, api.HealthPassing, "replica")
	noAddr.Node.Address = "10.0.0.3"
	host := entry("orders", "pg-4", "n4", "db4.example", 5432, api.HealthPassing, "replica")
	warn := entry("orders", "pg-5", "n5", "::1", 5433, api.HealthWarning, "standby-leader")
	got, _ := convertEntries([]*api.ServiceEntry{noAddr, host, warn, nil}, policy.DefaultRoleTags())
	if len(got) != 2 {
		t.Fatalf("got %d instances, want 2 (hostname address skipped): %+v", len(got), got)
	}
	if got[0].Address != netip.MustParseAddr("10.0.0.3") || got[0].Member != "pg-3" {
		t.Errorf("node address fallback: got %+v", got[0])
	}
	if got[1].Health != policy.HealthWarning || got[1].Role != policy.RoleStandbyLeader || got[1].Port != 5433 {
		t.Errorf("warning standby leader: got %+v", got[1])
	}
}

func TestConvertKV(t *testing.T) {
	pairs := api.KVPairs{
		{Key: "service/orders/leader", Value: []byte("pg-2\n")},
		{Key: "service/orders/members/pg-1", Value: []byte(`{"role":"replica","timeline":3}`)},
		{Key: "service/orders/members/pg-2", Value: []byte(`{"role":"master","timeline":4}`)},
		{Key: "service/orders/members/pg-3", Value: []byte(`not json`)},
		{Key: "service/orders/config", Value: []byte(`{"standby_cluster":{}}`)},
	}
	got := convertKV("service/orders/", pairs, false)
	if got.leader != "pg-2" || got.timelines["pg-1"] != 3 || got.timelines["pg-2"] != 4 || len(got.timelines) != 2 {
		t.Errorf("convertKV = %+v", got)
	}
	if strings.Join(got.members, ",") != "pg-1,pg-2,pg-3" {
		t.Errorf("member keys = %v, want pg-1,pg-2,pg-3 (an unreadable value still marks a running member)", got.members)
	}
	if got.config != policy.ConfigStandby {
		t.Errorf("config with standby_cluster read as %v, want ConfigStandby", got.config)
	}
}

func TestReadConfig(t *testing.T) {
	tests := []struct {
		value string
		want  policy.ClusterConfig
	}{
		{`{"ttl":30,"standby_cluster":{"host":"10.0.0.1","port":5432}}`, policy.ConfigStandby},
		{`{"ttl":30}`, policy.ConfigPrimary},
		{`{"ttl":30,"standby_cluster":null}`, policy.ConfigPrimary},
		{`not json`, policy.ConfigUnknown},
	}
	for _, tt := range tests {
		if got, _ := readConfig([]byte(tt.value)); got != tt.want {
			t.Errorf("readConfig(%s) = %v, want %v", tt.value, got, tt.want)
		}
	}
	if got := convertKV("service/orders/", nil, false).config; got != policy.ConfigUnknown {
		t.Errorf("no config key read as %v, want ConfigUnknown", got)
	}
}

func TestWatcherReconfigure(t *testing.T) {
	main, standby := consultest.New(t, "dc1"), consultest.New(t, "dc2")
	main.Set(func(f *consultest.Fake) {
		f.Entries["orders"] = []*api.ServiceEntry{entry("orders", "pg-1", "n1", "10.0.0.1", 5432, api.HealthPassing, "primary")}
		f.Entries["billing"] = []*api.ServiceEntry{entry("billing", "b-1", "n2", "10.0.0.2", 5432, api.HealthPassing, "primary")}
	})
	cfg := testConfig(main.URL(), standby.URL())
	w := startWatcher(t, cfg)
	waitFor(t, "first read", w.Ready)

	bad := testConfig(main.URL(), standby.URL())
	bad.Regions[0].TokenFile = "/nonexistent/token"
	if err := w.Reconfigure(bad); err == nil || !strings.Contains(err.Error(), "/nonexistent/token") {
		t.Fatalf("Reconfigure with a missing token file = %v, want an error naming the file", err)
	}

	next := testConfig(main.URL(), standby.URL())
	billing := next.Clusters[0]
	billing.Label, billing.Scopes = "billing", map[string]string{"main": "billing", "standby": "billing"}
	next.Clusters = append(next.Clusters, billing)
	if err := w.Reconfigure(next); err != nil {
		t.Fatal(err)
	}
	// The unchanged cluster keeps its data: no new first read is needed.
	if in := w.Inputs()["orders"]; !in.Main.Known || len(in.Main.Members) != 1 {
		t.Errorf("orders after reconfigure = %+v, want its data kept", in.Main)
	}
	waitFor(t, "the new cluster read", func() bool { return len(w.Inputs()["billing"].Main.Members) == 1 })
	// Its loops wait in their blocking queries, none about to be sent.
	waitFor(t, "billing parked", func() bool {
		return main.Parked("/v1/health/service/billing", 10) && main.Parked("/v1/kv/service/billing/leader", 10)
	})

	// Dropping a cluster stops its loops.
	if err := w.Reconfigure(testConfig(main.URL(), standby.URL())); err != nil {
		t.Fatal(err)
	}
	if _, ok := w.Inputs()["billing"]; ok {
		t.Error("billing still in the inputs after it was removed")
	}
	// A request billing sent just before the Reconfigure can reach the
	// fake after it returned: one round of wake-ups first, so that only
	// requests sent after the removal are checked.
	for round := range 2 {
		before := len(main.Requests())
		main.Set(func(f *consultest.Fake) { f.Index++ }) // wakes every blocking query
		waitFor(t, "orders re-queried", func() bool { return len(main.Requests()) > before })
		if round == 0 {
			continue
		}
		for _, r := range main.Requests()[before:] {
			if r.Path == "/v1/health/service/billing" {
				t.Errorf("the removed cluster's service was still queried: %+v", r)
			}
		}
	}
}

// Patroni rewrites its member keys every loop_wait: the index moves while
// nothing a decision reads changes. Such an answer must not announce an
// update (which would rebuild the snapshot).
func TestWatcherSkipsUnchangedData(t *testing.T) {
	main, standby := consultest.New(t, "dc1"), consultest.New(t, "dc2")
	main.Set(func(f *consultest.Fake) {
		f.Entries["orders"] = []*api.ServiceEntry{entry("orders", "pg-1", "n1", "10.0.0.1", 5432, api.HealthPassing, "primary")}
	})
	w := startWatcher(t, testConfig(main.URL(), standby.URL()))
	waitFor(t, "ready", w.Ready)
	waitFor(t, "parked at index 10", func() bool { return main.Parked("/v1/health/service/orders", 10) })
	select {
	case <-w.Updates():
	default:
	}
	main.Set(func(f *consultest.Fake) { f.Index = 11 }) // same data, new index
	waitFor(t, "re-queried at index 11", func() bool {
		return main.Parked("/v1/health/service/orders", 11) && main.Parked("/v1/kv/service/orders/", 11)
	})
	select {
	case <-w.Updates():
		t.Error("an answer with a new index but the same data announced an update")
	default:
	}
	main.Set(func(f *consultest.Fake) {
		f.Index = 12
		f.Entries["orders"][0].Checks[1].Status = api.HealthCritical
	})
	select {
	case <-w.Updates():
	case <-time.After(5 * time.Second):
		t.Error("a health change announced no update")
	}
}

func TestRateLimiter(t *testing.T) {
	l := newRateLimiter(time.Hour)
	if !l.allow("main") || l.allow("main") {
		t.Error("want the first event of a key through and the second held back")
	}
	if !l.allow("standby") {
		t.Error("a key's limit held back another key")
	}
}

// TestWatcherSpreadsFirstWait: the loops start together, so the first
// blocking query of each waits a random part of the wait time (half to
// all of it), and the later ones the whole wait time: their answers do not
// all come back in the same second ever after.
func TestWatcherSpreadsFirstWait(t *testing.T) {
	main, standby := consultest.New(t, "dc1"), consultest.New(t, "dc2")
	labels := make([]string, 20)
	for i := range labels {
		labels[i] = fmt.Sprintf("c%02d", i)
	}
	startWatcher(t, withClusters(testConfig(main.URL(), standby.URL()), nil, labels...))
	for _, l := range labels {
		waitFor(t, l+" blocking", func() bool { return main.Parked("/v1/health/service/"+l, 10) })
	}
	// One change: every service answers at 11 and blocks again.
	main.Set(func(f *consultest.Fake) { f.Index = 11 })
	for _, l := range labels {
		waitFor(t, l+" blocking again", func() bool { return main.Parked("/v1/health/service/"+l, 11) })
	}
	full := fastOptions.WaitTime.Milliseconds()
	firsts := map[string]bool{}
	for _, r := range main.Requests() {
		if !strings.HasPrefix(r.Path, "/v1/health/service/") {
			continue
		}
		ms, err := strconv.ParseInt(strings.TrimSuffix(r.Wait, "ms"), 10, 64)
		switch {
		case r.Index == "10" && (err != nil || ms < full/2 || ms > full):
			t.Errorf("%s: first blocking query waits %q, want %dms to %dms", r.Path, r.Wait, full/2, full)
		case r.Index == "10":
			firsts[r.Wait] = true
		case r.Index == "11" && r.Wait != fmt.Sprintf("%dms", full):
			t.Errorf("%s: later blocking query waits %q, want %dms", r.Path, r.Wait, full)
		}
	}
	if len(firsts) < 10 {
		t.Errorf("the first blocking queries of 20 services waited %d different times, want them spread: %v", len(firsts), firsts)
	}
}
