package cache

import (
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/internal/testzone"
	"github.com/regiondns/regiondns/policy"
)

// Every name's TXT says what the operator's control did: a pin in the
// policy's reason, the drained members, and the leader a drain was not
// applied to; without control, none of it.
func TestControlTXT(t *testing.T) {
	decisions := testzone.Decisions()
	d := decisions["orders"]
	d.Reason = "pinned to region main until 2030-01-02T16:00:00Z (DR drill); the rules alone: main region is primary"
	d.Pin = &policy.PinState{Region: "main", Applied: true, Why: "pinned to region main until 2030-01-02T16:00:00Z (DR drill)"}
	d.Drained, d.DrainNotApplied = []string{"m-2", "m-3"}, []string{"m-1"}
	decisions["orders"] = d
	s := Build(testzone.Config(), decisions, 7)
	for _, label := range []string{"rw", "ro", "passive-rw", "passive-ro"} {
		txt := txtOf(t, s, label+".orders."+zone)
		for _, want := range []string{
			"; pinned to region main until 2030-01-02T16:00:00Z (DR drill); the rules alone: main region is primary; drained m-2, m-3; drain not applied to the leader m-1; fresh",
		} {
			if !strings.Contains(txt, want) {
				t.Errorf("%s: TXT %q does not contain %q", label, txt, want)
			}
		}
		if txt := txtOf(t, s, label+".pay."+zone); strings.Contains(txt, "drain") || strings.Contains(txt, "pinned") {
			t.Errorf("%s.pay without control: TXT %q speaks of it", label, txt)
		}
	}
}

func txtOf(t *testing.T, s *Snapshot, name string) string {
	t.Helper()
	ans := s.Lookup(name, dns.TypeTXT)
	if len(ans.Answer) != 1 {
		t.Fatalf("%s: %d TXT records, want 1", name, len(ans.Answer))
	}
	return strings.Join(ans.Answer[0].(*dns.TXT).Txt, "")
}
