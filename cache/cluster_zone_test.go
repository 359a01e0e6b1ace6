package cache

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/internal/dnswire"
	"github.com/regiondns/regiondns/internal/testzone"
	"github.com/regiondns/regiondns/policy"
)

// zoneSerialOf returns the serial of the SOA of cluster label's zone in s,
// and checks that its answer, its packed answer and its negative answers
// (as records and packed) all carry it.
func zoneSerialOf(t *testing.T, s *Snapshot, label string) uint32 {
	t.Helper()
	apex := label + "." + s.zone
	ans := s.Lookup(apex, dns.TypeSOA)
	if ans.Result != Success || len(ans.Answer) != 1 {
		t.Fatalf("%s SOA: %v %v", apex, ans.Result, ans.Answer)
	}
	serial := ans.Answer[0].(*dns.SOA).Serial
	w, _ := s.LookupWire([]byte(apex), dns.TypeSOA, 0, false)
	if w == nil {
		t.Fatalf("%s SOA: no packed answer", apex)
	}
	if want := miekgPack(t, apex, dns.TypeSOA, ans.Answer, nil, nil); !bytes.Equal(w.Msg, want) {
		t.Fatalf("%s SOA: packed answer\n % x\nwant\n % x", apex, w.Msg, want)
	}
	for _, name := range []string{"nope." + apex, "rw." + apex} {
		neg := s.Lookup(name, dns.TypeMX)
		if len(neg.Ns) != 1 || neg.Ns[0].(*dns.SOA).Serial != serial || neg.Ns[0].Header().Name != apex {
			t.Fatalf("%s MX: authority %v, want %s's SOA with serial %d", name, neg.Ns, apex, serial)
		}
		_, nw, _ := s.LookupWireZone([]byte(name), dns.TypeMX, 0, false)
		if nw == nil {
			t.Fatalf("%s: no packed negative answer", name)
		}
		want := miekgPack(t, name, dns.TypeMX, nil, neg.Ns, nil)
		q := want[:len(want)-len(nw.Lower.RR)]
		if got := append(bytes.Clone(q), relocate(nw, nw.Lower, len(q)-dnswire.HeaderLen-4)...); !bytes.Equal(got, want) {
			t.Fatalf("%s: packed negative answer\n % x\nwant\n % x", name, got, want)
		}
	}
	return serial
}

// withIndexes returns d with the regions' Consul indexes set.
func withIndexes(d policy.Decision, main, standby uint64) policy.Decision {
	d.Main.Index, d.Standby.Index = main, standby
	return d
}

// TestClusterZoneSerial runs a cluster through a series of decisions and
// counts the changes of its zone's serial: one for each change of its
// answers, none for a change of its TXT line alone or of another cluster,
// derived from the regions' Consul indexes, and never going backwards.
func TestClusterZoneSerial(t *testing.T) {
	cfg := testzone.Config()
	base := testzone.Decisions()
	d0 := withIndexes(base["orders"], 1000, 500)
	moved := d0
	moved.RW = []policy.Endpoint{d0.RO[0]}
	moved.RO = append([]policy.Endpoint{d0.RW[0]}, d0.RO[1:]...)

	steps := []struct {
		name string
		// orders is the decision of cluster orders; pay's moves with
		// payIndex when not zero.
		orders     policy.Decision
		payIndex   uint64
		wantSerial uint32
	}{
		{name: "first decision: the sum of the regions' indexes", orders: d0, wantSerial: 1500},
		{name: "the same decision", orders: d0, wantSerial: 1500},
		{name: "a members/ key rewritten: index and decision unchanged", orders: d0, wantSerial: 1500},
		{name: "a timeline read from a members/ key: the TXT changes, not the answers", orders: func() policy.Decision {
			d := withIndexes(d0, 1010, 500)
			d.Main.Timeline = 4
			return d
		}(), wantSerial: 1500},
		{name: "another cluster changes", orders: withIndexes(func() policy.Decision {
			d := d0
			d.Main.Timeline = 4
			return d
		}(), 1010, 500), payIndex: 1200, wantSerial: 1500},
		{name: "rw moves: the indexes of that read", orders: withIndexes(moved, 1020, 500), wantSerial: 1520},
		{name: "rw moves back (A, B, A): higher still", orders: withIndexes(d0, 1030, 500), wantSerial: 1530},
		{name: "a change in the standby region alone", orders: func() policy.Decision {
			d := withIndexes(d0, 1030, 510)
			d.PassiveRW = nil
			return d
		}(), wantSerial: 1540},
		{name: "a change whose indexes did not advance: one more", orders: withIndexes(d0, 1030, 510), wantSerial: 1541},
		{name: "stale, same data: the TXT changes, not the answers", orders: func() policy.Decision {
			d := withIndexes(d0, 1030, 510)
			d.Stale = true
			return d
		}(), wantSerial: 1541},
	}
	ds := testzone.Decisions()
	var prev *Snapshot
	var changes, answerChanges int
	var lastSerial uint32
	var lastAnswers string
	answers := func(s *Snapshot) string {
		return fmt.Sprint(rrStrings(s.Lookup("rw.orders."+s.zone, dns.TypeA).Answer),
			rrStrings(s.Lookup("passive-rw.orders."+s.zone, dns.TypeA).Answer))
	}
	for i, st := range steps {
		ds["orders"] = st.orders
		if st.payIndex != 0 {
			ds["pay"] = withIndexes(ds["pay"], st.payIndex, 0)
		}
		s := Rebuild(prev, cfg, ds, uint64(i+1))
		serial := zoneSerialOf(t, s, "orders")
		if serial != st.wantSerial {
			t.Errorf("step %d (%s): serial %d, want %d", i, st.name, serial, st.wantSerial)
		}
		if prev != nil {
			if d := serial - lastSerial; d >= 1<<31 {
				t.Errorf("step %d (%s): serial went back from %d to %d", i, st.name, lastSerial, serial)
			}
			if serial != lastSerial {
				changes++
			}
			if answers(s) != lastAnswers {
				answerChanges++
			}
		}
		lastSerial, lastAnswers = serial, answers(s)
		prev = s
	}
	if changes != 4 || answerChanges != 4 {
		t.Errorf("the serial changed %d times over the series, the answers %d times; want 4 of each", changes, answerChanges)
	}
}

