// Package cache holds the answers regiondns gives for its zone: an immutable
// Snapshot built once per policy decision change and swapped into a Store,
// which the resolver reads lock-free on every query.
//
// Every record a Snapshot returns is shared by all queries that read it. The
// slices and records of an Answer must never be modified; they are clipped to
// their length so that an append copies instead of writing into them.
package cache

import (
	"strings"
	"sync/atomic"

	"github.com/miekg/dns"
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
type Snapshot struct {
	zone  string
	gen   uint64
	names map[string]*node
	// negative is the authority section of NXDOMAIN and NODATA answers.
	negative []dns.RR
	// negativeWire is negative packed for the fast path (nil when it
	// cannot be packed).
	negativeWire *NegativeWire
	// rotation picks the A/AAAA rotation of each answer.
	rotation atomic.Uint32
}

// node holds the answers of one owner name, by type.
type node struct {
	a, aaaa rotations
	srv     []dns.RR
	// srvExtra are the A/AAAA records of the SRV targets.
	srvExtra []dns.RR
	txt      []dns.RR
	soa      []dns.RR
	ns       []dns.RR
	// nsExtra is the glue of the in-zone name servers.
	nsExtra []dns.RR
	// anyType is the type whose records answer a query of type ANY
	// (RFC 8482: one RRset, never all of them); 0 answers NODATA.
	anyType uint16
	// wire holds the same answers packed.
	wire wireSet
}

// rotations are the precomputed orders of an A or AAAA RRset: rotation i
// starts at a different record. Empty when the name has no such records.
type rotations [][]dns.RR

// Zone returns the zone's apex, lower case and fully qualified.
func (s *Snapshot) Zone() string { return s.zone }

// Generation returns the generation Build was given.
func (s *Snapshot) Generation() uint64 { return s.gen }

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
		return Answer{Result: NXDomain, Ns: s.negative}
	}
	if qtype == dns.TypeANY {
		qtype = n.anyType
	}
	ans, extra := s.records(n, qtype)
	if len(ans) == 0 {
		return Answer{Result: NoData, Ns: s.negative}
	}
	return Answer{Result: Success, Answer: ans, Extra: extra}
}

// LookupWire is Lookup for the resolver's fast path: it returns the packed
// answer to a question for name, which must be lower case, fully qualified
// and free of escapes (the question's labels as they are on the wire,
// joined by dots). rot picks the rotation of an A or AAAA answer: the fast
// path counts queries per socket, so that no counter is shared between
// CPUs.
//
// For Success the *Wire is nil when the answer could not be packed (a name
// with an escape): the caller answers through Lookup then. NXDomain and
// NoData answers are built from NegativeWire. It does not allocate.
func (s *Snapshot) LookupWire(name []byte, qtype uint16, rot uint32) (*Wire, Result) {
	if !inZoneWire(name, s.zone) {
		return nil, OutOfZone
	}
	n, ok := s.names[string(name)]
	if !ok {
		return nil, NXDomain
	}
	if qtype == dns.TypeANY {
		qtype = n.anyType
	}
	var w *Wire
	switch qtype {
	case dns.TypeA:
		if r := n.wire.a; len(r) > 0 {
			w = &r[rot%uint32(len(r))]
		} else if len(n.a) > 0 {
			return nil, Success
		}
	case dns.TypeAAAA:
		if r := n.wire.aaaa; len(r) > 0 {
			w = &r[rot%uint32(len(r))]
		} else if len(n.aaaa) > 0 {
			return nil, Success
		}
	case dns.TypeSRV:
		w = n.wire.srv
		if w == nil && len(n.srv) > 0 {
			return nil, Success
		}
	case dns.TypeTXT:
		w = n.wire.txt
		if w == nil && len(n.txt) > 0 {
			return nil, Success
		}
	case dns.TypeSOA:
		w = n.wire.soa
		if w == nil && len(n.soa) > 0 {
			return nil, Success
		}
	case dns.TypeNS:
		w = n.wire.ns
		if w == nil && len(n.ns) > 0 {
			return nil, Success
		}
	}
	if w == nil {
		return nil, NoData
	}
	return w, Success
}

// NegativeWire returns the packed authority section of NXDOMAIN and NODATA
// answers, or nil when it could not be packed.
func (s *Snapshot) NegativeWire() *NegativeWire { return s.negativeWire }

// records returns the answer and additional records of type qtype at n.
func (s *Snapshot) records(n *node, qtype uint16) (ans, extra []dns.RR) {
	switch qtype {
	case dns.TypeA:
		return s.pick(n.a), nil
	case dns.TypeAAAA:
		return s.pick(n.aaaa), nil
	case dns.TypeSRV:
		return n.srv, n.srvExtra
	case dns.TypeTXT:
		return n.txt, nil
	case dns.TypeSOA:
		return n.soa, nil
	case dns.TypeNS:
		return n.ns, n.nsExtra
	}
	return nil, nil
}

// pick returns the next rotation of an A or AAAA RRset. One counter serves
// every name: the order a given client sees still changes between queries,
// and a single atomic add is all a query pays.
func (s *Snapshot) pick(r rotations) []dns.RR {
	switch len(r) {
	case 0:
		return nil
	case 1:
		return r[0]
	}
	return r[s.rotation.Add(1)%uint32(len(r))]
}

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
