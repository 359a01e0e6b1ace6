package cache

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/internal/testzone"
)

func TestLookup(t *testing.T) {
	s := testSnapshot(t)
	const negSOA = zone + "\t1\tIN\tSOA\tns1." + zone + " hostmaster.example.internal. 7 3600 600 86400 5"
	// The SOA of a cluster's zone: its serial comes from the decisions'
	// Consul indexes, none here.
	clusterSOA := func(label string, ttl int) string {
		return fmt.Sprintf("%s.%s\t%d\tIN\tSOA\tns1.%s hostmaster.example.internal. 0 3600 600 86400 5", label, zone, ttl, zone)
	}
	tests := []struct {
		name   string
		qname  string
		qtype  uint16
		result Result
		// neg is the cluster whose zone's SOA a negative answer carries;
		// "" for the apex's.
		neg string
		// answer and extra are compared as sets: A/AAAA rotate.
		answer, extra []string
	}{
		{
			name: "apex SOA", qname: zone, qtype: dns.TypeSOA, result: Success,
			answer: []string{zone + "\t60\tIN\tSOA\tns1." + zone + " hostmaster.example.internal. 7 3600 600 86400 5"},
		},
		{
			name: "apex NS with in-zone glue", qname: zone, qtype: dns.TypeNS, result: Success,
			answer: []string{zone + "\t300\tIN\tNS\tns1." + zone, zone + "\t300\tIN\tNS\tns.other.example."},
			extra:  []string{"ns1." + zone + "\t300\tIN\tA\t10.0.0.53", "ns1." + zone + "\t300\tIN\tAAAA\tfd00::53"},
		},
		{name: "apex A is NODATA", qname: zone, qtype: dns.TypeA, result: NoData},
		{
			name: "apex ANY is the SOA", qname: zone, qtype: dns.TypeANY, result: Success,
			answer: []string{zone + "\t60\tIN\tSOA\tns1." + zone + " hostmaster.example.internal. 7 3600 600 86400 5"},
		},
		{name: "name server A", qname: "ns1." + zone, qtype: dns.TypeA, result: Success, answer: []string{"ns1." + zone + "\t300\tIN\tA\t10.0.0.53"}},
		{name: "name server AAAA", qname: "ns1." + zone, qtype: dns.TypeAAAA, result: Success, answer: []string{"ns1." + zone + "\t300\tIN\tAAAA\tfd00::53"}},
		{name: "rw A", qname: "rw.orders." + zone, qtype: dns.TypeA, result: Success, answer: []string{"rw.orders." + zone + "\t5\tIN\tA\t10.0.0.1"}},
		{name: "rw AAAA is NODATA", qname: "rw.orders." + zone, qtype: dns.TypeAAAA, result: NoData, neg: "orders"},
		{
			name: "rw SRV with target in additional", qname: "rw.orders." + zone, qtype: dns.TypeSRV, result: Success,
			answer: []string{"rw.orders." + zone + "\t5\tIN\tSRV\t0 1 5432 pg-1.main.orders." + zone},
			extra:  []string{"pg-1.main.orders." + zone + "\t5\tIN\tA\t10.0.0.1"},
		},
		{
			name: "ro A", qname: "ro.orders." + zone, qtype: dns.TypeA, result: Success,
			answer: []string{"ro.orders." + zone + "\t10\tIN\tA\t10.0.0.2", "ro.orders." + zone + "\t10\tIN\tA\t10.0.0.4"},
		},
		{name: "ro AAAA", qname: "ro.orders." + zone, qtype: dns.TypeAAAA, result: Success, answer: []string{"ro.orders." + zone + "\t10\tIN\tAAAA\tfd00::3"}},
		{
			name: "ro SRV mixes families", qname: "ro.orders." + zone, qtype: dns.TypeSRV, result: Success,
			answer: []string{
				"ro.orders." + zone + "\t10\tIN\tSRV\t0 1 5432 pg-2.main.orders." + zone,
				"ro.orders." + zone + "\t10\tIN\tSRV\t0 1 5432 pg-3.main.orders." + zone,
				"ro.orders." + zone + "\t10\tIN\tSRV\t0 1 5433 pg-4.main.orders." + zone,
			},
			extra: []string{
				"pg-2.main.orders." + zone + "\t10\tIN\tA\t10.0.0.2",
				"pg-3.main.orders." + zone + "\t10\tIN\tAAAA\tfd00::3",
				"pg-4.main.orders." + zone + "\t10\tIN\tA\t10.0.0.4",
			},
		},
		{name: "passive-rw A", qname: "passive-rw.orders." + zone, qtype: dns.TypeA, result: Success, answer: []string{"passive-rw.orders." + zone + "\t15\tIN\tA\t10.1.0.5"}},
		{name: "empty passive-ro A is NODATA", qname: "passive-ro.orders." + zone, qtype: dns.TypeA, result: NoData, neg: "orders"},
		{name: "empty passive-ro SRV is NODATA", qname: "passive-ro.orders." + zone, qtype: dns.TypeSRV, result: NoData, neg: "orders"},
		{
			name: "empty passive-ro TXT says why", qname: "passive-ro.orders." + zone, qtype: dns.TypeTXT, result: Success,
			answer: []string{"passive-ro.orders." + zone + "\t20\tIN\tTXT\t\"passive-ro: region standby (standby, leader pg-5, timeline 3); no endpoints; main region is primary; fresh\""},
		},
		{
			name: "rw TXT", qname: "rw.orders." + zone, qtype: dns.TypeTXT, result: Success,
			answer: []string{"rw.orders." + zone + "\t20\tIN\tTXT\t\"rw: region main (primary, leader pg-1, timeline 3); endpoints pg-1 10.0.0.1:5432; main region is primary; fresh\""},
		},
		{name: "target A", qname: "pg-1.main.orders." + zone, qtype: dns.TypeA, result: Success, answer: []string{"pg-1.main.orders." + zone + "\t5\tIN\tA\t10.0.0.1"}},
		{name: "target AAAA", qname: "pg-3.main.orders." + zone, qtype: dns.TypeAAAA, result: Success, answer: []string{"pg-3.main.orders." + zone + "\t10\tIN\tAAAA\tfd00::3"}},
		{name: "target other type is NODATA", qname: "pg-1.main.orders." + zone, qtype: dns.TypeTXT, result: NoData, neg: "orders"},
		{name: "target ANY is its address", qname: "pg-3.main.orders." + zone, qtype: dns.TypeANY, result: Success, answer: []string{"pg-3.main.orders." + zone + "\t10\tIN\tAAAA\tfd00::3"}},
		// pg-5 is also ro.standby's (ttl.ro): its records take the shorter TTL.
		{name: "passive target", qname: "pg-5.standby.orders." + zone, qtype: dns.TypeA, result: Success, answer: []string{"pg-5.standby.orders." + zone + "\t10\tIN\tA\t10.1.0.5"}},
		{
			name: "shared target takes the shortest TTL", qname: "ro.pay." + zone, qtype: dns.TypeSRV, result: Success,
			answer: []string{"ro.pay." + zone + "\t10\tIN\tSRV\t0 1 6432 pay-1.main.pay." + zone},
			extra:  []string{"pay-1.main.pay." + zone + "\t5\tIN\tA\t10.2.0.1"},
		},
		{name: "sync A", qname: "sync.orders." + zone, qtype: dns.TypeA, result: Success, answer: []string{"sync.orders." + zone + "\t10\tIN\tA\t10.0.0.2"}},
		{
			name: "sync SRV", qname: "sync.orders." + zone, qtype: dns.TypeSRV, result: Success,
			answer: []string{"sync.orders." + zone + "\t10\tIN\tSRV\t0 1 5432 pg-2.main.orders." + zone},
			extra:  []string{"pg-2.main.orders." + zone + "\t10\tIN\tA\t10.0.0.2"},
		},
		{
			name: "sync TXT says why", qname: "sync.orders." + zone, qtype: dns.TypeTXT, result: Success,
			answer: []string{"sync.orders." + zone + "\t20\tIN\tTXT\t\"sync: region main (primary, leader pg-1, timeline 3); endpoints pg-2 10.0.0.2:5432; synchronous standby pg-2; main region is primary; fresh\""},
		},
		{
			name: "ro TXT names who was left out", qname: "ro.orders." + zone, qtype: dns.TypeTXT, result: Success,
			answer: []string{"ro.orders." + zone + "\t20\tIN\tTXT\t\"ro: region main (primary, leader pg-1, timeline 3); endpoints pg-2 10.0.0.2:5432, pg-3 [fd00::3]:5432, pg-4 10.0.0.4:5433; left out pg-6 lag 48 MB > 16 MB, pg-7 noloadbalance; main region is primary; fresh\""},
		},
		{
			name: "region-pinned A", qname: "ro.main.orders." + zone, qtype: dns.TypeA, result: Success,
			answer: []string{"ro.main.orders." + zone + "\t10\tIN\tA\t10.0.0.2", "ro.main.orders." + zone + "\t10\tIN\tA\t10.0.0.4"},
		},
		{name: "region-pinned AAAA", qname: "ro.main.orders." + zone, qtype: dns.TypeAAAA, result: Success, answer: []string{"ro.main.orders." + zone + "\t10\tIN\tAAAA\tfd00::3"}},
		{
			name: "region-pinned SRV", qname: "ro.standby.orders." + zone, qtype: dns.TypeSRV, result: Success,
			answer: []string{"ro.standby.orders." + zone + "\t10\tIN\tSRV\t0 1 5432 pg-5.standby.orders." + zone},
			extra:  []string{"pg-5.standby.orders." + zone + "\t10\tIN\tA\t10.1.0.5"},
		},
		{
			name: "region-pinned TXT", qname: "ro.main.orders." + zone, qtype: dns.TypeTXT, result: Success,
			answer: []string{"ro.main.orders." + zone + "\t20\tIN\tTXT\t\"ro.main: region main (primary, leader pg-1, timeline 3); endpoints pg-2 10.0.0.2:5432, pg-3 [fd00::3]:5432, pg-4 10.0.0.4:5433; left out pg-6 lag 48 MB > 16 MB, pg-7 noloadbalance; main region is primary; fresh\""},
		},
		{
			name: "region-pinned TXT of the passive region", qname: "ro.standby.orders." + zone, qtype: dns.TypeTXT, result: Success,
			answer: []string{"ro.standby.orders." + zone + "\t20\tIN\tTXT\t\"ro.standby: region standby (standby, leader pg-5, timeline 3); endpoints pg-5 10.1.0.5:5432; main region is primary; fresh\""},
		},
		{name: "region-pinned name without a decision", qname: "ro.main.billing." + zone, qtype: dns.TypeA, result: NoData, neg: "billing"},
		{
			name: "sync without a decision: TXT", qname: "sync.billing." + zone, qtype: dns.TypeTXT, result: Success,
			answer: []string{"sync.billing." + zone + "\t20\tIN\tTXT\t\"sync: no decision yet; no endpoints; stale\""},
		},
		{name: "below a region-pinned name", qname: "x.ro.main.orders." + zone, qtype: dns.TypeA, result: NXDomain, neg: "orders"},
		{name: "cluster zone SOA at the cut", qname: "orders." + zone, qtype: dns.TypeSOA, result: Success,
			answer: []string{clusterSOA("orders", 60)}},
		{
			name: "cluster zone NS at the cut equal to the apex's, with its glue", qname: "orders." + zone, qtype: dns.TypeNS, result: Success,
			answer: []string{"orders." + zone + "\t300\tIN\tNS\tns1." + zone, "orders." + zone + "\t300\tIN\tNS\tns.other.example."},
			extra:  []string{"ns1." + zone + "\t300\tIN\tA\t10.0.0.53", "ns1." + zone + "\t300\tIN\tAAAA\tfd00::53"},
		},
		{name: "cluster zone ANY is the SOA", qname: "pay." + zone, qtype: dns.TypeANY, result: Success, answer: []string{clusterSOA("pay", 60)}},
		{name: "cluster apex A is NODATA", qname: "orders." + zone, qtype: dns.TypeA, result: NoData, neg: "orders"},
		{name: "DS at the cut is the parent's NODATA", qname: "orders." + zone, qtype: dns.TypeDS, result: NoData},
		{name: "cluster zone without decision has its SOA", qname: "billing." + zone, qtype: dns.TypeSOA, result: Success,
			answer: []string{clusterSOA("billing", 60)}},
		{name: "region is an empty non-terminal", qname: "main.orders." + zone, qtype: dns.TypeA, result: NoData, neg: "orders"},
		{name: "passive region is an empty non-terminal", qname: "standby.orders." + zone, qtype: dns.TypeTXT, result: NoData, neg: "orders"},
		{name: "unknown label under a cluster", qname: "nope.orders." + zone, qtype: dns.TypeA, result: NXDomain, neg: "orders"},
		{name: "below a name", qname: "x.rw.orders." + zone, qtype: dns.TypeA, result: NXDomain, neg: "orders"},
		{name: "below a target", qname: "x.pg-1.main.orders." + zone, qtype: dns.TypeA, result: NXDomain, neg: "orders"},
		{name: "unknown cluster", qname: "rw.unknown." + zone, qtype: dns.TypeA, result: NXDomain},
		{name: "unknown name under the apex", qname: "unknown." + zone, qtype: dns.TypeA, result: NXDomain},
		{name: "below a name server", qname: "x.ns1." + zone, qtype: dns.TypeA, result: NXDomain},
		{name: "decision without configured cluster", qname: "rw.not-configured." + zone, qtype: dns.TypeA, result: NXDomain},
		{name: "cluster without decision: A", qname: "rw.billing." + zone, qtype: dns.TypeA, result: NoData, neg: "billing"},
		{name: "cluster without decision: SRV", qname: "passive-ro.billing." + zone, qtype: dns.TypeSRV, result: NoData, neg: "billing"},
		{
			name: "cluster without decision: TXT", qname: "ro.billing." + zone, qtype: dns.TypeTXT, result: Success,
			answer: []string{"ro.billing." + zone + "\t20\tIN\tTXT\t\"ro: no decision yet; no endpoints; stale\""},
		},
		{
			name: "ANY without addresses is the TXT", qname: "rw.billing." + zone, qtype: dns.TypeANY, result: Success,
			answer: []string{"rw.billing." + zone + "\t20\tIN\tTXT\t\"rw: no decision yet; no endpoints; stale\""},
		},
		{
			name: "ANY is the A RRset", qname: "ro.orders." + zone, qtype: dns.TypeANY, result: Success,
			answer: []string{"ro.orders." + zone + "\t10\tIN\tA\t10.0.0.2", "ro.orders." + zone + "\t10\tIN\tA\t10.0.0.4"},
		},
		{name: "ANY at an empty non-terminal", qname: "main.orders." + zone, qtype: dns.TypeANY, result: NoData, neg: "orders"},
		{name: "unsupported type", qname: "rw.orders." + zone, qtype: dns.TypeDNSKEY, result: NoData, neg: "orders"},
		{name: "other type at the apex", qname: zone, qtype: dns.TypeMX, result: NoData},
		{name: "parent of zone", qname: "example.internal.", qtype: dns.TypeA, result: OutOfZone},
		{name: "suffix that is not a label", qname: "xpg.example.internal.", qtype: dns.TypeA, result: OutOfZone},
		{name: "escaped dot is not a label boundary", qname: `a\.pg.example.internal.`, qtype: dns.TypeA, result: OutOfZone},
		{name: "escaped backslash then dot is", qname: `a\\.pg.example.internal.`, qtype: dns.TypeA, result: NXDomain},
		{name: "root", qname: ".", qtype: dns.TypeNS, result: OutOfZone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := s.Lookup(tc.qname, tc.qtype)
			if got.Result != tc.result {
				t.Fatalf("result = %v, want %v", got.Result, tc.result)
			}
			assertSet(t, "answer", got.Answer, tc.answer)
			assertSet(t, "extra", got.Extra, tc.extra)
			switch tc.result {
			case NoData, NXDomain:
				want := negSOA
				if tc.neg != "" {
					want = clusterSOA(tc.neg, 1)
				}
				assertSet(t, "ns", got.Ns, []string{want})
			default:
				assertSet(t, "ns", got.Ns, nil)
			}
			wantRcode := dns.RcodeSuccess
			if tc.result == NXDomain {
				wantRcode = dns.RcodeNameError
			}
			if got.Rcode() != wantRcode || got.InZone() != (tc.result != OutOfZone) {
				t.Errorf("Rcode() = %d, InZone() = %v", got.Rcode(), got.InZone())
			}
		})
	}
}

