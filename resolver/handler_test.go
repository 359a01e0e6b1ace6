package resolver

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/cache"
	"github.com/regiondns/regiondns/internal/dnswire"
)

// roundTrip answers req through HandleRequest and returns what a client
// would read: the response packed (within the transport's limit) and
// unpacked again.
func roundTrip(t *testing.T, h *Handler, req *dns.Msg, tcp bool) *dns.Msg {
	t.Helper()
	resp := h.HandleRequest(req, testClient, tcp)
	if resp == nil {
		t.Fatal("no response")
	}
	wire, err := resp.Pack()
	if err != nil {
		t.Fatalf("pack response: %v", err)
	}
	limit := dns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		limit = int(max(min(opt.UDPSize(), dnswire.DefaultUDPSize), dns.MinMsgSize))
	}
	if !tcp && len(wire) > limit {
		t.Fatalf("UDP response has %d bytes, limit %d", len(wire), limit)
	}
	var got dns.Msg
	if err := got.Unpack(wire); err != nil {
		t.Fatalf("unpack response: %v", err)
	}
	return &got
}

func TestHandleRequest(t *testing.T) {
	h := New(testStore(t), Options{}, nil)
	tests := []struct {
		name   string
		req    *dns.Msg
		tcp    bool
		rcode  int
		answer int
		ns     int
		// extra counts records besides the OPT.
		extra int
		aa    bool
		tc    bool
		// first, when set, is the presentation of the first answer record.
		first string
		check func(t *testing.T, resp *dns.Msg)
	}{
		{name: "rw A", req: query("rw.orders."+zone, dns.TypeA, 0), answer: 1, aa: true,
			first: "rw.orders." + zone + "\t5\tIN\tA\t10.0.0.1"},
		{name: "ro AAAA", req: query("ro.orders."+zone, dns.TypeAAAA, 1232), answer: 1, aa: true,
			first: "ro.orders." + zone + "\t10\tIN\tAAAA\tfd00::3"},
		{name: "ro A", req: query("ro.orders."+zone, dns.TypeA, 0), answer: 2, aa: true},
		{name: "bouncer SRV carries the port and the target", req: query("rw.pay."+zone, dns.TypeSRV, 0), answer: 1, extra: 1, aa: true,
			first: "rw.pay." + zone + "\t5\tIN\tSRV\t0 1 6432 pay-1.main.pay." + zone},
		{name: "SRV target", req: query("pay-3.standby.pay."+zone, dns.TypeA, 0), answer: 1, aa: true,
			first: "pay-3.standby.pay." + zone + "\t15\tIN\tA\t10.3.0.3"},
		{name: "empty name is NODATA with its cluster's SOA", req: query("passive-ro.orders."+zone, dns.TypeA, 0), ns: 1, aa: true,
			check: wantNegativeSOA("orders." + zone)},
		{name: "no decision yet is NODATA", req: query("rw.billing."+zone, dns.TypeA, 0), ns: 1, aa: true, check: wantNegativeSOA("billing." + zone)},
		{name: "empty non-terminal", req: query("main.orders."+zone, dns.TypeA, 0), ns: 1, aa: true, check: wantNegativeSOA("orders." + zone)},
		{name: "unknown name under a cluster is NXDOMAIN with its SOA", req: query("nope.orders."+zone, dns.TypeA, 0), rcode: dns.RcodeNameError, ns: 1, aa: true,
			check: wantNegativeSOA("orders." + zone)},
		{name: "unknown name under the apex is NXDOMAIN with the apex SOA", req: query("nope."+zone, dns.TypeA, 0), rcode: dns.RcodeNameError, ns: 1, aa: true,
			check: wantNegativeSOA(zone)},
		{name: "apex SOA", req: query(zone, dns.TypeSOA, 0), answer: 1, aa: true},
		{name: "apex NS with glue", req: query(zone, dns.TypeNS, 0), answer: 2, extra: 2, aa: true},
		{name: "cluster zone SOA at the cut", req: query("orders."+zone, dns.TypeSOA, 0), answer: 1, aa: true,
			first: "orders." + zone + "\t60\tIN\tSOA\tns1." + zone + " hostmaster.example.internal. 0 3600 600 86400 5"},
		{name: "cluster zone NS at the cut, with glue", req: query("orders."+zone, dns.TypeNS, 1232), answer: 2, extra: 2, aa: true},
		{name: "cluster apex A is NODATA with its SOA", req: query("orders."+zone, dns.TypeA, 0), ns: 1, aa: true,
			check: wantNegativeSOA("orders." + zone)},
		{name: "DS at the cut is the parent's NODATA", req: query("orders."+zone, dns.TypeDS, 0), ns: 1, aa: true,
			check: wantNegativeSOA(zone)},
		{name: "ANY is minimal", req: query("rw.orders."+zone, dns.TypeANY, 0), answer: 1, aa: true,
			first: "rw.orders." + zone + "\t5\tIN\tA\t10.0.0.1"},
		{name: "split brain TXT", req: query("rw.split."+zone, dns.TypeTXT, 0), answer: 1, aa: true,
			check: func(t *testing.T, resp *dns.Msg) {
				if txt := strings.Join(resp.Answer[0].(*dns.TXT).Txt, ""); strings.Count(txt, "split brain") != 1 {
					t.Errorf("TXT %q does not report the split brain exactly once", txt)
				}
			}},
		{name: "mixed case echoed, matched case-insensitively", req: query("Rw.ORDERS.Pg.Example.Internal.", dns.TypeA, 0), answer: 1, aa: true,
			check: func(t *testing.T, resp *dns.Msg) {
				if q := resp.Question[0].Name; q != "Rw.ORDERS.Pg.Example.Internal." {
					t.Errorf("question echoed as %q", q)
				}
			}},
		{name: "out of zone is REFUSED", req: query("example.com.", dns.TypeA, 0), rcode: dns.RcodeRefused},
		{name: "CHAOS is REFUSED", req: withClass(query("version.bind.", dns.TypeTXT, 0), dns.ClassCHAOS), rcode: dns.RcodeRefused},
		{name: "class ANY answered without AA", req: withClass(query("rw.orders."+zone, dns.TypeA, 0), dns.ClassANY), answer: 1},
		{name: "AXFR is REFUSED", req: query(zone, dns.TypeAXFR, 0), tcp: true, rcode: dns.RcodeRefused},
		{name: "qtype OPT is FORMERR", req: query(zone, dns.TypeOPT, 0), rcode: dns.RcodeFormatError},
		{name: "NOTIFY is NOTIMP", req: withOpcode(query(zone, dns.TypeSOA, 0), dns.OpcodeNotify), rcode: dns.RcodeNotImplemented},
		{name: "UPDATE is NOTIMP with EDNS", req: withOpcode(query(zone, dns.TypeSOA, 1232), dns.OpcodeUpdate), rcode: dns.RcodeNotImplemented},
		{name: "two questions is FORMERR", req: withQuestions(query(zone, dns.TypeSOA, 0), 2), rcode: dns.RcodeFormatError,
			check: func(t *testing.T, resp *dns.Msg) {
				if len(resp.Question) != 0 {
					t.Errorf("echoed %d questions", len(resp.Question))
				}
			}},
		{name: "no question is FORMERR", req: withQuestions(query(zone, dns.TypeSOA, 1232), 0), rcode: dns.RcodeFormatError},
		{name: "BADVERS", req: withEDNSVersion(query("rw.orders."+zone, dns.TypeA, 1232), 1), rcode: dns.RcodeBadVers},
		{name: "two OPT records is FORMERR without EDNS", req: withSecondOPT(query(zone, dns.TypeSOA, 1232)), rcode: dns.RcodeFormatError,
			check: func(t *testing.T, resp *dns.Msg) {
				if resp.IsEdns0() != nil {
					t.Error("FORMERR for two OPT records carries an OPT")
				}
			}},
		{name: "big answer truncated without EDNS", req: query("ro.big."+zone, dns.TypeA, 0), aa: true, tc: true},
		{name: "EDNS below 512 means 512", req: query("ro.big."+zone, dns.TypeA, 100), aa: true, tc: true},
		{name: "EDNS buffer honoured", req: query("ro.big."+zone, dns.TypeA, 4096), answer: bigCount, aa: true},
		{name: "TCP carries the big answer", req: query("passive-ro.big."+zone, dns.TypeSRV, 0), tcp: true, answer: bigCount, extra: bigCount, aa: true},
		{name: "additional section dropped before TC", req: query("rw.big."+zone, dns.TypeSRV, 0), answer: 7, aa: true},
		{name: "additional section kept when it fits", req: query("rw.big."+zone, dns.TypeSRV, 1232), answer: 7, extra: 7, aa: true},
		{name: "AAAA too big for EDNS 1232 is truncated", req: query("passive-ro.big."+zone, dns.TypeSRV, 1232), aa: true, tc: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := roundTrip(t, h, tc.req, tc.tcp)
			if !resp.Response || resp.Id != tc.req.Id || resp.RecursionDesired != tc.req.RecursionDesired || resp.RecursionAvailable {
				t.Errorf("header: QR %v, ID %d (want %d), RD %v, RA %v", resp.Response, resp.Id, tc.req.Id, resp.RecursionDesired, resp.RecursionAvailable)
			}
			if resp.Rcode != tc.rcode {
				t.Errorf("rcode = %s, want %s", dns.RcodeToString[resp.Rcode], dns.RcodeToString[tc.rcode])
			}
			extra := len(resp.Extra)
			if opt := resp.IsEdns0(); opt != nil {
				extra--
				if opt.Version() != 0 || opt.UDPSize() != dnswire.DefaultUDPSize || len(opt.Option) != 0 {
					t.Errorf("OPT: version %d, size %d, options %v", opt.Version(), opt.UDPSize(), opt.Option)
				}
			} else if tc.req.IsEdns0() != nil && tc.rcode != dns.RcodeFormatError {
				t.Error("request had EDNS, response has no OPT")
			}
			if len(resp.Answer) != tc.answer || len(resp.Ns) != tc.ns || extra != tc.extra {
				t.Errorf("sections: answer %d, ns %d, extra %d; want %d, %d, %d\n%v", len(resp.Answer), len(resp.Ns), extra, tc.answer, tc.ns, tc.extra, resp)
			}
			if resp.Authoritative != tc.aa || resp.Truncated != tc.tc {
				t.Errorf("AA %v TC %v, want AA %v TC %v", resp.Authoritative, resp.Truncated, tc.aa, tc.tc)
			}
			if tc.first != "" && (len(resp.Answer) == 0 || resp.Answer[0].String() != tc.first) {
				t.Errorf("answer %v, want first %q", resp.Answer, tc.first)
			}
			if len(tc.req.Question) == 1 && (len(resp.Question) != 1 || resp.Question[0] != tc.req.Question[0]) {
				t.Errorf("question %v, want %v", resp.Question, tc.req.Question)
			}
			if tc.check != nil {
				tc.check(t, resp)
			}
		})
	}
}

