package patroni_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/e2e"
)

// The read-quality tests against real Patroni (issue 13): a cluster "sales"
// of three members in the main region, in Patroni's synchronous mode, that
// regiondns reads with ro_max_lag 16MB. Its members have addresses of their
// own (127.1.5.<n>), so that it can run beside TestPatroniTwoRegions; it
// needs no PgBouncer, and regiondns listens on a free port.

const (
	salesScope  = "sales"
	salesSettle = 3 // ro_lag_settle, seconds
)

// readsEnv is the environment of TestPatroniReads.
type readsEnv struct {
	*env
	members []*member // sales-1 is the first leader
}

// TestPatroniReads: sync.sales answers Patroni's synchronous standby and
// follows it when Patroni picks another; a replica whose WAL replay stops
// while the leader writes past ro_max_lag leaves ro.sales, and returns once
// it has caught up; and what following reads costs Consul with real
// Patroni, measured.
func TestPatroniReads(t *testing.T) {
	if os.Getenv("REGIONDNS_E2E_PATRONI") != "1" {
		t.Skip("set REGIONDNS_E2E_PATRONI=1 to run (make e2e-patroni does, after installing Patroni, PostgreSQL and PgBouncer)")
	}
	start := time.Now()
	e := startReadsEnv(t)
	e.result(t, "reads environment up in %.1fs (3 Patroni members in synchronous mode, 7 Consul agents, regiondns)", time.Since(start).Seconds())
	for _, s := range []struct {
		name string
		run  func(*testing.T, *readsEnv)
	}{
		{"SyncStandby", testSyncStandby},
		{"LagLeavesRO", testLagLeavesRO},
		{"RequestRate", testReadsRequestRate},
	} {
		if !t.Run(s.name, func(t *testing.T) { s.run(t, e) }) {
			t.Fatalf("step %s failed; the steps after it start from its end state, so they are not run", s.name)
		}
	}
	e.writeResults(t)
}

// startReadsEnv starts the federation, the three members (sales-1 leads),
// and regiondns.
func startReadsEnv(t *testing.T) *readsEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the Patroni e2e tests run as root: they run PostgreSQL as the postgres user")
	}
	for _, bin := range []string{patroniBin, pgBinDir + "/postgres", "/usr/bin/psql"} {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%s missing: run scripts/install-patroni-deps.sh (make e2e-patroni does)", bin)
		}
	}
	reapStaleRuns(t)
	e := &readsEnv{env: &env{pg: lookupPostgres(t), nodeBouncers: map[string]*bouncer{}, pools: map[string]*bouncer{}}}
	e.pg.mkdir(t, runBase())
	root, err := os.MkdirTemp(runBase(), "run-reads-")
	if err != nil {
		t.Fatal(err)
	}
	e.root = root
	e.pg.mkdir(t, root)
	if err := os.WriteFile(filepath.Join(root, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("run directory %s (kept when the test fails)", root)
	startWatchdog(t, root)
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("REGIONDNS_PATRONI_KEEP") != "" {
			t.Logf("keeping the run directory %s", root)
			return
		}
		removeAllFiles(t, root)
	})
	ports := e2e.FreePorts(t, 2)
	e.pgPort, e.apiPort = ports[0], ports[1]

	extra := map[string]any{"session_ttl_min": "1s"}
	e.fed = e2e.StartFederation(t, e2e.FederationOptions{ClientAgents: true, ExtraConfig: extra})
	agents := e.fed.StartClientAgents(t, e.fed.DC1, []string{"sales-1-node", "sales-2-node", "sales-3-node"}, extra)
	for i, a := range agents {
		m := &member{
			Name: fmt.Sprintf("sales-%d", i+1), Region: "main", Addr: fmt.Sprintf("127.1.5.%d", i+1),
			Agent: a, e: e.env, Scope: salesScope,
			// Patroni's synchronous mode: the leader names one replica its
			// synchronous standby in the sync key.
			DCS: map[string]any{"synchronous_mode": true},
		}
		m.Dir = filepath.Join(root, m.Name)
		m.Cfg = filepath.Join(m.Dir, "patroni.yml")
		e.pg.mkdir(t, m.Dir)
		m.writeConfig(t, nil)
		e.members = append(e.members, m)
	}
	e.main = e.members
	t.Cleanup(func() {
		for _, m := range e.members {
			m.crash()
			if t.Failed() {
				t.Logf("--- patroni %s log ---\n%s\n--- postgresql %s log ---\n%s", m.Name,
					tailFile(filepath.Join(m.Dir, "patroni.log"), 16<<10), m.Name,
					tailFile(filepath.Join(m.Dir, "pglog", "postgresql.log"), 8<<10))
			}
		}
	})
	m1 := e.members[0]
	m1.start(t)
	m1.waitRole(t, setupTimeout, "master")
	for _, m := range e.members[1:] {
		m.start(t)
	}
	for _, m := range e.members[1:] {
		m.waitRole(t, setupTimeout, "replica")
	}
	if _, err := psql(m1.Addr, e.pgPort, "CREATE TABLE probe (id bigserial PRIMARY KEY, note text, at timestamptz DEFAULT now())"); err != nil {
		t.Fatalf("create the probe table on sales-1: %v", err)
	}
	zone := e.fed.ZoneYAML(e2e.ZoneOptions{Zone: zone, Clusters: []e2e.ZoneCluster{{Label: salesScope, MainScope: salesScope}}})
	zone = strings.Replace(zone, "layout: direct}", fmt.Sprintf("layout: direct, ro_max_lag: 16MB, ro_lag_settle: %d}", salesSettle), 1)
	e.rdns = e2e.StartRegiondns(t, zone, nil)
	return e
}

