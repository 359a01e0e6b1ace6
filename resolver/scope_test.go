package resolver

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/forward"
)

// TestDelegationScope: names outside the zone are delegated only under
// DelegationDomains and only for DelegationClients, on both paths, the
// check before any cache lookup; names in the zone are answered to every
// client. The fast path answers each query as the slow path does, without
// allocating.
func TestDelegationScope(t *testing.T) {
	clock := newTestClock()
	lru := forward.NewLRU(forward.LRUOptions{Now: clock.Now})
	h := New(testStore(t), Options{
		Delegator:         forward.New(forward.Options{}, lru, nil),
		DelegationDomains: []string{"consul.", "Alt.Example"},
		DelegationClients: privateRanges,
	}, nil)
	for _, c := range []fastCase{
		{name: "web.service.consul.", qtype: dns.TypeSRV},
		{name: "consul.", qtype: dns.TypeSOA},
		{name: "x.alt.example.", qtype: dns.TypeA},
		// Cached, but outside the domains: a scope narrowed since.
		{name: "a.example.com.", qtype: dns.TypeA},
	} {
		c.qclass = dns.ClassINET
		fill(t, lru, c)
	}
	var (
		loopback = netip.MustParseAddr("127.0.0.1")
		public   = netip.MustParseAddr("203.0.113.5")
	)
	tests := []struct {
		name   string
		qname  string
		qtype  uint16
		src    netip.Addr
		rcode  int
		source Source
	}{
		{"loopback", "web.service.consul.", dns.TypeSRV, loopback, dns.RcodeSuccess, SourceDelegated},
		{"private IPv4", "web.service.consul.", dns.TypeSRV, netip.MustParseAddr("10.1.2.3"), dns.RcodeSuccess, SourceDelegated},
		{"private IPv4 on a dual-stack socket", "web.service.consul.", dns.TypeSRV, netip.MustParseAddr("::ffff:10.1.2.3"), dns.RcodeSuccess, SourceDelegated},
		{"unique local IPv6", "web.service.consul.", dns.TypeSRV, netip.MustParseAddr("fd12::1"), dns.RcodeSuccess, SourceDelegated},
		{"public IPv4", "web.service.consul.", dns.TypeSRV, public, dns.RcodeRefused, SourceError},
		{"public IPv4 on a dual-stack socket", "web.service.consul.", dns.TypeSRV, netip.MustParseAddr("::ffff:203.0.113.5"), dns.RcodeRefused, SourceError},
		{"public IPv6", "web.service.consul.", dns.TypeSRV, netip.MustParseAddr("2001:db8::1"), dns.RcodeRefused, SourceError},
		{"unknown source", "web.service.consul.", dns.TypeSRV, netip.Addr{}, dns.RcodeRefused, SourceError},
		{"the domain's apex", "consul.", dns.TypeSOA, loopback, dns.RcodeSuccess, SourceDelegated},
		{"second domain, given in upper case without the dot", "x.alt.example.", dns.TypeA, loopback, dns.RcodeSuccess, SourceDelegated},
		{"outside the domains, though cached", "a.example.com.", dns.TypeA, loopback, dns.RcodeRefused, SourceError},
		{"root NS: the CoreDNS health probe", ".", dns.TypeNS, loopback, dns.RcodeRefused, SourceError},
		{"a label that only ends like the domain", "xconsul.", dns.TypeA, loopback, dns.RcodeRefused, SourceError},
		{"zone name, public client", "rw.orders." + zone, dns.TypeA, public, dns.RcodeSuccess, SourceSnapshot},
		{"zone NXDOMAIN, public client", "nope." + zone, dns.TypeA, public, dns.RcodeNameError, SourceSnapshot},
	}
	out := make([]byte, dns.MaxMsgSize)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, size := range []uint16{0, 1232} {
				c := fastCase{name: tt.qname, qtype: tt.qtype, qclass: dns.ClassINET, size: size, rd: true}
				query, err := c.msg(tt.qname).Pack()
				if err != nil {
					t.Fatal(err)
				}
				hits := lru.Stats().Hits
				want, o := h.answerSlow(bytes.Clone(query), false, tt.src, 0)
				var m dns.Msg
				if err := m.Unpack(want); err != nil {
					t.Fatal(err)
				}
				if m.Rcode != tt.rcode || o.source != tt.source || m.Authoritative != (tt.source == SourceSnapshot) {
					t.Errorf("EDNS %d: slow path rcode %s, source %d, AA %v; want %s, source %d",
						size, dns.RcodeToString[m.Rcode], o.source, m.Authoritative, dns.RcodeToString[tt.rcode], tt.source)
				}
				if tt.rcode == dns.RcodeRefused && (len(m.Answer)+len(m.Ns) != 0 || m.RecursionAvailable || (size > 0) != (m.IsEdns0() != nil)) {
					t.Errorf("EDNS %d: REFUSED response %v; want the question and our OPT only", size, &m)
				}
				f := h.answerWire(query, tt.src, false, out, 0)
				if !f.ok || f.source != tt.source || int(f.rcode) != tt.rcode {
					t.Fatalf("EDNS %d: fast path %+v, want an answer from source %d", size, f, tt.source)
				}
				if g, w := normalized(t, out[:f.n]), normalized(t, want); g != w {
					t.Errorf("EDNS %d: fast path answer differs\n got %s\nwant %s", size, g, w)
				}
				if tt.source == SourceError && lru.Stats().Hits != hits {
					t.Errorf("EDNS %d: a refused query read the cache", size)
				}
				if n := testing.AllocsPerRun(100, func() { h.answerWire(query, tt.src, false, out, 0) }); n != 0 {
					t.Errorf("EDNS %d: %v allocations per query on the fast path, want 0", size, n)
				}
			}
		})
	}

	// An escaped dot is part of a label: "a\.consul." is not under consul.
	// (the fast path leaves escapes to the slow path).
	resp := h.HandleRequest(query(`a\.consul.`, dns.TypeA, 0), loopback, false)
	if resp.Rcode != dns.RcodeRefused {
		t.Errorf(`a\.consul.: %s, want REFUSED`, dns.RcodeToString[resp.Rcode])
	}
}

