package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// TestScenarioSplitBrain: both regions have a passing leader. The higher
// Patroni timeline wins rw and ro, the other region's leader is passive-rw,
// and the split brain is reported in the TXT line, /debug/state, /metrics
// and the log.
func TestScenarioSplitBrain(t *testing.T) {
	f := StartFederation(t, FederationOptions{})
	fl := startLayoutFleet(t, f)
	r := StartRegiondns(t, fl.ZoneYAML(), nil)
	for _, c := range fl.Clusters {
		waitAnswers(t, r, c, answersWant{A: map[string][]string{
			"rw": c.Write(c.Main, c.Main.Leader), "passive-rw": c.Write(c.Standby, c.Standby.Leader),
		}})
	}
	waitDebugState(t, r, decisionCond(fl, "main", false))

	t.Log("the standby cluster is promoted (timeline 2) while the main leader (timeline 1) stays passing")
	for _, c := range fl.Clusters {
		c.Standby.Leader.Promote(2)
	}
	splitMetrics := map[string]string{}
	for _, c := range fl.Clusters {
		waitAnswers(t, r, c, answersWant{
			A: map[string][]string{
				"rw":         c.Write(c.Standby, c.Standby.Leader),
				"ro":         c.Read(c.Standby, c.Standby.Replica),
				"passive-rw": c.Write(c.Main, c.Main.Leader),
				"passive-ro": c.Read(c.Main, c.Main.Replica),
			},
			TXT: map[string][]string{
				"rw": {
					fmt.Sprintf("region standby (primary, leader %s, timeline 2)", c.Standby.Leader.Name),
					"wins on timeline 2 > 1", "split brain", "fresh",
				},
				"passive-rw": {fmt.Sprintf("region main (primary, leader %s, timeline 1)", c.Main.Leader.Name)},
			},
		})
		splitMetrics[fmt.Sprintf("regiondns_cluster_split_brain{cluster=%q}", c.Label)] = "1"
		splitMetrics[fmt.Sprintf("regiondns_cluster_active_region{cluster=%q,region=\"standby\"}", c.Label)] = "1"
		splitMetrics[fmt.Sprintf("regiondns_cluster_active_region{cluster=%q,region=\"main\"}", c.Label)] = "0"
	}
	waitDebugState(t, r, decisionCond(fl, "standby", true))
	waitMetrics(t, r, splitMetrics)
	if logs := r.Logs(); !strings.Contains(logs, "split brain") {
		t.Errorf("no log line says split brain; log:\n%s", logs)
	}

	t.Log("the main leader moves to timeline 5: the main region wins the split brain")
	for _, c := range fl.Clusters {
		c.Main.Leader.Promote(5)
	}
	for _, c := range fl.Clusters {
		waitAnswers(t, r, c, answersWant{
			A: map[string][]string{
				"rw":         c.Write(c.Main, c.Main.Leader),
				"ro":         c.Read(c.Main, c.Main.Replica),
				"passive-rw": c.Write(c.Standby, c.Standby.Leader),
				"passive-ro": c.Read(c.Standby, c.Standby.Replica),
			},
			TXT: map[string][]string{
				"rw": {
					fmt.Sprintf("region main (primary, leader %s, timeline 5)", c.Main.Leader.Name),
					"main region wins on timeline 5 > 2", "split brain", "fresh",
				},
				"passive-rw": {fmt.Sprintf("region standby (primary, leader %s, timeline 2)", c.Standby.Leader.Name)},
			},
		})
		splitMetrics[fmt.Sprintf("regiondns_cluster_active_region{cluster=%q,region=\"standby\"}", c.Label)] = "0"
		splitMetrics[fmt.Sprintf("regiondns_cluster_active_region{cluster=%q,region=\"main\"}", c.Label)] = "1"
	}
	waitDebugState(t, r, decisionCond(fl, "main", true))
	waitMetrics(t, r, splitMetrics)

	// A promoted region whose leader merely steps down is still a primary
	// cluster between leaders (its config has no standby_cluster): the split
	// brain ends when it is made a standby cluster again.
	t.Log("the standby region's leader steps down: still split brain, the promoted region is electing")
	for _, c := range fl.Clusters {
		c.Standby.Leader.Demote()
	}
	for _, c := range fl.Clusters {
		waitAnswers(t, r, c, answersWant{
			A:   map[string][]string{"rw": c.Write(c.Main, c.Main.Leader), "passive-rw": {}},
			TXT: map[string][]string{"rw": {"promoted standby region is electing one", "main region wins on timeline 5 > 2"}},
		})
	}
	waitDebugState(t, r, decisionCond(fl, "main", true))

	t.Log("the standby region rejoins as a standby cluster: the split brain is over")
	for _, c := range fl.Clusters {
		c.Standby.Leader.RejoinAsStandby("127.0.0.1")
		splitMetrics[fmt.Sprintf("regiondns_cluster_split_brain{cluster=%q}", c.Label)] = "0"
	}
	for _, c := range fl.Clusters {
		waitAnswers(t, r, c, answersWant{
			A:   map[string][]string{"rw": c.Write(c.Main, c.Main.Leader), "passive-rw": c.Write(c.Standby, c.Standby.Leader)},
			TXT: map[string][]string{"rw": {"main region is primary; fresh"}},
		})
	}
	waitDebugState(t, r, decisionCond(fl, "main", false))
	waitMetrics(t, r, splitMetrics)
}