// salesName returns "<kind>.sales.<zone>".
func salesName(kind string) string { return kind + "." + salesScope + "." + zone }

// syncStandby returns the synchronous standbys Patroni's sync key names.
func (e *readsEnv) syncStandby() ([]string, error) {
	pair, _, err := e.fed.DC1.Server.API().KV().Get("service/"+salesScope+"/sync", nil)
	if err != nil || pair == nil {
		return nil, fmt.Errorf("sync key: %v (present %t)", err, pair != nil)
	}
	var v struct {
		SyncStandby *string `json:"sync_standby"`
	}
	if err := json.Unmarshal(pair.Value, &v); err != nil {
		return nil, err
	}
	if v.SyncStandby == nil {
		return nil, nil
	}
	return strings.Split(*v.SyncStandby, ","), nil
}

// waitSyncStandby waits until Patroni's sync key names one standby other
// than not, and returns it.
func (e *readsEnv) waitSyncStandby(t *testing.T, not *member) *member {
	t.Helper()
	var got *member
	e2e.WaitFor(t, setupTimeout, func() (bool, string) {
		names, err := e.syncStandby()
		if err != nil || len(names) != 1 {
			return false, fmt.Sprintf("sync standbys %v (%v), want one", names, err)
		}
		for _, m := range e.members {
			if strings.EqualFold(m.Name, names[0]) && m != not {
				got = m
				return true, ""
			}
		}
		return false, fmt.Sprintf("sync standby %s", names[0])
	})
	return got
}

// lookupAIn is lookupA against this environment's regiondns.
func (e *readsEnv) lookupA(name string) ([]string, string, error) {
	resp, err := e2e.Exchange(e.rdns.DNSAddr(), e2e.NewQuery(name, dns.TypeA), false)
	if err != nil {
		return nil, "", err
	}
	txt, err := e2e.Exchange(e.rdns.DNSAddr(), e2e.NewQuery(name, dns.TypeTXT), true)
	if err != nil {
		return nil, "", err
	}
	return e2e.AnswerAddrs(resp), strings.Join(e2e.AnswerTXT(txt), " | "), nil
}

