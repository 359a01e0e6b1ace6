package dnswire

import (
	"encoding/binary"

	"github.com/miekg/dns"
)

// Answers from Consul DNS come in a new random order with every query
// (Consul shuffles the instances of a service before it writes them), so
// that clients that take the first address spread over the instances. A
// delegated answer served again from a cache is put in a new order per
// query too, by the resolver, on both of its paths: the slow path permutes
// the records before packing, the fast path permutes the packed records in
// its output buffer (Response.PermuteAnswer). Both take the order from the
// same function of the same per-query seed (Permutation), so that a query
// answered either way gets the same octets.

// MaxShuffle is the most answer records put in a new order per query:
// the fast path keeps the permutation in arrays of this size on its
// stack. A larger answer is served in the order it was cached.
const MaxShuffle = 256

// maxPointerTarget is the first offset a compression pointer cannot
// reach (14 bits).
const maxPointerTarget = 1 << 14

// Shuffleable reports whether an answer section may be served in another
// order: at least two and at most MaxShuffle records, all of one type. An
// RRset has no order (RFC 2181 §5); an answer of several types (a CNAME
// chain and the records it leads to) keeps its order, which stub
// resolvers follow.
func Shuffleable(answer []dns.RR) bool {
	if len(answer) < 2 || len(answer) > MaxShuffle {
		return false
	}
	t := answer[0].Header().Rrtype
	for _, rr := range answer[1:] {
		if rr.Header().Rrtype != t {
			return false
		}
	}
	return t != dns.TypeOPT
}

// Permutation fills p with a permutation of 0 .. len(p)-1 picked by seed:
// a Fisher-Yates shuffle driven by a 64-bit linear congruential generator
// whose state is the seed scrambled by SplitMix64's finalizer, so that
// consecutive seeds (a counter) give unrelated orders. Position k of the
// new order holds the record p[k] of the old one. It does not allocate.
func Permutation(seed uint32, p []uint16) {
	for i := range p {
		p[i] = uint16(i)
	}
	x := uint64(seed) + 0x9E3779B97F4A7C15
	x = (x ^ x>>30) * 0xBF58476D1CE4E5B9
	x = (x ^ x>>27) * 0x94D049BB133111EB
	x ^= x >> 31
	for i := len(p) - 1; i > 0; i-- {
		x = x*6364136223846793005 + 1442695040888963407
		// Lemire's multiply-shift on the high (best) bits: an index
		// below i+1 without a division.
		j := (x >> 32) * uint64(i+1) >> 32
		p[i], p[j] = p[j], p[i]
	}
}

// Reorder says where the answer records of a packed Response lie and
// which compression pointers of the records after them point into them,
// so that the records can be written in another order: every name in an
// answer record is written in full or points into the question only
// (never into another answer record, which may move after it), and the
// pointers listed are set again to where their target went.
type Reorder struct {
	// Bounds are the offsets of the answer records in Response.Msg, in
	// order, and last the offset just after the answer section.
	Bounds []uint16
	// Pointers are the compression pointers after the answer section
	// that point into it, by ascending offset.
	Pointers []Pointer
}

// Pointer is a compression pointer into an answer record: at offset At,
// pointing Offset octets into answer record Record.
type Pointer struct {
	At, Record, Offset uint16
}

// NewReorder returns the Reorder of msg, a packed response whose records
// start at the offsets records holds (one per record, in order, the last
// followed by the end of the message) and whose first an records are the
// answer section; nil when a name in an answer record points past the
// question, or when a pointer into the answer section could not reach
// every place its target may move to. Names are found where miekg/dns
// compresses them: owner names, and the RDATA names of the RFC 1035 types
// (NS, CNAME, PTR, MB, MD, MF, MG, MR, MX, SOA, MINFO); it writes the
// names of every other type in full.
func NewReorder(msg []byte, records []int, an int) *Reorder {
	if an < 2 || an > MaxShuffle || len(records) < an+1 {
		return nil
	}
	qEnd, ansEnd := records[0], records[an]
	r := &Reorder{Bounds: make([]uint16, an+1)}
	for i := range r.Bounds {
		r.Bounds[i] = uint16(records[i])
	}
	for i := range len(records) - 1 {
		ok := recordPointers(msg, records[i], func(at, target int) bool {
			switch {
			case i < an:
				return target < qEnd
			case target < qEnd || target >= ansEnd:
				return true
			case ansEnd > maxPointerTarget:
				return false
			}
			j := an - 1
			for int(r.Bounds[j]) > target {
				j--
			}
			r.Pointers = append(r.Pointers, Pointer{At: uint16(at), Record: uint16(j), Offset: uint16(target) - r.Bounds[j]})
			return true
		})
		if !ok {
			return nil
		}
	}
	return r
}

