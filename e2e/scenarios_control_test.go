package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// The operator's control (issue 15) against real two-datacenter Consul and
// the real binary: pins and drains written with `regiondns ctl`, which the
// tests run as an operator would, against a running server.

// ctlTimeout bounds one `regiondns ctl` run, its wait for the server
// included.
const ctlTimeout = 60 * time.Second

// runCtl runs `regiondns ctl <args>` with r's zone file and r as --server,
// and returns its output; it fails the test unless ctl exits 0.
func runCtl(t *testing.T, r *Regiondns, args ...string) string {
	t.Helper()
	args = append(append([]string{"ctl"}, args...), "--config", r.ZonePath, "--server", "http://"+r.HTTPAddr(), "--wait", "30s")
	cmd := exec.Command(BuildRegiondns(t), args...)
	cmd.Env = os.Environ()
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(ctlTimeout):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("regiondns %s did not finish within %s:\n%s", strings.Join(args, " "), ctlTimeout, out)
	}
	if err != nil {
		t.Fatalf("regiondns %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func wantIn(t *testing.T, what, text string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(text, s) {
			t.Errorf("%s does not contain %q:\n%s", what, s, text)
		}
	}
}

// pinKey is the JSON of a pin key, as regiondns ctl writes it.
type pinKey struct {
	Active  string    `json:"active"`
	Reason  string    `json:"reason"`
	Expires time.Time `json:"expires"`
}

// checkKeyInBothRegions checks that key holds what want says in each
// datacenter's KV (nil want: that the key is absent).
func checkKeyInBothRegions(t *testing.T, f *Federation, key string, want func(value []byte) string) {
	t.Helper()
	for _, dc := range f.Datacenters() {
		pair, _, err := dc.Server.API().KV().Get(key, nil)
		switch {
		case err != nil:
			t.Errorf("%s: get %s: %v", dc.Name, key, err)
		case want == nil && pair != nil:
			t.Errorf("%s: %s = %q, want no key", dc.Name, key, pair.Value)
		case want != nil && pair == nil:
			t.Errorf("%s: no key %s", dc.Name, key)
		case want != nil:
			if why := want(pair.Value); why != "" {
				t.Errorf("%s: %s = %q: %s", dc.Name, key, pair.Value, why)
			}
		}
	}
}