func assertSet(t *testing.T, section string, got []dns.RR, want []string) {
	t.Helper()
	g, w := rrStrings(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Errorf("%s:\n got %q\nwant %q", section, g, w)
	}
}

func TestSplitBrainTXT(t *testing.T) {
	s := testSnapshot(t)
	for _, label := range []string{"rw", "ro", "passive-rw", "passive-ro"} {
		ans := s.Lookup(label+".split."+zone, dns.TypeTXT)
		if len(ans.Answer) != 1 {
			t.Fatalf("%s: %d TXT records, want 1", label, len(ans.Answer))
		}
		txt := strings.Join(ans.Answer[0].(*dns.TXT).Txt, "")
		for _, want := range []string{"split brain", "; stale (region main last known data)", label + ": region "} {
			if !strings.Contains(txt, want) {
				t.Errorf("%s: TXT %q does not contain %q", label, txt, want)
			}
		}
		if n := strings.Count(txt, "split brain"); n != 1 {
			t.Errorf("%s: TXT %q says split brain %d times, want once", label, txt, n)
		}
	}
	rw := s.Lookup("rw.split."+zone, dns.TypeTXT).Answer[0].(*dns.TXT).Txt[0]
	if !strings.HasPrefix(rw, "rw: region standby (primary, leader s-2, timeline 5); endpoints s-2 10.5.0.2:5432;") {
		t.Errorf("rw TXT = %q", rw)
	}
}