// wantNegativeSOA checks that a negative answer carries the SOA of the zone
// whose apex is owner, with the negative TTL.
func wantNegativeSOA(owner string) func(*testing.T, *dns.Msg) {
	return func(t *testing.T, resp *dns.Msg) {
		t.Helper()
		soa, ok := resp.Ns[0].(*dns.SOA)
		if !ok || soa.Hdr.Name != owner || soa.Hdr.Ttl != 1 {
			t.Errorf("authority %v, want the SOA of %s with the negative TTL", resp.Ns, owner)
		}
	}
}

func withClass(m *dns.Msg, class uint16) *dns.Msg { m.Question[0].Qclass = class; return m }

func withOpcode(m *dns.Msg, opcode int) *dns.Msg { m.Opcode = opcode; return m }

func withQuestions(m *dns.Msg, n int) *dns.Msg {
	q := m.Question[0]
	m.Question = nil
	for range n {
		m.Question = append(m.Question, q)
	}
	return m
}

func withEDNSVersion(m *dns.Msg, v uint8) *dns.Msg { m.IsEdns0().SetVersion(v); return m }

func withSecondOPT(m *dns.Msg) *dns.Msg {
	m.Extra = append(m.Extra, &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT, Class: 1232}})
	return m
}

func TestDOBitCopied(t *testing.T) {
	h := New(testStore(t), Options{}, nil)
	req := query("rw.orders."+zone, dns.TypeA, 1232)
	req.IsEdns0().SetDo()
	req.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_LOCAL{Code: 65001, Data: []byte{1}}, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}}
	resp := roundTrip(t, h, req, false)
	opt := resp.IsEdns0()
	if opt == nil || !opt.Do() || len(opt.Option) != 0 {
		t.Fatalf("OPT %v: want DO set and no options", opt)
	}
}

