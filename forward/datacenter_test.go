package forward

import (
	"cmp"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestWithDatacenter(t *testing.T) {
	domains := []string{"consul.", "consul.example.internal."}
	tests := []struct {
		name  string
		qtype uint16
		want  string // "" : asked as it is
	}{
		{"web.service.consul.", dns.TypeA, "web.service.dc1.consul."},
		{"master.web.service.consul.", dns.TypeA, "master.web.service.dc1.consul."},
		{"a.b.web.service.consul.", dns.TypeSRV, "a.b.web.service.dc1.consul."},
		{"_web._tcp.service.consul.", dns.TypeSRV, "_web._tcp.service.dc1.consul."},
		{"_web._tcp.consul.", dns.TypeSRV, "_web._tcp.dc1.consul."}, // RFC 2782 without "service"
		{"_web._tcp.consul.", dns.TypeA, ""},                        // only SRV reads it so
		{"node-1.node.consul.", dns.TypeA, "node-1.node.dc1.consul."},
		{"a.b.node.consul.", dns.TypeAAAA, "a.b.node.dc1.consul."},
		{"replicas.query.consul.", dns.TypeA, "replicas.query.dc1.consul."},
		{"_replicas._tcp.query.consul.", dns.TypeSRV, "_replicas._tcp.query.dc1.consul."},
		{"7f000001.addr.consul.", dns.TypeA, "7f000001.addr.dc1.consul."},
		{"web.connect.consul.", dns.TypeA, "web.connect.dc1.consul."},
		{"web.ingress.consul.", dns.TypeA, "web.ingress.dc1.consul."},
		{"web.service.consul.example.internal.", dns.TypeA, "web.service.dc1.consul.example.internal."},
		{"node.service.consul.", dns.TypeA, "node.service.dc1.consul."}, // the kind read is the last one

		{"web.service.dc2.consul.", dns.TypeA, ""},           // a datacenter already
		{"web.service.dc1.consul.", dns.TypeA, ""},           // the local one, too
		{"_web._tcp.service.dc2.consul.", dns.TypeSRV, ""},   // RFC 2782 with a datacenter
		{"_web._tcp.dc2.consul.", dns.TypeSRV, ""},           // and without "service"
		{"web.service.peer1.peer.consul.", dns.TypeA, ""},    // a peer
		{"web.service.ns1.ns.dc2.dc.consul.", dns.TypeA, ""}, // namespace and datacenter
		{"web.virtual.consul.", dns.TypeA, ""},               // Consul reads a peer after virtual
		{"service.consul.", dns.TypeA, ""},                   // no service named: Consul's NXDOMAIN
		{"consul.", dns.TypeSOA, ""},                         // the domain itself
		{"www.example.com.", dns.TypeA, ""},                  // outside Consul's domains
		{"web.service.consul.example.com.", dns.TypeA, ""},   // not under a domain
		{"nokind.consul.", dns.TypeA, ""},                    // no kind of lookup
		{"x.service.dc1.service.consul.", dns.TypeA, "x.service.dc1.service.dc1.consul."},
	}
	for _, tt := range tests {
		if got := withDatacenter(tt.name, tt.qtype, "dc1", domains); got != tt.want {
			t.Errorf("withDatacenter(%s %s) = %q, want %q", tt.name, dns.TypeToString[tt.qtype], got, tt.want)
		}
	}
	if got := withDatacenter("web.service.consul.", dns.TypeA, "", domains); got != "" {
		t.Errorf("without a local datacenter: %q, want the name as asked", got)
	}
}

// fakeConsul answers as an agent of datacenter dc answers a service
// lookup: the instances of the datacenter the name names (or of dc when
// it names none; 10.1.0.x for dc1, 10.2.0.x for dc2), A records owned by
// the name asked, or SRV records to node names that always carry the
// datacenter with their addresses in the additional section, and an SOA
// for names it does not know.
func fakeConsul(dc string) answerFunc {
	return func(req *dns.Msg, _ bool) *dns.Msg {
		q := req.Question[0]
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		which := dc
		for _, d := range []string{"dc1", "dc2"} {
			if strings.Contains(q.Name, "."+d+".") {
				which = d
			}
		}
		if strings.HasPrefix(q.Name, "nosuch.") {
			m.Rcode = dns.RcodeNameError
			soa, _ := dns.NewRR("consul. 5 IN SOA ns.consul. hostmaster.consul. 1 3600 600 86400 5")
			m.Ns = []dns.RR{soa}
			return m
		}
		for i := range 2 {
			ip := net.IPv4(10, map[string]byte{"dc1": 1, "dc2": 2}[which], 0, byte(i+1))
			node := "node-" + string(rune('a'+i)) + ".node." + which + ".consul."
			a := &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30}, A: ip}
			if q.Qtype == dns.TypeSRV {
				m.Answer = append(m.Answer, &dns.SRV{
					Hdr:  dns.RR_Header{Name: q.Name, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 30},
					Port: 5432, Target: node,
				})
				a.Hdr.Name = node
				m.Extra = append(m.Extra, a)
				continue
			}
			m.Answer = append(m.Answer, a)
		}
		return m
	}
}