// TestDelegationScopeDefaults: without DelegationDomains and
// DelegationClients every name and every client is delegated.
func TestDelegationScopeDefaults(t *testing.T) {
	var asked int
	h := New(testStore(t), Options{Delegator: DelegateFunc(func(req *dns.Msg, _ bool, _ netip.Addr) (*dns.Msg, error) {
		asked++
		m := new(dns.Msg)
		m.SetReply(req)
		return m, nil
	})}, nil)
	for _, src := range []netip.Addr{netip.MustParseAddr("203.0.113.5"), {}} {
		if resp := h.HandleRequest(query("example.com.", dns.TypeA, 0), src, false); resp.Rcode != dns.RcodeSuccess {
			t.Errorf("from %v: %s, want the delegator's answer", src, dns.RcodeToString[resp.Rcode])
		}
	}
	if asked != 2 {
		t.Errorf("delegator asked %d times, want 2", asked)
	}
}

// cachedOrAnswer is a Delegator that answers names its LRU holds on the
// fast path (through a forwarder without upstreams) and every other name
// with one A record on the slow path.
type cachedOrAnswer struct{ *forward.Forwarder }

func (d cachedOrAnswer) Delegate(req *dns.Msg, _ bool, _ netip.Addr) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetReply(req)
	rr, err := dns.NewRR(req.Question[0].Name + " 30 IN A 192.0.2.7")
	m.Answer = []dns.RR{rr}
	return m, err
}

// TestServerPassesClientAddress: the UDP and TCP loops give the handler
// the client's address, on the fast path (a cached answer) and on the
// slow path, an IPv4 client on a dual-stack socket as IPv4: a server that
// allows loopback delegates, one that does not refuses, and both answer
// the zone.
func TestServerPassesClientAddress(t *testing.T) {
	lru := forward.NewLRU(forward.LRUOptions{Now: newTestClock().Now})
	cached := fastCase{name: "web.service.consul.", qtype: dns.TypeSRV, qclass: dns.ClassINET}
	fill(t, lru, cached)
	delegator := cachedOrAnswer{forward.New(forward.Options{}, lru, nil)}
	for _, tt := range []struct {
		name    string
		clients []netip.Prefix
		want    int
	}{
		{"loopback allowed", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}, dns.RcodeSuccess},
		{"loopback not allowed", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, dns.RcodeRefused},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := New(testStore(t), Options{Delegator: delegator, DelegationClients: tt.clients}, nil)
			// The wildcard address: a dual-stack socket where the kernel
			// offers one.
			srv := NewServer(":0", h, ServerOptions{UDPSockets: 2}, nil)
			if err := srv.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Shutdown(context.Background()) })
			_, port, _ := net.SplitHostPort(srv.Addr())
			for _, host := range []string{"127.0.0.1", "::1"} {
				addr := net.JoinHostPort(host, port)
				c, err := net.Dial("udp", addr)
				if err != nil {
					t.Logf("%s: %v (no IPv6 here?)", addr, err)
					continue
				}
				c.Close()
				for _, network := range []string{"udp", "tcp"} {
					for _, q := range []struct {
						name  string
						qtype uint16
						want  int
					}{
						{cached.name, cached.qtype, tt.want},               // the fast path
						{"new.service.consul.", dns.TypeA, tt.want},        // the slow path
						{"rw.orders." + zone, dns.TypeA, dns.RcodeSuccess}, // the zone, to all
					} {
						resp := exchange(t, network, addr, query(q.name, q.qtype, 1232))
						if resp.Rcode != q.want || q.want == dns.RcodeSuccess && len(resp.Answer) == 0 {
							t.Errorf("%s %s %s: %s with %d records, want %s", network, addr, q.name,
								dns.RcodeToString[resp.Rcode], len(resp.Answer), dns.RcodeToString[q.want])
						}
					}
				}
			}
		})
	}
}
