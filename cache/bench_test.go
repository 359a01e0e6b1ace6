package cache

import (
	"testing"

	"github.com/miekg/dns"

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
	s := Build(testConfig(), map[string]policy.Decision{"orders": bigDecision(8)}, 1)
	for _, q := range lookups {
		if n := testing.AllocsPerRun(100, func() { s.Lookup(q.name, q.qtype) }); n != 0 {
			t.Errorf("Lookup(%s, %s): %v allocs, want 0", q.name, dns.TypeToString[q.qtype], n)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	s := Build(testConfig(), map[string]policy.Decision{"orders": bigDecision(8)}, 1)
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