// TestScenarioDRDrill: the standby cluster is promoted for a drill while
// the main region keeps its primary, every cluster pinned to main first:
// rw stays on main and the TXT says pinned, in two instances alike. Pin
// removed: the split-brain rule applies. A pin that expires is ignored. A
// pin to a region that loses its primary while the other has one is
// ignored and reported as unsafe.
func TestScenarioDRDrill(t *testing.T) {
	f := StartFederation(t, FederationOptions{})
	fl := startLayoutFleet(t, f)
	zone := fl.ZoneYAML()
	a, b := StartRegiondns(t, zone, nil), StartRegiondns(t, zone, nil)
	for _, c := range fl.Clusters {
		waitAnswers(t, a, c, answersWant{A: map[string][]string{"rw": c.Write(c.Main, c.Main.Leader)}})
	}

	t.Log("every cluster is pinned to the main region with regiondns ctl")
	start := time.Now()
	for _, c := range fl.Clusters {
		out := runCtl(t, a, "pin", c.Label, "main", "--reason", "DR drill", "--for", "30m")
		wantIn(t, "ctl pin", out, "wrote regiondns/pin/"+c.Label+" in region main", "wrote regiondns/pin/"+c.Label+" in region standby",
			"active      main (unchanged)", "pin: applied: pinned to region main until", "the server applies it")
		checkKeyInBothRegions(t, f, "regiondns/pin/"+c.Label, func(v []byte) string {
			var p pinKey
			if err := json.Unmarshal(v, &p); err != nil || p.Active != "main" || p.Reason != "DR drill" ||
				p.Expires.Before(start.Add(29*time.Minute)) || p.Expires.After(time.Now().Add(30*time.Minute)) {
				return fmt.Sprintf("want a pin to main for 30 minutes (%v)", err)
			}
			return ""
		})
	}

	t.Log("the standby cluster is promoted (timeline 2) while the main leader (timeline 1) stays primary")
	metrics := map[string]string{}
	for _, c := range fl.Clusters {
		c.Standby.Leader.Promote(2)
	}
	for _, c := range fl.Clusters {
		waitAnswers(t, a, c, answersWant{
			A: map[string][]string{
				"rw": c.Write(c.Main, c.Main.Leader), "ro": c.Read(c.Main, c.Main.Replica),
				"passive-rw": c.Write(c.Standby, c.Standby.Leader), "passive-ro": c.Read(c.Standby, c.Standby.Replica),
			},
			TXT: map[string][]string{"rw": {
				fmt.Sprintf("region main (primary, leader %s, timeline 1)", c.Main.Leader.Name),
				"pinned to region main until", "(DR drill); the rules alone: split brain", "promoted standby region wins on timeline 2 > 1",
			}},
		})
		metrics[fmt.Sprintf("regiondns_cluster_pinned{cluster=%q}", c.Label)] = "1"
		metrics[fmt.Sprintf("regiondns_cluster_split_brain{cluster=%q}", c.Label)] = "1"
	}
	waitMetrics(t, a, metrics)
	waitSameAnswers(t, fl, a, b)

	t.Log("the pins are removed: the split-brain rule hands rw to the promoted standby")
	for _, c := range fl.Clusters {
		out := runCtl(t, a, "unpin", c.Label)
		wantIn(t, "ctl unpin", out, "removed regiondns/pin/"+c.Label+" in region main", "active      standby (was main)",
			"the server applies it")
		checkKeyInBothRegions(t, f, "regiondns/pin/"+c.Label, nil)
	}
	for _, c := range fl.Clusters {
		waitAnswers(t, a, c, answersWant{
			A:   map[string][]string{"rw": c.Write(c.Standby, c.Standby.Leader), "passive-rw": c.Write(c.Main, c.Main.Leader)},
			TXT: map[string][]string{"rw": {"split brain", "promoted standby region wins on timeline 2 > 1", "fresh"}},
		})
		if txt := txtLine(a, c, "rw"); strings.Contains(txt, "pin") {
			t.Errorf("%s rw TXT after unpin = %q, want no pin", c.Label, txt)
		}
		metrics[fmt.Sprintf("regiondns_cluster_pinned{cluster=%q}", c.Label)] = "0"
	}
	waitMetrics(t, a, metrics)
	waitSameAnswers(t, fl, a, b)

	t.Log("a short pin holds rw on main, then expires and is ignored")
	for _, c := range fl.Clusters {
		runCtl(t, a, "pin", c.Label, "main", "--reason", "short drill", "--for", "20s")
	}
	for _, c := range fl.Clusters {
		if got := exchangeAddrs(t, a, c, "rw"); !equalStrings(got, c.Write(c.Main, c.Main.Leader)) {
			t.Errorf("%s rw under a short pin = %v, want the main leader", c.Label, got)
		}
	}
	WaitFor(t, time.Minute, func() (bool, string) {
		for _, c := range fl.Clusters {
			if txt := txtLine(a, c, "rw"); !strings.Contains(txt, "pin to region main ignored: expired at") {
				return false, fmt.Sprintf("%s rw TXT = %q, want the pin expired", c.Label, txt)
			}
		}
		return true, ""
	})
	for _, c := range fl.Clusters {
		waitAnswers(t, a, c, answersWant{A: map[string][]string{"rw": c.Write(c.Standby, c.Standby.Leader)}})
		metrics[fmt.Sprintf("regiondns_cluster_pin_ignored{cluster=%q,reason=\"expired\"}", c.Label)] = "1"
	}
	waitMetrics(t, a, metrics)
	waitSameAnswers(t, fl, a, b)

	t.Log("pinned to main again, the main region loses its primary: the pin is ignored as unsafe")
	for _, c := range fl.Clusters {
		runCtl(t, a, "pin", c.Label, "main", "--reason", "DR drill", "--for", "30m")
		waitAnswers(t, a, c, answersWant{A: map[string][]string{"rw": c.Write(c.Main, c.Main.Leader)}})
	}
	for _, c := range fl.Clusters {
		c.Main.Leader.SetHealthy(false)
	}
	for _, c := range fl.Clusters {
		waitAnswers(t, a, c, answersWant{
			A: map[string][]string{"rw": c.Write(c.Standby, c.Standby.Leader)},
			TXT: map[string][]string{"rw": {
				"standby region was promoted", "pin to region main ignored as unsafe: it has no primary and region standby has one",
			}},
		})
		delete(metrics, fmt.Sprintf("regiondns_cluster_pin_ignored{cluster=%q,reason=\"expired\"}", c.Label))
		metrics[fmt.Sprintf("regiondns_cluster_pin_ignored{cluster=%q,reason=\"unsafe\"}", c.Label)] = "1"
		metrics[fmt.Sprintf("regiondns_cluster_split_brain{cluster=%q}", c.Label)] = "0"
	}
	waitMetrics(t, a, metrics)
	waitSameAnswers(t, fl, a, b)
	if logs := a.Logs(); !strings.Contains(logs, `msg="pin ignored"`) || !strings.Contains(logs, "ignored=unsafe") {
		t.Errorf("no log line says the pin was ignored as unsafe")
	}
	out := runCtl(t, a, "state", fl.Clusters[0].Label)
	wantIn(t, "ctl state", out, "pin: IGNORED (unsafe)", "active region standby")
}

