package resolver

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/forward"
)

// delegatedAnswer is the upstream answer for a name outside the zone, by
// name whatever the type: a few A records, SRV with its targets' addresses in the additional
// section (too big for 512 octets), many A records (truncated without
// EDNS), a CNAME chain with AD set, NXDOMAIN and NODATA with an SOA.
func delegatedAnswer(tb testing.TB, name string, qtype, qclass uint16, do bool) *dns.Msg {
	tb.Helper()
	m := &dns.Msg{MsgHdr: dns.MsgHdr{Response: true, Authoritative: true, RecursionAvailable: true}}
	m.Question = []dns.Question{{Name: name, Qtype: qtype, Qclass: qclass}}
	rr := func(s string) dns.RR {
		r, err := dns.NewRR(s)
		if err != nil {
			tb.Fatal(err)
		}
		return r
	}
	soa := rr("consul. 300 IN SOA ns.consul. hostmaster.consul. 1 3600 600 86400 30")
	switch name {
	case "a.example.com.":
		for i := range 3 {
			m.Answer = append(m.Answer, rr(fmt.Sprintf("a.example.com. %d IN A 192.0.2.%d", 60+i*10, i+1)))
		}
	case "web.service.consul.":
		for i := range 12 {
			m.Answer = append(m.Answer, rr(fmt.Sprintf("web.service.consul. 40 IN SRV 1 1 %d node-%d.node.dc1.consul.", 8000+i, i)))
			m.Extra = append(m.Extra, rr(fmt.Sprintf("node-%d.node.dc1.consul. 40 IN A 10.0.0.%d", i, i+1)))
		}
	case "big.service.consul.":
		for i := range 60 {
			m.Answer = append(m.Answer, rr(fmt.Sprintf("big.service.consul. 50 IN A 10.1.%d.%d", i/200, i%200+1)))
		}
	case "cname.example.com.":
		m.AuthenticatedData = true
		m.Answer = append(m.Answer, rr("cname.example.com. 90 IN CNAME a.example.com."), rr("a.example.com. 80 IN A 192.0.2.1"))
	case "nx.example.com.":
		m.Rcode = dns.RcodeNameError
		m.Ns = append(m.Ns, soa)
	default: // NODATA
		m.Ns = append(m.Ns, soa)
	}
	m.SetEdns0(1232, do)
	return m
}

var delegatedNames = []string{"a.example.com.", "web.service.consul.", "big.service.consul.", "cname.example.com.",
	"nx.example.com.", "nodata.example.com."}

// testClock is a settable clock for forward.LRUOptions.Now.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	return c
}

func (c *testClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// delegatedHandler returns a handler whose delegator is a forwarder without
// upstreams over an LRU on clock, and that LRU. Its delegation scope is
// set, so that the fast path's tests and benchmarks include the checks:
// the test names' domains, the private ranges of cmd's default.
func delegatedHandler(tb testing.TB, clock *testClock) (*Handler, *forward.LRU) {
	lru := forward.NewLRU(forward.LRUOptions{Now: clock.Now})
	return New(testStore(tb), Options{
		Delegator:         forward.New(forward.Options{}, lru, nil),
		DelegationDomains: []string{"consul.", "example.com."},
		DelegationClients: privateRanges,
	}, nil), lru
}

// privateRanges are loopback and the private ranges, as the default of
// REGIONDNS_DELEGATION_CLIENTS.
var privateRanges = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("fc00::/7"),
}

// fill caches the upstream answer to c in lru, as the forwarder does.
func fill(tb testing.TB, lru *forward.LRU, c fastCase) {
	q := dns.Question{Name: c.name, Qtype: c.qtype, Qclass: c.qclass}
	if _, ok := lru.Add(forward.NewKey(q, c.do), delegatedAnswer(tb, c.name, c.qtype, c.qclass, c.do)); !ok {
		tb.Fatalf("%s: not cached", c)
	}
}

func delegatedCases() []fastCase {
	var cases []fastCase
	for _, name := range delegatedNames {
		for _, qtype := range []uint16{dns.TypeA, dns.TypeSRV, dns.TypeMX} {
			for _, size := range []uint16{0, 100, 512, 700, 1232, 4096} {
				for _, flags := range []fastCase{{}, {do: true, rd: true}, {cd: true, qclass: dns.ClassANY}, {tcp: true, rd: true}, {tcp: true, cd: true}} {
					c := flags
					c.name, c.qtype, c.size = name, qtype, size
					if c.qclass == 0 {
						c.qclass = dns.ClassINET
					}
					if size == 0 {
						c.do = false
					}
					cases = append(cases, c)
				}
			}
		}
	}
	return cases
}

