package cache

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/internal/dnswire"
	"github.com/regiondns/regiondns/internal/testzone"
	"github.com/regiondns/regiondns/policy"
)

// miekgPack packs the response to (name, qtype) with the sections given as
// the resolver's slow path does: compression on, QR and AA set.
func miekgPack(t *testing.T, name string, qtype uint16, ans, ns, extra []dns.RR) []byte {
	t.Helper()
	m := &dns.Msg{MsgHdr: dns.MsgHdr{Response: true, Authoritative: true}, Compress: true}
	m.Question = []dns.Question{{Name: name, Qtype: qtype, Qclass: dns.ClassINET}}
	m.Answer, m.Ns, m.Extra = ans, ns, extra
	wire, err := m.Pack()
	if err != nil {
		t.Fatalf("pack %s %s: %v", name, dns.TypeToString[qtype], err)
	}
	return wire
}

// TestWireMatchesMiekg checks every template of the test snapshots, every
// rotation, byte for byte against miekg/dns packing the records Lookup
// returns, with and without the additional section.
func TestWireMatchesMiekg(t *testing.T) {
	snaps := map[string]*Snapshot{
		"fixture": testSnapshot(t),
		"big":     Build(testzone.Config(), map[string]policy.Decision{"orders": bigDecision(40)}, 3),
	}
	for label, s := range snaps {
		checked := 0
		for name, n := range s.names {
			for j, set := range s.rrsets(n) {
				if want := uint16(rotationsOf(set.rrtype, int(set.n))); set.rotations != want {
					t.Fatalf("%s: %s %s: %d rotations, want %d", label, name, dns.TypeToString[set.rrtype], set.rotations, want)
				}
				for i := range uint32(set.rotations) {
					lower, _ := s.LookupWire([]byte(name), set.rrtype, i, false)
					cased, _ := s.LookupWire([]byte(name), set.rrtype, i, true)
					if lower == nil || cased == nil {
						t.Fatalf("%s: %s %s rotation %d: no template", label, name, dns.TypeToString[set.rrtype], i)
					}
					if w := s.template(n, uint32(j), i); lower != &w.Lower {
						t.Fatalf("%s: %s %s rotation %d: LookupWire does not give the RRset's template", label, name, dns.TypeToString[set.rrtype], i)
					}
					if again, _ := s.LookupWire([]byte(name), set.rrtype, i, true); again != cased {
						t.Fatalf("%s: %s %s rotation %d: the cased template is packed again", label, name, dns.TypeToString[set.rrtype], i)
					}
					ans, extra := set.order(s.parts[n.part].rrs, i)
					// The cased template is checked against a question with
					// every other letter upper case, the last label
					// included.
					for _, v := range []struct {
						question string
						p        *Packed
					}{{name, lower}, {mixCase(name), cased}} {
						where := fmt.Sprintf("%s: %s %s rotation %d", label, v.question, dns.TypeToString[set.rrtype], i)
						want := miekgPack(t, v.question, set.rrtype, ans, nil, extra)
						if got := withQuestion(v.p.Msg, want); !bytes.Equal(got, want) {
							t.Errorf("%s:\n got % x\nwant % x", where, got, want)
						}
						short := miekgPack(t, v.question, set.rrtype, ans, nil, nil)
						got := withQuestion(v.p.Msg[:v.p.Extra], short)
						binary.BigEndian.PutUint16(got[10:], 0)
						if !bytes.Equal(got, short) {
							t.Errorf("%s, without additional:\n got % x\nwant % x", where, got, short)
						}
					}
					checked++
				}
			}
		}
		if checked < 20 {
			t.Errorf("%s: only %d templates checked", label, checked)
		}
	}
}

// mixCase returns name with every other letter upper case, and the last
// letter too.
func mixCase(name string) string {
	b := []byte(name)
	for i := range b {
		if ('a' <= b[i] && b[i] <= 'z') && (i%2 == 0 || i == len(b)-2) {
			b[i] -= 'a' - 'A'
		}
	}
	return string(b)
}

// withQuestion returns a copy of msg with the question name of like (the
// same length): the fast path writes the client's question in.
func withQuestion(msg, like []byte) []byte {
	out := bytes.Clone(msg)
	end := dnswire.HeaderLen
	for out[end] != 0 {
		end += int(out[end]) + 1
	}
	copy(out[dnswire.HeaderLen:end], like[dnswire.HeaderLen:end])
	return out
}