func TestResponsesAreNotAnswered(t *testing.T) {
	h := New(testStore(t), Options{}, nil)
	req := query("rw.orders."+zone, dns.TypeA, 0)
	req.Response = true
	if resp := h.HandleRequest(req, testClient, false); resp != nil {
		t.Fatalf("answered a response: %v", resp)
	}
}

func TestNoSnapshotIsSERVFAIL(t *testing.T) {
	h := New(new(cache.Store), Options{}, nil)
	if resp := roundTrip(t, h, query("rw.orders."+zone, dns.TypeA, 0), false); resp.Rcode != dns.RcodeServerFailure {
		t.Fatalf("rcode %s, want SERVFAIL", dns.RcodeToString[resp.Rcode])
	}
}

func TestSnapshotIsNotModified(t *testing.T) {
	store := testStore(t)
	h := New(store, Options{}, nil)
	before := store.Load().Lookup("ro.big."+zone, dns.TypeSRV)
	want := len(before.Extra)
	for _, size := range []uint16{0, 1232, 4096} {
		roundTrip(t, h, query("ro.big."+zone, dns.TypeSRV, size), false)
	}
	after := store.Load().Lookup("ro.big."+zone, dns.TypeSRV)
	if len(after.Extra) != want || cap(after.Extra) != want {
		t.Fatalf("snapshot additional section changed: len %d cap %d, want %d", len(after.Extra), cap(after.Extra), want)
	}
	for _, rr := range after.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			t.Fatal("an OPT record was written into the snapshot")
		}
	}
}