// TestFastPathDelegatedMatchesSlowPath answers cached delegated names, of
// every kind, with every EDNS size, DO, RD, CD, both classes and both
// transports, through the fast path and the slow path (unpack, the
// forwarder's cache hit, pack) at the same instant, and wants the same
// octets: header, question, sections, TTLs counted down, OPT, truncation.
func TestFastPathDelegatedMatchesSlowPath(t *testing.T) {
	clock := newTestClock()
	h, lru := delegatedHandler(t, clock)
	cases := delegatedCases()
	for _, c := range cases {
		fill(t, lru, c)
	}
	out := make([]byte, dns.MaxMsgSize)
	check := func(elapsed time.Duration) {
		fastCount, tcCount := 0, 0
		for _, c := range cases {
			for _, variant := range caseVariants(c.name) {
				query, err := c.msg(variant).Pack()
				if err != nil {
					t.Fatal(err)
				}
				desc := fmt.Sprintf("%s as %s after %v", c, variant, elapsed)
				f := h.answerWire(query, testClient, c.tcp, out, 0)
				if want := variant == strings.ToLower(variant); f.ok != want {
					t.Fatalf("%s: fast path answered %v, want %v", desc, f.ok, want)
				}
				if !f.ok {
					continue
				}
				fastCount++
				got := out[:f.n]
				want, o := h.answerSlow(bytes.Clone(query), c.tcp, testClient, 0)
				if !bytes.Equal(got, want) {
					t.Fatalf("%s: fast answer differs\n got %s\nwant %s\n got % x\nwant % x", desc,
						normalized(t, got), normalized(t, want), got, want)
				}
				if f.rcode != uint8(o.rcode) || f.tc != o.tc || f.qtype != o.qtype || f.source != SourceDelegated || o.source != SourceDelegated {
					t.Fatalf("%s: fast %+v, slow %+v", desc, f, o)
				}
				if f.tc {
					tcCount++
				}
				var m dns.Msg
				if err := m.Unpack(got); err != nil {
					t.Fatalf("%s: %v", desc, err)
				}
				if m.Authoritative || m.Id != 0xbeef || m.RecursionDesired != c.rd || m.CheckingDisabled != c.cd || !m.RecursionAvailable {
					t.Fatalf("%s: header %+v", desc, m.MsgHdr)
				}
				// Every record of these answers is capped at the
				// entry's lifetime (the smallest TTL, or the SOA's
				// MINIMUM), then counted down.
				life := map[string]uint32{"a.example.com.": 60, "web.service.consul.": 40, "big.service.consul.": 50,
					"cname.example.com.": 80, "nx.example.com.": 30, "nodata.example.com.": 30}[c.name]
				for _, rr := range append(append(m.Answer, m.Ns...), m.Extra...) {
					if rr.Header().Rrtype != dns.TypeOPT && rr.Header().Ttl != life-uint32(elapsed/time.Second) {
						t.Fatalf("%s: %v: TTL %d, want %d", desc, rr, rr.Header().Ttl, life-uint32(elapsed/time.Second))
					}
				}
			}
		}
		if fastCount == 0 || tcCount == 0 {
			t.Fatalf("after %v: %d fast answers, %d truncated", elapsed, fastCount, tcCount)
		}
		t.Logf("after %v: %d queries answered by the fast path (%d truncated), each as the slow path answers it", elapsed, fastCount, tcCount)
	}
	check(0)
	clock.Advance(7*time.Second + 300*time.Millisecond)
	check(7 * time.Second)
	clock.Advance(22 * time.Second)
	check(29 * time.Second)

	// Past its lifetime (30 s, the negative SOA's MINIMUM) an entry is
	// left to the slow path, which asks upstream again.
	clock.Advance(time.Second)
	q, _ := (fastCase{name: "nx.example.com.", qtype: dns.TypeA, qclass: dns.ClassINET}).msg("nx.example.com.").Pack()
	if f := h.answerWire(q, testClient, false, out, 0); f.ok {
		t.Errorf("expired entry answered by the fast path")
	}
}