// TestClusterZoneSerialAgreesAndSurvivesRestart: a process started on the
// same data (a fresh Build) has the serial of one that followed every
// change since, and a reload (another configuration) keeps the serial while
// the answers hold and moves it on when they change.
func TestClusterZoneSerialAgreesAndSurvivesRestart(t *testing.T) {
	cfg := testzone.Config()
	ds := testzone.Decisions()
	ds["orders"] = withIndexes(ds["orders"], 2000, 300)
	long := Build(cfg, ds, 1)
	moved := ds["orders"]
	moved.RW = []policy.Endpoint{moved.RO[0]}
	ds["orders"] = withIndexes(moved, 2042, 300)
	long = Rebuild(long, cfg, ds, 2)
	fresh := Build(cfg, ds, 1)
	if a, b := zoneSerialOf(t, long, "orders"), zoneSerialOf(t, fresh, "orders"); a != b || a != 2342 {
		t.Errorf("serial after the change %d, of an instance started on the same data %d; want both 2342", a, b)
	}

	other := *cfg
	reloaded := Rebuild(long, &other, ds, 3)
	if got := zoneSerialOf(t, reloaded, "orders"); got != 2342 {
		t.Errorf("serial after a reload with the same answers %d, want 2342", got)
	}
	longer := other
	longer.TTL.RW++
	reloaded = Rebuild(reloaded, &longer, ds, 4)
	if got := zoneSerialOf(t, reloaded, "orders"); got != 2343 {
		t.Errorf("serial after a reload that changes the rw TTL %d, want 2343", got)
	}
}

// TestNextSerial: RFC 1982 arithmetic, across the wrap.
func TestNextSerial(t *testing.T) {
	for _, tc := range []struct{ prev, candidate, want uint32 }{
		{0, 0, 1},
		{10, 20, 20},
		{20, 10, 21},
		{20, 20, 21},
		{0xFFFFFFF0, 5, 5},                // ahead across the wrap
		{0xFFFFFFFF, 0xFFFFFFFF, 0},       // one more wraps to 0
		{5, 5 + 1<<31, 6},                 // exactly half way is not ahead
		{5, 5 + 1<<31 - 1, 5 + 1<<31 - 1}, // just under it is
		{1 << 31, 0, 1<<31 + 1},           // behind
	} {
		if got := nextSerial(tc.prev, tc.candidate); got != tc.want {
			t.Errorf("nextSerial(%d, %d) = %d, want %d", tc.prev, tc.candidate, got, tc.want)
		}
	}
}

// TestClusterZoneNegativeWire: LookupWireZone gives, with a negative
// result, the packed SOA of the name's zone: a cluster's under it, the
// apex's elsewhere and for a DS question at a cut.
func TestClusterZoneNegativeWire(t *testing.T) {
	s := testSnapshot(t)
	for _, tc := range []struct {
		name  string
		qtype uint16
		res   Result
		zone  string
	}{
		{"nope.orders." + zone, dns.TypeA, NXDomain, "orders." + zone},
		{"a.b.main.orders." + zone, dns.TypeA, NXDomain, "orders." + zone},
		{"rw.orders." + zone, dns.TypeMX, NoData, "orders." + zone},
		{"orders." + zone, dns.TypeA, NoData, "orders." + zone},
		{"orders." + zone, dns.TypeDS, NoData, zone},
		{"nope." + zone, dns.TypeA, NXDomain, zone},
		{"rw.nope." + zone, dns.TypeA, NXDomain, zone},
		{"ns1." + zone, dns.TypeMX, NoData, zone},
		{"x.ns1." + zone, dns.TypeA, NXDomain, zone},
	} {
		_, neg, res := s.LookupWireZone([]byte(tc.name), tc.qtype, 0, false)
		want := s.Lookup(tc.name, tc.qtype)
		if res != tc.res || want.Result != tc.res || neg == nil {
			t.Errorf("%s %s: %v (negative %t), Lookup %v; want %v", tc.name, dns.TypeToString[tc.qtype], res, neg != nil, want.Result, tc.res)
			continue
		}
		if owner := want.Ns[0].Header().Name; owner != tc.zone {
			t.Errorf("%s %s: Lookup's SOA is %s's, want %s's", tc.name, dns.TypeToString[tc.qtype], owner, tc.zone)
		}
		if n := len(neg.Lower.RR); n < 22 || neg.ApexLen != len(tc.zone)+1 {
			t.Errorf("%s %s: packed negative of an apex %d octets long, want %s's (%d)", tc.name, dns.TypeToString[tc.qtype], neg.ApexLen, tc.zone, len(tc.zone)+1)
		}
		if n := testing.AllocsPerRun(50, func() { s.LookupWireZone([]byte(tc.name), tc.qtype, 0, false) }); n != 0 {
			t.Errorf("%s %s: LookupWireZone allocates %v times", tc.name, dns.TypeToString[tc.qtype], n)
		}
	}
}