// TestScenarioMainAgentStopped: regiondns talks to client agents while the
// members are registered on the servers. (a) With the main region's client
// agent killed, the main region is read through the standby region's agent
// with ?dc=dc1, fresh, and changes in dc1 still arrive. (b) With dc1's
// server killed too, the last known answers are served, marked stale, and a
// promotion observed in the standby region still takes effect. (c) Once dc1
// is back, the main region is fresh again.
func TestScenarioMainAgentStopped(t *testing.T) {
	f := StartFederation(t, FederationOptions{ClientAgents: true})
	fl := startLayoutFleet(t, f)
	r := StartRegiondns(t, fl.ZoneYAML(), nil)
	for _, c := range fl.Clusters {
		waitAnswers(t, r, c, answersWant{A: map[string][]string{"rw": c.Write(c.Main, c.Main.Leader)}})
	}
	own := f.DC1.Client.HTTPURL()
	waitDebugState(t, r, regionCond("main", func(stale bool, _ string, via []string, _ int) string {
		if stale || !slices.Equal(via, []string{own}) {
			return fmt.Sprintf("main: stale %t via %v, want fresh via [%s]", stale, via, own)
		}
		return ""
	}))

	t.Log("(a) dc1's client agent is killed")
	f.DC1.Client.Kill()
	fallback := f.DC2.Client.HTTPURL() + "?dc=dc1"
	waitDebugState(t, r, regionCond("main", func(stale bool, lastErr string, via []string, failing int) string {
		if stale || failing > 0 || !slices.Equal(via, []string{fallback}) {
			return fmt.Sprintf("main: stale %t failing %d via %v (last error %q), want fresh via [%s]",
				stale, failing, via, lastErr, fallback)
		}
		return ""
	}))
	for _, c := range fl.Clusters {
		waitAnswers(t, r, c, answersWant{
			A:   map[string][]string{"rw": c.Write(c.Main, c.Main.Leader)},
			TXT: map[string][]string{"rw": {"region main (primary", "fresh"}},
		})
	}

	t.Log("(a) failover inside dc1, seen through dc2's agent")
	for _, c := range fl.Clusters {
		c.Main.Leader.SetHealthy(false)
		c.Main.Replica.Promote(2)
	}
	for _, c := range fl.Clusters {
		waitAnswers(t, r, c, answersWant{
			A: map[string][]string{"rw": c.Write(c.Main, c.Main.Replica)},
			TXT: map[string][]string{"rw": {
				fmt.Sprintf("region main (primary, leader %s, timeline 2)", c.Main.Replica.Name), "fresh",
			}},
		})
	}

	t.Log("(b) dc1's server is killed too: dc1 cannot be read at all")
	f.DC1.Server.Kill()
	waitDebugState(t, r, regionCond("main", func(stale bool, lastErr string, _ []string, _ int) string {
		if !stale || lastErr == "" {
			return fmt.Sprintf("main: stale %t last error %q, want stale with an error", stale, lastErr)
		}
		return ""
	}))
	waitMetrics(t, r, map[string]string{`regiondns_region_stale{region="main"}`: "1", `regiondns_region_stale{region="standby"}`: "0"})
	for _, c := range fl.Clusters {
		waitAnswers(t, r, c, answersWant{
			A: map[string][]string{"rw": c.Write(c.Main, c.Main.Replica), "passive-rw": c.Write(c.Standby, c.Standby.Leader)},
			TXT: map[string][]string{"rw": {
				fmt.Sprintf("region main (primary, leader %s, timeline 2)", c.Main.Replica.Name),
				"stale (region main last known data)",
			}},
		})
	}

	t.Log("(b) the standby cluster is promoted (timeline 3) while dc1 is unreachable")
	for _, c := range fl.Clusters {
		c.Standby.Leader.Promote(3)
	}
	for _, c := range fl.Clusters {
		waitAnswers(t, r, c, answersWant{
			A: map[string][]string{
				"rw":         c.Write(c.Standby, c.Standby.Leader),
				"ro":         c.Read(c.Standby, c.Standby.Replica),
				"passive-rw": c.Write(c.Main, c.Main.Replica),
			},
			TXT: map[string][]string{"rw": {
				fmt.Sprintf("region standby (primary, leader %s, timeline 3)", c.Standby.Leader.Name),
				"timeline 3 > 2", "split brain", "stale (region main last known data)",
			}},
		})
	}
	waitDebugState(t, r, decisionCond(fl, "standby", true))

	t.Log("(c) dc1's server and client come back: the main region is fresh again")
	f.DC1.Server.Restart()
	f.DC1.Client.Restart()
	waitDebugState(t, r, regionCond("main", func(stale bool, lastErr string, _ []string, failing int) string {
		if stale || failing > 0 {
			return fmt.Sprintf("main: stale %t failing %d (last error %q), want fresh", stale, failing, lastErr)
		}
		return ""
	}))
	waitMetrics(t, r, map[string]string{`regiondns_region_stale{region="main"}`: "0"})
	for _, c := range fl.Clusters {
		waitAnswers(t, r, c, answersWant{
			A:   map[string][]string{"rw": c.Write(c.Standby, c.Standby.Leader), "passive-rw": c.Write(c.Main, c.Main.Replica)},
			TXT: map[string][]string{"rw": {"split brain", "fresh"}},
		})
	}
}