// TestDelegatedAnswersReordered: a cached answer of several records of one
// type comes back in an order that changes with the query's seed, the
// same octets on the fast path and the slow path for one seed, every one
// a valid message with the same records; a CNAME chain keeps its order.
func TestDelegatedAnswersReordered(t *testing.T) {
	clock := newTestClock()
	h, lru := delegatedHandler(t, clock)
	out := make([]byte, dns.MaxMsgSize)
	for _, c := range []fastCase{
		{name: "a.example.com.", qtype: dns.TypeA, size: 1232},
		{name: "web.service.consul.", qtype: dns.TypeSRV, size: 1232, do: true},
		{name: "web.service.consul.", qtype: dns.TypeSRV, size: 700}, // without its additional section
		{name: "big.service.consul.", qtype: dns.TypeA, tcp: true},
		{name: "big.service.consul.", qtype: dns.TypeA}, // truncated: nothing to reorder
		{name: "cname.example.com.", qtype: dns.TypeA, size: 1232},
	} {
		c.qclass = dns.ClassINET
		fill(t, lru, c)
		clock.Advance(2 * time.Second)
		query, err := c.msg(c.name).Pack()
		if err != nil {
			t.Fatal(err)
		}
		var first *dns.Msg
		orders := map[string]bool{}
		for seed := range uint32(30) {
			f := h.answerWire(query, testClient, c.tcp, out, seed)
			want, _ := h.answerSlow(bytes.Clone(query), c.tcp, testClient, seed)
			if !f.ok || !bytes.Equal(out[:f.n], want) {
				t.Fatalf("%s seed %d: fast path %v\n got %s\nwant %s", c, seed, f.ok, normalized(t, out[:f.n]), normalized(t, want))
			}
			var m dns.Msg
			if err := m.Unpack(want); err != nil {
				t.Fatalf("%s seed %d: %v", c, seed, err)
			}
			var order []string
			for _, rr := range m.Answer {
				order = append(order, rr.String())
			}
			orders[strings.Join(order, "\n")] = true
			if first == nil {
				first = &m
				continue
			}
			if fmt.Sprint(sortedRRs(m.Answer)) != fmt.Sprint(sortedRRs(first.Answer)) ||
				fmt.Sprint(m.Ns) != fmt.Sprint(first.Ns) || fmt.Sprint(m.Extra) != fmt.Sprint(first.Extra) {
				t.Fatalf("%s seed %d: records differ from seed 0's\n%v\n%v", c, seed, &m, first)
			}
		}
		switch reordered := len(orders) > 1; {
		case c.name == "cname.example.com." || !c.tcp && c.size == 0:
			if reordered {
				t.Errorf("%s: %d orders, want the cached one", c, len(orders))
			}
		case !reordered:
			t.Errorf("%s: 30 seeds gave one order", c)
		}
	}
}

// sortedRRs returns the records of rrs as sorted strings.
func sortedRRs(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		out = append(out, rr.String())
	}
	slices.Sort(out)
	return out
}

// TestFastPathDelegatedNeedsCache: without a delegator, or with one that
// caches nothing, names outside the zone stay on the slow path.
// TestFastPathDelegatedNeedsCache: with a delegator that caches nothing,
// names outside the zone stay on the slow path; without one, the fast
// path refuses them.
func TestFastPathDelegatedNeedsCache(t *testing.T) {
	clock := newTestClock()
	lru := forward.NewLRU(forward.LRUOptions{Now: clock.Now})
	c := fastCase{name: "a.example.com.", qtype: dns.TypeA, qclass: dns.ClassINET}
	fill(t, lru, c)
	q, _ := c.msg(c.name).Pack()
	out := make([]byte, dns.MaxMsgSize)
	noCache := forward.New(forward.Options{}, nil, nil)
	for name, opts := range map[string]Options{
		"forwarder, no LRU": {Delegator: noCache},
		"a DelegateFunc":    {Delegator: DelegateFunc(noCache.Delegate)},
	} {
		if f := New(testStore(t), opts, nil).answerWire(q, testClient, false, out, 0); f.ok {
			t.Errorf("%s: answered by the fast path", name)
		}
	}
	if f := New(testStore(t), Options{}, nil).answerWire(q, testClient, false, out, 0); !f.ok || f.rcode != dns.RcodeRefused {
		t.Errorf("no delegator: fast path %+v, want REFUSED", f)
	}
	if f := New(testStore(t), Options{Delegator: forward.New(forward.Options{}, lru, nil)}, nil).answerWire(q, testClient, false, out, 0); !f.ok {
		t.Errorf("forwarder with its LRU: not answered by the fast path")
	}
}