func TestNegativeTTL(t *testing.T) {
	tests := []struct {
		name                  string
		soaTTL, min, negative uint32
		want                  uint32
	}{
		{"negative TTL smallest", 60, 5, 1, 1},
		{"SOA minimum smallest", 60, 5, 30, 5},
		{"SOA TTL smallest", 3, 5, 30, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testzone.Config()
			cfg.TTL.SOA, cfg.SOA.Minimum, cfg.TTL.Negative = tc.soaTTL, tc.min, tc.negative
			s := Build(cfg, nil, 1)
			for _, q := range []string{"nope." + zone, "rw.orders." + zone} {
				ans := s.Lookup(q, dns.TypeA)
				if len(ans.Ns) != 1 || ans.Ns[0].Header().Ttl != tc.want {
					t.Errorf("%s: authority %v, want SOA with TTL %d", q, ans.Ns, tc.want)
				}
			}
			if soa := s.Lookup(zone, dns.TypeSOA).Answer[0]; soa.Header().Ttl != tc.soaTTL {
				t.Errorf("SOA TTL = %d, want %d", soa.Header().Ttl, tc.soaTTL)
			}
		})
	}
}

func TestSnapshotGenerationAndZone(t *testing.T) {
	cfg := testzone.Config()
	cfg.Zone = "PG.Example.Internal"
	s := Build(cfg, nil, 42)
	if s.Generation() != 42 || s.Zone() != zone {
		t.Fatalf("Generation() = %d, Zone() = %q", s.Generation(), s.Zone())
	}
	if serial := s.Lookup(zone, dns.TypeSOA).Answer[0].(*dns.SOA).Serial; serial != 42 {
		t.Errorf("SOA serial = %d, want 42", serial)
	}
}

