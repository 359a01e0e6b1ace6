package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// The soak's clock, load and limits. The limits are issue 12's: a bound
// that holds for minutes under this load holds in production.
const (
	soakInterval = 10 * time.Second // one sample, one window of counts

	// soakAnswerTimeout is how long a well-behaved client waits: CoreDNS's
	// forward plugin, the usual client of regiondns in Kubernetes, gives up
	// a try after 2 s, and so does regiondns's own try of an upstream.
	soakAnswerTimeout = 2 * time.Second
	// soakHostileTimeout is long enough to see the SERVFAIL regiondns
	// gives a query no upstream answered (5 s).
	soakHostileTimeout = 10 * time.Second

	soakGoodSrc = "127.0.0.1"
	// soakHostileSrc is the hostile clients' address, in another /24 than
	// the well-behaved ones: a per-source share keyed by /24 must be able
	// to tell them apart.
	soakHostileSrc = "127.66.0.1"
)

var soakLimitsIssue12 = soakLimits{
	MaxRSS: 200 << 20, MaxGoroutines: 6000,
	Growth: 0.2, RSSSlack: 16 << 20, GoroutineSlack: 200, FDSlack: 64,
	MinRate: 0.99, Warmup: 1,
}

// TestSoak is the soak of issue 12: regiondns (built without -race, so
// that its memory is the product's) serves a fleet of three clusters in
// two real Consul datacenters, for REGIONDNS_SOAK_DURATION, to
// well-behaved clients on 127.0.0.1 (zone names in lower and mixed case,
// EDNS options, names delegated to Consul DNS, pipelined TCP) and hostile
// ones on another address (a flood of delegated names the upstream never
// answers, huge pipelined TCP queries, idle TCP connections beyond the
// connection bound, oversize UDP queries), while Consul churns: switchovers,
// health flaps, a client agent restarted, SIGHUP reloads. Every 10 s it
// reports the process's RSS, goroutines and open file descriptors and each
// class's answered share; it fails when a figure passes its ceiling or
// grows without bound, or when a well-behaved class is answered less than
// 99 % in any window after the first. Without REGIONDNS_SOAK_DURATION it
// skips: make soak runs it for 10 minutes, make e2e for 60 s.
func TestSoak(t *testing.T) {
	d := soakDuration(t)
	bin := soakBinary(t)
	// Registered first, so run last: the failed checks are the last lines
	// of the output, after the logs the harness prints for a failed test
	// (a CI log shows its tail).
	var failed []string
	t.Cleanup(func() {
		if len(failed) > 0 {
			t.Logf("soak failed %d check(s):\n  %s", len(failed), strings.Join(failed, "\n  "))
		}
	})
	f := StartFederation(t, FederationOptions{ClientAgents: true})
	fl := startLayoutFleet(t, f)
	proxies := map[*Datacenter]*soakProxy{}
	for _, dc := range f.Datacenters() {
		proxies[dc] = startSoakProxy(t, dc.Agent().DNSAddr())
	}
	zone := func(ttl int) string {
		var cs []ZoneCluster
		for _, c := range fl.Clusters {
			cs = append(cs, ZoneCluster{Label: c.Label, MainScope: c.Label, Layout: c.Layout})
		}
		return f.ZoneYAML(ZoneOptions{Zone: fleetZone, TTL: ttl, Clusters: cs,
			ConsulDNS: func(dc *Datacenter) []string { return []string{proxies[dc].Addr()} }})
	}
	r := StartRegiondnsBinary(t, bin, zone(1), nil)
	for _, c := range fl.Clusters {
		waitAnswers(t, r, c, answersWant{A: map[string][]string{"rw": c.Write(c.Main, c.Main.Leader)}})
	}
	delegated := soakDelegatedNames(f)
	WaitFor(t, followTimeout, func() (bool, string) {
		for _, name := range delegated {
			resp, err := Exchange(r.DNSAddr(), NewQuery(name, dns.TypeA), false)
			if err != nil || (resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError) {
				return false, fmt.Sprintf("%s through regiondns: %v %v", name, err, resp)
			}
		}
		return true, ""
	})

	hostile := soakHostile(t)
	loads := soakLoads(soakZoneNames(fl), delegated, hostile)
	var classes []*soakClass
	for _, l := range loads {
		classes = append(classes, l.class)
	}
	rep := newSoakReport(t, soakReportPath(t), classes)
	rep.Header([]string{
		fmt.Sprintf("regiondns soak, %s, %s of load, a row every %s, hostile traffic %t",
			time.Now().UTC().Format(time.RFC3339), d, soakInterval, hostile),
		fmt.Sprintf("well-behaved clients from %s (answer within %s), hostile ones from %s", soakGoodSrc, soakAnswerTimeout, soakHostileSrc),
		"rss_MiB, gorout, fds: regiondns's VmRSS, go_goroutines and /proc/<pid>/fd at the end of the window;",
		"logs: its log lines in the window; dropped: blackhole queries the proxies dropped; rcvbuf: the host's UDP receive-buffer drops",
		soakHost(r.PID()),
	})

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	stopLoad := sync.OnceFunc(func() { cancel(); wg.Wait() })
	t.Cleanup(stopLoad)
	for _, l := range loads {
		if err := l.start(ctx, &wg, l.class, r.DNSAddr()); err != nil {
			t.Fatalf("start the %s clients: %v", l.class.Name, err)
		}
	}

	rep.start = time.Now()
	samples := runSampler(ctx, &wg, rep, &soakSampler{r: r, classes: classes, proxies: []*soakProxy{proxies[f.DC1], proxies[f.DC2]}}, d)
	(&soakChurn{t: t, rep: rep, f: f, fl: fl, r: r, zone: zone}).run(rep.start.Add(d), d)
	got := <-samples
	stopLoad()

	rep.Printf("checks:")
	for _, c := range judgeSoak(got, classes, soakLimitsIssue12) {
		verdict := "ok  "
		if !c.OK {
			verdict = "FAIL"
		}
		rep.Printf("  %s %s: %s", verdict, c.Name, c.Detail)
		if !c.OK {
			t.Errorf("%s: %s", c.Name, c.Detail)
			failed = append(failed, c.Name+": "+c.Detail)
		}
	}
}