// TestFastPathDelegatedEviction: an entry pushed out of the LRU is no
// longer answered by the fast path; one replaced is answered anew.
func TestFastPathDelegatedEviction(t *testing.T) {
	clock := newTestClock()
	lru := forward.NewLRU(forward.LRUOptions{Now: clock.Now, Size: 2})
	h := New(testStore(t), Options{Delegator: forward.New(forward.Options{}, lru, nil)}, nil)
	out := make([]byte, dns.MaxMsgSize)
	mk := func(name string) (fastCase, []byte) {
		c := fastCase{name: name, qtype: dns.TypeA, qclass: dns.ClassINET}
		q, _ := c.msg(name).Pack()
		return c, q
	}
	ca, qa := mk("a.example.com.")
	cb, qb := mk("big.service.consul.")
	cc, qc := mk("cname.example.com.")
	fill(t, lru, ca)
	fill(t, lru, cb)
	fill(t, lru, cc) // evicts a
	if h.answerWire(qa, testClient, false, out, 0).ok {
		t.Error("evicted entry answered by the fast path")
	}
	if !h.answerWire(qb, testClient, false, out, 0).ok || !h.answerWire(qc, testClient, false, out, 0).ok {
		t.Error("live entries not answered by the fast path")
	}
	// A replacement is served.
	up := delegatedAnswer(t, cc.name, cc.qtype, cc.qclass, false)
	up.Answer[1].(*dns.A).A = net.ParseIP("192.0.2.99")
	lru.Add(forward.NewKey(dns.Question{Name: cc.name, Qtype: cc.qtype, Qclass: cc.qclass}, false), up)
	f := h.answerWire(qc, testClient, false, out, 0)
	var m dns.Msg
	if !f.ok || m.Unpack(out[:f.n]) != nil || m.Answer[1].(*dns.A).A.String() != "192.0.2.99" {
		t.Errorf("replaced entry: %v", m.Answer)
	}
	if s := lru.Stats(); s.Entries != 2 || s.Hits < 3 {
		t.Errorf("stats %+v", s)
	}
}

// delegatedQueries are the queries of the delegated allocation test and
// benchmark.
var delegatedQueries = []struct {
	name string
	c    fastCase
}{
	{"UDP/A", fastCase{name: "a.example.com.", qtype: dns.TypeA, qclass: dns.ClassINET, rd: true}},
	{"UDPEDNS/A", fastCase{name: "a.example.com.", qtype: dns.TypeA, qclass: dns.ClassINET, rd: true, size: 1232}},
	{"UDPEDNS/SRV", fastCase{name: "web.service.consul.", qtype: dns.TypeSRV, qclass: dns.ClassINET, rd: true, size: 1232}},
	{"UDP/truncated", fastCase{name: "big.service.consul.", qtype: dns.TypeA, qclass: dns.ClassINET, rd: true}},
	{"UDPEDNS/NXDOMAIN", fastCase{name: "nx.example.com.", qtype: dns.TypeA, qclass: dns.ClassINET, rd: true, size: 1232}},
	{"TCP/SRV", fastCase{name: "web.service.consul.", qtype: dns.TypeSRV, qclass: dns.ClassINET, rd: true, tcp: true}},
}

func TestFastPathDelegatedDoesNotAllocate(t *testing.T) {
	clock := newTestClock()
	h, lru := delegatedHandler(t, clock)
	out := make([]byte, dns.MaxMsgSize)
	for _, dq := range delegatedQueries {
		fill(t, lru, dq.c)
	}
	clock.Advance(3 * time.Second)
	for _, dq := range delegatedQueries {
		wire, err := dq.c.msg(dq.c.name).Pack()
		if err != nil {
			t.Fatal(err)
		}
		if f := h.answerWire(wire, testClient, dq.c.tcp, out, 0); !f.ok || f.source != SourceDelegated {
			t.Fatalf("%s: fast path %+v, want a delegated answer", dq.name, f)
		}
		if n := testing.AllocsPerRun(200, func() { h.answerWire(wire, testClient, dq.c.tcp, out, 0) }); n != 0 {
			t.Errorf("%s: %v allocations per query, want 0", dq.name, n)
		}
	}
}

// BenchmarkFastPathDelegatedHit answers cached delegated names from the
// LRU's wire form; BenchmarkSlowPathDelegatedHit answers the same the way
// they were answered before (unpack, the forwarder's cache hit, pack).
func BenchmarkFastPathDelegatedHit(b *testing.B) { benchDelegated(b, true) }
func BenchmarkSlowPathDelegatedHit(b *testing.B) { benchDelegated(b, false) }

func benchDelegated(b *testing.B, fastPath bool) {
	clock := newTestClock()
	h, lru := delegatedHandler(b, clock)
	for _, dq := range delegatedQueries {
		fill(b, lru, dq.c)
	}
	clock.Advance(3 * time.Second)
	out := make([]byte, dns.MaxMsgSize)
	for _, dq := range delegatedQueries {
		wire, err := dq.c.msg(dq.c.name).Pack()
		if err != nil {
			b.Fatal(err)
		}
		b.Run(dq.name, func(b *testing.B) {
			b.ReportAllocs()
			msg := make([]byte, len(wire))
			for b.Loop() {
				if fastPath {
					if !h.answerWire(wire, testClient, dq.c.tcp, out, 0).ok {
						b.Fatal("not answered by the fast path")
					}
					continue
				}
				copy(msg, wire)
				if resp, _ := h.answerSlow(msg, dq.c.tcp, testClient, 0); resp == nil {
					b.Fatal("no answer")
				}
			}
		})
	}
}