// TestScenarioTwoProcesses: two regiondns processes on the same Consul data,
// the second started after a failover, give the same answers for every name
// of every cluster, over UDP and TCP; and again after a later promotion.
func TestScenarioTwoProcesses(t *testing.T) {
	f := StartFederation(t, FederationOptions{})
	fl := startLayoutFleet(t, f)
	zone := fl.ZoneYAML()
	first := StartRegiondns(t, zone, nil)
	for _, c := range fl.Clusters {
		waitAnswers(t, first, c, answersWant{A: map[string][]string{"rw": c.Write(c.Main, c.Main.Leader)}})
	}

	t.Log("failover in the main region, seen by the first process only")
	for _, c := range fl.Clusters {
		c.Main.Leader.SetHealthy(false)
		c.Main.Replica.Promote(2)
	}
	for _, c := range fl.Clusters {
		waitAnswers(t, first, c, answersWant{
			A: map[string][]string{"rw": c.Write(c.Main, c.Main.Replica), "ro": c.Write(c.Main, c.Main.Replica)},
			TXT: map[string][]string{"rw": {
				fmt.Sprintf("leader %s, timeline 2", c.Main.Replica.Name), "fresh",
			}},
		})
	}
	second := StartRegiondns(t, zone, nil)
	waitSameAnswers(t, fl, first, second)

	t.Log("the standby cluster is promoted while both run")
	for _, c := range fl.Clusters {
		c.Standby.Leader.Promote(3)
	}
	for _, c := range fl.Clusters {
		waitAnswers(t, first, c, answersWant{
			A:   map[string][]string{"rw": c.Write(c.Standby, c.Standby.Leader)},
			TXT: map[string][]string{"rw": {"timeline 3 > 2", "fresh"}},
		})
	}
	waitSameAnswers(t, fl, first, second)
}

// waitSameAnswers waits until a and b answer every name of every cluster
// alike for A, SRV and TXT, over UDP and TCP, with both TXT lines fresh.
func waitSameAnswers(t *testing.T, fl *layoutFleet, a, b *Regiondns) {
	t.Helper()
	compared := 0
	WaitFor(t, followTimeout, func() (bool, string) {
		compared = 0
		for _, c := range fl.Clusters {
			for _, name := range nameLabels {
				for _, qtype := range []uint16{dns.TypeA, dns.TypeSRV, dns.TypeTXT} {
					for _, tcp := range []bool{false, true} {
						q := fmt.Sprintf("%s %s (tcp %t)", c.FQDN(name), dns.TypeToString[qtype], tcp)
						ga, err := answerLines(a.DNSAddr(), c.FQDN(name), qtype, tcp)
						if err != nil {
							return false, fmt.Sprintf("first process, %s: %v", q, err)
						}
						gb, err := answerLines(b.DNSAddr(), c.FQDN(name), qtype, tcp)
						if err != nil {
							return false, fmt.Sprintf("second process, %s: %v", q, err)
						}
						if ga != gb {
							return false, fmt.Sprintf("%s differs:\nfirst process:\n%s\nsecond process:\n%s", q, ga, gb)
						}
						// A line longer than 255 bytes is split into
						// several strings, quoted one by one.
						if qtype == dns.TypeTXT && !strings.Contains(strings.ReplaceAll(ga, `" "`, ""), "fresh") {
							return false, fmt.Sprintf("%s is not fresh yet:\n%s", q, ga)
						}
						compared++
					}
				}
			}
		}
		return true, ""
	})
	t.Logf("%d answers alike in both processes", compared)
}