// runSampler samples every soakInterval until d has passed (or ctx ends)
// and then sends every sample, in order.
func runSampler(ctx context.Context, wg *sync.WaitGroup, rep *soakReport, s *soakSampler, d time.Duration) <-chan []soakSample {
	out := make(chan []soakSample, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		var samples []soakSample
		defer func() { out <- samples }()
		for i := 1; time.Duration(i)*soakInterval <= d; i++ {
			at := time.Duration(i) * soakInterval
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(rep.start.Add(at))):
			}
			sample := s.sample(at)
			rep.Row(sample)
			samples = append(samples, sample)
		}
	}()
	return out
}

// soakChurn changes Consul and the zone file on a 5-s beat: a switchover
// in the main region every 20 s (one cluster after the other), a standby
// replica failing its check for 5 s every 20 s, a reload every 15 s that
// changes the TTLs, and a client agent (the one regiondns reads and asks)
// restarted every 3 minutes, or once half-way through a shorter soak.
type soakChurn struct {
	t    *testing.T
	rep  *soakReport
	f    *Federation
	fl   *layoutFleet
	r    *Regiondns
	zone func(ttl int) string
}

func (ch *soakChurn) run(end time.Time, d time.Duration) {
	leader := map[*fleetCluster]*PatroniMember{}
	replica := map[*fleetCluster]*PatroniMember{}
	for _, c := range ch.fl.Clusters {
		leader[c], replica[c] = c.Main.Leader, c.Main.Replica
	}
	restartEvery := min(3*time.Minute, d/2)
	nextRestart := time.Now().Add(restartEvery)
	restarts := 0
	ttl := 1
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for n := 1; ; n++ {
		select {
		case <-tick.C:
		case <-time.After(time.Until(end)):
			return
		}
		if time.Now().After(nextRestart) && time.Until(end) > 10*time.Second {
			dc := ch.f.Datacenters()[restarts%2]
			ch.rep.Event("restart %s (regiondns's agent in %s)", dc.Client.Name, dc.Name)
			dc.Client.Restart()
			ch.rep.Event("%s is back", dc.Client.Name)
			restarts++
			nextRestart = nextRestart.Add(restartEvery)
			continue
		}
		c := ch.fl.Clusters[((n-1)/4)%len(ch.fl.Clusters)]
		switch n % 4 {
		case 1:
			old, next := leader[c], replica[c]
			timeline := max(old.Timeline(), next.Timeline()) + 1
			ch.rep.Event("switchover of %s: %s -> %s (timeline %d)", c.Label, old.Name, next.Name, timeline)
			old.Demote()
			next.Promote(timeline)
			leader[c], replica[c] = next, old
		case 3:
			ch.rep.Event("%s fails its check", c.Standby.Replica.Name)
			c.Standby.Replica.SetHealthy(false)
		case 0:
			ch.rep.Event("%s passes its check again", c.Standby.Replica.Name)
			c.Standby.Replica.SetHealthy(true)
		}
		if n%3 == 0 {
			ttl = 3 - ttl
			ch.rep.Event("reload (SIGHUP), TTLs %d s", ttl)
			ch.r.WriteZone(ch.zone(ttl))
			ch.r.Reload()
		}
	}
}