// recordPointers calls fn with the offset and target of every compression
// pointer in the names of the record at off, until fn returns false; it
// reports false then, or when the record does not parse.
func recordPointers(msg []byte, off int, fn func(at, target int) bool) bool {
	name := func(off int) int {
		for off < len(msg) {
			l := int(msg[off])
			switch l & 0xC0 {
			case 0x00:
				if l == 0 {
					return off + 1
				}
				off += 1 + l
			case 0xC0:
				if off+2 > len(msg) || !fn(off, int(binary.BigEndian.Uint16(msg[off:])&0x3FFF)) {
					return -1
				}
				return off + 2
			default:
				return -1
			}
		}
		return -1
	}
	off = name(off)
	if off < 0 || off+10 > len(msg) {
		return false
	}
	rrtype := binary.BigEndian.Uint16(msg[off:])
	rdata := off + 10
	var names int
	switch rrtype {
	case dns.TypeNS, dns.TypeCNAME, dns.TypePTR, dns.TypeMB, dns.TypeMD, dns.TypeMF, dns.TypeMG, dns.TypeMR:
		names = 1
	case dns.TypeMX:
		names, rdata = 1, rdata+2
	case dns.TypeSOA, dns.TypeMINFO:
		names = 2
	}
	for range names {
		if rdata = name(rdata); rdata < 0 {
			return false
		}
	}
	return true
}

// PermuteAnswer writes the answer records of r into out in the order
// Permutation(seed) picks, with elapsed seconds taken off their TTLs
// (floored at zero), and sets the pointers into them that out[:n] holds
// to where their targets went. out[:n] must hold r.Msg[:n] (its question
// may differ in case), the whole answer section included, and r must
// have a Reorder. The records' other TTLs are the caller's to count down.
// It does not allocate.
func (r *Response) PermuteAnswer(out []byte, n int, seed, elapsed uint32) {
	// Most answers are short: their arrays are cleared faster.
	if an := len(r.Reorder.Bounds) - 1; an <= shortAnswer {
		var perm, start [shortAnswer]uint16
		r.permute(out, n, seed, elapsed, perm[:an], start[:an])
		return
	}
	var perm, start [MaxShuffle]uint16
	an := len(r.Reorder.Bounds) - 1
	r.permute(out, n, seed, elapsed, perm[:an], start[:an])
}

// shortAnswer is the most records of an answer PermuteAnswer handles with
// small arrays.
const shortAnswer = 16

// permute is PermuteAnswer with the arrays it needs: perm and start, one
// element per answer record.
func (r *Response) permute(out []byte, n int, seed, elapsed uint32, perm, start []uint16) {
	ro := r.Reorder
	Permutation(seed, perm)
	off := int(ro.Bounds[0])
	for _, i := range perm {
		b, e := int(ro.Bounds[i]), int(ro.Bounds[i+1])
		copy(out[off:], r.Msg[b:e])
		start[i] = uint16(off)
		if elapsed > 0 {
			t := off + int(r.TTLs[i]) - b
			ttl := binary.BigEndian.Uint32(out[t:])
			binary.BigEndian.PutUint32(out[t:], ttl-min(ttl, elapsed))
		}
		off += e - b
	}
	for _, p := range ro.Pointers {
		if int(p.At)+2 > n {
			break
		}
		binary.BigEndian.PutUint16(out[p.At:], 0xC000|(start[p.Record]+p.Offset))
	}
}