func TestAnswersAreClipped(t *testing.T) {
	s := testSnapshot(t)
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"ro.orders." + zone, dns.TypeA}, {"ro.orders." + zone, dns.TypeSRV}, {zone, dns.TypeNS},
		{"rw.orders." + zone, dns.TypeTXT}, {"nope." + zone, dns.TypeA},
	} {
		ans := s.Lookup(q.name, q.qtype)
		for _, sec := range [][]dns.RR{ans.Answer, ans.Ns, ans.Extra} {
			if cap(sec) != len(sec) {
				t.Errorf("%s %s: section has cap %d > len %d; an append would write into the snapshot",
					q.name, dns.TypeToString[q.qtype], cap(sec), len(sec))
			}
		}
	}
}

func TestEveryAnswerPacks(t *testing.T) {
	s := testSnapshot(t)
	for name := range s.names {
		for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypeTXT, dns.TypeSOA, dns.TypeNS, dns.TypeANY} {
			ans := s.Lookup(name, qtype)
			m := new(dns.Msg)
			m.SetQuestion(name, qtype)
			m.Answer, m.Ns, m.Extra = ans.Answer, ans.Ns, ans.Extra
			if _, err := m.Pack(); err != nil {
				t.Errorf("%s %s: %v", name, dns.TypeToString[qtype], err)
			}
		}
	}
}

