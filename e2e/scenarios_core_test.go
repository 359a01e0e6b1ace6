package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/miekg/dns"
)

// The core scenarios of issue 2, item 8, against real Consul and the real
// regiondns binary, for every layout: steady state, failover inside the main
// region, the main region without a leader while the standby is not
// promoted, and the standby promoted. The world is in
// scenarios_core_fixture_test.go; every answer is checked over UDP and TCP
// by CheckName (helpers_scenarios_a.go).

var coreKinds = []string{"rw", "ro", "passive-rw", "passive-ro"}

// TestScenarioSteadyState: main leader + 2 replicas, standby leader + 1
// replica. rw is the main leader, ro the main replicas, passive-rw the
// standby leader, passive-ro the standby replica; SRV ports are PostgreSQL's
// (direct) or PgBouncer's (bouncer-per-node, pool-fleet); names without
// endpoints are NODATA, unknown names NXDOMAIN, both with the SOA.
func TestScenarioSteadyState(t *testing.T) {
	w := startCoreWorld(t)
	for _, layout := range coreLayouts {
		c := w.clusters[layout]
		t.Run(layout, func(t *testing.T) {
			c.waitSteady(t, w)
			for _, kind := range coreKinds {
				// Only IPv4 endpoints: AAAA is NODATA, not NXDOMAIN.
				if err := CheckNegative(w.dns, c.name(kind), dns.TypeAAAA, dns.RcodeSuccess, coreNegativeTTL); err != nil {
					t.Error(err)
				}
			}
			// Case-insensitive, question echoed as asked (exchangeChecked).
			upper := strings.ToUpper(c.name("rw"))
			for _, tcp := range []bool{false, true} {
				resp, err := exchangeChecked(w.dns, upper, dns.TypeA, tcp)
				if err != nil {
					t.Fatal(err)
				}
				var want []string
				for _, e := range c.writeEndpoints("main", c.main[0]) {
					want = append(want, e.Addr)
				}
				slices.Sort(want)
				if got := AnswerAddrs(resp); !slices.Equal(got, want) {
					t.Errorf("%s A over %s = %v, want %v", upper, transport(tcp), got, want)
				}
			}
		})
	}

	t.Run("names without endpoints", func(t *testing.T) {
		// lonely: a main leader only, ro_fallback none, nothing in standby.
		c := w.lonely
		leader := c.main[0]
		WaitNames(t, w.dns, coreSettle, map[string]NameWant{
			c.name("rw"): {
				Endpoints: c.writeEndpoints("main", leader),
				TXT:       coreTXT("rw", "main", "primary, leader "+leader.Name),
			},
			c.name("ro"):         {TXT: coreTXT("ro", "main", "primary", "no endpoints")},
			c.name("passive-rw"): {TXT: coreTXT("passive-rw", "standby", "none", "no endpoints")},
			c.name("passive-ro"): {TXT: coreTXT("passive-ro", "standby", "none", "no endpoints")},
		})
		for _, kind := range []string{"ro", "passive-rw", "passive-ro"} {
			for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV} {
				if err := CheckNegative(w.dns, c.name(kind), qtype, dns.RcodeSuccess, coreNegativeTTL); err != nil {
					t.Errorf("configured name without endpoints: %v", err)
				}
			}
		}
		// Empty non-terminals exist too (RFC 8020).
		for _, name := range []string{"orders." + coreZone, "main.orders." + coreZone} {
			if err := CheckNegative(w.dns, name, dns.TypeA, dns.RcodeSuccess, coreNegativeTTL); err != nil {
				t.Errorf("empty non-terminal: %v", err)
			}
		}
	})

	t.Run("unknown names", func(t *testing.T) {
		for _, name := range []string{
			"nosuch." + coreZone,
			"rw.nosuch." + coreZone,
			"primary.orders." + coreZone,
			"x.rw.orders." + coreZone,
			"orders-m9.main.orders." + coreZone,
		} {
			for _, qtype := range []uint16{dns.TypeA, dns.TypeSRV, dns.TypeTXT} {
				if err := CheckNegative(w.dns, name, qtype, dns.RcodeNameError, coreNegativeTTL); err != nil {
					t.Errorf("unknown name: %v", err)
				}
			}
		}
	})
}

