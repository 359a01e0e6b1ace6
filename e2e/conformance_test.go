package e2e

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestConformance sends real packets to the regiondns binary (real Consul
// DNS behind it for names outside the zone) and checks every answer against
// the RFCs a stub resolver, CoreDNS forward or a Kubernetes stub domain
// relies on. One federation and one regiondns process serve every subtest;
// the delegation subtests start two more regiondns processes.
func TestConformance(t *testing.T) {
	start := time.Now()
	w := startConfWorld(t)
	t.Logf("conformance world up in %s", time.Since(start).Round(time.Millisecond))

	t.Run("RFC1035", func(t *testing.T) { confRFC1035(t, w) })
	t.Run("RFC2308", func(t *testing.T) { confRFC2308(t, w) })
	t.Run("EDNS", func(t *testing.T) { confEDNSTests(t, w) })
	t.Run("Clients", func(t *testing.T) { confClients(t, w) })
	t.Run("TCP", func(t *testing.T) { confTCPTests(t, w) })
	t.Run("Delegation", func(t *testing.T) { confDelegation(t, w) })
	t.Run("DelegationFaithful", func(t *testing.T) { confDelegationFaithful(t, w) })
	t.Run("ClusterZones", func(t *testing.T) { confClusterZones(t, w) })
	t.Logf("conformance tests took %s", time.Since(start).Round(time.Millisecond))
}

// confRFC1035 covers the header and question rules of RFC 1034/1035 and
// what the server does with packets that are not queries.
func confRFC1035(t *testing.T, w *confWorld) {
	rw := "rw.orders." + confZone

	t.Run("header bits and question echoed", func(t *testing.T) {
		for _, tcp := range []bool{false, true} {
			for _, rd := range []bool{false, true} {
				for _, tc := range []struct {
					name  string
					rcode int
				}{
					{confMixCase(rw), dns.RcodeSuccess},
					{strings.ToUpper("ro.orders." + confZone), dns.RcodeSuccess},
					{confMixCase("nosuch." + confZone), dns.RcodeNameError},
					// A cluster zone's apex (NODATA for A) and a name
					// under it that does not exist.
					{confMixCase("orders." + confZone), dns.RcodeSuccess},
					{confMixCase("nosuch.orders." + confZone), dns.RcodeNameError},
				} {
					q := confQuery(tc.name, dns.TypeA, rd)
					wire := confPack(t, q)
					var raw []byte
					if tcp {
						c := confDialTCP(t, w.Addr)
						c.write(t, confFrame(wire))
						var err error
						if raw, err = c.read(queryTimeout); err != nil {
							t.Fatalf("%s over TCP: %v", tc.name, err)
						}
						c.Close()
					} else {
						var err error
						if raw, err = confUDP(w.Addr, wire, queryTimeout); err != nil {
							t.Fatalf("%s over UDP: %v", tc.name, err)
						}
					}
					resp := confUnpack(t, raw)
					where := tc.name + " RD=" + map[bool]string{false: "0", true: "1"}[rd] + " over " + transport(tcp)
					switch {
					case resp.Id != q.Id:
						t.Errorf("%s: ID %#04x, want %#04x", where, resp.Id, q.Id)
					case !resp.Response:
						t.Errorf("%s: QR clear", where)
					case !resp.Authoritative:
						t.Errorf("%s: AA clear on an answer from the zone", where)
					case resp.RecursionDesired != rd:
						t.Errorf("%s: RD %v, want it copied (%v)", where, resp.RecursionDesired, rd)
					case resp.RecursionAvailable:
						t.Errorf("%s: RA set on an authoritative answer", where)
					case resp.Opcode != dns.OpcodeQuery || resp.Truncated || resp.Zero:
						t.Errorf("%s: opcode %d TC %v Z %v", where, resp.Opcode, resp.Truncated, resp.Zero)
					case resp.Rcode != tc.rcode:
						t.Errorf("%s: rcode %s, want %s", where, dns.RcodeToString[resp.Rcode], dns.RcodeToString[tc.rcode])
					case len(resp.Question) != 1:
						t.Errorf("%s: %d questions", where, len(resp.Question))
					}
					// The question section must be the query's, byte for
					// byte: 0x20 case randomisation depends on it.
					qlen := len(wire) - 12
					if len(raw) < 12+qlen || !bytes.Equal(raw[12:12+qlen], wire[12:]) || binary.BigEndian.Uint16(raw[4:]) != 1 {
						t.Errorf("%s: question section not echoed byte for byte:\n got % x\nwant % x", where, raw[12:min(len(raw), 12+qlen)], wire[12:])
					}
				}
			}
		}
	})

	t.Run("QDCOUNT other than 1 is FORMERR", func(t *testing.T) {
		q1 := confQuestion(rw, dns.TypeA, dns.ClassINET)
		q2 := confQuestion("ro.orders."+confZone, dns.TypeA, dns.ClassINET)
		for _, tc := range []struct {
			name string
			pkt  []byte
		}{
			{"QDCOUNT 0", confHeader(0xabc1, confFlagRD, 0, 0, 0, 0)},
			{"QDCOUNT 2", slices.Concat(confHeader(0xabc2, confFlagRD, 2, 0, 0, 0), q1, q2)},
			{"QDCOUNT 2, same question twice", slices.Concat(confHeader(0xabc3, 0, 2, 0, 0, 0), q1, q1)},
		} {
			id := binary.BigEndian.Uint16(tc.pkt)
			for _, tcp := range []bool{false, true} {
				var raw []byte
				var err error
				if tcp {
					c := confDialTCP(t, w.Addr)
					c.write(t, confFrame(tc.pkt))
					raw, err = c.read(queryTimeout)
					c.Close()
				} else {
					raw, err = confUDP(w.Addr, tc.pkt, queryTimeout)
				}
				if err != nil {
					t.Errorf("%s over %s: %v, want FORMERR", tc.name, transport(tcp), err)
					continue
				}
				resp := confUnpack(t, raw)
				if resp.Id != id || !resp.Response || resp.Rcode != dns.RcodeFormatError || len(resp.Answer) != 0 {
					t.Errorf("%s over %s: ID %#04x QR %v rcode %s answers %d; want ID %#04x, QR, FORMERR, no answer",
						tc.name, transport(tcp), resp.Id, resp.Response, dns.RcodeToString[resp.Rcode], len(resp.Answer), id)
				}
			}
		}
		confStillServes(t, w)
	})

	t.Run("malformed packets get FORMERR or silence", func(t *testing.T) {
		hdr := func(id, an, ar uint16) []byte { return confHeader(id, confFlagRD, 1, an, 0, ar) }
		typeClass := []byte{0, 1, 0, 1}
		q := confQuestion(rw, dns.TypeA, dns.ClassINET)
		longName := bytes.Repeat(append([]byte{63}, bytes.Repeat([]byte{'a'}, 63)...), 5)
		cases := []struct {
			name string
			pkt  []byte
		}{
			{"empty", nil},
			{"one byte", []byte{0x12}},
			{"header cut short", hdr(0x1001, 0, 0)[:11]},
			{"header only, QDCOUNT 1", hdr(0x1002, 0, 0)},
			{"question cut in a label", slices.Concat(hdr(0x1003, 0, 0), q[:6])},
			{"question without QTYPE and QCLASS", slices.Concat(hdr(0x1004, 0, 0), confName(rw))},
			{"question cut in QCLASS", slices.Concat(hdr(0x1005, 0, 0), q[:len(q)-1])},
			{"label pointer to itself", slices.Concat(hdr(0x1006, 0, 0), []byte{0xC0, 12}, typeClass)},
			{"label pointer loop of two", slices.Concat(hdr(0x1007, 0, 0), []byte{0xC0, 14, 0xC0, 12}, typeClass)},
			{"label pointer past the end", slices.Concat(hdr(0x1008, 0, 0), []byte{0xC0, 0xFF}, typeClass)},
			{"extended label type 0x40", slices.Concat(hdr(0x1009, 0, 0), []byte{0x41, 'a', 0}, typeClass)},
			{"name over 255 octets", slices.Concat(hdr(0x100a, 0, 0), longName, []byte{0}, typeClass)},
			{"ANCOUNT 1 without a record", slices.Concat(hdr(0x100b, 1, 0), q)},
			{"OPT with RDLENGTH past the end", slices.Concat(hdr(0x100c, 0, 1), q, []byte{0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 100})},
		}
		for _, tc := range cases {
			raw, err := confUDP(w.Addr, tc.pkt, confSilence)
			if err != nil {
				if !errors.Is(err, errNoResponse) {
					t.Errorf("%s: %v", tc.name, err)
				}
				continue // silence
			}
			confCheckFormErr(t, tc.name, tc.pkt, raw)
		}
		confStillServes(t, w)

		// Random bytes behind a query's header bits (QR clear, so that the
		// server does try to parse them). Any answer must be FORMERR, or
		// NOTIMP for an opcode other than QUERY.
		rng := rand.New(rand.NewPCG(3, 1035))
		c, err := net.Dial("udp", w.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		sent := map[uint16][]byte{}
		for range 200 {
			pkt := make([]byte, 12+rng.IntN(48))
			for i := range pkt {
				pkt[i] = byte(rng.Uint32())
			}
			pkt[2] &^= 0x80 // QR clear
			if _, dup := sent[binary.BigEndian.Uint16(pkt)]; dup {
				continue
			}
			sent[binary.BigEndian.Uint16(pkt)] = pkt
			if _, err := c.Write(pkt); err != nil {
				t.Fatal(err)
			}
		}
		answered := 0
		for {
			raw, err := confReadUDP(c, confSilence)
			if errors.Is(err, errNoResponse) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			answered++
			resp := new(dns.Msg)
			if err := resp.Unpack(raw); err != nil {
				t.Errorf("response to random bytes does not unpack: %v", err)
				continue
			}
			pkt, ok := sent[resp.Id]
			switch {
			case !ok:
				t.Errorf("response with ID %#04x, sent no such query", resp.Id)
			case !resp.Response || (resp.Rcode != dns.RcodeFormatError && resp.Rcode != dns.RcodeNotImplemented):
				t.Errorf("random packet % x: QR %v rcode %s, want FORMERR or NOTIMP", pkt, resp.Response, dns.RcodeToString[resp.Rcode])
			}
		}
		t.Logf("%d random packets sent, %d answered (FORMERR or NOTIMP), the rest dropped", len(sent), answered)
		confStillServes(t, w)

		// Over TCP: a malformed message on a connection gets FORMERR or
		// nothing; the next query on it, or on a new connection, is
		// answered.
		for _, tc := range cases[3:] {
			conn := confDialTCP(t, w.Addr)
			good := confQuery(rw, dns.TypeA, false)
			conn.write(t, slices.Concat(confFrame(tc.pkt), confFrame(confPack(t, good))))
			for {
				raw, err := conn.read(queryTimeout)
				if err != nil {
					// The connection was closed or went silent: a new one works.
					confStillServes(t, w)
					break
				}
				resp := confUnpack(t, raw)
				if resp.Id == good.Id && resp.Rcode == dns.RcodeSuccess {
					break
				}
				confCheckFormErr(t, tc.name+" over TCP", tc.pkt, raw)
			}
			conn.Close()
		}
	})

	t.Run("a response sent to the server is ignored", func(t *testing.T) {
		m := confQuery(rw, dns.TypeA, true)
		m.Response, m.Authoritative = true, true
		rr, _ := dns.NewRR(rw + " 1 IN A 192.0.2.1")
		m.Answer = []dns.RR{rr}
		if raw, err := confUDP(w.Addr, confPack(t, m), confSilence); !errors.Is(err, errNoResponse) {
			t.Errorf("response packet over UDP: got % x, %v; want no reply", raw, err)
		}
		// Over TCP: no reply to the response, the query after it answered.
		conn := confDialTCP(t, w.Addr)
		good := confQuery(rw, dns.TypeA, false)
		conn.write(t, slices.Concat(confFrame(confPack(t, m)), confFrame(confPack(t, good))))
		raw, err := conn.read(queryTimeout)
		if err != nil {
			t.Fatalf("query after a response over TCP: %v", err)
		}
		if resp := confUnpack(t, raw); resp.Id != good.Id {
			t.Errorf("over TCP, first message back has ID %#04x (the response's is %#04x), want the query's %#04x", resp.Id, m.Id, good.Id)
		}
		confStillServes(t, w)
	})
}

// confCheckFormErr checks that raw, the answer to a malformed packet, is a
// FORMERR response to it.
func confCheckFormErr(t *testing.T, name string, pkt, raw []byte) {
	t.Helper()
	if len(raw) < 12 {
		t.Errorf("%s: %d-byte answer % x", name, len(raw), raw)
		return
	}
	flags := binary.BigEndian.Uint16(raw[2:])
	if flags&confFlagQR == 0 || flags&0xF != dns.RcodeFormatError {
		t.Errorf("%s: answered with flags %#04x (rcode %s), want FORMERR or no answer",
			name, flags, dns.RcodeToString[int(flags&0xF)])
	}
	if len(pkt) >= 2 && !bytes.Equal(raw[:2], pkt[:2]) {
		t.Errorf("%s: answer ID % x, want % x", name, raw[:2], pkt[:2])
	}
}

// confStillServes checks that a normal query is answered over UDP and TCP.
func confStillServes(t *testing.T, w *confWorld) {
	t.Helper()
	for _, tcp := range []bool{false, true} {
		resp, err := Exchange(w.Addr, NewQuery("rw.orders."+confZone, dns.TypeA), tcp)
		if err != nil {
			t.Fatalf("server stopped serving over %s: %v", transport(tcp), err)
		}
		if got := AnswerAddrs(resp); !slices.Equal(got, []string{w.OrdersLeader}) {
			t.Fatalf("after bad packets, rw answers %v over %s, want [%s]", got, transport(tcp), w.OrdersLeader)
		}
	}
}

// confRFC2308 covers negative answers (RFC 2308) and NXDOMAIN cuts
// (RFC 8020).
func confRFC2308(t *testing.T, w *confWorld) {
	apex := confExchangeTCP(t, w.Addr, confQuery(confZone, dns.TypeSOA, false))
	if len(apex.Answer) != 1 {
		t.Fatalf("apex SOA: %v", apex.Answer)
	}
	soa, ok := apex.Answer[0].(*dns.SOA)
	if !ok || soa.Hdr.Ttl != confSOATTL || soa.Minttl != confSOAMinimum {
		t.Fatalf("apex SOA %v, want TTL %d and MINIMUM %d as configured", apex.Answer[0], confSOATTL, confSOAMinimum)
	}
	wantTTL := min(soa.Hdr.Ttl, soa.Minttl)

	check := func(t *testing.T, name string, qtype uint16, rcode int) {
		t.Helper()
		for _, tcp := range []bool{false, true} {
			q := confQuery(name, qtype, false)
			var resp *dns.Msg
			if tcp {
				resp = confExchangeTCP(t, w.Addr, q)
			} else {
				resp, _ = confExchangeUDP(t, w.Addr, q)
			}
			where := name + " " + dns.TypeToString[qtype] + " over " + transport(tcp)
			if resp.Rcode != rcode || len(resp.Answer) != 0 || !resp.Authoritative {
				t.Errorf("%s: rcode %s, %d answers, AA %v; want %s, none, AA", where,
					dns.RcodeToString[resp.Rcode], len(resp.Answer), resp.Authoritative, dns.RcodeToString[rcode])
				continue
			}
			neg := confSOA(resp.Ns)
			if neg == nil || len(resp.Ns) != 1 {
				t.Errorf("%s: authority %v, want the zone's SOA alone", where, resp.Ns)
				continue
			}
			// The SOA of the name's zone: a cluster's under it (its own
			// serial), the apex's otherwise; the rest as the apex's.
			owner := confZoneOf(name, qtype)
			if !strings.EqualFold(neg.Hdr.Name, owner) || neg.Ns != soa.Ns || neg.Mbox != soa.Mbox || neg.Minttl != soa.Minttl {
				t.Errorf("%s: authority SOA %v, want the SOA of %s like the apex SOA %v", where, neg, owner, soa)
			}
			if owner != confZone {
				at := confExchangeTCP(t, w.Addr, confQuery(owner, dns.TypeSOA, false))
				if cut := confSOA(at.Answer); cut == nil || cut.Serial != neg.Serial {
					t.Errorf("%s: authority SOA serial %d, want the serial of %s's SOA (%v)", where, neg.Serial, owner, at.Answer)
				}
			}
			if neg.Hdr.Ttl != wantTTL {
				t.Errorf("%s: SOA TTL %d, want min(SOA TTL %d, MINIMUM %d) = %d", where, neg.Hdr.Ttl, soa.Hdr.Ttl, soa.Minttl, wantTTL)
			}
		}
	}

	t.Run("NXDOMAIN carries the SOA", func(t *testing.T) {
		check(t, "nosuch."+confZone, dns.TypeA, dns.RcodeNameError)
		check(t, "NoSuch."+confZone, dns.TypeSRV, dns.RcodeNameError)
		check(t, "ns1.orders."+confZone, dns.TypeA, dns.RcodeNameError)
		check(t, "NoSuch.Big."+confZone, dns.TypeA, dns.RcodeNameError)
		check(t, "rw.nosuchcluster."+confZone, dns.TypeA, dns.RcodeNameError)
	})
	t.Run("NODATA carries the SOA", func(t *testing.T) {
		check(t, "rw.orders."+confZone, dns.TypeAAAA, dns.RcodeSuccess)
		check(t, "ro.orders."+confZone, dns.TypeMX, dns.RcodeSuccess)
		check(t, confZone, dns.TypeA, dns.RcodeSuccess)
		check(t, "orders."+confZone, dns.TypeA, dns.RcodeSuccess)
		check(t, "Orders."+confZone, dns.TypeMX, dns.RcodeSuccess)
		// DS at a cut belongs to the parent zone (RFC 4035 §3.1.4.1).
		check(t, "orders."+confZone, dns.TypeDS, dns.RcodeSuccess)
	})
	t.Run("RFC8020 nothing under an NXDOMAIN", func(t *testing.T) {
		for _, name := range []string{"x.nosuch.", "a.b.nosuch.", "x.ns1.orders.", "rw.nosuch.", "ro.nosuch."} {
			check(t, name+confZone, dns.TypeA, dns.RcodeNameError)
		}
	})
	t.Run("empty non-terminals are NODATA", func(t *testing.T) {
		check(t, "orders."+confZone, dns.TypeA, dns.RcodeSuccess)
		check(t, "big."+confZone, dns.TypeSRV, dns.RcodeSuccess)
		// Every ancestor of every SRV target, up to the zone, exists: none
		// is NXDOMAIN (RFC 8020 read the other way round).
		srv := confExchangeTCP(t, w.Addr, confQuery("ro.big."+confZone, dns.TypeSRV, false))
		if len(srv.Answer) != confBigReplicas {
			t.Fatalf("ro.big SRV over TCP: %d records, want %d", len(srv.Answer), confBigReplicas)
		}
		seen := map[string]bool{}
		for _, rr := range srv.Answer {
			name := strings.ToLower(rr.(*dns.SRV).Target)
			if !strings.HasSuffix(name, confZone) {
				t.Fatalf("SRV target %s outside the zone", name)
			}
			if a := confExchangeTCP(t, w.Addr, confQuery(name, dns.TypeA, false)); a.Rcode != dns.RcodeSuccess || len(a.Answer) != 1 {
				t.Errorf("SRV target %s: rcode %s, %d answers; want its address", name, dns.RcodeToString[a.Rcode], len(a.Answer))
			}
			for {
				_, parent, ok := strings.Cut(name, ".")
				if !ok || parent == confZone || seen[parent] {
					break
				}
				seen[parent] = true
				check(t, parent, dns.TypeA, dns.RcodeSuccess)
				name = parent
			}
		}
		if len(seen) == 0 {
			t.Fatal("no empty non-terminal checked")
		}
	})
}
