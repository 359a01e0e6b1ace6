package resolver

import (
	"encoding/binary"

	"github.com/regiondns/regiondns/internal/dnswire"
)

// A message whose sections do not hold what its header counts is answered
// FORMERR.
//
// miekg/dns unpacks such messages without an error: a count larger than
// the records that follow is taken as "the rest is missing", and a
// question cut after its name (no QTYPE, no QCLASS) as QTYPE 0, QCLASS 0.
// A query like that is malformed (RFC 1035 §4.1), and answering it as if
// it were whole would answer a question nobody asked. The slow path
// (answerSlow) cuts it down to its header with every count zero: the
// handler then answers FORMERR (no question), with the ID, opcode and RD
// of the query. The fast path reads every section it counts, so it never
// sees one.

// sanitize returns m, or, when its sections do not hold what its header
// counts, its header alone with every count zero (in place: m is the
// slow path's copy of this message). Messages shorter than a header are
// dropped by the caller.
func sanitize(m []byte) []byte {
	if len(m) < dnswire.HeaderLen || wellFormed(m) {
		return m
	}
	clear(m[4:dnswire.HeaderLen])
	return m[:dnswire.HeaderLen]
}

// wellFormed reports whether the sections of message m hold at least the
// questions and records its header counts: each question a name, QTYPE and
// QCLASS, each record a name, its fixed fields and RDLENGTH octets of data.
// Names are only walked (a compression pointer ends one); miekg/dns checks
// what they point to when it unpacks them. Octets after the last counted
// record are tolerated, as miekg/dns does. It does not allocate.
func wellFormed(m []byte) bool {
	off := dnswire.HeaderLen
	qd := int(binary.BigEndian.Uint16(m[4:]))
	rrs := int(binary.BigEndian.Uint16(m[6:])) + int(binary.BigEndian.Uint16(m[8:])) + int(binary.BigEndian.Uint16(m[10:]))
	// Every question takes at least 5 octets and every record 11, so
	// both loops end within len(m) steps, whatever the counts say.
	for range qd {
		if off = dnswire.SkipName(m, off); off < 0 || off+4 > len(m) {
			return false
		}
		off += 4
	}
	for range rrs {
		if off = dnswire.SkipName(m, off); off < 0 || off+10 > len(m) {
			return false
		}
		off += 10 + int(binary.BigEndian.Uint16(m[off+8:]))
		if off > len(m) {
			return false
		}
	}
	return true
}
