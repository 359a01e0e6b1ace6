package cache

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/internal/testzone"
	"github.com/regiondns/regiondns/policy"
)

// bigDecision has n read-only endpoints in the main region.
func bigDecision(n int) policy.Decision {
	d := policy.Decision{
		Active: "main", Passive: "standby",
		Main:   policy.RegionView{Name: "main", State: policy.StatePrimary, Leader: "pg-0"},
		Reason: "main region is primary",
	}
	for i := range n {
		d.RO = append(d.RO, testzone.Endpoint(fmt.Sprintf("pg-%d", i), "main", fmt.Sprintf("10.0.%d.%d", i/250, i%250+1), 5432))
	}
	return d
}

func TestRotation(t *testing.T) {
	tests := []struct {
		name      string
		endpoints int
		variants  int
	}{
		{"one record never rotates", 1, 1},
		{"three records, three orders", 3, 3},
		{"forty records, capped", 40, maxRotations},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Build(testzone.Config(), map[string]policy.Decision{"orders": bigDecision(tc.endpoints)}, 1)
			want := rrStrings(s.Lookup("ro.orders."+zone, dns.TypeA).Answer)
			slices.Sort(want)
			firsts := map[string]bool{}
			for range 4 * maxRotations {
				ans := s.Lookup("ro.orders."+zone, dns.TypeA).Answer
				firsts[ans[0].String()] = true
				got := rrStrings(ans)
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Fatalf("rotation is not a permutation of the RRset:\n got %q\nwant %q", got, want)
				}
			}
			if len(firsts) != tc.variants {
				t.Errorf("%d distinct first records, want %d", len(firsts), tc.variants)
			}
		})
	}
}

func TestRotationOrderIsCyclic(t *testing.T) {
	s := Build(testzone.Config(), map[string]policy.Decision{"orders": bigDecision(3)}, 1)
	a := s.Lookup("ro.orders."+zone, dns.TypeA).Answer
	b := s.Lookup("ro.orders."+zone, dns.TypeA).Answer
	if a[0] == b[0] {
		t.Fatalf("consecutive lookups start with the same record %v", a[0])
	}
	// Each order is the RRset shifted: the successor of every record is the
	// same in all orders.
	next := func(rrs []dns.RR, rr dns.RR) dns.RR { return rrs[(slices.Index(rrs, rr)+1)%len(rrs)] }
	for _, rr := range a {
		if next(a, rr) != next(b, rr) {
			t.Fatalf("orders %v and %v are not rotations of each other", a, b)
		}
	}
}

func TestLongTXTIsSplit(t *testing.T) {
	s := Build(testzone.Config(), map[string]policy.Decision{"orders": bigDecision(40)}, 1)
	txt := s.Lookup("ro.orders."+zone, dns.TypeTXT).Answer
	if len(txt) != 1 {
		t.Fatalf("%d TXT records, want one", len(txt))
	}
	parts := txt[0].(*dns.TXT).Txt
	if len(parts) < 2 {
		t.Fatalf("TXT has %d strings, want it split", len(parts))
	}
	for i, p := range parts {
		if len(p) > maxTXTString {
			t.Errorf("string %d has %d bytes", i, len(p))
		}
	}
	joined := strings.Join(parts, "")
	if !strings.Contains(joined, "pg-39 10.0.0.40:5432; main region is primary; fresh") {
		t.Errorf("joined TXT = %q", joined)
	}
	m := new(dns.Msg)
	m.Answer = txt
	if _, err := m.Pack(); err != nil {
		t.Fatalf("pack: %v", err)
	}
}

func TestTXTIsSanitized(t *testing.T) {
	d := bigDecision(1)
	d.Reason = "odd \\ reason \"quoted\" ünïcode\n"
	s := Build(testzone.Config(), map[string]policy.Decision{"orders": d}, 1)
	txt := s.Lookup("ro.orders."+zone, dns.TypeTXT).Answer[0].(*dns.TXT)
	got := strings.Join(txt.Txt, "")
	if !strings.Contains(got, `odd ? reason "quoted" ??n??code?`) {
		t.Errorf("TXT = %q", got)
	}
	// What goes on the wire is what the text says: one byte per character.
	m := new(dns.Msg)
	m.Answer = []dns.RR{txt}
	wire, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	var back dns.Msg
	if err := back.Unpack(wire); err != nil {
		t.Fatal(err)
	}
	if again := strings.Join(back.Answer[0].(*dns.TXT).Txt, ""); again != strings.ReplaceAll(got, `"`, `\"`) {
		t.Errorf("round trip: %q, want %q", again, got)
	}
}

func TestEndpointsWithoutAddressAreSkipped(t *testing.T) {
	d := bigDecision(2)
	d.RO = append(d.RO, policy.Endpoint{Target: "noaddr", Region: "main", Port: 1})
	d.RO = append(d.RO, testzone.Endpoint(strings.Repeat("x", 63), "main", "10.9.0.1", 1))
	d.RO[len(d.RO)-1].Region = strings.Repeat("r", 63) + "." + strings.Repeat("s", 63) + "." + strings.Repeat("t", 63)
	s := Build(testzone.Config(), map[string]policy.Decision{"orders": d}, 1)
	if got := len(s.Lookup("ro.orders."+zone, dns.TypeSRV).Answer); got != 2 {
		t.Errorf("%d SRV records, want 2 (no address, name too long)", got)
	}
}
