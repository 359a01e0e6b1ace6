package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/miekg/dns"
)

// BenchmarkConvergence measures, against real Consul, how long a leader
// change takes to reach regiondns's answers: from the moment the catalog
// write that moves a cluster's leader is sent (the index change) to the first
// rw answer naming the new leader. It reports p50 and p99, the same from a
// change driven by Patroni's lock (measured from the new leader's member
// key: memberkey-p50-ms, memberkey-p99-ms), and for the fleet
// the resident memory of regiondns, the mean snapshot rebuild time, the
// number of blocking queries it holds open and the request rate that makes
// on Consul while nothing changes.
//
// Run with `make bench-convergence` (a binary built without -race).
func BenchmarkConvergence(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run(fmt.Sprintf("clusters=%d", n), func(b *testing.B) { benchConvergence(b, n) })
	}
}

func benchConvergence(b *testing.B, n int) {
	b.StopTimer()
	f := StartFederation(b, FederationOptions{ExtraConfig: map[string]any{
		// One blocking query per watched resource: up to 6 per cluster.
		"limits": map[string]any{"http_max_conns_per_client": 16384},
	}})
	clusters := make([]ZoneCluster, n)
	for i := range n {
		clusters[i] = ZoneCluster{Label: fmt.Sprintf("c%d", i), MainScope: fmt.Sprintf("c%d", i)}
		clusters[i].StandbyScope = clusters[i].MainScope
	}
	start := time.Now()
	for ri, dc := range f.Datacenters() {
		scaleRegister(b, dc.Server, ri, n)
	}
	b.Logf("%d clusters registered in both regions in %s", n, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	// The profiles of REGIONDNS_BENCH_PROFILES come from /debug/pprof/.
	r := StartRegiondns(b, f.ZoneYAML(ZoneOptions{Clusters: clusters}), map[string]string{"REGIONDNS_PPROF": "true"})
	last := fmt.Sprintf("rw.c%d.pg.example.internal.", n-1)
	WaitFor(b, 2*time.Minute, func() (bool, string) {
		m, err := Exchange(r.DNSAddr(), NewQuery(last, dns.TypeA), false)
		if err != nil {
			return false, err.Error()
		}
		return len(AnswerAddrs(m)) == 1, fmt.Sprintf("%s = %v", last, AnswerAddrs(m))
	})
	b.Logf("regiondns ready and answering every cluster %s after start (RSS %d MiB)",
		time.Since(start).Round(time.Millisecond), scaleRSS(b, r.PID())>>20)
	if dir := os.Getenv("REGIONDNS_BENCH_PROFILES"); dir != "" {
		_, body := r.Get("/debug/pprof/heap?debug=1")
		_ = os.WriteFile(fmt.Sprintf("%s/memstats-ready-%d.prof", dir, n), body, 0o644)
		_, body = r.Get("/debug/pprof/heap")
		_ = os.WriteFile(fmt.Sprintf("%s/heap-ready-%d.prof", dir, n), body, 0o644)
	}

	// Steady state: with nothing changing, every blocking query (each
	// service, and each KV prefix being followed) asks once per
	// REGIONDNS_CONSUL_WAIT (60 s), and every other KV prefix is read once
	// per KV refresh (5 min on average). (A short window measures nothing: the
	// blocking queries all started together and are still parked.)
	_, body := r.Get("/debug/state")
	var st struct {
		Regions []struct {
			Resources int `json:"resources"`
			Following int `json:"following"`
		} `json:"regions"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		b.Fatal(err)
	}
	watches, idle := 0, 0
	for _, reg := range st.Regions {
		watches += reg.Following
		idle += reg.Resources - reg.Following
	}

	builds0 := scaleMetric(b, r, "regiondns_snapshot_build_duration_seconds_count")
	buildSum0 := scaleMetric(b, r, "regiondns_snapshot_build_duration_seconds_sum")
	leaders := make([]int, n) // 0: member 1 leads, 1: member 2 leads
	var lat []time.Duration
	b.StartTimer()
	for i := range b.N {
		c := i % n
		next := 1 - leaders[c]
		name := fmt.Sprintf("rw.c%d.pg.example.internal.", c)
		want := scaleMemberAddr(0, c, next+1)
		t0 := time.Now()
		scaleSetLeader(b, f.DC1.Server, c, next)
		for {
			m, err := Exchange(r.DNSAddr(), NewQuery(name, dns.TypeA), false)
			if err == nil && fmt.Sprint(AnswerAddrs(m)) == "["+want+"]" {
				break
			}
			if time.Since(t0) > 30*time.Second {
				b.Fatalf("%s never answered %s", name, want)
			}
			time.Sleep(200 * time.Microsecond)
		}
		lat = append(lat, time.Since(t0))
		leaders[c] = next
	}
	b.StopTimer()
	pct := func(lat []time.Duration, p float64) float64 {
		slices.Sort(lat)
		return float64(lat[int(math.Ceil(p*float64(len(lat))))-1].Microseconds()) / 1000
	}
	b.ReportMetric(pct(lat, 0.50), "p50-ms")
	b.ReportMetric(pct(lat, 0.99), "p99-ms")
	// The same leader changes driven by Patroni's lock, as Patroni makes
	// them: the leader key moves first, then the new leader's member key
	// says primary, and its tags follow last. Measured from the member key.
	keyLat := scaleLockChanges(b, f.DC1.Server, r, n, leaders, b.N)
	b.ReportMetric(pct(keyLat, 0.50), "memberkey-p50-ms")
	b.ReportMetric(pct(keyLat, 0.99), "memberkey-p99-ms")
	if builds := scaleMetric(b, r, "regiondns_snapshot_build_duration_seconds_count") - builds0; builds > 0 {
		b.ReportMetric((scaleMetric(b, r, "regiondns_snapshot_build_duration_seconds_sum")-buildSum0)/builds*1000, "build-ms")
	}
	b.ReportMetric(float64(scaleRSS(b, r.PID()))/(1<<20), "rss-MiB")
	if d, err := time.ParseDuration(os.Getenv("REGIONDNS_BENCH_SETTLE")); err == nil && d > 0 {
		// The resident memory once the process has been at rest for d: the
		// runtime returns freed memory to the system in the background.
		// With d over 3 minutes, the requests regiondns sent Consul from
		// 2 minutes on (the changed clusters' KV follow windows are over)
		// measure the idle load.
		const quiet = 2 * time.Minute
		var requests0 float64
		for t := time.Duration(0); t < d; t += 30 * time.Second {
			if t == quiet {
				requests0 = scaleMetric(b, r, "regiondns_region_consul_requests_total")
			}
			time.Sleep(30 * time.Second)
			b.Logf("at rest %s: RSS %d MiB", t+30*time.Second, scaleRSS(b, r.PID())>>20)
		}
		b.ReportMetric(float64(scaleRSS(b, r.PID()))/(1<<20), "rss-settled-MiB")
		if window := d.Truncate(30*time.Second) - quiet; window >= time.Minute {
			rate := (scaleMetric(b, r, "regiondns_region_consul_requests_total") - requests0) / window.Seconds()
			b.ReportMetric(rate, "idle-consul-req/s-measured")
		}
	}
	if dir := os.Getenv("REGIONDNS_BENCH_PROFILES"); dir != "" {
		// heap and memstats are taken after a collection: the live heap.
		for range 5 {
			r.Get("/debug/pprof/heap?gc=1")
		}
		for file, p := range map[string]string{
			"heap": "heap?gc=1", "goroutine": "goroutine", "allocs": "allocs", "memstats": "heap?debug=1&gc=1",
		} {
			_, body := r.Get("/debug/pprof/" + p)
			if err := os.WriteFile(fmt.Sprintf("%s/%s-%d.prof", dir, file, n), body, 0o644); err != nil {
				b.Error(err)
			}
		}
	}
	b.ReportMetric(float64(watches), "watches")
	// Computed from what is followed: each cluster's leader key in each
	// region waits five times REGIONDNS_CONSUL_WAIT, the other blocking
	// queries one; REGIONDNS_BENCH_SETTLE over 3m also measures it
	// (idle-consul-req/s-measured).
	keys := 2 * n
	b.ReportMetric(float64(watches-keys)/60+float64(keys)/300+float64(idle)/300, "idle-consul-req/s")
}

// scaleMemberAddr is the address of member m (1 or 2) of cluster c in region ri.
func scaleMemberAddr(ri, c, m int) string {
	return fmt.Sprintf("10.%d.%d.%d", 10+ri*10+m, c/250, c%250+1)
}

// scaleRegister registers n clusters in one datacenter through the catalog,
// 64 operations per transaction: main region members 1 (leader) and 2
// (replica); standby region member 1 as standby leader. No checks: an
// instance without checks is passing. KV: Patroni's leader key.
func scaleRegister(b *testing.B, a *Agent, ri, n int) {
	node := fmt.Sprintf("scale-%d", ri)
	var ops api.TxnOps
	flush := func() {
		if len(ops) == 0 {
			return
		}
		ok, resp, _, err := a.API().Txn().Txn(ops, nil)
		if err != nil || !ok {
			b.Fatalf("register: %v %+v", err, resp)
		}
		ops = ops[:0]
	}
	ops = append(ops, &api.TxnOp{Node: &api.NodeTxnOp{Verb: api.NodeSet, Node: api.Node{Node: node, Address: "127.0.0.1"}}})
	for c := range n {
		scope := fmt.Sprintf("c%d", c)
		tags := [][]string{{"master", "primary"}, {"replica"}}
		if ri == 1 {
			tags = [][]string{{"standby-leader"}, {"replica"}}
		}
		for m := 1; m <= 2; m++ {
			ops = append(ops, &api.TxnOp{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: node, Service: api.AgentService{
				ID: fmt.Sprintf("%s/m%d", scope, m), Service: scope, Tags: tags[m-1],
				Address: scaleMemberAddr(ri, c, m), Port: 5432,
			}}})
		}
		ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVSet, Key: "service/" + scope + "/leader", Value: []byte("m1")}})
		if len(ops) >= 60 {
			flush()
		}
	}
	flush()
}

// scaleSetLeader makes member leader+1 of cluster c the main region's leader
// and the other one its replica, in one transaction: one index change.
func scaleSetLeader(b *testing.B, a *Agent, c, leader int) {
	scope := fmt.Sprintf("c%d", c)
	var ops api.TxnOps
	for m := 1; m <= 2; m++ {
		tags := []string{"replica"}
		if m == leader+1 {
			tags = []string{"master", "primary"}
		}
		ops = append(ops, &api.TxnOp{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: "scale-0", Service: api.AgentService{
			ID: fmt.Sprintf("%s/m%d", scope, m), Service: scope, Tags: tags, Address: scaleMemberAddr(0, c, m), Port: 5432,
		}}})
	}
	ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVSet, Key: "service/" + scope + "/leader", Value: []byte(fmt.Sprintf("m%d", leader+1))}})
	if ok, resp, _, err := a.API().Txn().Txn(ops, nil); err != nil || !ok {
		b.Fatalf("set leader: %v %+v", err, resp)
	}
}

// scaleLockChanges makes count leader changes in the main region the way
// Patroni writes them, and returns, for each, the time from the write of the
// new leader's member key (role master) to the first rw answer naming it.
// Before that write the leader key already names the new leader, whose
// tags still say replica: rw answers nothing (the old leader lost the lock,
// the new one is not promoted yet), which shows that regiondns has read the
// key. After it, the tags follow, and the member keys are left as Patroni
// leaves them.
func scaleLockChanges(b *testing.B, a *Agent, r *Regiondns, n int, leaders []int, count int) []time.Duration {
	var lat []time.Duration
	rw := func(c int) string {
		m, err := Exchange(r.DNSAddr(), NewQuery(fmt.Sprintf("rw.c%d.pg.example.internal.", c), dns.TypeA), false)
		if err != nil {
			return "error: " + err.Error()
		}
		return fmt.Sprint(AnswerAddrs(m))
	}
	waitRW := func(c int, want string, since time.Time) {
		for rw(c) != want {
			if time.Since(since) > 30*time.Second {
				b.Fatalf("rw.c%d never answered %s (answers %s)", c, want, rw(c))
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
	txn := func(ops ...*api.TxnOp) {
		if ok, resp, _, err := a.API().Txn().Txn(ops, nil); err != nil || !ok {
			b.Fatalf("txn: %v %+v", err, resp)
		}
	}
	kvSet := func(key, value string) *api.TxnOp {
		return &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVSet, Key: key, Value: []byte(value)}}
	}
	for i := range count {
		c := (i + n/2) % n // other clusters than the first loop's first ones
		scope := fmt.Sprintf("c%d", c)
		old, next := leaders[c], 1-leaders[c]
		start := time.Now()
		txn(kvSet("service/"+scope+"/leader", fmt.Sprintf("m%d", next+1)))
		waitRW(c, "[]", start)
		t0 := time.Now()
		txn(kvSet(fmt.Sprintf("service/%s/members/m%d", scope, next+1), `{"role":"master","state":"running"}`))
		waitRW(c, "["+scaleMemberAddr(0, c, next+1)+"]", t0)
		lat = append(lat, time.Since(t0))
		// The tags follow, and the old leader's member key says replica.
		scaleSetLeader(b, a, c, next)
		txn(kvSet(fmt.Sprintf("service/%s/members/m%d", scope, old+1), `{"role":"replica","state":"running"}`))
		leaders[c] = next
	}
	return lat
}

// scaleMetric returns the sum of a metric's samples on /metrics.
func scaleMetric(b *testing.B, r *Regiondns, name string) float64 {
	code, body := r.Get("/metrics")
	if code != 200 {
		b.Fatalf("/metrics: HTTP %d", code)
	}
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// scaleRSS returns the resident set size of a process, in bytes.
func scaleRSS(b *testing.B, pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
