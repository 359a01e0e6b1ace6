package resolver

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/internal/dnswire"
)

// fastNames are names of every kind in the test zone: the apex, in-zone
// name servers, each cluster's names, SRV targets, empty non-terminals,
// names that do not exist, and names outside the zone.
func fastNames(tb testing.TB) []string {
	names := []string{zone, "ns1." + zone, "nope." + zone, "x.rw.orders." + zone, "a.b.c.nope." + zone,
		"nope.orders." + zone, "a.b.main.orders." + zone, "x.ns1." + zone,
		"example.com.", ".", "xpg.example.internal.", "consul.", "pg.example.internal.x."}
	snap := testStore(tb).Load()
	for _, c := range []string{"orders", "pay", "split", "big", "billing"} {
		names = append(names, c+"."+zone, "main."+c+"."+zone, "standby."+c+"."+zone)
		for _, l := range []string{"rw", "ro", "passive-rw", "passive-ro", "sync", "ro.main", "ro.standby"} {
			name := l + "." + c + "." + zone
			names = append(names, name)
			for _, rr := range snap.Lookup(name, dns.TypeSRV).Answer {
				names = append(names, rr.(*dns.SRV).Target)
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// caseVariants returns name as is, upper-cased, with every other letter
// upper-cased (0x20), and with only its first letter upper-cased (which
// the fast path leaves to the slow path).
func caseVariants(name string) []string {
	b := []byte(name)
	for i := 0; i < len(b); i += 2 {
		if 'a' <= b[i] && b[i] <= 'z' {
			b[i] -= 'a' - 'A'
		}
	}
	first := []byte(name)
	if 'a' <= first[0] && first[0] <= 'z' {
		first[0] -= 'a' - 'A'
	}
	return []string{name, strings.ToUpper(name), string(b), string(first)}
}

// lastLabelCased reports whether the last label of name has an upper-case
// letter, or no label has one.
func lastLabelCased(name string) bool {
	labels := dns.SplitDomainName(name)
	if len(labels) == 0 || strings.ToLower(name) == name {
		return true
	}
	last := labels[len(labels)-1]
	return strings.ToLower(last) != last
}

// normalized is a response in a form that does not depend on the rotation
// of A and AAAA records.
func normalized(t *testing.T, wire []byte) string {
	t.Helper()
	var m dns.Msg
	if err := m.Unpack(wire); err != nil {
		t.Fatalf("unpack % x: %v", wire, err)
	}
	section := func(rrs []dns.RR) string {
		var lines []string
		for _, rr := range rrs {
			lines = append(lines, rr.String())
		}
		slices.Sort(lines)
		return strings.Join(lines, "\n")
	}
	return fmt.Sprintf("%+v\nquestion %v\nanswer\n%s\nauthority\n%s\nadditional\n%s",
		m.MsgHdr, m.Question, section(m.Answer), section(m.Ns), section(m.Extra))
}

// fastCase is one query of the equivalence tests.
type fastCase struct {
	name   string
	qtype  uint16
	qclass uint16
	size   uint16 // EDNS payload size; 0: no EDNS
	do, rd bool
	cd     bool
	tcp    bool
}

func (c fastCase) String() string {
	return fmt.Sprintf("%s %s class %d EDNS %d DO %v RD %v CD %v TCP %v", c.name, dns.TypeToString[c.qtype], c.qclass, c.size, c.do, c.rd, c.cd, c.tcp)
}

func (c fastCase) msg(name string) *dns.Msg {
	m := new(dns.Msg)
	m.Id = 0xbeef
	m.Question = []dns.Question{{Name: name, Qtype: c.qtype, Qclass: c.qclass}}
	m.RecursionDesired, m.CheckingDisabled = c.rd, c.cd
	if c.size > 0 {
		m.SetEdns0(c.size, c.do)
	}
	return m
}

// checkFast compares the fast path's answer to query with HandleRequest's:
// the same header, sections, EDNS and case of every name, the question
// echoed byte for byte, the same length (but for a negative answer, which
// may spell out a label miekg/dns points to the question for), the same
// bytes where the A/AAAA rotation cannot differ. It reports whether the
// fast path answered.
func checkFast(t *testing.T, desc string, h *Handler, query []byte, tcp bool) bool {
	t.Helper()
	out := make([]byte, dns.MaxMsgSize)
	f := h.answerWire(query, testClient, tcp, out, 0)
	if !f.ok {
		return false
	}
	got := out[:f.n]
	want, o := h.answerSlow(bytes.Clone(query), tcp, testClient, 0)
	if want == nil {
		t.Fatalf("%s: fast path answered what the slow path drops: % x", desc, query)
	}
	var wantMsg dns.Msg
	if err := wantMsg.Unpack(want); err != nil {
		t.Fatalf("%s: %v", desc, err)
	}
	if g, w := normalized(t, got), normalized(t, want); g != w {
		t.Fatalf("%s: fast path answer differs\n got %s\nwant %s", desc, g, w)
	}
	var name [maxName]byte
	fq, _, _ := parseQuery(query, &name)
	if !bytes.Equal(got[dnswire.HeaderLen:fq.qEnd], query[dnswire.HeaderLen:fq.qEnd]) {
		t.Fatalf("%s: question not echoed byte for byte", desc)
	}
	if f.rcode != uint8(o.rcode) || f.tc != o.tc || f.qtype != o.qtype || f.source != o.source {
		t.Fatalf("%s: fast %+v, slow %+v", desc, f, o)
	}
	// A positive answer is the template miekg/dns would pack, so it has the
	// same length (a negative one may spell out a name miekg/dns points to
	// the question for).
	if len(wantMsg.Answer) > 0 && len(got) != len(want) {
		t.Fatalf("%s: fast answer has %d octets, HandleRequest's %d", desc, len(got), len(want))
	}
	// Byte for byte where no rotation can tell them apart.
	rotated := len(wantMsg.Answer) > 1 && (wantMsg.Answer[0].Header().Rrtype == dns.TypeA || wantMsg.Answer[0].Header().Rrtype == dns.TypeAAAA)
	if (len(wantMsg.Answer) > 0 || wantMsg.Truncated) && !rotated && !bytes.Equal(got, want) {
		t.Fatalf("%s: fast answer\n% x\nHandleRequest's\n% x", desc, got, want)
	}
	return true
}

// TestFastPathMatchesHandleRequest runs every name of the test zone, every
// type, three letter cases, EDNS sizes, DO, RD, CD, both classes and both
// transports through the fast path and compares each answer with
// HandleRequest's. Without a Delegator, names outside the zone are
// refused, on the fast path too.
func TestFastPathMatchesHandleRequest(t *testing.T) {
	h := New(testStore(t), Options{}, nil)
	types := []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypeTXT, dns.TypeSOA, dns.TypeNS, dns.TypeANY,
		dns.TypeMX, dns.TypeCNAME, dns.TypeDS, dns.TypeOPT, dns.TypeAXFR, 0, 65280}
	fastCount, total := 0, 0
	for _, name := range fastNames(t) {
		for _, qtype := range types {
			for _, size := range []uint16{0, 100, 512, 700, 1232, 4096} {
				for _, flags := range []fastCase{{}, {do: true, rd: true}, {cd: true, qclass: dns.ClassANY}, {tcp: true, rd: true}, {qclass: dns.ClassCHAOS}} {
					c := flags
					c.name, c.qtype, c.size = name, qtype, size
					if c.qclass == 0 {
						c.qclass = dns.ClassINET
					}
					if size == 0 {
						c.do = false
					}
					for _, variant := range caseVariants(name) {
						query, err := c.msg(variant).Pack()
						if err != nil {
							t.Fatal(err)
						}
						total++
						desc := c.String() + " as " + variant
						answered := checkFast(t, desc, h, query, c.tcp)
						if answered {
							fastCount++
						}
						want := c.qclass != dns.ClassCHAOS && qtype != dns.TypeOPT &&
							qtype != dns.TypeAXFR && lastLabelCased(variant)
						if answered != want {
							t.Errorf("%s: fast path answered %v, want %v", desc, answered, want)
						}
					}
				}
			}
		}
	}
	t.Logf("%d of %d queries answered by the fast path, each as HandleRequest answers it", fastCount, total)
}

// fastQueries are the queries of the allocation tests and benchmarks: the
// common answers, over UDP and TCP, with and without EDNS.
var fastQueries = []struct {
	name  string
	msg   *dns.Msg
	tcp   bool
	trunc bool
}{
	{name: "UDP/A", msg: query("ro.orders."+zone, dns.TypeA, 0)},
	{name: "UDP/SRV", msg: query("ro.orders."+zone, dns.TypeSRV, 0)},
	{name: "UDP/NXDOMAIN", msg: query("nope."+zone, dns.TypeA, 0)},
	{name: "UDP/cluster-SOA", msg: query("orders."+zone, dns.TypeSOA, 0)},
	{name: "UDP/cluster-NXDOMAIN", msg: query("nope.orders."+zone, dns.TypeA, 0)},
	{name: "UDP/truncated", msg: query("ro.big."+zone, dns.TypeA, 0), trunc: true},
	{name: "UDPEDNS/A", msg: query("ro.orders."+zone, dns.TypeA, 1232)},
	{name: "UDPEDNS/SRV", msg: query("ro.orders."+zone, dns.TypeSRV, 1232)},
	{name: "UDPEDNS/NODATA", msg: query("ro.orders."+zone, dns.TypeMX, 1232)},
	{name: "UDPEDNS/cluster-SOA", msg: query("orders."+zone, dns.TypeSOA, 1232)},
	{name: "UDPEDNS/mixed-case", msg: query("RO.ORDERS.PG.EXAMPLE.INTERNAL.", dns.TypeA, 1232)},
	{name: "TCP/A", msg: query("ro.orders."+zone, dns.TypeA, 0), tcp: true},
	{name: "TCP/SRV-big", msg: query("ro.big."+zone, dns.TypeSRV, 0), tcp: true},
	{name: "TCPEDNS/A", msg: query("ro.orders."+zone, dns.TypeA, 1232), tcp: true},
	{name: "TCPEDNS/NXDOMAIN", msg: query("nope."+zone, dns.TypeA, 1232), tcp: true},
	{name: "UDP/sync-A", msg: query("sync.orders."+zone, dns.TypeA, 0)},
	{name: "UDPEDNS/region-SRV", msg: query("ro.main.orders."+zone, dns.TypeSRV, 1232)},
	{name: "UDPEDNS/region-TXT", msg: query("ro.main.orders."+zone, dns.TypeTXT, 1232)},
}

func TestFastPathDoesNotAllocate(t *testing.T) {
	h := New(testStore(t), Options{}, nil)
	out := make([]byte, dns.MaxMsgSize)
	for _, q := range fastQueries {
		wire, err := q.msg.Pack()
		if err != nil {
			t.Fatal(err)
		}
		f := h.answerWire(wire, testClient, q.tcp, out, 0)
		if !f.ok || f.tc != q.trunc {
			t.Errorf("%s: fast path %+v, want an answer (TC %v)", q.name, f, q.trunc)
		}
		rot := uint32(0)
		if n := testing.AllocsPerRun(200, func() { rot++; h.answerWire(wire, testClient, q.tcp, out, rot) }); n != 0 {
			t.Errorf("%s: %v allocations per query, want 0", q.name, n)
		}
		if n := testing.AllocsPerRun(200, func() { h.AnswerWire(wire, testClient, q.tcp, out) }); n != 0 {
			t.Errorf("%s: AnswerWire: %v allocations per query, want 0", q.name, n)
		}
	}
}

// benchFast runs the fast path on the queries whose names start with
// prefix.
func benchFast(b *testing.B, prefix string) {
	h := New(testStore(b), Options{}, nil)
	out := make([]byte, dns.MaxMsgSize)
	for _, q := range fastQueries {
		if !strings.HasPrefix(q.name, prefix+"/") {
			continue
		}
		wire, err := q.msg.Pack()
		if err != nil {
			b.Fatal(err)
		}
		b.Run(strings.TrimPrefix(q.name, prefix+"/"), func(b *testing.B) {
			b.ReportAllocs()
			rot := uint32(0)
			for b.Loop() {
				rot++
				if !h.answerWire(wire, testClient, q.tcp, out, rot).ok {
					b.Fatal("not answered by the fast path")
				}
			}
		})
	}
}

func BenchmarkFastPathUDP(b *testing.B)     { benchFast(b, "UDP") }
func BenchmarkFastPathUDPEDNS(b *testing.B) { benchFast(b, "UDPEDNS") }
func BenchmarkFastPathTCP(b *testing.B)     { benchFast(b, "TCP") }
func BenchmarkFastPathTCPEDNS(b *testing.B) { benchFast(b, "TCPEDNS") }

// BenchmarkSlowPath answers the same queries as the fast path benchmarks
// through the slow path (unpack, HandleRequest, pack): what the fast path
// saves.
func BenchmarkSlowPath(b *testing.B) {
	h := New(testStore(b), Options{}, nil)
	for _, q := range fastQueries {
		wire, err := q.msg.Pack()
		if err != nil {
			b.Fatal(err)
		}
		b.Run(q.name, func(b *testing.B) {
			b.ReportAllocs()
			msg := make([]byte, len(wire))
			for b.Loop() {
				copy(msg, wire)
				if resp, _ := h.answerSlow(msg, q.tcp, testClient, 0); resp == nil {
					b.Fatal("no answer")
				}
			}
		})
	}
}
