package cache

import (
	"encoding/binary"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/policy"
)

// Cluster zones.
//
// Every cluster "<label>.<zone>" is a zone of its own on the same server:
// PgBouncer's dns_zone_check_period takes everything after the first dot
// of a host name as its zone, asks for that zone's SOA, and resolves every
// host of the zone again as soon as the serial changes. So each cluster's
// apex has an SOA (the zone's, owned by the cluster, with the cluster's own
// serial) and NS records equal to the zone's, with the same glue: the
// parent zone's delegation and the child zone's apex are one RRset, served
// by the same server, and a resolver that walks the tree finds them alike.
// Answers below the cut are authoritative, and a negative answer under a
// cluster carries the cluster's SOA (a DS question at the cut belongs to
// the parent, RFC 4035 §3.1.4.1: its NODATA carries the zone's).
//
// The serial changes exactly when one of the cluster's answers changes:
// its addresses, SRV records, NS records and which names exist, everything
// but the TXT line, whose text (the reason, stale or fresh) is for humans
// and changes with no change in Consul to derive a serial from. It is
// derived from Consul's indexes, never from a local counter: the sum, over
// both regions, of the index of the read that brought each region's present
// data (policy.RegionView.Index: the highest, over the region's resources of
// the cluster, of the X-Consul-Index at which what the policy reads last
// changed). Each region's index only grows, and grows with every change of
// what the answers are made from, whichever region it comes from: so an
// answer that changes, even back to one it had before (A, B, A), gets a
// higher serial, a restart gets a serial at least as high as any before,
// and two instances that read the same settled data agree. When that sum
// is not ahead (RFC 1982) of the serial before — a change read out of
// Consul's order, a reload that drops a resource, a Consul restored from
// an older snapshot — the serial before plus one keeps it going up.

// clusterZone adds the apex records of the zone of cluster base (its name,
// "<label>.<zone>"): the SOA with serial, and the NS records with their
// glue. It returns the zone's SOA records, whose serial zoneSerial may
// still change.
func (b *builder) clusterZone(base string, serial uint32) *zoneRecords {
	p := b.node(base)
	z := &zoneRecords{soa: *b.soa, neg: *b.negative.(*dns.SOA)}
	z.soa.Hdr.Name, z.soa.Serial = base, serial
	z.neg.Hdr.Name, z.neg.Serial = base, serial
	z.negs[0] = &z.neg
	b.push(&p.soa, &z.soa)
	p.anyType = dns.TypeSOA
	ns := make([]dns.NS, len(b.ns))
	for i, rr := range b.ns {
		ns[i] = *rr
		ns[i].Hdr.Name = base
		b.push(&p.ns, &ns[i])
	}
	// The glue is the apex's own records: one set per configuration.
	for _, g := range b.glue {
		b.push(&p.nsExtra, g)
	}
	return z
}

// zoneRecords are the SOA records of a cluster zone, in one allocation:
// the answer's, and the negative answers' (whose authority section negs
// is, and wire its packing).
type zoneRecords struct {
	soa, neg dns.SOA
	negs     [1]dns.RR
	wire     NegativeWire
}

// zoneSerial gives the cluster part p, built with the serial of prev (the
// part of the same cluster in the snapshot before, nil when there is none)
// and z its zone's SOA records, its serial and its negative answers:
// prev's serial when p answers what prev did, else the next one (see
// nextSerial), written into the records and their packed answer.
func (b *builder) zoneSerial(p, prev *part, d *policy.Decision, known bool, z *zoneRecords) {
	serial := z.soa.Serial
	switch {
	case prev == nil && known:
		serial = uint32(d.Main.Index + d.Standby.Index)
	case prev != nil && !answersAlike(p, prev):
		var candidate uint32
		if known {
			candidate = uint32(d.Main.Index + d.Standby.Index)
		}
		serial = nextSerial(prev.serial, candidate)
	}
	p.serial = serial
	if serial != z.soa.Serial {
		z.soa.Serial, z.neg.Serial = serial, serial
		if w := p.wire(z.soa.Hdr.Name, dns.TypeSOA); w != nil && len(w.Msg) >= 20 {
			// The SOA answer has no additional section: its last 20 octets
			// are SERIAL, REFRESH, RETRY, EXPIRE and MINIMUM.
			binary.BigEndian.PutUint32(w.Msg[len(w.Msg)-20:], serial)
		}
	}
	p.negative = z.negs[:]
	if b.wb.negativeInto(&z.wire, z.neg.Hdr.Name, &z.neg) {
		p.negativeWire = &z.wire
	}
}

