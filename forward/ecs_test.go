package forward

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// fakeNear answers as Consul DNS answers with a client subnet: one A
// record, an IPv4 subnet's address plus one (the instance "nearest" to
// the client), and the option echoed with scope 0 for a service and the
// source prefix length for a prepared query (Consul's ecsGlobal). An
// upstream query without the option gets 192.0.2.1. echo, when not nil,
// changes the option echoed.
func fakeNear(echo func(*dns.EDNS0_SUBNET)) answerFunc {
	return func(req *dns.Msg, _ bool) *dns.Msg {
		q := req.Question[0]
		m := new(dns.Msg)
		m.SetReply(req)
		ip := net.IPv4(192, 0, 2, 1)
		opt := req.IsEdns0()
		if opt != nil {
			m.SetEdns0(opt.UDPSize(), opt.Do())
		}
		if sub := subnetOption(opt); sub != nil {
			if v4 := sub.Address.To4(); v4 != nil {
				ip = append(net.IP(nil), v4...)
				ip[3]++
			}
			out := *sub
			out.SourceScope = 0
			if strings.Contains(q.Name, ".query.") {
				out.SourceScope = sub.SourceNetmask
			}
			if echo != nil {
				echo(&out)
			}
			m.IsEdns0().Option = []dns.EDNS0{&out}
		}
		m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30}, A: ip}}
		return m
	}
}

// withSubnet returns a query for name with a client subnet option.
func withSubnet(name string, family uint16, bits uint8, addr string) *dns.Msg {
	m := query(name, dns.TypeA, 1232)
	m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_SUBNET{
		Code: dns.EDNS0SUBNET, Family: family, SourceNetmask: bits, Address: net.ParseIP(addr),
	}}
	return m
}

// TestClientSubnetSentUpstream: for a name under Consul's domain, the
// client's subnet option goes upstream as the client sent it; without
// one, the client's address cut to /24 or /56; without either, none. A
// name outside Consul's domain goes without.
func TestClientSubnetSentUpstream(t *testing.T) {
	up := startUpstream(t, fakeNear(nil))
	f := forwarder(nil, []string{up.addr})
	tests := []struct {
		name   string
		req    *dns.Msg
		src    string
		family uint16
		bits   uint8
		addr   string // "": no option upstream
	}{
		{"IPv4 client", query("a.service.consul.", dns.TypeA, 1232), "192.0.2.77", 1, 24, "192.0.2.0"},
		{"IPv4 client without EDNS", query("a.service.consul.", dns.TypeA, 0), "192.0.2.77", 1, 24, "192.0.2.0"},
		{"IPv4-mapped client", query("a.service.consul.", dns.TypeA, 1232), "::ffff:192.0.2.77", 1, 24, "192.0.2.0"},
		{"IPv6 client", query("a.service.consul.", dns.TypeA, 1232), "2001:db8:1:2a5:3::1", 2, 56, "2001:db8:1:200::"},
		{"client's own /32", withSubnet("a.service.consul.", 1, 32, "198.51.100.7"), "192.0.2.77", 1, 32, "198.51.100.7"},
		{"client's own IPv6 /64", withSubnet("a.service.consul.", 2, 64, "2001:db8:9:9::"), "192.0.2.77", 2, 64, "2001:db8:9:9::"},
		{"client's /0: nothing revealed", withSubnet("a.service.consul.", 1, 0, "0.0.0.0"), "192.0.2.77", 1, 0, "0.0.0.0"},
		{"no client address", query("a.service.consul.", dns.TypeA, 1232), "", 0, 0, ""},
		// Consul hands names outside its domain to its recursors as they
		// came: a client's subnet does not go there.
		{"name outside Consul's domain", query("www.example.com.", dns.TypeA, 1232), "192.0.2.77", 0, 0, ""},
		{"client's own, outside Consul's domain", withSubnet("www.example.com.", 1, 32, "198.51.100.7"), "192.0.2.77", 0, 0, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A name of its own: no answer cached yet.
			tt.req.Question[0].Name = strings.Repeat("x", i+1) + "." + tt.req.Question[0].Name
			var src netip.Addr
			if tt.src != "" {
				src = netip.MustParseAddr(tt.src)
			}
			if _, err := f.Delegate(tt.req, false, src); err != nil {
				t.Fatal(err)
			}
			sent := subnetOption(up.last(t).IsEdns0())
			if tt.addr == "" {
				if sent != nil {
					t.Fatalf("upstream got %v, want no client subnet", sent)
				}
				return
			}
			if sent == nil || sent.Family != tt.family || sent.SourceNetmask != tt.bits || sent.SourceScope != 0 ||
				!sent.Address.Equal(net.ParseIP(tt.addr)) {
				t.Errorf("upstream got %v, want %s/%d", sent, tt.addr, tt.bits)
			}
		})
	}
}

// TestClientSourceSentUpstream: through the server, over UDP and TCP, the
// address a query came from is the client subnet asked for.
func TestClientSourceSentUpstream(t *testing.T) {
	up := startUpstream(t, fakeNear(nil))
	srv := startForwardingServer(t, forwarder(nil, []string{up.addr}))
	for _, network := range []string{"udp", "tcp"} {
		exchange(t, network, srv.Addr(), query("web.service.consul.", dns.TypeA, 0))
		sent := subnetOption(up.last(t).IsEdns0())
		if sent == nil || sent.Family != 1 || sent.SourceNetmask != 24 || !sent.Address.Equal(net.IPv4(127, 0, 0, 0)) {
			t.Errorf("over %s: upstream got %v, want the client's 127.0.0.0/24", network, sent)
		}
	}
}

