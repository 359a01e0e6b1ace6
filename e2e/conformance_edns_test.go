package e2e

import (
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// confEDNSTests covers RFC 6891 and RFC 8906 §8 (EDNS), buffer sizes and
// truncation, opcodes and unknown types, RFC 7873 cookies and RFC 8482 ANY.
func confEDNSTests(t *testing.T, w *confWorld) {
	rw := "rw.orders." + confZone

	t.Run("version 0 answered with OPT", func(t *testing.T) {
		for _, do := range []bool{false, true} {
			q := confQuery(rw, dns.TypeA, false)
			confEDNS(q, 1232, 0, do)
			resp, _ := confExchangeUDP(t, w.Addr, q)
			opt := resp.IsEdns0()
			switch {
			case resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 1:
				t.Errorf("DO=%v: rcode %s answer %v", do, dns.RcodeToString[resp.Rcode], resp.Answer)
			case opt == nil:
				t.Errorf("DO=%v: no OPT in the response", do)
			case opt.Version() != 0 || opt.UDPSize() < 512 || opt.Do() != do || opt.Hdr.Name != ".":
				t.Errorf("DO=%v: OPT %v, want version 0, a payload size of at least 512, DO copied", do, opt)
			}
		}
		// Without EDNS in the query, none in the response (RFC 6891 §7).
		resp, _ := confExchangeUDP(t, w.Addr, confQuery(rw, dns.TypeA, false))
		if resp.IsEdns0() != nil {
			t.Errorf("OPT in the response to a query without one")
		}
	})

	t.Run("version 1 gets BADVERS", func(t *testing.T) {
		for _, name := range []string{rw, "nosuch." + confZone, "orders." + confZone, "master.orders.service.dc1.consul."} {
			for _, tcp := range []bool{false, true} {
				q := confQuery(name, dns.TypeA, true)
				confEDNS(q, 1232, 1, false)
				var resp *dns.Msg
				if tcp {
					resp = confExchangeTCP(t, w.Addr, q)
				} else {
					resp, _ = confExchangeUDP(t, w.Addr, q)
				}
				opt := resp.IsEdns0()
				where := name + " over " + transport(tcp)
				switch {
				case resp.Rcode != dns.RcodeBadVers:
					t.Errorf("%s: rcode %d (%s), want BADVERS (16)", where, resp.Rcode, dns.RcodeToString[resp.Rcode])
				case opt == nil || opt.Version() != 0:
					t.Errorf("%s: OPT %v, want one of version 0", where, opt)
				case len(resp.Answer) != 0 || len(resp.Ns) != 0:
					t.Errorf("%s: records %v %v, want none with BADVERS", where, resp.Answer, resp.Ns)
				case resp.Id != q.Id || !resp.Response:
					t.Errorf("%s: ID %d QR %v", where, resp.Id, resp.Response)
				}
			}
		}
	})

	t.Run("unknown options and flags ignored and not echoed", func(t *testing.T) {
		q := confQuery(rw, dns.TypeA, false)
		opt := confEDNS(q, 1232, 0, false)
		opt.SetZ(0x7FFF) // every flag but DO
		opt.Option = append(opt.Option,
			&dns.EDNS0_LOCAL{Code: 65001, Data: []byte{1, 2, 3, 4}},
			&dns.EDNS0_LOCAL{Code: 65500, Data: nil})
		for _, tcp := range []bool{false, true} {
			var resp *dns.Msg
			if tcp {
				resp = confExchangeTCP(t, w.Addr, q)
			} else {
				resp, _ = confExchangeUDP(t, w.Addr, q)
			}
			ropt := resp.IsEdns0()
			switch {
			case resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 1:
				t.Errorf("over %s: rcode %s answer %v, want the normal answer", transport(tcp), dns.RcodeToString[resp.Rcode], resp.Answer)
			case ropt == nil:
				t.Errorf("over %s: no OPT in the response", transport(tcp))
			case len(ropt.Option) != 0 || ropt.Z() != 0 || ropt.Do():
				t.Errorf("over %s: OPT %v echoes options or flags", transport(tcp), ropt)
			}
		}
	})

	t.Run("two OPT records are FORMERR", func(t *testing.T) {
		for _, where := range []string{"additional", "answer"} {
			q := confQuery(rw, dns.TypeA, false)
			confEDNS(q, 1232, 0, false)
			second := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
			second.SetUDPSize(4096)
			if where == "additional" {
				q.Extra = append(q.Extra, second)
			} else {
				q.Answer = append(q.Answer, second)
			}
			resp, _ := confExchangeUDP(t, w.Addr, q)
			if resp.Rcode != dns.RcodeFormatError || len(resp.Answer) != 0 {
				t.Errorf("second OPT in the %s section: rcode %s answer %v, want FORMERR", where, dns.RcodeToString[resp.Rcode], resp.Answer)
			}
		}
		confStillServes(t, w)
	})

	t.Run("buffer size honoured", func(t *testing.T) {
		big := "ro.big." + confZone
		// Over TCP the whole answer arrives: every record, glue included.
		full := map[uint16]*dns.Msg{}
		for _, qtype := range []uint16{dns.TypeA, dns.TypeSRV} {
			q := confQuery(big, qtype, false)
			confEDNS(q, 1232, 0, false)
			resp := confExchangeTCP(t, w.Addr, q)
			if resp.Truncated || len(resp.Answer) != confBigReplicas {
				t.Fatalf("%s %s over TCP: TC %v, %d records; want all %d", big, dns.TypeToString[qtype], resp.Truncated, len(resp.Answer), confBigReplicas)
			}
			if qtype == dns.TypeSRV && len(resp.Extra) != confBigReplicas+1 {
				t.Errorf("SRV over TCP: %d additional records, want the %d targets' addresses and the OPT", len(resp.Extra), confBigReplicas)
			}
			full[qtype] = resp
		}
		for _, tc := range []struct {
			qtype   uint16
			size    int // EDNS payload size; 0: no EDNS
			limit   int
			wantTC  bool // the brief's fixed expectations; else computed
			checkTC bool
		}{
			{qtype: dns.TypeA, size: 0, limit: 512, wantTC: true, checkTC: true},
			{qtype: dns.TypeA, size: 512, limit: 512, wantTC: true, checkTC: true},
			{qtype: dns.TypeA, size: 100, limit: 512, wantTC: true, checkTC: true}, // below 512 means 512
			{qtype: dns.TypeSRV, size: 0, limit: 512, wantTC: true, checkTC: true},
			{qtype: dns.TypeSRV, size: 512, limit: 512, wantTC: true, checkTC: true},
			{qtype: dns.TypeA, size: 800, limit: 800},
			{qtype: dns.TypeA, size: 1232, limit: 1232},
			{qtype: dns.TypeA, size: 4096, limit: 1232},
			{qtype: dns.TypeSRV, size: 1232, limit: 1232},
			{qtype: dns.TypeSRV, size: 4096, limit: 1232},
			{qtype: dns.TypeSRV, size: 65535, limit: 1232},
		} {
			q := confQuery(big, tc.qtype, false)
			if tc.size > 0 {
				confEDNS(q, uint16(tc.size), 0, false)
			}
			resp, n := confExchangeUDP(t, w.Addr, q)
			where := dns.TypeToString[tc.qtype] + " with no EDNS"
			if tc.size > 0 {
				where = dns.TypeToString[tc.qtype] + " with EDNS size " + strconv.Itoa(tc.size)
			}
			if n > tc.limit {
				t.Errorf("%s: %d bytes over UDP, want at most %d", where, n, tc.limit)
			}
			if (resp.IsEdns0() != nil) != (tc.size > 0) {
				t.Errorf("%s: OPT in response %v", where, resp.IsEdns0())
			}
			if opt := resp.IsEdns0(); opt != nil && opt.UDPSize() > 1232 {
				t.Errorf("%s: advertises %d, want at most 1232", where, opt.UDPSize())
			}
			// What fits: the question, the whole answer and the OPT.
			fit := &dns.Msg{Question: q.Question, Answer: full[tc.qtype].Answer, Compress: true}
			if tc.size > 0 {
				confEDNS(fit, 1232, 0, false)
			}
			wantTC := fit.Len() > tc.limit
			if tc.checkTC && wantTC != tc.wantTC {
				t.Fatalf("%s: test data: the answer is %d bytes, expected it not to fit in %d", where, fit.Len(), tc.limit)
			}
			if resp.Truncated != wantTC {
				t.Errorf("%s: TC %v (%d bytes, %d answers), want %v: the whole answer takes %d bytes, the limit is %d",
					where, resp.Truncated, n, len(resp.Answer), wantTC, fit.Len(), tc.limit)
			}
			if !resp.Truncated && !slices.Equal(confRRData(resp.Answer), confRRData(full[tc.qtype].Answer)) {
				t.Errorf("%s: not truncated but %d of %d records", where, len(resp.Answer), len(full[tc.qtype].Answer))
			}
			if resp.Truncated && len(resp.Answer) != 0 {
				t.Errorf("%s: TC with %d records: a partial RRset", where, len(resp.Answer))
			}
		}
	})

	t.Run("unknown opcode is NOTIMP", func(t *testing.T) {
		q := confQuestion(rw, dns.TypeA, dns.ClassINET)
		soa := confQuestion(confZone, dns.TypeSOA, dns.ClassINET)
		for _, tc := range []struct {
			opcode int
			q      []byte
		}{
			{dns.OpcodeStatus, q},
			{3, q},
			{dns.OpcodeNotify, soa},
			{dns.OpcodeUpdate, soa},
			{15, q},
		} {
			id := uint16(0x4000 + tc.opcode)
			pkt := append(confHeader(id, confOpcodeFlags(tc.opcode), 1, 0, 0, 0), tc.q...)
			for _, tcp := range []bool{false, true} {
				var resp *dns.Msg
				if tcp {
					c := confDialTCP(t, w.Addr)
					c.write(t, confFrame(pkt))
					raw, err := c.read(queryTimeout)
					c.Close()
					if err != nil {
						t.Errorf("opcode %d over TCP: %v", tc.opcode, err)
						continue
					}
					resp = confUnpack(t, raw)
				} else {
					raw, err := confUDP(w.Addr, pkt, queryTimeout)
					if err != nil {
						t.Errorf("opcode %d over UDP: %v", tc.opcode, err)
						continue
					}
					resp = confUnpack(t, raw)
				}
				if resp.Rcode != dns.RcodeNotImplemented || resp.Opcode != tc.opcode || resp.Id != id || !resp.Response || len(resp.Answer) != 0 {
					t.Errorf("opcode %d over %s: rcode %s opcode %d ID %#04x QR %v answers %d; want NOTIMP, the opcode and ID echoed",
						tc.opcode, transport(tcp), dns.RcodeToString[resp.Rcode], resp.Opcode, resp.Id, resp.Response, len(resp.Answer))
				}
			}
		}
	})

	t.Run("unknown type is NODATA", func(t *testing.T) {
		for _, name := range []string{rw, confZone, "orders." + confZone} {
			for _, qtype := range []uint16{65400, dns.TypeHTTPS, dns.TypeCAA} {
				q := confQuery(confMixCase(name), qtype, false)
				confEDNS(q, 1232, 0, false)
				resp, _ := confExchangeUDP(t, w.Addr, q)
				if resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 0 || !resp.Authoritative || confSOA(resp.Ns) == nil {
					t.Errorf("%s TYPE%d: rcode %s answers %v AA %v authority %v; want NODATA with the SOA",
						name, qtype, dns.RcodeToString[resp.Rcode], resp.Answer, resp.Authoritative, resp.Ns)
				}
				if resp.Question[0].Qtype != qtype || resp.Question[0].Name != q.Question[0].Name {
					t.Errorf("%s TYPE%d: question %v echoed", name, qtype, resp.Question[0])
				}
			}
		}
	})

	t.Run("RFC7873 cookies", func(t *testing.T) {
		client := "0123456789abcdef" // 8 bytes, hex
		for _, tc := range []struct{ name, cookie string }{
			{"client cookie", client},
			{"client cookie and an unknown server cookie", client + "01000000" + "5f5f5f5f" + "0011223344556677"},
		} {
			for _, name := range []string{rw, "master.orders.service.dc1.consul."} {
				q := confQuery(name, dns.TypeA, true)
				opt := confEDNS(q, 1232, 0, false)
				opt.Option = append(opt.Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: tc.cookie})
				resp, _ := confExchangeUDP(t, w.Addr, q)
				if resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 1 {
					t.Errorf("%s, %s: rcode %s answer %v, want the normal answer", tc.name, name, dns.RcodeToString[resp.Rcode], resp.Answer)
				}
				ropt := resp.IsEdns0()
				if ropt == nil {
					t.Errorf("%s, %s: no OPT", tc.name, name)
					continue
				}
				for _, o := range ropt.Option {
					c, ok := o.(*dns.EDNS0_COOKIE)
					if !ok {
						t.Errorf("%s, %s: unexpected option %v", tc.name, name, o)
						continue
					}
					// RFC 7873 §4: the client cookie echoed, then a server
					// cookie of 8 to 32 bytes.
					b, err := hex.DecodeString(c.Cookie)
					if err != nil || len(b) < 16 || len(b) > 40 || !strings.EqualFold(c.Cookie[:16], client) {
						t.Errorf("%s, %s: COOKIE %s is not the client cookie and a valid server cookie", tc.name, name, c.Cookie)
					}
				}
			}
		}
	})

	t.Run("RFC8482 ANY is minimal", func(t *testing.T) {
		for _, tc := range []struct {
			name     string
			wantType uint16
		}{
			{"ro.orders." + confZone, dns.TypeA},
			{confMixCase(rw), dns.TypeA},
			{confZone, dns.TypeSOA},
			{confMixCase("orders." + confZone), dns.TypeSOA},
		} {
			q := confQuery(tc.name, dns.TypeANY, false)
			resp, _ := confExchangeUDP(t, w.Addr, q)
			if resp.Rcode != dns.RcodeSuccess || resp.Truncated || len(resp.Answer) == 0 {
				t.Errorf("ANY %s: rcode %s TC %v answers %d; want a non-empty answer over UDP", tc.name, dns.RcodeToString[resp.Rcode], resp.Truncated, len(resp.Answer))
				continue
			}
			for _, rr := range resp.Answer {
				if h := rr.Header(); h.Rrtype != tc.wantType || !strings.EqualFold(h.Name, tc.name) {
					t.Errorf("ANY %s: %v, want one RRset: %s records of the name", tc.name, rr, dns.TypeToString[tc.wantType])
				}
			}
		}
	})
}
