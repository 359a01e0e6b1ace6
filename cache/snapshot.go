// Package cache holds the answers regiondns gives for its zone: an immutable
// Snapshot, built once per change of the policy decisions with every answer
// as records and packed for the resolver's fast path, and swapped into a
// Store, which the resolver reads lock-free on every query. Every record a
// Snapshot returns is shared by all the queries that read it: the slices
// and records of an Answer must never be modified, and they are clipped to
// their length so that an append copies instead of writing into them.
package cache

import (
	"strings"
	"sync/atomic"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/zones"
)

// Result says what kind of answer a Lookup produced.
type Result uint8

// The results of a Lookup. The zero value is OutOfZone, so that an Answer
// nobody filled in is never mistaken for an authoritative one.
const (
	// OutOfZone: the name is not in the zone; the caller delegates or
	// refuses. The Answer carries no records.
	OutOfZone Result = iota
	// Success: the name has records of the type (Answer is not empty).
	Success
	// NoData: the name exists but has no records of the type; Ns holds the
	// negative SOA (RFC 2308).
	NoData
	// NXDomain: the name does not exist in the zone; Ns holds the negative
	// SOA.
	NXDomain
)

// String returns the result's name, as logs show it.
func (r Result) String() string {
	switch r {
	case Success:
		return "success"
	case NoData:
		return "nodata"
	case NXDomain:
		return "nxdomain"
	default:
		return "out-of-zone"
	}
}

// Answer is the precomputed response to one question. Its slices are shared
// with every other query that gets the same answer: callers must not modify
// them nor the records in them.
type Answer struct {
	Result Result
	// Answer, Ns and Extra are the answer, authority and additional
	// sections.
	Answer, Ns, Extra []dns.RR
}

// Rcode returns the DNS response code of the answer: NXDOMAIN for NXDomain,
// NOERROR otherwise (OutOfZone has no code of its own; the caller picks one).
func (a Answer) Rcode() int {
	if a.Result == NXDomain {
		return dns.RcodeNameError
	}
	return dns.RcodeSuccess
}

// InZone reports whether the question was for a name inside the zone.
func (a Answer) InZone() bool { return a.Result != OutOfZone }

// Snapshot is every answer of the zone at one generation. It is immutable
// once Build returns it, except for the rotation counter, which is atomic;
// it is safe for concurrent use.
//
// A fleet has tens of thousands of names, so a snapshot keeps them in a few
// arrays per part rather than an object per name: names maps each name to
// its node, a node is a run of RRsets in its part's sets, and an RRset is a
// run of records in the part's rrs. The apex has a part, and so does each
// cluster: Rebuild shares the parts of the clusters a change did not touch
// with the snapshot before. Indices are 32 bits: billions of records would
// not fit in memory anyway.
type Snapshot struct {
	zone  string
	gen   uint64
	names map[string]node
	// parts are the apex's, then those of cfg.Clusters in order.
	parts []*part
	// cfg is the configuration the snapshot was built from.
	cfg *zones.Config
	// negative is the authority section of NXDOMAIN and NODATA answers.
	negative []dns.RR
	// negativeWire is negative packed for the fast path (nil when it
	// cannot be packed).
	negativeWire *NegativeWire
	// glue are the A and AAAA records of the in-zone name servers that
	// the cluster zones' NS answers carry: shared by the snapshots of one
	// configuration.
	glue []dns.RR
	// rotation picks the A/AAAA rotation of each answer.
	rotation atomic.Uint32
}

// part is the names of the apex or of one cluster, with their records.
// wires[i] is the packed answer of sets[i], so that the fast path finds it
// without reading the RRset; those of an RRset of several orders follow
// them, one per order (see rrset.more), and its wires[i] stays zero.
type part struct {
	names []namedNode
	sets  []rrset
	rrs   []dns.RR
	wires []Wire
	// label, decision and known are what a cluster's part was built from
	// (see builtFrom); empty for the apex.
	label    string
	decision policy.Decision
	known    bool
	// serial is the SOA serial of a cluster's zone (see cluster_zone.go);
	// negative and negativeWire are the authority section of the negative
	// answers of the part's zone, and packed (nil when it could not be).
	serial       uint32
	negative     []dns.RR
	negativeWire *NegativeWire
}

// serialOr0 returns p's zone serial; 0 for no part.
func (p *part) serialOr0() uint32 {
	if p == nil {
		return 0
	}
	return p.serial
}