// waitName waits until name answers the addresses of want, its TXT
// containing each of txt.
func (e *readsEnv) waitName(t *testing.T, name string, want []*member, txt ...string) {
	t.Helper()
	e2e.WaitFor(t, waitTimeout, func() (bool, string) {
		got, line, err := e.lookupA(name)
		if err != nil || !slices.Equal(got, addrs(want...)) {
			return false, fmt.Sprintf("A %s = %v (%v), want %v; TXT %q", name, got, err, addrs(want...), line)
		}
		for _, s := range txt {
			if !strings.Contains(line, s) {
				return false, fmt.Sprintf("TXT %s = %q, want it to contain %q", name, line, s)
			}
		}
		return true, ""
	})
}

// testSyncStandby: sync.sales answers the standby Patroni's sync key
// names; when that standby's Patroni and PostgreSQL die, Patroni names the
// other replica, and sync.sales follows.
func testSyncStandby(t *testing.T, e *readsEnv) {
	sync := e.waitSyncStandby(t, nil)
	e.waitName(t, salesName("sync"), []*member{sync}, "synchronous standby "+sync.Name)
	t.Logf("sync.%s TXT: %s", salesScope, lookupTXTAt(e.rdns.DNSAddr(), salesName("sync")))

	start := time.Now()
	sync.crash()
	next := e.waitSyncStandby(t, sync)
	picked := time.Since(start)
	e.waitName(t, salesName("sync"), []*member{next}, "synchronous standby "+next.Name)
	e.result(t, "reads:       sync.%s moved from %s to %s %.1fs after %s died (Patroni named %s after %.1fs)",
		salesScope, sync.Name, next.Name, time.Since(start).Seconds(), sync.Name, next.Name, picked.Seconds())
	sync.start(t)
	sync.waitRole(t, setupTimeout, "replica")
}

// testLagLeavesRO: WAL replay stops on the replica that is not the
// synchronous standby while the leader writes past ro_max_lag: it leaves
// ro.sales (the TXT says by how much), and comes back once it has caught
// up. Patroni 3.0.2 writes a replica's xlog_location as the greater of its
// received and replayed positions, so a paused replay alone does not show
// in its member key while the WAL still streams in: the WAL receiver is
// stopped too (SIGSTOP), and resumed with the replay. Patroni 4.1 and later
// write replay_lsn, which shows a paused replay alone.
func testLagLeavesRO(t *testing.T, e *readsEnv) {
	leader := e.members[0]
	sync := e.waitSyncStandby(t, nil)
	var lagging, other *member
	for _, m := range e.members[1:] {
		if m == sync {
			other = m
		} else {
			lagging = m
		}
	}
	e.waitName(t, salesName("ro"), []*member{lagging, other})

	if _, err := psql(lagging.Addr, e.pgPort, "SELECT pg_wal_replay_pause()"); err != nil {
		t.Fatal(err)
	}
	pid, err := psql(lagging.Addr, e.pgPort, "SELECT pid FROM pg_stat_wal_receiver")
	if err != nil || pid == "" {
		t.Fatalf("WAL receiver of %s: %q %v", lagging.Name, pid, err)
	}
	receiver, _ := strconv.Atoi(pid)
	if err := syscall.Kill(receiver, syscall.SIGSTOP); err != nil {
		t.Fatalf("stop the WAL receiver %d of %s: %v", receiver, lagging.Name, err)
	}
	resumed := false
	resume := func() {
		if resumed {
			return
		}
		resumed = true
		if err := syscall.Kill(receiver, syscall.SIGCONT); err != nil {
			t.Errorf("resume the WAL receiver of %s: %v", lagging.Name, err)
		}
		if _, err := psql(lagging.Addr, e.pgPort, "SELECT pg_wal_replay_resume()"); err != nil {
			t.Errorf("resume WAL replay on %s: %v", lagging.Name, err)
		}
	}
	t.Cleanup(resume)

	// About 48 MB of WAL: past the limit of 16 MB.
	start := time.Now()
	if _, err := psql(leader.Addr, e.pgPort, "INSERT INTO probe (note) SELECT repeat('x', 900) FROM generate_series(1, 40000)"); err != nil {
		t.Fatalf("write on %s: %v", leader.Name, err)
	}
	e.waitName(t, salesName("ro"), []*member{other}, "left out "+lagging.Name+" lag ")
	left := time.Since(start)
	_, txt, _ := e.lookupA(salesName("ro"))
	e.result(t, "reads:       %s left ro.%s %.1fs after the write began (TXT: %s)", lagging.Name, salesScope, left.Seconds(), txt)
	e.waitName(t, salesName("ro.main"), []*member{other}, "left out "+lagging.Name+" lag ")

	start = time.Now()
	resume()
	e.waitName(t, salesName("ro"), []*member{lagging, other})
	e.result(t, "reads:       %s back in ro.%s %.1fs after its replay resumed", lagging.Name, salesScope, time.Since(start).Seconds())
}

