package cache

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/internal/testzone"
	"github.com/regiondns/regiondns/policy"
)

// queryTypes are the types every comparison of two snapshots asks for.
var queryTypes = []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypeTXT, dns.TypeSOA, dns.TypeNS, dns.TypeANY, dns.TypeMX}

// sameAnswers fails t unless got and want answer every name of either, and
// a name of neither, alike: Lookup's records, and LookupWire's result and
// bytes for every rotation. The cluster zones' SOA serials are left out:
// a snapshot built after others carries their history (cluster_zone.go),
// which TestClusterZoneSerial checks.
func sameAnswers(t *testing.T, where string, got, want *Snapshot) {
	t.Helper()
	names := slices.Collect(maps.Keys(want.names))
	for name := range got.names {
		if _, ok := want.names[name]; !ok {
			names = append(names, name)
		}
	}
	names = append(names, "nx."+want.zone)
	for _, name := range names {
		for _, qtype := range queryTypes {
			g, w := got.Lookup(name, qtype), want.Lookup(name, qtype)
			if g.Result != w.Result || !slices.Equal(unserial(g.Answer), unserial(w.Answer)) ||
				!slices.Equal(rrStrings(g.Extra), rrStrings(w.Extra)) || !slices.Equal(unserial(g.Ns), unserial(w.Ns)) {
				t.Fatalf("%s: %s %s: got %v %v %v, want %v %v %v", where, name, dns.TypeToString[qtype],
					g.Result, g.Answer, g.Extra, w.Result, w.Answer, w.Extra)
			}
			for rot := range uint32(maxRotations) {
				for _, cased := range []bool{false, true} {
					gw, gr := got.LookupWire([]byte(name), qtype, rot, cased)
					ww, wr := want.LookupWire([]byte(name), qtype, rot, cased)
					if gr != wr || (gw == nil) != (ww == nil) {
						t.Fatalf("%s: %s %s rotation %d cased %t: wire result %v (template %t), want %v (template %t)",
							where, name, dns.TypeToString[qtype], rot, cased, gr, gw != nil, wr, ww != nil)
					}
					if gw != nil && (!bytes.Equal(unserialWire(got, name, qtype, gw.Msg), unserialWire(want, name, qtype, ww.Msg)) || gw.Extra != ww.Extra) {
						t.Fatalf("%s: %s %s rotation %d cased %t: templates differ", where, name, dns.TypeToString[qtype], rot, cased)
					}
				}
			}
		}
	}
}

// unserial returns the records as strings, the serial of a cluster zone's
// SOA as 0.
func unserial(rrs []dns.RR) []string {
	out := rrStrings(rrs)
	for i, rr := range rrs {
		if soa, ok := rr.(*dns.SOA); ok && soa.Serial != 0 && strings.Count(soa.Hdr.Name, ".") > strings.Count(testzone.Zone, ".") {
			c := *soa
			c.Serial = 0
			out[i] = c.String()
		}
	}
	return out
}

// unserialWire returns msg, the packed answer to name's qtype in s, with
// the serial of a cluster zone's SOA as 0 when name is a cluster's apex.
func unserialWire(s *Snapshot, name string, qtype uint16, msg []byte) []byte {
	if (qtype != dns.TypeSOA && qtype != dns.TypeANY) || name == s.zone || cutAt(name, len(s.zone)) != 0 || len(msg) < 20 {
		return msg
	}
	out := bytes.Clone(msg)
	clear(out[len(out)-20 : len(out)-16])
	return out
}

// mutate returns a copy of d with one change, picked by r: a failover, a
// replica more or less, an address moved, a split brain, or the decision
// dropped (known false).
func mutate(r *rand.Rand, d policy.Decision, i int) (policy.Decision, bool) {
	d.RW, d.RO = slices.Clone(d.RW), slices.Clone(d.RO)
	switch r.IntN(6) {
	case 0: // failover: a replica becomes the leader
		if len(d.RO) > 0 {
			d.RW, d.RO = []policy.Endpoint{d.RO[0]}, append(d.RO[1:], d.RW...)
			d.Main.Leader = d.RW[0].Target
		}
	case 1:
		d.RO = append(d.RO, testzone.Endpoint(fmt.Sprintf("pg-x%d", i), "main", fmt.Sprintf("10.250.%d.%d", i%250, i/250+1), 5432))
	case 2:
		if len(d.RO) > 0 {
			d.RO = d.RO[1:]
		}
	case 3:
		if len(d.RW) > 0 {
			d.RW[0].Address = d.RW[0].Address.Next()
		}
	case 4:
		d.SplitBrain = !d.SplitBrain
		d.Reason = fmt.Sprintf("change %d", i)
	case 5:
		return d, false
	}
	return d, true
}