func TestStore(t *testing.T) {
	var st Store
	if st.Load() != nil {
		t.Fatal("zero Store is not empty")
	}
	first, second := Build(testzone.Config(), nil, 1), Build(testzone.Config(), nil, 2)
	if prev := st.Swap(first); prev != nil {
		t.Fatalf("first Swap returned %v", prev)
	}
	if prev := st.Swap(second); prev != first {
		t.Fatal("Swap did not return the previous snapshot")
	}
	if st.Load().Generation() != 2 {
		t.Fatalf("Load().Generation() = %d", st.Load().Generation())
	}
	if NewStore(first).Load() != first {
		t.Fatal("NewStore does not hold its snapshot")
	}
}

// TestNodeSlots checks that the slots of every node find each of its
// RRsets, and nothing for the types it has none of.
func TestNodeSlots(t *testing.T) {
	s := testSnapshot(t)
	for name, n := range s.names {
		sets := s.rrsets(n)
		for i := range sets {
			if got := s.find(n, sets[i].rrtype); got != &sets[i] {
				t.Errorf("%s: find(%s) = %+v, want %+v", name, dns.TypeToString[sets[i].rrtype], got, sets[i])
			}
			if rotated := n.slot(typeSlot(sets[i].rrtype))&slotRotated != 0; rotated != (sets[i].rotations > 1) {
				t.Errorf("%s: %s marked rotated %v, has %d orders", name, dns.TypeToString[sets[i].rrtype], rotated, sets[i].rotations)
			}
		}
		for _, qtype := range []uint16{0, dns.TypeCNAME, dns.TypeMX, dns.TypeOPT, dns.TypeANY - 1, dns.TypeANY + 1, 0xFFFF} {
			if got := s.find(n, qtype); got != nil {
				t.Errorf("%s: find(%d) = %+v, want none", name, qtype, got)
			}
		}
		if got := s.find(n, dns.TypeANY); got != nil && !slices.ContainsFunc(sets, func(set rrset) bool { return set == *got }) {
			t.Errorf("%s: ANY finds %+v, not one of the name's RRsets", name, got)
		}
	}
}