// nextSerial returns candidate when it is ahead of prev in RFC 1982
// arithmetic, prev+1 otherwise.
func nextSerial(prev, candidate uint32) uint32 {
	if d := candidate - prev; d != 0 && d < 1<<31 {
		return candidate
	}
	return prev + 1
}

// answerTypes are the types whose RRsets make a cluster's answers for its
// serial: every type a cluster's names have but TXT and SOA.
var answerTypes = [...]uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypeNS}

// answersAlike reports whether parts p and q have the same names, and the
// same RRsets of answerTypes at each (records, TTLs, additional section).
func answersAlike(p, q *part) bool {
	if len(p.names) != len(q.names) {
		return false
	}
	for i := range p.names {
		a, b := &p.names[i], &q.names[i]
		if a.name != b.name {
			return false
		}
		for _, t := range answerTypes {
			if !sameRRset(p, a.node, q, b.node, t) {
				return false
			}
		}
	}
	return true
}

// sameRRset reports whether node n of part p and node m of part q have the
// same RRset of type t, or both none.
func sameRRset(p *part, n node, q *part, m node, t uint16) bool {
	i, j := n.slot(typeSlot(t)), m.slot(typeSlot(t))
	if (i == noRRset) != (j == noRRset) {
		return false
	}
	if i == noRRset {
		return true
	}
	x, y := &p.sets[n.first+(i&^slotRotated)], &q.sets[m.first+(j&^slotRotated)]
	if x.n != y.n || x.extra != y.extra || x.rotations != y.rotations {
		return false
	}
	// The first order, with its additional section, stands for them all.
	xa, xe := x.order(p.rrs, 0)
	ya, ye := y.order(q.rrs, 0)
	return sameRecords(xa, ya) && sameRecords(xe, ye)
}

// sameRecords reports whether two lists hold the same records, in order,
// TTLs included.
func sameRecords(a, b []dns.RR) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && (a[i].Header().Ttl != b[i].Header().Ttl || !dns.IsDuplicate(a[i], b[i])) {
			return false
		}
	}
	return true
}

// wire returns the packed answer to a question for name, of type qtype, in
// part p; nil when there is none.
func (p *part) wire(name string, qtype uint16) *Packed {
	for i := range p.names {
		nn := &p.names[i]
		if nn.name != name {
			continue
		}
		s := nn.node.slot(typeSlot(qtype))
		if s == noRRset || s&slotRotated != 0 {
			return nil
		}
		w := &p.wires[nn.node.first+s]
		if w.Lower.Msg == nil {
			return nil
		}
		return &w.Lower
	}
	return nil
}

// zoneOf returns the part whose zone holds name, a name in the snapshot's
// zone that no node has: the cluster whose apex is the name's last label
// before the zone's, if any, else the apex's.
func zoneOf[T string | []byte](s *Snapshot, name T) *part {
	// At 0, the cut would be name itself, which no node has.
	if i := cutAt(name, len(s.zone)); i > 0 {
		if n, ok := s.names[string(name[i:])]; ok && n.part != 0 {
			return s.parts[n.part]
		}
	}
	return s.parts[0]
}

// cutAt returns where, in name (a name ending in a zone of zoneLen
// octets), the name of the cluster zone that would hold it starts: at its
// last label before the zone's; -1 for the apex itself.
func cutAt[T string | []byte](name T, zoneLen int) int {
	i := len(name) - zoneLen - 2 // the last octet of the label before the zone
	if i < 0 {
		return -1
	}
	for i >= 0 && name[i] != '.' {
		i--
	}
	return i + 1
}

// negativeOf returns the part whose SOA goes with a negative answer for
// qtype at node n, named name: n's own part, but for a DS question at a
// cluster's apex, which the parent zone answers.
func negativeOf[T string | []byte](s *Snapshot, n node, name T, qtype uint16) *part {
	if qtype == dns.TypeDS && n.part != 0 && cutAt(name, len(s.zone)) == 0 {
		return s.parts[0]
	}
	return s.parts[n.part]
}