// relocate returns the negative SOA for a question whose name is nameLen
// octets long on the wire, as the fast path writes it.
func relocate(neg *NegativeWire, r NegativeRR, nameLen int) []byte {
	rr := bytes.Clone(r.RR)
	d := nameLen - neg.ApexLen
	for _, p := range r.Pointers {
		v := binary.BigEndian.Uint16(rr[p:]) & 0x3FFF
		binary.BigEndian.PutUint16(rr[p:], 0xC000|(v+uint16(d)))
	}
	return rr
}

func TestNegativeWireRelocates(t *testing.T) {
	s := testSnapshot(t)
	neg := s.NegativeWire()
	if neg == nil || len(neg.Lower.Pointers) == 0 || len(neg.Cased.Pointers) == 0 {
		t.Fatalf("negative template %+v: want one with pointers", neg)
	}
	for _, lower := range []string{zone, "nope." + zone, "a.b.c.nope." + zone, "rw.orders." + zone, strings.Repeat("x", 63) + "." + zone} {
		for _, v := range []struct {
			name string
			r    NegativeRR
		}{{lower, neg.Lower}, {mixCase(lower), neg.Cased}} {
			name := v.name
			want := miekgPack(t, name, dns.TypeA, nil, s.negative, nil)
			var wantMsg dns.Msg
			if err := wantMsg.Unpack(want); err != nil {
				t.Fatal(err)
			}
			q := want[:len(want)-len(v.r.RR)]
			got := append(bytes.Clone(q), relocate(neg, v.r, len(q)-dnswire.HeaderLen-4)...)
			if !bytes.Equal(got, want) {
				t.Errorf("%s:\n got % x\nwant % x", name, got, want)
			}
			var gotMsg dns.Msg
			if err := gotMsg.Unpack(got); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if gotMsg.String() != wantMsg.String() {
				t.Errorf("%s: got\n%v\nwant\n%v", name, &gotMsg, &wantMsg)
			}
		}
	}
}

func TestLookupWireMatchesLookup(t *testing.T) {
	s := testSnapshot(t)
	for _, tc := range []struct {
		name  string
		qtype uint16
		want  Result
	}{
		{"rw.orders." + zone, dns.TypeA, Success},
		{"rw.orders." + zone, dns.TypeANY, Success},
		{"sync.orders." + zone, dns.TypeSRV, Success},
		{"sync.orders." + zone, dns.TypeTXT, Success},
		{"ro.main.orders." + zone, dns.TypeA, Success},
		{"ro.standby.orders." + zone, dns.TypeTXT, Success},
		{"ro.main.billing." + zone, dns.TypeA, NoData},
		{"rw.orders." + zone, dns.TypeMX, NoData},
		{"orders." + zone, dns.TypeA, NoData},
		{"nope." + zone, dns.TypeA, NXDomain},
		{zone, dns.TypeSOA, Success},
		{zone, dns.TypeNS, Success},
		{"example.com.", dns.TypeA, OutOfZone},
		{"xpg.example.internal.", dns.TypeA, OutOfZone},
	} {
		for _, cased := range []bool{false, true} {
			w, res := s.LookupWire([]byte(tc.name), tc.qtype, 0, cased)
			if res != tc.want || res != s.Lookup(tc.name, tc.qtype).Result || (res == Success) != (w != nil) {
				t.Errorf("LookupWire(%s, %s, cased %t) = %v, %v; want %v", tc.name, dns.TypeToString[tc.qtype], cased, w, res, tc.want)
			}
		}
	}
	// The cased template is packed by the first question that wants it
	// (AllocsPerRun's warm-up run), and then only read.
	for _, cased := range []bool{false, true} {
		if n := testing.AllocsPerRun(100, func() { s.LookupWire([]byte("ro.orders."+zone), dns.TypeA, 7, cased) }); n != 0 {
			t.Errorf("LookupWire (cased %t) allocates %v times", cased, n)
		}
	}
}

// template returns the wire of order r of the RRset i of node n, found the
// way the layout says, for a check that LookupWire finds the same; its
// message is nil when the RRset could not be packed.
func (s *Snapshot) template(n node, i, r uint32) *Wire {
	p := s.parts[n.part]
	i += n.first
	if p.sets[i].rotations > 1 {
		return &p.wires[p.sets[i].more+r]
	}
	return &p.wires[i]
}