func TestDelegate(t *testing.T) {
	upstream := func(req *dns.Msg, tcp bool, _ netip.Addr) (*dns.Msg, error) {
		if req.Question[0].Name == "fail.consul." {
			return nil, errors.New("no upstream answered")
		}
		m := new(dns.Msg)
		m.SetReply(req)
		m.RecursionAvailable = true
		rr, _ := dns.NewRR(req.Question[0].Name + " 30 IN A 192.0.2.7")
		m.Answer = []dns.RR{rr}
		m.SetEdns0(4096, false)
		return m, nil
	}
	h := New(testStore(t), Options{Delegator: DelegateFunc(upstream)}, nil)

	resp := roundTrip(t, h, query("web.service.consul.", dns.TypeA, 1232), false)
	if resp.Rcode != dns.RcodeSuccess || resp.Authoritative || !resp.RecursionAvailable || len(resp.Answer) != 1 || len(resp.Extra) != 1 {
		t.Errorf("delegated answer: %v", resp)
	}
	if opt := resp.IsEdns0(); opt == nil || opt.UDPSize() != dnswire.DefaultUDPSize {
		t.Errorf("delegated answer carries the upstream OPT: %v", opt)
	}
	if resp := roundTrip(t, h, query("fail.consul.", dns.TypeA, 0), false); resp.Rcode != dns.RcodeServerFailure {
		t.Errorf("failed delegation: rcode %s, want SERVFAIL", dns.RcodeToString[resp.Rcode])
	}
	if resp := roundTrip(t, h, query("rw.orders."+zone, dns.TypeA, 0), false); !resp.Authoritative || len(resp.Answer) != 1 {
		t.Errorf("zone name was delegated: %v", resp)
	}
}