// TestCacheKeyedByScope: an answer of scope 0 is cached once for every
// client; one of another scope is cached for the subnet asked, and found
// again by a client of the same subnet only. The response says which.
func TestCacheKeyedByScope(t *testing.T) {
	up := startUpstream(t, fakeNear(nil))
	f := forwarder(newTestClock(), []string{up.addr})
	ask := func(name, src string) (net.IP, *dns.EDNS0_SUBNET) {
		t.Helper()
		m, err := f.Delegate(query(name, dns.TypeA, 1232), false, netip.MustParseAddr(src))
		if err != nil || len(m.Answer) != 1 {
			t.Fatalf("%s from %s: %v, %v", name, src, m, err)
		}
		return m.Answer[0].(*dns.A).A, subnetOption(m.IsEdns0())
	}

	a, ecs := ask("web.service.consul.", "192.0.2.7")
	b, _ := ask("web.service.consul.", "198.51.100.9")
	if up.queries() != 1 || !a.Equal(b) {
		t.Errorf("scope 0: %d upstream queries, answers %v and %v; want one query, one answer for both", up.queries(), a, b)
	}
	if ecs == nil || ecs.SourceScope != 0 || ecs.SourceNetmask != 24 {
		t.Errorf("scope 0: response option %v, want the subnet asked with scope 0", ecs)
	}
	if _, _, ok := f.CachedWire([]byte(wireQ(t, "web.service.consul.")), false); !ok {
		t.Error("scope 0: not answered on the fast path")
	}

	a, ecs = ask("near.query.consul.", "192.0.2.7")
	b, _ = ask("near.query.consul.", "198.51.100.9")
	again, _ := ask("near.query.consul.", "192.0.2.200")
	if up.queries() != 3 {
		t.Errorf("scope 24: %d upstream queries in all, want 3 (one per subnet)", up.queries())
	}
	if !a.Equal(net.ParseIP("192.0.2.1")) || !b.Equal(net.ParseIP("198.51.100.1")) || !again.Equal(a) {
		t.Errorf("scope 24: answers %v, %v, %v; want each subnet's own, the third from the cache", a, b, again)
	}
	if ecs == nil || ecs.SourceScope != 24 {
		t.Errorf("scope 24: response option %v, want scope 24", ecs)
	}
	if _, _, ok := f.CachedWire([]byte(wireQ(t, "near.query.consul.")), false); ok {
		t.Error("scope 24: answered on the fast path, which does not know the client's subnet")
	}
	// Hits: web from the second client, web on the fast path, near from
	// the first subnet again; misses: the first query of each entry. One
	// count per query, though a miss looks for two entries.
	if s := f.CacheStats(); s.Hits != 3 || s.Misses != 3 {
		t.Errorf("cache stats %+v, want 3 hits and 3 misses", s)
	}
}

// wireQ returns the question section of a query for name, type A, class IN.
func wireQ(t *testing.T, name string) string {
	t.Helper()
	k := Key{Name: name, Qtype: dns.TypeA, Qclass: dns.ClassINET}
	return k.wireQuestion()
}

// TestClientSubnetNotEchoed: an answer whose option does not echo the
// subnet asked is dropped, as RFC 7871 §7.3 wants.
func TestClientSubnetNotEchoed(t *testing.T) {
	for name, echo := range map[string]func(*dns.EDNS0_SUBNET){
		"other address": func(o *dns.EDNS0_SUBNET) { o.Address = net.ParseIP("203.0.113.0") },
		"other prefix":  func(o *dns.EDNS0_SUBNET) { o.SourceNetmask = 16 },
		"other family":  func(o *dns.EDNS0_SUBNET) { o.Family, o.Address = 2, net.ParseIP("2001:db8::") },
	} {
		t.Run(name, func(t *testing.T) {
			up := startUpstream(t, fakeNear(echo))
			f := forwarder(nil, []string{up.addr})
			_, err := f.Delegate(query("web.service.consul.", dns.TypeA, 1232), false, netip.MustParseAddr("192.0.2.7"))
			if !errors.Is(err, ErrNoUpstream) || !strings.Contains(err.Error(), errMismatch.Error()) {
				t.Errorf("err %v, want ErrNoUpstream after a mismatched response", err)
			}
		})
	}
}

// TestClientSubnetEchoed: through the resolver, a client that sent a
// client subnet gets it back with the answer's scope; one that did not
// gets no option.
func TestClientSubnetEchoed(t *testing.T) {
	srv := startForwardingServer(t, forwarder(newTestClock(), []string{startUpstream(t, fakeNear(nil)).addr}))
	for _, tt := range []struct {
		name  string
		scope uint8
	}{
		{"web.service.consul.", 0},
		{"near.query.consul.", 24},
	} {
		for _, network := range []string{"udp", "tcp"} {
			for range 2 { // a miss, then a hit
				resp := exchange(t, network, srv.Addr(), withSubnet(tt.name, 1, 24, "203.0.113.0"))
				got := subnetOption(resp.IsEdns0())
				if got == nil || got.Family != 1 || got.SourceNetmask != 24 || !got.Address.Equal(net.ParseIP("203.0.113.0")) || got.SourceScope != tt.scope {
					t.Errorf("%s over %s: option %v, want 203.0.113.0/24 with scope %d", tt.name, network, got, tt.scope)
				}
				if a := resp.Answer[0].(*dns.A).A; !a.Equal(net.ParseIP("203.0.113.1")) {
					t.Errorf("%s over %s: answer %v, want the one for 203.0.113.0/24", tt.name, network, a)
				}
				plain := exchange(t, network, srv.Addr(), query(tt.name, dns.TypeA, 1232))
				if opt := plain.IsEdns0(); opt == nil || len(opt.Option) != 0 {
					t.Errorf("%s over %s without a client subnet: OPT %v, want ours without options", tt.name, network, opt)
				}
			}
		}
	}
}
