package resolver

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

func TestSourceKeys(t *testing.T) {
	k := newSourceKeys(DefaultSourcePrefixV4, DefaultSourcePrefixV6)
	tests := []struct {
		name string
		a, b string
		same bool
	}{
		{name: "same /24", a: "192.0.2.1", b: "192.0.2.254", same: true},
		{name: "next /24", a: "192.0.2.1", b: "192.0.3.1"},
		{name: "loopback hosts share a /24", a: "127.0.0.1", b: "127.0.0.2", same: true},
		{name: "IPv4-mapped IPv6 is IPv4", a: "::ffff:192.0.2.7", b: "192.0.2.1", same: true},
		{name: "same /56", a: "2001:db8:0:100::1", b: "2001:db8:0:1ff:ffff::2", same: true},
		{name: "next /56", a: "2001:db8:0:100::1", b: "2001:db8:0:200::1"},
		{name: "IPv4 and IPv6 apart", a: "0.0.0.0", b: "::"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := k.key(netip.MustParseAddr(tc.a)), k.key(netip.MustParseAddr(tc.b))
			if (a == b) != tc.same {
				t.Errorf("key(%s) = %#x, key(%s) = %#x; same source: %v", tc.a, a, tc.b, b, tc.same)
			}
		})
	}
	host := newSourceKeys(32, 128)
	if host.key(netip.MustParseAddr("127.0.0.1")) == host.key(netip.MustParseAddr("127.0.0.2")) {
		t.Error("with /32 sources, two hosts share a key")
	}
	if host.key(netip.MustParseAddr("::1")) == host.key(netip.MustParseAddr("::2")) {
		t.Error("with /128 sources, two hosts share a key")
	}
	if n := testing.AllocsPerRun(100, func() { k.key(netip.MustParseAddr("2001:db8::1")) }); n != 0 {
		t.Errorf("key allocates %v times", n)
	}
}

func TestSlowGate(t *testing.T) {
	g := &slowGate{max: 3, perSource: 2}
	a, b, c := uint64(1), uint64(2), uint64(3)
	for i, step := range []struct {
		key  uint64
		want bool
	}{
		{a, true}, {a, true}, {a, false}, // a's share is full
		{b, true}, {c, false}, // the bound is full
	} {
		if got := g.acquire(step.key); got != step.want {
			t.Fatalf("step %d: acquire(%d) = %v, want %v", i, step.key, got, step.want)
		}
	}
	g.release(a)
	if !g.acquire(c) {
		t.Fatal("no room after a release")
	}
	if got := g.total.Load(); got != 3 {
		t.Fatalf("%d in flight, want 3", got)
	}
}

func TestShortReply(t *testing.T) {
	h := New(testStore(t), Options{}, nil)
	withDO := query("rw.orders."+zone, dns.TypeSRV, 4096)
	withDO.IsEdns0().SetDo()
	withDO.RecursionDesired, withDO.CheckingDisabled = true, true
	compressed := []byte{0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1}
	tests := []struct {
		name     string
		q        []byte
		rcode    uint8
		tc       bool
		question bool
		edns     bool
	}{
		{name: "SERVFAIL with question and OPT", q: pack(t, withDO), rcode: dns.RcodeServerFailure, question: true, edns: true},
		{name: "slip without EDNS", q: pack(t, query("rw.orders."+zone, dns.TypeA, 0)), tc: true, question: true},
		{name: "FORMERR from a header", q: pack(t, withDO)[:12], rcode: dns.RcodeFormatError},
		{name: "compressed name: no question", q: compressed, rcode: dns.RcodeServerFailure},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := make([]byte, shortReplyMax)
			n, _ := h.shortReply(tc.q, out, tc.rcode, tc.tc)
			var m dns.Msg
			if err := m.Unpack(out[:n]); err != nil {
				t.Fatalf("unpack: %v", err)
			}
			if m.Id != uint16(tc.q[0])<<8|uint16(tc.q[1]) || !m.Response || m.Rcode != int(tc.rcode) || m.Truncated != tc.tc ||
				len(m.Answer)+len(m.Ns) != 0 || m.RecursionDesired != (tc.q[2]&flagRD != 0) || m.CheckingDisabled != (tc.q[3]&flagCD != 0) {
				t.Errorf("header: %v", &m)
			}
			if (len(m.Question) == 1) != tc.question {
				t.Errorf("question %v, want one: %v", m.Question, tc.question)
			}
			opt := m.IsEdns0()
			if (opt != nil) != tc.edns {
				t.Fatalf("OPT %v, want one: %v", opt, tc.edns)
			}
			if opt != nil && (opt.UDPSize() != h.opts.UDPSize || !opt.Do() || opt.Version() != 0) {
				t.Errorf("OPT %v: want our size, DO copied", opt)
			}
		})
	}
}

func pack(t *testing.T, m *dns.Msg) []byte {
	t.Helper()
	wire, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return wire
}

// TestAnswerSlowRefusesToParseLongQueries: a message longer than 4 KiB is
// answered FORMERR from its header, even when it is a well-formed query.
func TestAnswerSlowRefusesToParseLongQueries(t *testing.T) {
	h := New(testStore(t), Options{}, nil)
	for _, tc := range []struct {
		size  int
		rcode int
	}{
		{size: maxQueryLen, rcode: dns.RcodeSuccess},
		{size: maxQueryLen + 1, rcode: dns.RcodeFormatError},
		{size: 5 << 10, rcode: dns.RcodeFormatError},
	} {
		wire := paddedQuery(t, "Rw.orders."+zone, tc.size)
		resp, o := h.answerSlow(wire, true, testClient, 0)
		var m dns.Msg
		if err := m.Unpack(resp); err != nil {
			t.Fatalf("%d octets: unpack: %v", tc.size, err)
		}
		if m.Rcode != tc.rcode || o.rcode != tc.rcode {
			t.Errorf("%d octets: rcode %s (counted %d), want %s", tc.size, dns.RcodeToString[m.Rcode], o.rcode, dns.RcodeToString[tc.rcode])
		}
	}
}

// paddedQuery returns an A query for name with EDNS padding that makes it
// size octets long.
func paddedQuery(t testing.TB, name string, size int) []byte {
	t.Helper()
	m := query(name, dns.TypeA, 1232)
	base, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	opt := m.IsEdns0()
	opt.Option = append(opt.Option, &dns.EDNS0_PADDING{Padding: make([]byte, size-len(base)-4)})
	wire, err := m.Pack()
	if err != nil || len(wire) != size {
		t.Fatalf("padded query: %d octets, %v; want %d", len(wire), err, size)
	}
	return wire
}