// TestClientSubnetEcho: a delegated answer echoes the client's subnet
// option with the scope the Delegator's answer gives it (RFC 7871
// §7.2.1), and the Delegator gets the client's address; an answer from
// the zone, an error before delegation, and a client without the option
// get no option back.
func TestClientSubnetEcho(t *testing.T) {
	var gotSrc netip.Addr
	upstream := func(req *dns.Msg, _ bool, src netip.Addr) (*dns.Msg, error) {
		gotSrc = src
		m := new(dns.Msg)
		m.SetReply(req)
		rr, _ := dns.NewRR(req.Question[0].Name + " 30 IN A 192.0.2.7")
		m.Answer = []dns.RR{rr}
		m.SetEdns0(4096, false)
		m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, SourceScope: 16, Address: net.IPv4(198, 51, 100, 0)}}
		return m, nil
	}
	h := New(testStore(t), Options{Delegator: DelegateFunc(upstream)}, nil)
	withECS := func(name string) *dns.Msg {
		m := query(name, dns.TypeA, 1232)
		m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(203, 0, 113, 0)}}
		return m
	}
	ecsOf := func(m *dns.Msg) *dns.EDNS0_SUBNET {
		if opt := m.IsEdns0(); opt != nil {
			for _, o := range opt.Option {
				if s, ok := o.(*dns.EDNS0_SUBNET); ok {
					return s
				}
			}
		}
		return nil
	}

	w := &recorder{remote: &net.UDPAddr{IP: net.ParseIP("::ffff:203.0.113.9"), Port: 5353}}
	h.ServeDNS(w, withECS("web.service.consul."))
	got := ecsOf(w.msg)
	if got == nil || got.Family != 1 || got.SourceNetmask != 24 || got.SourceScope != 16 || !got.Address.Equal(net.IPv4(203, 0, 113, 0)) {
		t.Errorf("delegated answer: option %v, want the client's 203.0.113.0/24 with scope 16", got)
	}
	if gotSrc != netip.MustParseAddr("203.0.113.9") {
		t.Errorf("Delegator got client address %v, want 203.0.113.9", gotSrc)
	}
	for name, req := range map[string]*dns.Msg{
		"zone name":          withECS("rw.orders." + zone),
		"no client subnet":   query("web.service.consul.", dns.TypeA, 1232),
		"EDNS version error": withEDNSVersion(withECS("web.service.consul."), 1),
	} {
		if got := ecsOf(roundTrip(t, h, req, false)); got != nil {
			t.Errorf("%s: option %v, want none", name, got)
		}
	}
}

// recorder is a dns.ResponseWriter that keeps what ServeDNS writes, from a
// client at remote.
type recorder struct {
	remote net.Addr
	msg    *dns.Msg
}

func (r *recorder) LocalAddr() net.Addr  { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (r *recorder) RemoteAddr() net.Addr { return r.remote }
func (r *recorder) WriteMsg(m *dns.Msg) error {
	r.msg = m
	return nil
}
func (r *recorder) Write(b []byte) (int, error) {
	r.msg = new(dns.Msg)
	return len(b), r.msg.Unpack(b)
}
func (r *recorder) Close() error        { return nil }
func (r *recorder) TsigStatus() error   { return nil }
func (r *recorder) TsigTimersOnly(bool) {}
func (r *recorder) Hijack()             {}

func BenchmarkHandleRequest(b *testing.B) {
	h := New(testStore(b), Options{}, nil)
	req := query("ro.orders."+zone, dns.TypeA, 1232)
	b.ReportAllocs()
	for b.Loop() {
		h.HandleRequest(req, testClient, false)
	}
}

// TestConcurrentQueriesShareRecords packs responses that share snapshot
// records from many goroutines while snapshots are swapped: the race
// detector fails it if packing or answering writes to a shared record.
func TestConcurrentQueriesShareRecords(t *testing.T) {
	store := testStore(t)
	h := New(store, Options{}, nil)
	reqs := []*dns.Msg{
		query("ro.orders."+zone, dns.TypeA, 0),
		query("ro.big."+zone, dns.TypeSRV, 1232),
		query("passive-ro.big."+zone, dns.TypeAAAA, 0),
		withEDNSVersion(query("rw.orders."+zone, dns.TypeA, 1232), 1),
		query("nope."+zone, dns.TypeA, 4096),
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				req := reqs[(g+i)%len(reqs)]
				if _, err := h.HandleRequest(req, testClient, i%2 == 0).Pack(); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for gen := range uint64(20) {
		store.Swap(cache.Build(testConfig(), testDecisions(), gen))
	}
	wg.Wait()
}
