// Package dnswire holds the few facts about DNS messages that the answer
// snapshot, the resolver and the forwarder to Consul DNS each need: the
// header length, the EDNS(0) payload size advertised by default, how to
// walk a name on the wire, how names are lower-cased for lookups, how an
// upstream's OPT record is left out of an answer, the packed form in
// which a cached answer crosses from the forwarder to the resolver's fast
// path, and how its answer records are put in a new order per query.
// Each is defined once here so that the packages cannot drift apart.
package dnswire

import "github.com/miekg/dns"

// HeaderLen is the length of the DNS message header (RFC 1035 §4.1.1).
const HeaderLen = 12

// DefaultUDPSize is the EDNS(0) UDP payload size advertised, and the most
// sent over UDP: the DNS Flag Day 2020 value, which avoids IP
// fragmentation.
const DefaultUDPSize = 1232

// SkipName returns the offset after the wire-format domain name at off in
// msg, or -1 when the name runs past the end or uses a label type other
// than a length (0b00) or a compression pointer (0b11). It only walks the
// name: where a pointer points is not checked.
func SkipName(msg []byte, off int) int {
	for off < len(msg) {
		l := int(msg[off])
		switch l & 0xC0 {
		case 0x00:
			if l == 0 {
				return off + 1
			}
			off += 1 + l
		case 0xC0:
			if off+2 > len(msg) {
				return -1
			}
			return off + 2
		default:
			return -1
		}
	}
	return -1
}

// LowerName returns s with ASCII letters lower-cased, allocating only when
// s has an upper-case letter. DNS names compare case-insensitively for
// ASCII only (RFC 4343); snapshot and cache keys are lower case.
func LowerName(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; 'A' <= c && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// WithoutOPT returns the records of rrs that are not OPT records, in
// order, or nil when there are none. An upstream's OPT describes its hop
// only (its payload size, its options): the answer passed on carries ours.
// rrs is not modified; the result may share its array but has no spare
// capacity, so an append to it never writes into rrs.
func WithoutOPT(rrs []dns.RR) []dns.RR {
	i := 0
	for i < len(rrs) && rrs[i].Header().Rrtype != dns.TypeOPT {
		i++
	}
	if i == len(rrs) {
		if len(rrs) == 0 {
			return nil
		}
		return rrs[:len(rrs):len(rrs)]
	}
	var out []dns.RR
	if i > 0 {
		out = append(make([]dns.RR, 0, len(rrs)-1), rrs[:i]...)
	}
	for _, rr := range rrs[i+1:] {
		if rr.Header().Rrtype != dns.TypeOPT {
			out = append(out, rr)
		}
	}
	return out
}

// Response is a response packed once and answered many times from its
// bytes: a cache hit on the resolver's fast path copies Msg and patches
// the ID, the flags, the question's case, the TTLs and the EDNS in its own
// buffer, without unpacking or packing. It is immutable.
type Response struct {
	// Msg is the packed response: ID 0, one question with the name in
	// lower case, the records, no OPT, compressed as miekg/dns compresses.
	Msg []byte
	// QEnd is the offset just after the question.
	QEnd int
	// Extra is the offset of the additional section: Msg[:Extra] with
	// ARCOUNT 0 is the response without it (RFC 2181 §9).
	Extra int
	// TTLs are the offsets of the TTL fields of every record, ascending.
	TTLs []uint16
	// Reorder, when not nil, lets the answer records be served in a new
	// order per query (PermuteAnswer); nil: they keep their order.
	Reorder *Reorder
}
