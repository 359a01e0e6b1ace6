package e2e

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// confDelegation covers names outside the zone: Consul-style names
// answered through regiondns as Consul DNS answers them, the cache, TCP
// retries of truncated answers, delegation off, and unreachable upstreams.
func confDelegation(t *testing.T, w *confWorld) {
	t.Run("Consul names answered as Consul DNS answers them", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			qtype uint16
			rcode int
		}{
			{"master.orders.service.dc1.consul.", dns.TypeA, dns.RcodeSuccess},
			{"replica.orders.service.dc1.consul.", dns.TypeSRV, dns.RcodeSuccess},
			{"orders.service.dc1.consul.", dns.TypeA, dns.RcodeSuccess},
			{"orders.service.consul.", dns.TypeSRV, dns.RcodeSuccess},
			{"orders.service.dc2.consul.", dns.TypeSRV, dns.RcodeSuccess},
			{"standby-leader.orders.service.dc2.consul.", dns.TypeA, dns.RcodeSuccess},
			{"_orders._replica.service.dc1.consul.", dns.TypeSRV, dns.RcodeSuccess}, // RFC 2782 style
			{w.Fed.DC1.Server.Name + ".node.dc1.consul.", dns.TypeA, dns.RcodeSuccess},
			{w.Fed.DC2.Server.Name + ".node.dc2.consul.", dns.TypeA, dns.RcodeSuccess},
			{"big-r07-node.node.consul.", dns.TypeA, dns.RcodeSuccess},
			{confPreparedQuery + ".query.consul.", dns.TypeA, dns.RcodeSuccess},
			{confPreparedQuery + ".query.dc1.consul.", dns.TypeSRV, dns.RcodeSuccess},
			{"orders.service.dc1.consul.", dns.TypeAAAA, dns.RcodeSuccess}, // NODATA
			{"nosuch.service.dc1.consul.", dns.TypeA, dns.RcodeNameError},
			{"nosuch.query.consul.", dns.TypeA, dns.RcodeNameError},
			{"example.com.", dns.TypeA, dns.RcodeRefused}, // Consul has no recursors
		} {
			for _, tcp := range []bool{false, true} {
				for _, rd := range []bool{true, false} {
					asked := confMixCase(tc.name)
					direct := confExchangeTCP(t, w.ConsulDNS, confQuery(asked, tc.qtype, true))
					q := confQuery(asked, tc.qtype, rd)
					var via *dns.Msg
					if tcp {
						via = confExchangeTCP(t, w.Addr, q)
					} else {
						via, _ = confExchangeUDP(t, w.Addr, q)
					}
					where := fmt.Sprintf("%s %s RD=%v over %s", asked, dns.TypeToString[tc.qtype], rd, transport(tcp))
					if direct.Rcode != tc.rcode {
						t.Fatalf("%s: Consul DNS answers %s, test expects %s", where, dns.RcodeToString[direct.Rcode], dns.RcodeToString[tc.rcode])
					}
					if tc.rcode == dns.RcodeSuccess && tc.qtype != dns.TypeAAAA && len(direct.Answer) == 0 {
						t.Fatalf("%s: Consul DNS has no answer: test data missing", where)
					}
					switch {
					case via.Rcode != direct.Rcode:
						t.Errorf("%s: rcode %s, Consul DNS answers %s", where, dns.RcodeToString[via.Rcode], dns.RcodeToString[direct.Rcode])
					case !slices.Equal(confRRData(via.Answer), confRRData(direct.Answer)):
						t.Errorf("%s: answer\n%s\nConsul DNS answers\n%s", where,
							strings.Join(confRRData(via.Answer), "\n"), strings.Join(confRRData(direct.Answer), "\n"))
					case (confSOA(via.Ns) == nil) != (confSOA(direct.Ns) == nil):
						t.Errorf("%s: authority %v, Consul DNS's %v", where, via.Ns, direct.Ns)
					}
					switch {
					case !via.Response || via.Opcode != dns.OpcodeQuery || via.Truncated:
						t.Errorf("%s: QR %v opcode %d TC %v", where, via.Response, via.Opcode, via.Truncated)
					case via.Authoritative:
						t.Errorf("%s: AA set on a relayed answer (Consul's AA is %v)", where, direct.Authoritative)
					case via.RecursionAvailable != direct.RecursionAvailable:
						t.Errorf("%s: RA %v, Consul DNS sets %v", where, via.RecursionAvailable, direct.RecursionAvailable)
					case via.RecursionDesired != rd:
						t.Errorf("%s: RD %v, want it as sent", where, via.RecursionDesired)
					case len(via.Question) != 1 || via.Question[0] != q.Question[0]:
						t.Errorf("%s: question %v, want %v as sent", where, via.Question, q.Question)
					}
				}
			}
		}
	})

	t.Run("second identical query is a cache hit", func(t *testing.T) {
		const name = "replica.orders.service.dc1.consul."
		hits := confMetric(t, w.R, "regiondns_delegation_cache_hits_total")
		misses := confMetric(t, w.R, "regiondns_delegation_cache_misses_total")
		first, _ := confExchangeUDP(t, w.Addr, confQuery(name, dns.TypeA, true))
		second, _ := confExchangeUDP(t, w.Addr, confQuery(strings.ToUpper(name), dns.TypeA, true))
		if first.Rcode != dns.RcodeSuccess || len(first.Answer) != len(w.OrdersReplicas) {
			t.Fatalf("first answer %v", first)
		}
		if !slices.Equal(AnswerAddrs(second), AnswerAddrs(first)) {
			t.Errorf("second answer %v, first %v", second.Answer, first.Answer)
		}
		for _, rr := range second.Answer {
			if rr.Header().Ttl > 5 {
				t.Errorf("cached record %v: TTL over Consul's %s", rr, confDNSTTL)
			}
		}
		if h := confMetric(t, w.R, "regiondns_delegation_cache_hits_total"); h < hits+1 {
			t.Errorf("cache hits %v -> %v, want one more", hits, h)
		}
		if m := confMetric(t, w.R, "regiondns_delegation_cache_misses_total"); m != misses+1 {
			t.Errorf("cache misses %v -> %v, want one more (the first query)", misses, m)
		}
	})

	t.Run("truncated upstream answer retried over TCP", func(t *testing.T) {
		const name = "wide.service.dc1.consul."
		q := confQuery(name, dns.TypeSRV, true)
		confEDNS(q, 1232, 0, false)
		udp, _ := confExchangeUDP(t, w.ConsulDNS, q)
		if !udp.Truncated || len(udp.Answer) >= confWideInstances {
			t.Fatalf("test data: Consul DNS over UDP: TC %v with %d records, want TC (enable_truncate) with fewer than %d",
				udp.Truncated, len(udp.Answer), confWideInstances)
		}
		direct := confExchangeTCP(t, w.ConsulDNS, q)
		if len(direct.Answer) != confWideInstances {
			t.Fatalf("test data: Consul DNS over TCP: %d records, want %d", len(direct.Answer), confWideInstances)
		}
		via := confExchangeTCP(t, w.Addr, confQuery(confMixCase(name), dns.TypeSRV, false))
		if via.Truncated || !slices.Equal(confRRData(via.Answer), confRRData(direct.Answer)) {
			t.Errorf("through regiondns over TCP: TC %v, %d records; want all %d as Consul DNS has them", via.Truncated, len(via.Answer), confWideInstances)
		}
		// A UDP client gets TC within its own buffer size, and the whole
		// answer when it retries over TCP.
		for _, size := range []uint16{0, 512, 1232, 4096} {
			uq := confQuery(name, dns.TypeSRV, true)
			limit := 512
			if size > 0 {
				confEDNS(uq, size, 0, false)
				limit = int(min(size, 1232))
			}
			resp, n := confExchangeUDP(t, w.Addr, uq)
			if !resp.Truncated || n > limit || len(resp.Answer) != 0 {
				t.Errorf("UDP, EDNS size %d: TC %v, %d bytes, %d records; want TC within %d bytes", size, resp.Truncated, n, len(resp.Answer), limit)
			}
		}
	})

	t.Run("delegation off: REFUSED", func(t *testing.T) {
		r := StartRegiondns(t, confZoneYAML(w.Fed, nil), map[string]string{"REGIONDNS_DELEGATION": "false"})
		confWaitZone(t, r.DNSAddr(), w)
		for _, name := range []string{"master.orders.service.dc1.consul.", "example.com.", "."} {
			for _, tcp := range []bool{false, true} {
				q := confQuery(confMixCase(name), dns.TypeA, true)
				var resp *dns.Msg
				if tcp {
					resp = confExchangeTCP(t, r.DNSAddr(), q)
				} else {
					resp, _ = confExchangeUDP(t, r.DNSAddr(), q)
				}
				if resp.Rcode != dns.RcodeRefused || len(resp.Answer) != 0 || resp.Authoritative || resp.Question[0] != q.Question[0] {
					t.Errorf("%s over %s: rcode %s answer %v AA %v question %v; want REFUSED, nothing, no AA, the question echoed",
						name, transport(tcp), dns.RcodeToString[resp.Rcode], resp.Answer, resp.Authoritative, resp.Question)
				}
			}
		}
	})

	t.Run("upstreams unreachable: SERVFAIL within the timeout", func(t *testing.T) {
		// dc1's consul_dns is a closed port (refused at once), dc2's a
		// socket that never answers (every try times out).
		closed := fmt.Sprintf("127.0.0.1:%d", FreePorts(t, 1)[0])
		hole, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer hole.Close()
		const timeout = 300 * time.Millisecond
		r := StartRegiondns(t, confZoneYAML(w.Fed, func(dc *Datacenter) []string {
			if dc == w.Fed.DC1 {
				return []string{closed}
			}
			return []string{hole.LocalAddr().String()}
		}), map[string]string{"REGIONDNS_UPSTREAM_TIMEOUT": timeout.String()})
		confWaitZone(t, r.DNSAddr(), w)
		for _, name := range []string{"master.orders.service.dc1.consul.", "nosuch.node.consul.", "other.service.consul."} {
			for _, tcp := range []bool{false, true} {
				q := confQuery(confMixCase(name), dns.TypeA, true)
				start := time.Now()
				var resp *dns.Msg
				if tcp {
					resp = confExchangeTCP(t, r.DNSAddr(), q)
				} else {
					resp, _ = confExchangeUDP(t, r.DNSAddr(), q)
				}
				took := time.Since(start)
				if resp.Rcode != dns.RcodeServerFailure || len(resp.Answer) != 0 || resp.Authoritative || resp.Question[0] != q.Question[0] {
					t.Errorf("%s over %s: rcode %s answer %v AA %v; want SERVFAIL", name, transport(tcp), dns.RcodeToString[resp.Rcode], resp.Answer, resp.Authoritative)
				}
				// One timeout per upstream that does not answer, and some
				// slack for -race: well before a stub resolver gives up (5 s).
				if took > 2*timeout+time.Second {
					t.Errorf("%s over %s: SERVFAIL after %s, want it within about %s", name, transport(tcp), took.Round(time.Millisecond), 2*timeout)
				}
			}
		}
	})
}

// confWaitZone waits until the regiondns at addr answers rw.orders with the
// leader.
func confWaitZone(t *testing.T, addr string, w *confWorld) {
	t.Helper()
	WaitFor(t, 10*time.Second, func() (bool, string) {
		resp, err := Exchange(addr, NewQuery("rw.orders."+confZone, dns.TypeA), false)
		if err != nil {
			return false, err.Error()
		}
		if got := AnswerAddrs(resp); !slices.Equal(got, []string{w.OrdersLeader}) {
			return false, fmt.Sprintf("rw.orders answers %v", got)
		}
		return true, ""
	})
}
