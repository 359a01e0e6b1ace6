package cache

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/internal/testzone"
	"github.com/regiondns/regiondns/policy"
)

// lookups are the common paths: rotated and single A, SRV with additional
// records, NODATA, NXDOMAIN, apex and out of zone.
var lookups = []struct {
	name  string
	qtype uint16
}{
	{"ro.orders." + zone, dns.TypeA},
	{"rw.orders." + zone, dns.TypeA},
	{"ro.orders." + zone, dns.TypeSRV},
	{"rw.orders." + zone, dns.TypeAAAA},
	{"nope.orders." + zone, dns.TypeA},
	{zone, dns.TypeSOA},
	{"rw.orders." + zone, dns.TypeANY},
	{"example.com.", dns.TypeA},
}

func TestLookupDoesNotAllocate(t *testing.T) {
	s := Build(testzone.Config(), map[string]policy.Decision{"orders": bigDecision(8)}, 1)
	for _, q := range lookups {
		if n := testing.AllocsPerRun(100, func() { s.Lookup(q.name, q.qtype) }); n != 0 {
			t.Errorf("Lookup(%s, %s): %v allocs, want 0", q.name, dns.TypeToString[q.qtype], n)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	s := Build(testzone.Config(), map[string]policy.Decision{"orders": bigDecision(8)}, 1)
	for _, q := range lookups {
		b.Run(dns.TypeToString[q.qtype]+"/"+q.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.Lookup(q.name, q.qtype)
			}
		})
	}
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				q := lookups[i%len(lookups)]
				s.Lookup(q.name, q.qtype)
			}
		})
	})
}

// BenchmarkLookupWire is BenchmarkLookup for the fast path's lookup.
func BenchmarkLookupWire(b *testing.B) {
	s := Build(testzone.Config(), map[string]policy.Decision{"orders": bigDecision(8)}, 1)
	for _, q := range lookups {
		name := []byte(q.name)
		b.Run(dns.TypeToString[q.qtype]+"/"+q.name, func(b *testing.B) {
			b.ReportAllocs()
			rot := uint32(0)
			for b.Loop() {
				rot++
				s.LookupWire(name, q.qtype, rot, false)
			}
		})
	}
}

// BenchmarkFleetLookup looks up the names of the fleet's snapshot in a
// fixed random order, for A, SRV and TXT in turn: LookupWire (the fast
// path) and Lookup (the slow path) on a snapshot larger than the CPU's
// caches.
func BenchmarkFleetLookup(b *testing.B) {
	cfg, ds := fleet(1000)
	s := Build(cfg, ds, 1)
	var names []string
	for name := range s.names {
		names = append(names, name)
	}
	slices.Sort(names)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	wire := make([][]byte, len(names))
	for i, name := range names {
		wire[i] = []byte(name)
	}
	qtypes := [...]uint16{dns.TypeA, dns.TypeSRV, dns.TypeTXT}
	b.Run("wire", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			s.LookupWire(wire[i%len(wire)], qtypes[i%len(qtypes)], uint32(i), false)
			i++
		}
	})
	b.Run("rr", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			s.Lookup(names[i%len(names)], qtypes[i%len(qtypes)])
			i++
		}
	})
}
