package e2e

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/miekg/dns"
)

// The Consul data of the faithful-delegation tests: a service registered
// in both datacenters with different addresses, and a prepared query that
// sorts for the client (Near "_ip") over nodes whose addresses are client
// subnets.
const (
	faithService   = "faithful"
	faithNearQuery = "near-ip"
	faithNearSvc   = "nearsvc"
)

// faithDC1 and faithDC2 are the addresses of faithService's instances in
// each datacenter.
var (
	faithDC1 = []string{"127.0.40.1", "127.0.40.2", "127.0.40.3", "127.0.40.4", "127.0.40.5"}
	faithDC2 = []string{"127.0.41.1", "127.0.41.2", "127.0.41.3"}
)

// faithNear are the nodes of the Near "_ip" prepared query: the node's
// address is a client subnet's (a /24's network address, what a client
// subnet option of that /24 carries), its instance's address the one
// answered.
var faithNear = []struct{ node, subnet, instance string }{
	{"near-a", "127.51.0.0", "127.51.0.10"},
	{"near-b", "127.52.0.0", "127.52.0.10"},
	{"near-c", "127.53.0.0", "127.53.0.10"},
	{"near-d", "127.54.0.0", "127.54.0.10"},
}

// confDelegationFaithful covers what makes delegation answer as Consul DNS
// answers the client itself: a name without a datacenter keeps the local
// datacenter when the other region's agents answer it, a cached answer
// changes order with every query, and a prepared query with Near "_ip"
// sorts for the client's subnet.
func confDelegationFaithful(t *testing.T, w *confWorld) {
	faithRegister(t, w)

	t.Run("local agents down: names without a datacenter still answer the local datacenter", func(t *testing.T) {
		// dc1's consul_dns is a closed port: every delegated name goes to
		// dc2's agent.
		closed := fmt.Sprintf("127.0.0.1:%d", FreePorts(t, 1)[0])
		r := StartRegiondns(t, confZoneYAML(w.Fed, func(dc *Datacenter) []string {
			if dc == w.Fed.DC1 {
				return []string{closed}
			}
			return []string{dc.Agent().DNSAddr()}
		}), confEnv)
		confWaitZone(t, r.DNSAddr(), w)
		dc2DNS := w.Fed.DC2.Agent().DNSAddr()
		for _, tc := range []struct {
			name  string
			qtype uint16
			want  []string // A addresses, or the SRV targets' datacenter
		}{
			{faithService + ".service.consul.", dns.TypeA, faithDC1},
			{"_" + faithService + "._tcp.service.consul.", dns.TypeSRV, []string{"dc1"}},
			{confPreparedQuery + ".query.consul.", dns.TypeA, w.OrdersReplicas},
			{w.Fed.DC1.Server.Name + ".node.consul.", dns.TypeA, []string{"127.0.0.1"}},
			{faithService + ".service.dc2.consul.", dns.TypeA, faithDC2}, // a datacenter named: asked as it is
		} {
			for _, tcp := range []bool{false, true} {
				asked := confMixCase(tc.name)
				q := confQuery(asked, tc.qtype, true)
				var via *dns.Msg
				if tcp {
					via = confExchangeTCP(t, r.DNSAddr(), q)
				} else {
					via, _ = confExchangeUDP(t, r.DNSAddr(), q)
				}
				where := fmt.Sprintf("%s %s over %s", asked, dns.TypeToString[tc.qtype], transport(tcp))
				// What the local agent answers, and what dc2's agent
				// answers when asked the name as the client asked it.
				local := confExchangeTCP(t, w.ConsulDNS, confQuery(asked, tc.qtype, true))
				theirs := confExchangeTCP(t, dc2DNS, confQuery(asked, tc.qtype, true))
				if via.Rcode != dns.RcodeSuccess || !slices.Equal(confRRData(via.Answer), confRRData(local.Answer)) {
					t.Errorf("%s: %s\n%s\nthe local agent answers\n%s", where, dns.RcodeToString[via.Rcode],
						strings.Join(confRRData(via.Answer), "\n"), strings.Join(confRRData(local.Answer), "\n"))
				}
				switch tc.qtype {
				case dns.TypeA:
					if got := AnswerAddrs(via); !slices.Equal(got, sortedCopy(tc.want)) {
						t.Errorf("%s: %v, want %v", where, got, sortedCopy(tc.want))
					}
				case dns.TypeSRV:
					// Consul names an instance's address in its datacenter
					// (<hex>.addr.<dc>.consul.).
					for _, srv := range AnswerSRV(via) {
						if !strings.Contains(srv, "."+tc.want[0]+".consul.") {
							t.Errorf("%s: target %s, want one in %s", where, srv, tc.want[0])
						}
					}
				}
				for _, rr := range via.Answer {
					if owner := rr.Header().Name; !strings.EqualFold(owner, tc.name) {
						t.Errorf("%s: record %v owned by %s, want the name asked", where, rr, owner)
					}
				}
				if len(via.Question) != 1 || via.Question[0] != q.Question[0] {
					t.Errorf("%s: question %v, want %v as sent", where, via.Question, q.Question)
				}
				if !strings.Contains(tc.name, ".dc2.") && slices.Equal(confRRData(theirs.Answer), confRRData(local.Answer)) {
					t.Fatalf("%s: test data: dc2's agent answers it as dc1's does", where)
				}
			}
		}
	})

	t.Run("a cached answer comes back in a new order per query", func(t *testing.T) {
		name := faithService + ".service.dc1.consul."
		first, _ := confExchangeUDP(t, w.Addr, confQuery(name, dns.TypeA, true))
		if got := AnswerAddrs(first); !slices.Equal(got, sortedCopy(faithDC1)) {
			t.Fatalf("first answer %v, want %v", got, faithDC1)
		}
		hits := confMetric(t, w.R, "regiondns_delegation_cache_hits_total")
		misses := confMetric(t, w.R, "regiondns_delegation_cache_misses_total")
		const n = 20
		for _, tc := range []struct {
			path, name string
			tcp        bool
		}{
			{"fast path over UDP", name, false},
			{"fast path over TCP", name, true},
			{"slow path (upper case) over UDP", strings.ToUpper(name), false},
		} {
			orders := map[string]bool{}
			for range n {
				q := confQuery(tc.name, dns.TypeA, true)
				var resp *dns.Msg
				if tc.tcp {
					resp = confExchangeTCP(t, w.Addr, q)
				} else {
					resp, _ = confExchangeUDP(t, w.Addr, q)
				}
				if !slices.Equal(confRRData(resp.Answer), confRRData(first.Answer)) {
					t.Fatalf("%s: answer\n%s\nwant the records of the first", tc.path,
						strings.Join(confRRData(resp.Answer), "\n"))
				}
				var order []string
				for _, rr := range resp.Answer {
					order = append(order, rr.(*dns.A).A.String())
				}
				orders[strings.Join(order, " ")] = true
			}
			if len(orders) < 2 {
				t.Errorf("%s: %d queries, one order: %v", tc.path, n, orders)
			}
		}
		if h := confMetric(t, w.R, "regiondns_delegation_cache_hits_total"); h < hits+3*n {
			t.Errorf("cache hits %v -> %v, want %d more: every query a hit", hits, h, 3*n)
		}
		if m := confMetric(t, w.R, "regiondns_delegation_cache_misses_total"); m != misses {
			t.Errorf("cache misses %v -> %v, want none: the entry lives %s", misses, m, confDNSTTL)
		}
	})

	t.Run("a prepared query near the client sorts for the client's subnet", func(t *testing.T) {
		name := faithNearQuery + ".query.consul."
		direct := confExchangeTCP(t, w.ConsulDNS, confQuery(name, dns.TypeA, true))
		if len(direct.Answer) != len(faithNear) {
			t.Fatalf("test data: Consul DNS answers %v, want %d instances", direct.Answer, len(faithNear))
		}
		// The client's own subnet option: each subnet gets its node's
		// instance first, every time (the answer is cached for the
		// subnet, in Consul's order), and its option back with Consul's
		// scope.
		for _, n := range faithNear {
			for try := range 3 {
				q := confQuery(name, dns.TypeA, true)
				opt := confEDNS(q, 1232, 0, false)
				opt.Option = []dns.EDNS0{&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.ParseIP(n.subnet)}}
				resp, _ := confExchangeUDP(t, w.Addr, q)
				where := fmt.Sprintf("client subnet %s/24, query %d", n.subnet, try+1)
				if got := faithFirst(resp); got != n.instance {
					t.Errorf("%s: first %s, want %s (node %s) first: %v", where, got, n.instance, n.node, AnswerAddrs(resp))
				}
				if len(resp.Answer) != len(faithNear) {
					t.Errorf("%s: %d records, want %d", where, len(resp.Answer), len(faithNear))
				}
				ecs := faithSubnet(resp)
				if ecs == nil || ecs.SourceNetmask != 24 || ecs.SourceScope != 24 || !ecs.Address.Equal(net.ParseIP(n.subnet)) {
					t.Errorf("%s: option %v, want %s/24 back with Consul's scope 24", where, ecs, n.subnet)
				}
			}
		}
		// Without an option, the client's source address: its /24 is a
		// node's address.
		for _, n := range faithNear[2:] {
			src := strings.TrimSuffix(n.subnet, ".0") + ".77"
			for try := range 3 {
				resp := faithExchangeFrom(t, src, w.Addr, confQuery(name, dns.TypeA, true))
				if got := faithFirst(resp); got != n.instance {
					t.Errorf("client %s, query %d: first %s, want %s (node %s) first: %v", src, try+1, got, n.instance, n.node, AnswerAddrs(resp))
				}
				if faithSubnet(resp) != nil {
					t.Errorf("client %s sent no client subnet, got one back", src)
				}
			}
		}
	})
}