// soakHostile reports whether the hostile clients run: yes unless
// REGIONDNS_SOAK_HOSTILE is false, which measures the well-behaved clients
// under the churn alone.
func soakHostile(t *testing.T) bool {
	t.Helper()
	v := os.Getenv("REGIONDNS_SOAK_HOSTILE")
	if v == "" {
		return true
	}
	on, err := strconv.ParseBool(v)
	if err != nil {
		t.Fatalf("REGIONDNS_SOAK_HOSTILE: %q is not valid; want true or false", v)
	}
	return on
}

// soakDuration returns REGIONDNS_SOAK_DURATION, skipping the test when it
// is not set.
func soakDuration(t *testing.T) time.Duration {
	t.Helper()
	v := os.Getenv("REGIONDNS_SOAK_DURATION")
	if v == "" {
		t.Skip("REGIONDNS_SOAK_DURATION is not set: make soak runs the soak, make e2e a short one")
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 3*soakInterval {
		t.Fatalf("REGIONDNS_SOAK_DURATION: %q is not valid; want a duration of at least %s", v, 3*soakInterval)
	}
	// Starting Consul and the fleet, and stopping, take up to a few minutes.
	if dl, ok := t.Deadline(); ok && time.Until(dl) < d+5*time.Minute {
		t.Fatalf("REGIONDNS_SOAK_DURATION %s does not fit in the test's -timeout (%s left); raise it by 5 minutes more than the soak (SOAK_TIMEOUT)",
			d, time.Until(dl).Round(time.Second))
	}
	return d
}

// soakBinary returns $REGIONDNS_BIN, else a regiondns built without -race:
// the race detector's shadow memory would be most of the RSS measured.
func soakBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("REGIONDNS_BIN"); p != "" {
		return p
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "regiondns")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/regiondns")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/regiondns in %s: %v\n%s", root, err, out)
	}
	return bin
}

// soakReportPath returns $REGIONDNS_SOAK_REPORT, else
// <repo>/.cache/soak/report.txt.
func soakReportPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("REGIONDNS_SOAK_REPORT"); p != "" {
		return p
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, ".cache", "soak", "report.txt")
}