// TestScenarioDrain: a drained replica leaves ro as soon as the server has
// read the one KV change (regiondns ctl returns then), and comes back once
// the key is removed; a drained standby replica leaves passive-ro; a drain
// of the leader is not applied, and the TXT, the metrics and the log say
// so.
func TestScenarioDrain(t *testing.T) {
	f := StartFederation(t, FederationOptions{})
	fl := startLayoutFleet(t, f)
	r := StartRegiondns(t, fl.ZoneYAML(), nil)
	for _, c := range fl.Clusters {
		waitAnswers(t, r, c, answersWant{A: map[string][]string{
			"rw": c.Write(c.Main, c.Main.Leader), "ro": c.Read(c.Main, c.Main.Replica),
			"passive-ro": c.Read(c.Standby, c.Standby.Replica),
		}})
	}

	t.Log("the main replica is drained: ro falls back to the leader")
	metrics := map[string]string{}
	for _, c := range fl.Clusters {
		out := runCtl(t, r, "drain", c.Label, c.Main.Replica.Name, "--reason", "kernel patch")
		wantIn(t, "ctl drain", out, "wrote regiondns/drain/"+c.Label+"/"+c.Main.Replica.Name+" in region standby",
			"drained: "+c.Main.Replica.Name, "the server applies it")
		// ctl returned once the server applied the change: the answers
		// are already those of the snapshot built with it.
		if got := exchangeAddrs(t, r, c, "ro"); !equalStrings(got, c.Write(c.Main, c.Main.Leader)) {
			t.Errorf("%s ro right after the drain = %v, want %v", c.Label, got, c.Write(c.Main, c.Main.Leader))
		}
		if txt := txtLine(r, c, "ro"); !strings.Contains(txt, "; drained "+c.Main.Replica.Name+";") {
			t.Errorf("%s ro TXT = %q, want it to say drained", c.Label, txt)
		}
		checkKeyInBothRegions(t, f, "regiondns/drain/"+c.Label+"/"+c.Main.Replica.Name, func(v []byte) string {
			if string(v) != `{"reason":"kernel patch"}` {
				return `want {"reason":"kernel patch"}`
			}
			return ""
		})
		metrics[fmt.Sprintf("regiondns_cluster_drained_members{cluster=%q}", c.Label)] = "1"
	}
	waitMetrics(t, r, metrics)

	t.Log("the drain is removed: the replica is back in ro")
	for _, c := range fl.Clusters {
		runCtl(t, r, "undrain", c.Label, c.Main.Replica.Name)
		if got := exchangeAddrs(t, r, c, "ro"); !equalStrings(got, c.Read(c.Main, c.Main.Replica)) {
			t.Errorf("%s ro right after the undrain = %v, want %v", c.Label, got, c.Read(c.Main, c.Main.Replica))
		}
		checkKeyInBothRegions(t, f, "regiondns/drain/"+c.Label+"/"+c.Main.Replica.Name, nil)
		metrics[fmt.Sprintf("regiondns_cluster_drained_members{cluster=%q}", c.Label)] = "0"
	}
	waitMetrics(t, r, metrics)

	t.Log("the main leader is drained: not applied, reported")
	for _, c := range fl.Clusters {
		out := runCtl(t, r, "drain", c.Label, c.Main.Leader.Name, "--reason", "wrong host")
		wantIn(t, "ctl drain of the leader", out, "NOT drained, leading a region (a switchover is Patroni's job): "+c.Main.Leader.Name)
		if got := exchangeAddrs(t, r, c, "rw"); !equalStrings(got, c.Write(c.Main, c.Main.Leader)) {
			t.Errorf("%s rw with its leader drained = %v, want the leader", c.Label, got)
		}
		if txt := txtLine(r, c, "rw"); !strings.Contains(txt, "drain not applied to the leader "+c.Main.Leader.Name) {
			t.Errorf("%s rw TXT = %q, want the drain reported not applied", c.Label, txt)
		}
		metrics[fmt.Sprintf("regiondns_cluster_drains_not_applied{cluster=%q}", c.Label)] = "1"
	}
	waitMetrics(t, r, metrics)
	if !strings.Contains(r.Logs(), "drain not applied to the leader") {
		t.Error("no log line says a drain was not applied to the leader")
	}

	t.Log("the standby replica is drained: passive-ro falls back to the standby leader")
	for _, c := range fl.Clusters {
		runCtl(t, r, "drain", c.Label, c.Standby.Replica.Name)
		if got := exchangeAddrs(t, r, c, "passive-ro"); !equalStrings(got, c.Write(c.Standby, c.Standby.Leader)) {
			t.Errorf("%s passive-ro right after the drain = %v, want the standby leader", c.Label, got)
		}
	}
	out := runCtl(t, r, "state", fl.Clusters[0].Label)
	wantIn(t, "ctl state", out, fl.Clusters[0].Standby.Replica.Name+": drained: out of the read names",
		fl.Clusters[0].Main.Leader.Name+" (wrong host): NOT drained")
}

// exchangeAddrs returns the A addresses c's name answers on r now, sorted.
func exchangeAddrs(t *testing.T, r *Regiondns, c *fleetCluster, name string) []string {
	t.Helper()
	resp, err := Exchange(r.DNSAddr(), NewQuery(c.FQDN(name), dns.TypeA), false)
	if err != nil {
		t.Fatalf("A %s: %v", c.FQDN(name), err)
	}
	return AnswerAddrs(resp)
}

func equalStrings(a, b []string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}
