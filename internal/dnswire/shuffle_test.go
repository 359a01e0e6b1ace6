package dnswire

import (
	"encoding/binary"
	"fmt"
	"slices"
	"testing"

	"github.com/miekg/dns"
)

func TestPermutation(t *testing.T) {
	seen := map[string]bool{}
	for seed := range uint32(1000) {
		p := make([]uint16, 4)
		Permutation(seed, p)
		s := slices.Clone(p)
		slices.Sort(s)
		if !slices.Equal(s, []uint16{0, 1, 2, 3}) {
			t.Fatalf("seed %d: %v is not a permutation", seed, p)
		}
		seen[fmt.Sprint(p)] = true
	}
	// Consecutive seeds (a counter) reach every order of four records.
	if len(seen) != 24 {
		t.Errorf("1000 consecutive seeds gave %d of the 24 orders of 4 records", len(seen))
	}
	a, b := make([]uint16, 16), make([]uint16, 16)
	Permutation(7, a)
	Permutation(7, b)
	if !slices.Equal(a, b) {
		t.Errorf("one seed, two orders: %v, %v", a, b)
	}
	if n := testing.AllocsPerRun(100, func() { Permutation(9, a) }); n != 0 {
		t.Errorf("Permutation allocates %v times", n)
	}
}

func TestShuffleable(t *testing.T) {
	rr := func(s string) dns.RR {
		r, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	a1, a2 := rr("x.consul. 5 IN A 10.0.0.1"), rr("x.consul. 5 IN A 10.0.0.2")
	cname := rr("x.consul. 5 IN CNAME y.consul.")
	many := make([]dns.RR, MaxShuffle+1)
	for i := range many {
		many[i] = a1
	}
	for _, tt := range []struct {
		name   string
		answer []dns.RR
		want   bool
	}{
		{"none", nil, false},
		{"one record", []dns.RR{a1}, false},
		{"two A", []dns.RR{a1, a2}, true},
		{"a CNAME chain keeps its order", []dns.RR{cname, a1, a2}, false},
		{"MaxShuffle records", many[:MaxShuffle], true},
		{"more than MaxShuffle", many, false},
	} {
		if got := Shuffleable(tt.answer); got != tt.want {
			t.Errorf("%s: Shuffleable = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// packed returns m packed with compression as the forwarder packs it, and
// the offsets of its records and its end.
func packed(t *testing.T, m *dns.Msg) ([]byte, []int) {
	t.Helper()
	m.Compress = true
	msg, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	off := SkipName(msg, HeaderLen) + 4
	var records []int
	for range len(m.Answer) + len(m.Ns) + len(m.Extra) {
		records = append(records, off)
		off = SkipName(msg, off)
		off += 10 + int(binary.BigEndian.Uint16(msg[off+8:]))
	}
	return msg, append(records, off)
}

// ttlOffsets returns the offset of the TTL of each record at records.
func ttlOffsets(msg []byte, records []int) []uint16 {
	var ttls []uint16
	for _, r := range records[:len(records)-1] {
		ttls = append(ttls, uint16(SkipName(msg, r)+4))
	}
	return ttls
}

// pointersBackward fails unless every compression pointer of msg's
// names points before itself (walking the names miekg/dns compresses).
func pointersBackward(t *testing.T, msg []byte, records []int) {
	t.Helper()
	for _, r := range records[:len(records)-1] {
		recordPointers(msg, r, func(at, target int) bool {
			if target >= at {
				t.Errorf("pointer at %d points forward to %d", at, target)
			}
			return true
		})
	}
}

func TestPermuteAnswer(t *testing.T) {
	rr := func(s string) dns.RR {
		r, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	aMsg := new(dns.Msg)
	aMsg.SetQuestion("web.service.consul.", dns.TypeA)
	for i := range 5 {
		aMsg.Answer = append(aMsg.Answer, rr(fmt.Sprintf("web.service.consul. 30 IN A 10.0.0.%d", i+1)))
	}
	// SRV as Consul answers it: the targets in full, their addresses in
	// the additional section (their owners point into the SRV records),
	// and names that point into the middle of a target, from the
	// authority (an NS's RDATA) and the additional section.
	srvMsg := new(dns.Msg)
	srvMsg.SetQuestion("web.service.consul.", dns.TypeSRV)
	for i := range 4 {
		srvMsg.Answer = append(srvMsg.Answer, rr(fmt.Sprintf("web.service.consul. 30 IN SRV 1 1 %d node-%d.node.dc1.consul.", 8000+i, i)))
		srvMsg.Extra = append(srvMsg.Extra, rr(fmt.Sprintf("node-%d.node.dc1.consul. 30 IN A 10.0.1.%d", i, i+1)))
	}
	srvMsg.Ns = append(srvMsg.Ns, rr("consul. 30 IN NS ns.node-2.node.dc1.consul."))
	srvMsg.Extra = append(srvMsg.Extra, rr(`meta.node-3.node.dc1.consul. 30 IN TXT "a=b"`))

	for name, m := range map[string]*dns.Msg{"A": aMsg, "SRV": srvMsg} {
		t.Run(name, func(t *testing.T) {
			msg, records := packed(t, m)
			an := len(m.Answer)
			ro := NewReorder(msg, records, an)
			if ro == nil {
				t.Fatal("no Reorder")
			}
			// Four additional owners, the NS target and the TXT owner
			// point into the SRV targets.
			if want := map[string]int{"A": 0, "SRV": 6}[name]; len(ro.Pointers) != want {
				t.Fatalf("%d pointers into the answer, want %d", len(ro.Pointers), want)
			}
			r := &Response{Msg: msg, QEnd: records[0], Extra: records[an+len(m.Ns)], TTLs: ttlOffsets(msg, records), Reorder: ro}
			out := make([]byte, len(msg))
			orders := map[string]bool{}
			for seed := range uint32(40) {
				copy(out, msg)
				r.PermuteAnswer(out, len(out), seed, 3)
				var got dns.Msg
				if err := got.Unpack(out); err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
				pointersBackward(t, out, records)
				perm := make([]uint16, an)
				Permutation(seed, perm)
				for k, i := range perm {
					want := dns.Copy(m.Answer[i])
					want.Header().Ttl -= 3
					if got.Answer[k].String() != want.String() {
						t.Fatalf("seed %d: answer %d is %v, want %v", seed, k, got.Answer[k], want)
					}
				}
				for _, s := range [][2][]dns.RR{{got.Ns, m.Ns}, {got.Extra, m.Extra}} {
					if fmt.Sprint(s[0]) != fmt.Sprint(s[1]) {
						t.Fatalf("seed %d: section %v, want %v as packed", seed, s[0], s[1])
					}
				}
				// The slow path packs the records in the same order: the
				// same octets.
				slow := m.Copy()
				slow.Answer = got.Answer
				if want, _ := slow.Pack(); !slices.Equal(out, want) {
					t.Fatalf("seed %d: octets differ from the reordered message packed", seed)
				}
				orders[fmt.Sprint(perm)] = true
			}
			if len(orders) < 2 {
				t.Errorf("40 seeds gave %d order", len(orders))
			}
			if n := testing.AllocsPerRun(100, func() { r.PermuteAnswer(out, len(out), 5, 1) }); n != 0 {
				t.Errorf("PermuteAnswer allocates %v times", n)
			}
		})
	}
}

// TestNewReorderRefuses: answers whose names point into other answer
// records cannot be reordered in place.
func TestNewReorderRefuses(t *testing.T) {
	m := new(dns.Msg)
	m.SetQuestion("example.com.", dns.TypeMX)
	for _, s := range []string{"example.com. 60 IN MX 10 mx1.mail.example.net.", "example.com. 60 IN MX 20 mx2.mail.example.net."} {
		r, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		m.Answer = append(m.Answer, r)
	}
	msg, records := packed(t, m)
	if ro := NewReorder(msg, records, 2); ro != nil {
		t.Errorf("MX answers sharing mail.example.net.: Reorder %+v, want none", ro)
	}
	if ro := NewReorder(msg, records, 1); ro != nil {
		t.Errorf("one answer record: Reorder %+v, want none", ro)
	}
}

func BenchmarkPermuteAnswer(b *testing.B) {
	for _, n := range []int{3, 12} {
		m := new(dns.Msg)
		m.SetQuestion("web.service.consul.", dns.TypeSRV)
		for i := range n {
			rr, _ := dns.NewRR(fmt.Sprintf("web.service.consul. 30 IN SRV 1 1 %d node-%d.node.dc1.consul.", 8000+i, i))
			m.Answer = append(m.Answer, rr)
			rr, _ = dns.NewRR(fmt.Sprintf("node-%d.node.dc1.consul. 30 IN A 10.0.1.%d", i, i+1))
			m.Extra = append(m.Extra, rr)
		}
		m.Compress = true
		msg, _ := m.Pack()
		off := SkipName(msg, HeaderLen) + 4
		var records []int
		var ttls []uint16
		for range 2 * n {
			records = append(records, off)
			off = SkipName(msg, off)
			ttls = append(ttls, uint16(off+4))
			off += 10 + int(binary.BigEndian.Uint16(msg[off+8:]))
		}
		r := &Response{Msg: msg, TTLs: ttls, Reorder: NewReorder(msg, append(records, off), n)}
		out := make([]byte, len(msg))
		copy(out, msg)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			seed := uint32(0)
			for b.Loop() {
				seed++
				r.PermuteAnswer(out, len(out), seed, 1)
			}
		})
	}
}