// partsByLabel returns s's cluster parts by label, for a build under
// another configuration; nil when there is no s, or with same (s's
// configuration is the new one: its parts are found by index).
func (s *Snapshot) partsByLabel(same bool) map[string]*part {
	if s == nil || same {
		return nil
	}
	out := make(map[string]*part, len(s.parts))
	for _, p := range s.parts[1:] {
		out[p.label] = p
	}
	return out
}

// namedNode is one name of a part and its node (whose part is set when a
// snapshot indexes it).
type namedNode struct {
	name string
	node node
}

// node is one owner name: its RRsets are in the sets of part parts from
// first, none for an empty non-terminal. slots says which is which, in 4
// bits per slot (see typeSlots): the index from first of the RRset of each
// type, with slotRotated when it has several orders, or noRRset where the
// name has none. The slot of ANY holds the RRset that answers ANY (RFC 8482:
// one RRset, never all of them), noRRset to answer NODATA.
type node struct {
	part, first, slots uint32
}

// The slots of a node.
const (
	// slotANY is the slot of type ANY.
	slotANY = 6
	// noSlot is the slot of every type no name has records of: always
	// noRRset.
	noSlot = 7
	// slotRotated marks the slot of an RRset of several orders: the fast
	// path reads the RRset only then.
	slotRotated = 0x8
	// noRRset marks a slot without an RRset.
	noRRset = 0xF
	// emptySlots has no RRset in any slot.
	emptySlots = ^uint32(0)
)

// typeSlots maps the type of a question to its slot in node.slots.
var typeSlots = func() (t [dns.TypeANY + 1]uint8) {
	for i := range t {
		t[i] = noSlot
	}
	t[dns.TypeA], t[dns.TypeAAAA], t[dns.TypeSRV] = 0, 1, 2
	t[dns.TypeTXT], t[dns.TypeSOA], t[dns.TypeNS] = 3, 4, 5
	t[dns.TypeANY] = slotANY
	return t
}()

// typeSlot returns the slot of qtype in node.slots.
func typeSlot(qtype uint16) uint {
	if int(qtype) < len(typeSlots) {
		return uint(typeSlots[qtype])
	}
	return noSlot
}

// slot returns what slot of n holds: an index from n.first, with
// slotRotated, or noRRset.
func (n node) slot(slot uint) uint32 { return n.slots >> (4 * slot & 31) & 0xF }

// withSlot returns n with slot holding i.
func (n node) withSlot(slot uint, i uint32) node {
	n.slots = n.slots&^(0xF<<(4*slot)) | i<<(4*slot)
	return n
}

// rrset is the records of one type at a name, with the records of its
// additional section and its packed answers, as runs of the snapshot's
// arrays.
//
// The RRset is the n records of Snapshot.rrs from rr. Those of an A or
// AAAA RRset are precomputed in up to maxRotations orders, each starting at
// a different record, spread evenly over the RRset: order i is the window
// of n records starting i*n/rotations records after rr, the RRset being
// followed by its first records again. Those of another type are followed
// by the extra records of its additional section.
type rrset struct {
	rrtype uint16
	// rotations is the number of orders: one but for an A or AAAA RRset of
	// several records.
	rotations    uint16
	rr, n, extra uint32
	// more is, for several rotations, the index in the part's wires of
	// the packed answers of every order. Those of an RRset that cannot be
	// packed are all zero (the resolver answers through Lookup then).
	more uint32
}

// order returns the answer and additional records of order i of set,
// whose records are in rrs.
func (set *rrset) order(rrs []dns.RR, i uint32) (ans, extra []dns.RR) {
	shift := i // every record starts an order: no division
	if set.n > uint32(set.rotations) {
		shift = uint32(uint64(i) * uint64(set.n) / uint64(set.rotations))
	}
	first := set.rr + shift
	end := first + set.n
	ans = rrs[first:end:end]
	if set.extra > 0 {
		extra = rrs[end : end+set.extra : end+set.extra]
	}
	return ans, extra
}

// Zone returns the zone's apex, lower case and fully qualified.
func (s *Snapshot) Zone() string { return s.zone }

// Generation returns the generation Build was given.
func (s *Snapshot) Generation() uint64 { return s.gen }

// rrsets returns the RRsets of n.
func (s *Snapshot) rrsets(n node) []rrset {
	count := uint32(0)
	for slot := range uint(slotANY) {
		if n.slot(slot) != noRRset {
			count++
		}
	}
	return s.parts[n.part].sets[n.first : n.first+count]
}

// find returns the RRset of type qtype at n, the one ANY answers with for
// TypeANY; nil when n has none.
func (s *Snapshot) find(n node, qtype uint16) *rrset {
	i := n.slot(typeSlot(qtype))
	if i == noRRset {
		return nil
	}
	return &s.parts[n.part].sets[n.first+(i&^slotRotated)]
}