// TestScenarioFailoverInMain: the main leader's check goes critical and a
// replica is promoted on timeline 2: rw follows the new leader, ro no longer
// holds it; when the old leader comes back as a replica, ro holds it again.
func TestScenarioFailoverInMain(t *testing.T) {
	w := startCoreWorld(t)
	for _, layout := range coreLayouts {
		c := w.clusters[layout]
		t.Run(layout, func(t *testing.T) {
			c.waitSteady(t, w)
			m1, m2, m3 := c.main[0], c.main[1], c.main[2]

			// Patroni: the leader fails, its check goes critical; after the
			// leader key expires a replica takes it and promotes.
			m1.SetHealthy(false)
			m1.WaitCheck(coreSettle, api.HealthCritical)
			// A pool fleet's endpoints are its bouncers, named by node.
			after := `after="active=main rw=[`
			if layout != "pool-fleet" {
				after += m2.Name + "@"
			}
			changesBefore := decisionChanges(w.r.Logs(), c.label, after)
			start := time.Now()
			m2.Promote(2)
			wants := c.steadyWants()
			wants[c.name("rw")] = NameWant{
				Endpoints:   c.writeEndpoints("main", m2),
				TXT:         coreTXT("rw", "main", "primary, leader "+m2.Name+", timeline 2", "main region is primary"),
				ForbidAddrs: append(c.addrs("standby"), m3.Address),
			}
			wants[c.name("ro")] = NameWant{
				Endpoints:   c.readEndpoints("main", m3),
				TXT:         coreTXT("ro", "main", "primary, leader "+m2.Name),
				ForbidAddrs: c.addrs("standby"),
			}
			WaitNames(t, w.dns, coreSettle, wants)
			t.Logf("rw followed the new leader %s in %s", m2.Name, time.Since(start).Round(time.Millisecond))
			// One more info line says what changed: before, after and why.
			WaitFor(t, coreSettle, func() (bool, string) {
				n := decisionChanges(w.r.Logs(), c.label, after)
				return n > changesBefore, fmt.Sprintf("%d decision-changed log lines with %s, want more than %d", n, after, changesBefore)
			})

			// The old leader rejoins as a replica of the new one.
			m1.Demote()
			m1.SetHealthy(true)
			ro := wants[c.name("ro")]
			ro.Endpoints = c.readEndpoints("main", m1, m3)
			wants[c.name("ro")] = ro
			rw := wants[c.name("rw")]
			rw.ForbidAddrs = append(rw.ForbidAddrs, m1.Address)
			wants[c.name("rw")] = rw
			WaitNames(t, w.dns, coreSettle, wants)
		})
	}
}

// TestScenarioMainWithoutLeader: the main leader's check goes critical and
// nobody is promoted. rw is NODATA, never the standby leader; ro keeps the
// main region's passing replicas; the passive names keep the standby region.
func TestScenarioMainWithoutLeader(t *testing.T) {
	w := startCoreWorld(t)
	for _, layout := range coreLayouts {
		c := w.clusters[layout]
		t.Run(layout, func(t *testing.T) {
			c.waitSteady(t, w)
			m1, m2, m3 := c.main[0], c.main[1], c.main[2]

			m1.SetHealthy(false)
			wants := c.steadyWants()
			// Forbidden at every moment, not only at the end: the standby
			// region's endpoints in rw or ro.
			wants[c.name("rw")] = NameWant{
				TXT:         coreTXT("rw", "main", "none", "no endpoints", "no leader", "not promoted"),
				ForbidAddrs: c.addrs("standby"),
			}
			wants[c.name("ro")] = NameWant{
				Endpoints:   c.readEndpoints("main", m2, m3),
				TXT:         coreTXT("ro", "main", "none"),
				ForbidAddrs: append(c.addrs("standby"), m1.Address),
			}
			WaitNames(t, w.dns, coreSettle, wants)
			for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV} {
				if err := CheckNegative(w.dns, c.name("rw"), qtype, dns.RcodeSuccess, coreNegativeTTL); err != nil {
					t.Errorf("rw without a leader: %v", err)
				}
			}
		})
	}
}

// TestScenarioStandbyPromoted: the main region has no leader and the standby
// cluster is promoted (leader tags, timeline 2, no standby_cluster). rw and
// ro move to the standby region, the passive names to the main region.
func TestScenarioStandbyPromoted(t *testing.T) {
	w := startCoreWorld(t)
	for _, layout := range coreLayouts {
		c := w.clusters[layout]
		t.Run(layout, func(t *testing.T) {
			c.waitSteady(t, w)
			m1, m2, m3 := c.main[0], c.main[1], c.main[2]
			s1, s2 := c.standby[0], c.standby[1]

			// The main region loses its leader first: promoting the standby
			// while the main leader passes is split brain, another scenario.
			m1.SetHealthy(false)
			WaitNames(t, w.dns, coreSettle, map[string]NameWant{
				c.name("rw"): {TXT: coreTXT("rw", "main", "none", "no leader"), ForbidAddrs: c.addrs("standby")},
			})
			start := time.Now()
			s1.Promote(s1.Timeline() + 1)
			noSplit := []string{"split brain"}
			WaitNames(t, w.dns, coreSettle, map[string]NameWant{
				c.name("rw"): {
					Endpoints:   c.writeEndpoints("standby", s1),
					TXT:         coreTXT("rw", "standby", "primary, leader "+s1.Name+", timeline 2", "standby region was promoted"),
					ForbidAddrs: append(c.addrs("main"), s2.Address),
					ForbidTXT:   noSplit,
				},
				c.name("ro"): {
					Endpoints: c.readEndpoints("standby", s2),
					TXT:       coreTXT("ro", "standby", "primary, leader "+s1.Name),
					ForbidTXT: noSplit,
				},
				c.name("passive-rw"): {
					TXT:       coreTXT("passive-rw", "main", "none", "no endpoints"),
					ForbidTXT: noSplit,
				},
				c.name("passive-ro"): {
					Endpoints: c.readEndpoints("main", m2, m3),
					TXT:       coreTXT("passive-ro", "main", "none"),
					ForbidTXT: noSplit,
				},
			})
			t.Logf("rw moved to the promoted standby leader %s in %s", s1.Name, time.Since(start).Round(time.Millisecond))
		})
	}
}

// decisionChanges counts the "decision changed" log lines of cluster that
// carry before, why, and after (a prefix of the after field).
func decisionChanges(logs, cluster, after string) int {
	n := 0
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, `msg="decision changed" cluster=`+cluster+" ") &&
			strings.Contains(line, "before=") && strings.Contains(line, after) && strings.Contains(line, "why=") {
			n++
		}
	}
	return n
}