// TestRebuildMatchesBuild changes a few clusters of a fleet at a time, many
// times over, and checks that Rebuild after the last snapshot answers every
// question as Build from scratch does, while it shares the parts of the
// clusters that did not change.
func TestRebuildMatchesBuild(t *testing.T) {
	cfg, ds := fleet(60)
	r := rand.New(rand.NewPCG(4, 2))
	prev := Build(cfg, ds, 1)
	for gen := uint64(2); gen < 40; gen++ {
		changed := map[string]bool{}
		for range 1 + r.IntN(3) {
			label := cfg.Clusters[r.IntN(len(cfg.Clusters))].Label
			before, knownBefore := ds[label]
			d, known := mutate(r, before, int(gen))
			if known {
				ds[label] = d
			} else {
				delete(ds, label)
			}
			if known != knownBefore || (known && !reflect.DeepEqual(d, before)) {
				changed[label] = true
			}
		}
		next := Rebuild(prev, cfg, ds, gen)
		sameAnswers(t, fmt.Sprintf("generation %d", gen), next, Build(cfg, ds, gen))
		for i := range cfg.Clusters {
			label := cfg.Clusters[i].Label
			if shared := next.parts[i+1] == prev.parts[i+1]; shared == changed[label] {
				t.Fatalf("generation %d: cluster %s changed %t, its part shared %t", gen, label, changed[label], shared)
			}
		}
		prev = next
	}
}

// TestRebuildAfterAnotherConfig builds everything again when the
// configuration is not the one prev was built from, even with the same
// decisions: the zone's TTLs and names come from it.
func TestRebuildAfterAnotherConfig(t *testing.T) {
	cfg, ds := fleet(5)
	prev := Build(cfg, ds, 1)
	other := *cfg
	other.TTL.RW = cfg.TTL.RW + 7
	next := Rebuild(prev, &other, ds, 2)
	for i := range other.Clusters {
		if next.parts[i+1] == prev.parts[i+1] {
			t.Fatalf("cluster %s: part shared across configurations", other.Clusters[i].Label)
		}
	}
	sameAnswers(t, "another configuration", next, Build(&other, ds, 2))
	if got := next.Lookup("rw."+other.Clusters[0].Label+"."+next.zone, dns.TypeA); len(got.Answer) == 0 || got.Answer[0].Header().Ttl != other.TTL.RW {
		t.Fatalf("rw answers %v, want the TTL of the new configuration, %d", got.Answer, other.TTL.RW)
	}
}

// TestRebuildSharesTheSOASerialOfItsGeneration: the apex is built again
// every time, so the SOA serial is the new generation's even when no
// cluster changed.
func TestRebuildSharesTheSOASerialOfItsGeneration(t *testing.T) {
	cfg, ds := fleet(3)
	prev := Build(cfg, ds, 1)
	next := Rebuild(prev, cfg, ds, 2)
	soa := next.Lookup(next.zone, dns.TypeSOA)
	if len(soa.Answer) != 1 || soa.Answer[0].(*dns.SOA).Serial != 2 {
		t.Fatalf("SOA after a rebuild: %v, want serial 2", soa.Answer)
	}
	sameAnswers(t, "no change", next, Build(cfg, ds, 2))
}

// TestUnpackableRotatedRRset: an A RRset of several records whose name
// cannot be packed (an escape) has a zero template for every order, so the
// fast path hands all of them to the slow path, and the RRsets after it
// keep their own templates.
func TestUnpackableRotatedRRset(t *testing.T) {
	cfg, ds := fleet(1)
	label := cfg.Clusters[0].Label
	d := ds[label]
	d.RO = []policy.Endpoint{testzone.Endpoint(`pg\.x`, "main", "10.9.9.1", 5432), testzone.Endpoint(`pg\.x`, "main", "10.9.9.2", 5432), d.RO[0]}
	ds[label] = d
	s := Build(cfg, ds, 1)
	target := `pg\.x.main.` + label + "." + s.zone
	if got := s.Lookup(target, dns.TypeA); len(got.Answer) != 2 {
		t.Fatalf("%s A: %v, want two records", target, got.Answer)
	}
	for rot := range uint32(maxRotations) {
		if w, res := s.LookupWire([]byte(target), dns.TypeA, rot, false); res != Success || w != nil {
			t.Fatalf("%s A rotation %d: %v with a template, want success without one", target, rot, res)
		}
	}
	ro := "ro." + label + "." + s.zone
	w, res := s.LookupWire([]byte(ro), dns.TypeA, 0, false)
	if res != Success || w == nil {
		t.Fatalf("%s A: %v, template %t; want one", ro, res, w != nil)
	}
	want := s.Lookup(ro, dns.TypeA)
	if n := int(w.Msg[7]); n != len(want.Answer) {
		t.Fatalf("%s A template has %d answers, want %d", ro, n, len(want.Answer))
	}
}