// testReadsRequestRate measures what following reads costs Consul: the
// answers of blocking queries on the cluster's KV prefix (and its sync
// key), which regiondns follows all the time for a cluster with
// ro_max_lag, while the leader takes a write every 100 ms (then every
// member key and the status key change every loop_wait) and while it takes
// none. Alongside, the same queries on the Patroni service, which regiondns
// follows for every cluster, account for the rest of regiondns's requests
// (the harness's agents sync every check output at once:
// check_update_interval 0s).
func testReadsRequestRate(t *testing.T, e *readsEnv) {
	const window = 30 * time.Second
	leader := e.members[0]
	measure := func(writes bool) followed {
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for n := 0; writes; n++ {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
					_, _ = psql(leader.Addr, e.pgPort, fmt.Sprintf("INSERT INTO probe (note) VALUES ('rate %d')", n))
				}
			}
		}()
		time.Sleep(2 * patroniLoopWait * time.Second)
		before := e.requests(t)
		f := e.followResources(t, window)
		f.regiondns = int(e.requests(t) - before)
		close(stop)
		<-done
		t.Logf("writes %t, %s: %s", writes, window, f)
		return f
	}
	busy, idle := measure(true), measure(false)
	rate := func(f followed) float64 { return float64(f.prefix+f.sync) / window.Seconds() }
	e.result(t, "reads:       following reads of one cluster of 3 members (loop_wait %ds) costs %.2f Consul requests/s in its region while the leader takes writes, %.2f/s idle (KV prefix and sync key answers; regiondns made %d and %d requests in all, the service's answers included)",
		patroniLoopWait, rate(busy), rate(idle), busy.regiondns, idle.regiondns)
	// Each member key and the status key change at most once per loop.
	if limit := float64(len(e.members)+1) / patroniLoopWait * 1.2; rate(busy) > limit {
		t.Errorf("following reads: %.2f requests/s while writing, want at most about one per changed key (%.1f/s)", rate(busy), limit)
	}
	// regiondns asks no more than those followers were answered.
	for _, f := range []followed{busy, idle} {
		// The control prefix, empty here, is answered at every KV write;
		// regiondns pauses a second after an answer that changed nothing
		// (watch.Options.ControlQuiet), so it asks it once a second at most.
		control := min(f.control, int(window/time.Second)+2)
		if sum := f.service + f.prefix + f.sync + f.leader + control; f.regiondns > sum+sum/10+5 {
			t.Errorf("regiondns made %d requests, the followers of what it reads were answered %d times (the control prefix's counted at most once a second: %d of %d)",
				f.regiondns, sum, control, f.control)
		}
	}
}