// faithRegister registers the data of confDelegationFaithful and waits
// until Consul DNS answers it.
func faithRegister(t *testing.T, w *confWorld) {
	t.Helper()
	register := func(agent *Agent, node, nodeAddr, service, addr string) {
		t.Helper()
		if _, err := agent.API().Catalog().Register(&api.CatalogRegistration{
			Node: node, Address: nodeAddr, Datacenter: agent.Datacenter,
			Service: &api.AgentService{ID: service + "-" + node, Service: service, Address: addr, Port: 5432},
		}, nil); err != nil {
			t.Fatalf("register %s on %s: %v", service, node, err)
		}
	}
	for i, a := range faithDC1 {
		register(w.Fed.DC1.Server, fmt.Sprintf("faith-dc1-%d", i+1), a, faithService, a)
	}
	for i, a := range faithDC2 {
		register(w.Fed.DC2.Server, fmt.Sprintf("faith-dc2-%d", i+1), a, faithService, a)
	}
	for _, n := range faithNear {
		register(w.Fed.DC1.Server, n.node, n.subnet, faithNearSvc, n.instance)
	}
	if _, _, err := w.Fed.DC1.Server.API().PreparedQuery().Create(&api.PreparedQueryDefinition{
		Name:    faithNearQuery,
		Service: api.ServiceQuery{Service: faithNearSvc, Near: "_ip"},
	}, nil); err != nil {
		t.Fatalf("create prepared query: %v", err)
	}
	WaitFor(t, 20*time.Second, func() (bool, string) {
		for name, want := range map[string]int{
			faithService + ".service.dc1.consul.": len(faithDC1),
			faithService + ".service.dc2.consul.": len(faithDC2),
			faithNearQuery + ".query.dc1.consul.": len(faithNear),
		} {
			resp, err := Exchange(w.ConsulDNS, NewQuery(name, dns.TypeA), true)
			if err != nil {
				return false, err.Error()
			}
			if len(resp.Answer) != want {
				return false, fmt.Sprintf("%s: %d records, want %d", name, len(resp.Answer), want)
			}
		}
		return true, ""
	})
}

// faithFirst returns the address of the first A record of m.
func faithFirst(m *dns.Msg) string {
	for _, rr := range m.Answer {
		if a, ok := rr.(*dns.A); ok {
			return a.A.String()
		}
	}
	return ""
}

// faithSubnet returns the client subnet option of m, or nil.
func faithSubnet(m *dns.Msg) *dns.EDNS0_SUBNET {
	if opt := m.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if s, ok := o.(*dns.EDNS0_SUBNET); ok {
				return s
			}
		}
	}
	return nil
}

// faithExchangeFrom sends m over UDP to addr from the local address src
// (any address of 127.0.0.0/8 is the loopback's on Linux) and returns the
// response.
func faithExchangeFrom(t *testing.T, src, addr string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: "udp", Timeout: queryTimeout,
		Dialer: &net.Dialer{Timeout: queryTimeout, LocalAddr: &net.UDPAddr{IP: net.ParseIP(src)}}}
	resp, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("query from %s: %v", src, err)
	}
	return resp
}