// TestNamesWithoutDatacenterStayLocal: a name without a datacenter is
// asked for the local datacenter of every upstream, so that when the
// local region's agents are down the other region's answer for the local
// datacenter, not theirs; the answer comes back under the client's name.
// A name with a datacenter is asked as it is.
func TestNamesWithoutDatacenterStayLocal(t *testing.T) {
	local, other := startUpstream(t, fakeConsul("dc1")), startUpstream(t, fakeConsul("dc2"))
	down := closedAddr(t)
	tests := []struct {
		name, asked string
		qtype       uint16
		want        string // the datacenter answered for
	}{
		{"web.service.consul.", "web.service.dc1.consul.", dns.TypeA, "dc1"},
		{"master.web.service.consul.", "master.web.service.dc1.consul.", dns.TypeA, "dc1"},
		{"_web._tcp.service.consul.", "_web._tcp.service.dc1.consul.", dns.TypeSRV, "dc1"},
		{"_web._tcp.consul.", "_web._tcp.dc1.consul.", dns.TypeSRV, "dc1"},
		{"replicas.query.consul.", "replicas.query.dc1.consul.", dns.TypeA, "dc1"},
		{"node-a.node.consul.", "node-a.node.dc1.consul.", dns.TypeA, "dc1"},
		{"0a010001.addr.consul.", "0a010001.addr.dc1.consul.", dns.TypeA, "dc1"},
		{"web.service.dc2.consul.", "web.service.dc2.consul.", dns.TypeA, "dc2"},
		{"web.virtual.consul.", "web.virtual.consul.", dns.TypeA, ""}, // the agent's own
	}
	for _, setup := range []struct {
		name   string
		groups [][]string
		served *fakeUpstream
		agent  string // the datacenter of the agent that answers
	}{
		{"local agents up", [][]string{{local.addr}, {other.addr}}, local, "dc1"},
		{"local agents down", [][]string{{down}, {other.addr}}, other, "dc2"},
		{"local region without consul_dns", [][]string{{other.addr}}, other, "dc2"},
	} {
		t.Run(setup.name, func(t *testing.T) {
			f := New(Options{Groups: setup.groups, Datacenter: "DC1", Timeout: deadline}, NewLRU(LRUOptions{}), nil)
			for _, tt := range tests {
				client := strings.ToUpper(tt.name[:1]) + tt.name[1:]
				m, err := f.Delegate(query(client, tt.qtype, 1232), false, netip.Addr{})
				if err != nil {
					t.Fatalf("%s: %v", tt.name, err)
				}
				if got := setup.served.last(t).Question[0].Name; got != tt.asked {
					t.Errorf("%s: upstream asked for %s, want %s", tt.name, got, tt.asked)
				}
				want := cmp.Or(tt.want, setup.agent)
				prefix := map[string]string{"dc1": "10.1.0.", "dc2": "10.2.0."}[want]
				var addrs []dns.RR
				if tt.qtype == dns.TypeSRV {
					addrs = m.Extra
					for _, rr := range m.Answer {
						if rr.Header().Name != tt.name || !strings.HasSuffix(rr.(*dns.SRV).Target, ".node."+want+".consul.") {
							t.Errorf("%s: SRV %v, want it owned by the name asked, to a node of %s", tt.name, rr, want)
						}
					}
				} else {
					addrs = m.Answer
				}
				if len(addrs) != 2 {
					t.Fatalf("%s: %v", tt.name, m)
				}
				for _, rr := range addrs {
					a := rr.(*dns.A)
					if !strings.HasPrefix(a.A.String(), prefix) {
						t.Errorf("%s: %v answered, want an instance of %s", tt.name, a, want)
					}
					if tt.qtype != dns.TypeSRV && a.Hdr.Name != tt.name {
						t.Errorf("%s: record owned by %s, want the name asked (lower case)", tt.name, a.Hdr.Name)
					}
					if tt.qtype == dns.TypeSRV && !strings.HasSuffix(a.Hdr.Name, ".node."+want+".consul.") {
						t.Errorf("%s: additional %v renamed", tt.name, a)
					}
				}
				if m.Question[0].Name != client {
					t.Errorf("%s: question %s, want the client's", tt.name, m.Question[0].Name)
				}
			}
		})
	}
}

// TestNegativeAnswerRenamedBack: the SOA of an NXDOMAIN is Consul's domain
// and keeps its name; the answer is cached under the client's name.
func TestNegativeAnswerRenamedBack(t *testing.T) {
	other := startUpstream(t, fakeConsul("dc2"))
	f := New(Options{Groups: [][]string{{closedAddr(t)}, {other.addr}}, Datacenter: "dc1", Timeout: deadline}, NewLRU(LRUOptions{}), nil)
	for range 2 {
		m, err := f.Delegate(query("nosuch.service.consul.", dns.TypeA, 1232), false, netip.Addr{})
		if err != nil || m.Rcode != dns.RcodeNameError || len(m.Ns) != 1 || m.Ns[0].Header().Name != "consul." {
			t.Fatalf("%v, %v; want NXDOMAIN with Consul's SOA", m, err)
		}
	}
	if other.queries() != 1 {
		t.Errorf("%d upstream queries, want 1: the second is a cache hit", other.queries())
	}
}

func TestRewriteOwners(t *testing.T) {
	m := new(dns.Msg)
	for _, s := range []string{
		"web.service.dc1.consul. 5 IN A 10.0.0.1",
		"WEB.Service.DC1.consul. 5 IN A 10.0.0.2",
		"x.web.service.dc1.consul. 5 IN A 10.0.0.3",
		"xweb.service.dc1.consul. 5 IN A 10.0.0.4",
		"node-1.node.dc1.consul. 5 IN A 10.0.0.5",
		"consul. 5 IN SOA ns.consul. hostmaster.consul. 1 3600 600 86400 5",
	} {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		m.Answer = append(m.Answer, rr)
	}
	rewriteOwners(m, "web.service.dc1.consul.", "web.service.consul.")
	var got []string
	for _, rr := range m.Answer {
		got = append(got, rr.Header().Name)
	}
	want := []string{"web.service.consul.", "web.service.consul.", "x.web.service.consul.",
		"xweb.service.dc1.consul.", "node-1.node.dc1.consul.", "consul."}
	if !slices.Equal(got, want) {
		t.Errorf("owners %v, want %v", got, want)
	}
}
