package e2e

import (
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestCoreDNSForwardHealth runs a real CoreDNS in front of regiondns, as the
// Kubernetes stub domain does (forward, health_check 0.5s), and checks
// that CoreDNS keeps regiondns healthy: its health probe, ". IN NS", is
// answered REFUSED (the root is not a delegated domain), which CoreDNS
// counts as healthy, so after an outage (regiondns stopped with SIGSTOP
// until CoreDNS marks it down) the first answered probe brings it back.
// With failfast_all_unhealthy_upstreams CoreDNS forwards nothing while
// regiondns is down: only the probe can bring it back. Zone names resolve
// through CoreDNS in every case; Consul names too when CoreDNS's address
// may use delegation (REGIONDNS_DELEGATION_CLIENTS), REFUSED when not.
func TestCoreDNSForwardHealth(t *testing.T) {
	consulDNS := startFakeConsulDNS(t, "10.0.0.99")
	zoneYAML := fmt.Sprintf(`zone: pg.example.internal.
regions:
  - {name: main, role: main, datacenter: dc1, consul_http: ["http://127.0.0.1:1"], consul_dns: [%q]}
  - {name: standby, role: standby, datacenter: dc2, consul_http: ["http://127.0.0.1:1"]}
clusters:
  - {label: orders, scopes: {main: orders, standby: orders}}
`, consulDNS)
	const apex = "pg.example.internal."
	for _, tc := range []struct {
		name    string
		clients string
		consul  int // the rcode of a Consul name through CoreDNS
	}{
		{"CoreDNS may use delegation", "127.0.0.0/8,::1/128", dns.RcodeSuccess},
		{"CoreDNS may not use delegation", "10.0.0.0/8", dns.RcodeRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := StartRegiondns(t, zoneYAML, map[string]string{"REGIONDNS_DELEGATION_CLIENTS": tc.clients})
			c := StartCoreDNS(t, fmt.Sprintf(`	forward . %s {
		health_check 0.5s
		max_fails 2
		failfast_all_unhealthy_upstreams
	}`, r.DNSAddr()))

			for _, rd := range []bool{true, false} {
				probe := NewQuery(".", dns.TypeNS)
				probe.RecursionDesired = rd
				if m, err := Exchange(r.DNSAddr(), probe, false); err != nil || m.Rcode != dns.RcodeRefused {
					t.Fatalf(". NS RD=%v at regiondns: %v, %v; want REFUSED", rd, m, err)
				}
			}
			resolves := func() (bool, string) {
				m, err := Exchange(c.Addr(), NewQuery(apex, dns.TypeSOA), false)
				if err != nil {
					return false, err.Error()
				}
				if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 || m.Answer[0].Header().Rrtype != dns.TypeSOA {
					return false, fmt.Sprintf("%s SOA through CoreDNS: %v", apex, m)
				}
				return true, ""
			}
			WaitFor(t, 10*time.Second, resolves)
			consul := Query(t, c.Addr(), "web.service.consul.", dns.TypeA, false)
			if consul.Rcode != tc.consul || tc.consul == dns.RcodeSuccess && strings.Join(AnswerAddrs(consul), ",") != "10.0.0.99" {
				t.Errorf("web.service.consul. through CoreDNS: %v; want %s", consul, dns.RcodeToString[tc.consul])
			}

			// The outage: CoreDNS's queries time out, its probes fail, and
			// it marks regiondns down (more than max_fails failed probes):
			// it answers SERVFAIL without forwarding.
			r.signal(syscall.SIGSTOP)
			resumed := false
			resume := func() {
				if !resumed {
					resumed = true
					r.signal(syscall.SIGCONT)
				}
			}
			t.Cleanup(resume)
			WaitFor(t, 20*time.Second, func() (bool, string) {
				_, _ = Exchange(c.Addr(), NewQuery(apex, dns.TypeSOA), false)
				broken := c.Metric("forward_healthcheck_broken_total")
				return broken > 0, fmt.Sprintf("CoreDNS: %v failed probes, %v queries found every upstream down",
					c.Metric("healthcheck_failures_total"), broken)
			})

			// Back: a probe answered REFUSED makes it healthy again.
			resume()
			WaitFor(t, 10*time.Second, resolves)
			failures, broken := c.Metric("healthcheck_failures_total"), c.Metric("forward_healthcheck_broken_total")
			for i := range 10 {
				if ok, why := resolves(); !ok {
					t.Fatalf("query %d after the recovery: %s", i, why)
				}
			}
			// No probe failed since the recovery, no query found it down.
			if f, b := c.Metric("healthcheck_failures_total"), c.Metric("forward_healthcheck_broken_total"); f != failures || b != broken {
				t.Errorf("after the recovery CoreDNS counted %v more failed probes and %v more queries with every upstream down; want none",
					f-failures, b-broken)
			}
			refused := scrapeSum(t, "http://"+r.HTTPAddr()+"/metrics", func(name, labels string) bool {
				return name == "regiondns_dns_queries_total" && strings.Contains(labels, `type="NS"`) &&
					strings.Contains(labels, `rcode="REFUSED"`)
			})
			if refused < 3 { // the two asked above, and CoreDNS's probe
				t.Errorf("regiondns answered %v NS queries REFUSED, want CoreDNS's probes among them", refused)
			}
		})
	}
}

// startFakeConsulDNS serves, on UDP on a loopback port, an A record with
// addr for every name and the SOA of consul., as a Consul agent's DNS
// interface does for a service; it stops when the test ends.
func startFakeConsulDNS(t *testing.T, addr string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, NotifyStartedFunc: func() { close(started) },
		Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
			m := new(dns.Msg)
			m.SetReply(req)
			q := req.Question[0]
			switch q.Qtype {
			case dns.TypeA:
				m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5},
					A: net.ParseIP(addr)}}
			case dns.TypeSOA:
				m.Answer = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeSOA, Class: dns.ClassINET},
					Ns: "ns.consul.", Mbox: "hostmaster.consul.", Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400}}
			}
			_ = w.WriteMsg(m)
		})}
	go func() { _ = srv.ActivateAndServe() }()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("fake Consul DNS did not start")
	}
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}