// Lookup returns the answer to a question for qname, which must be lower
// case and fully qualified (the resolver lower-cases the question; the zone's
// names are case-insensitive). It does not allocate.
//
// The returned slices are shared: do not modify them.
func (s *Snapshot) Lookup(qname string, qtype uint16) Answer {
	if !inZone(qname, s.zone) {
		return Answer{}
	}
	n, ok := s.names[qname]
	if !ok {
		return Answer{Result: NXDomain, Ns: zoneOf(s, qname).negative}
	}
	set := s.find(n, qtype)
	if set == nil {
		return Answer{Result: NoData, Ns: negativeOf(s, n, qname, qtype).negative}
	}
	// One counter serves every name: the order a given client sees still
	// changes between queries, and a single atomic add is all a query
	// pays.
	var i uint32
	if set.rotations > 1 {
		i = s.rotation.Add(1) % uint32(set.rotations)
	}
	ans, extra := set.order(s.parts[n.part].rrs, i)
	return Answer{Result: Success, Answer: ans, Extra: extra}
}

// LookupWire is Lookup for the resolver's fast path: it returns the packed
// answer to a question for name, which must be lower case, fully qualified
// and free of escapes (the question's labels as they are on the wire,
// joined by dots). cased says that the question's last label has an
// upper-case letter: the answer is then the one for such a question (see
// Wire), packed by the first call that asks for it. rot picks the rotation
// of an A or AAAA answer: the fast path counts queries per socket, so that
// no counter is shared between CPUs.
//
// For Success the *Packed is nil when the answer could not be packed (a
// name with an escape): the caller answers through Lookup then. NXDomain
// and NoData answers are built from NegativeWire. It does not allocate, but
// for the first cased question of an answer.
func (s *Snapshot) LookupWire(name []byte, qtype uint16, rot uint32, cased bool) (*Packed, Result) {
	w, _, res := s.LookupWireZone(name, qtype, rot, cased)
	return w, res
}

// LookupWireZone is LookupWire that also returns, for NXDomain and NoData,
// the packed authority section of the answer: the negative SOA of the
// name's zone, the apex's or a cluster's (nil when it could not be
// packed). It does not allocate, but as LookupWire.
func (s *Snapshot) LookupWireZone(name []byte, qtype uint16, rot uint32, cased bool) (*Packed, *NegativeWire, Result) {
	if !inZoneWire(name, s.zone) {
		return nil, nil, OutOfZone
	}
	n, ok := s.names[string(name)]
	if !ok {
		return nil, zoneOf(s, name).negativeWire, NXDomain
	}
	i := n.slot(typeSlot(qtype))
	if i == noRRset {
		return nil, negativeOf(s, n, name, qtype).negativeWire, NoData
	}
	p := s.parts[n.part]
	wi := n.first + (i &^ slotRotated)
	set := &p.sets[wi]
	var order uint32
	if i&slotRotated != 0 {
		order = rot % uint32(set.rotations)
		wi = set.more + order
	}
	w := &p.wires[wi]
	switch {
	case w.Lower.Msg == nil:
		return nil, nil, Success
	case !cased:
		return &w.Lower, nil, Success
	}
	if c := w.cased.Load(); c != nil {
		return c.orNil(), nil, Success
	}
	return casedAnswer(w, string(name), set, order, p.rrs), nil, Success
}

// NegativeWire returns the packed authority section of the apex zone's
// NXDOMAIN and NODATA answers, or nil when it could not be packed; a name
// under a cluster has its cluster zone's (LookupWireZone).
func (s *Snapshot) NegativeWire() *NegativeWire { return s.negativeWire }

// inZoneWire is inZone for a name without escapes.
func inZoneWire(name []byte, zone string) bool {
	if zone == "." {
		return true
	}
	i := len(name) - len(zone)
	if i < 0 || string(name[i:]) != zone {
		return false
	}
	return i == 0 || name[i-1] == '.'
}

// inZone reports whether name is zone or below it. A dot escaped in the
// presentation format ("a\.zone.") is part of a label, not a separator.
func inZone(name, zone string) bool {
	if name == zone || zone == "." {
		return true
	}
	if len(name) <= len(zone) || !strings.HasSuffix(name, zone) {
		return false
	}
	i := len(name) - len(zone) - 1
	if name[i] != '.' {
		return false
	}
	backslashes := 0
	for j := i - 1; j >= 0 && name[j] == '\\'; j-- {
		backslashes++
	}
	return backslashes%2 == 0
}