// requests returns regiondns's count of Consul requests for the main region.
func (e *readsEnv) requests(t *testing.T) uint64 {
	t.Helper()
	resp, err := http.Get("http://" + e.rdns.HTTPAddr() + "/debug/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Regions []struct {
			Name     string `json:"name"`
			Requests uint64 `json:"requests"`
		} `json:"regions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	for _, r := range st.Regions {
		if r.Name == "main" {
			return r.Requests
		}
	}
	t.Fatal("no region main in /debug/state")
	return 0
}

// lookupTXTAt returns the TXT line server answers for name.
func lookupTXTAt(server, name string) string {
	resp, err := e2e.Exchange(server, e2e.NewQuery(name, dns.TypeTXT), true)
	if err != nil {
		return fmt.Sprintf("(TXT: %v)", err)
	}
	return strings.Join(e2e.AnswerTXT(resp), " | ")
}

// follow runs a blocking query loop, as regiondns does, for d, and counts
// its answers with a new index; query runs one query at an index and
// returns the next one.
func follow(d time.Duration, query func(q *api.QueryOptions) (uint64, error)) (int, error) {
	index, err := query(nil)
	if err != nil {
		return 0, err
	}
	answers := 0
	deadline := time.Now().Add(d)
	for time.Until(deadline) > 0 {
		// The harness's API client gives up after 10 s.
		next, err := query(&api.QueryOptions{WaitIndex: index, WaitTime: min(time.Until(deadline), 5*time.Second)})
		if err != nil {
			return answers, err
		}
		if next != index {
			answers++
		}
		index = next
	}
	return answers, nil
}

// followed counts the answers with a new index that blocking queries on
// what regiondns follows of the cluster got, and the requests regiondns
// itself made meanwhile.
type followed struct {
	// control is the operator's control prefix (regiondns/), which
	// regiondns follows in every region whatever its clusters: while it
	// holds no key, Consul answers its blocking query at every KV write in
	// the datacenter, Patroni's member keys included; leader is Patroni's
	// leader key, followed on its own.
	service, prefix, sync, leader, control, regiondns int
	// keys counts, per key under the prefix, the answers it changed in.
	keys map[string]int
	errs []error
}

func (f followed) String() string {
	return fmt.Sprintf("regiondns made %d requests; blocking queries were answered: service %d, KV prefix %d, sync key %d, leader key %d, control prefix %d; keys changed %v; errors %v",
		f.regiondns, f.service, f.prefix, f.sync, f.leader, f.control, f.keys, f.errs)
}

// followResources follows, for d, what regiondns follows of the cluster in
// the main region: its Patroni service's health, its KV prefix, its sync
// key, its leader key and the control prefix.
func (e *readsEnv) followResources(t *testing.T, d time.Duration) followed {
	t.Helper()
	a := e.fed.DC1.Agent().API()
	prefix := "service/" + salesScope + "/"
	var mu sync.Mutex
	f := followed{keys: map[string]int{}}
	seen := map[string]uint64{}
	var wg sync.WaitGroup
	for _, r := range []struct {
		count *int
		query func(q *api.QueryOptions) (uint64, error)
	}{
		{&f.service, func(q *api.QueryOptions) (uint64, error) {
			_, meta, err := a.Health().Service(salesScope, "", false, q)
			if err != nil {
				return 0, err
			}
			return meta.LastIndex, nil
		}},
		{&f.prefix, func(q *api.QueryOptions) (uint64, error) {
			pairs, meta, err := a.KV().List(prefix, q)
			if err != nil {
				return 0, err
			}
			mu.Lock()
			defer mu.Unlock()
			for _, p := range pairs {
				if q != nil && seen[p.Key] != p.ModifyIndex {
					f.keys[strings.TrimPrefix(p.Key, prefix)]++
				}
				seen[p.Key] = p.ModifyIndex
			}
			return meta.LastIndex, nil
		}},
		{&f.sync, func(q *api.QueryOptions) (uint64, error) {
			_, meta, err := a.KV().Get(prefix+"sync", q)
			if err != nil {
				return 0, err
			}
			return meta.LastIndex, nil
		}},
		{&f.leader, func(q *api.QueryOptions) (uint64, error) {
			_, meta, err := a.KV().Get(prefix+"leader", q)
			if err != nil {
				return 0, err
			}
			return meta.LastIndex, nil
		}},
		{&f.control, func(q *api.QueryOptions) (uint64, error) {
			_, meta, err := a.KV().List("regiondns/", q)
			if err != nil {
				return 0, err
			}
			return meta.LastIndex, nil
		}},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := follow(d, r.query)
			mu.Lock()
			defer mu.Unlock()
			*r.count = n
			if err != nil {
				f.errs = append(f.errs, err)
			}
		}()
	}
	wg.Wait()
	if len(f.errs) > 0 {
		t.Fatalf("following what regiondns follows: %v", f.errs)
	}
	return f
}
