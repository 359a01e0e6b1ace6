package cache

import (
	"encoding/binary"
	"strings"
	"sync/atomic"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/internal/dnswire"
)

// Wire is one answer of the snapshot packed once, when the snapshot is
// built: the whole response to the question for the answer's owner name,
// with ID 0, the flags QR and AA, RD and CD clear, compressed exactly as
// miekg/dns packs the same message. The resolver's fast path copies it,
// patches the ID, the flags and the question (the client's own bytes, case
// included) and appends its OPT record: the response is byte for byte the
// one HandleRequest gives.
//
// miekg/dns compresses case-sensitively, so the bytes depend on the case of
// the question: Lower is the response to the question in lower case (names
// point into the question), packed with the snapshot; the response to a
// question whose last label has an upper-case letter (no name points into
// the question) is packed the first time such a question comes (see
// Snapshot.LookupWire), since few clients ever send one. A question in lower
// case except its last label matches neither; the slow path answers it.
type Wire struct {
	Lower Packed
	cased atomic.Pointer[Packed]
}

// Packed is one packed response; Msg must not be modified.
type Packed struct {
	Msg []byte
	// Extra is the offset of the additional section in Msg: Msg[:Extra]
	// with ARCOUNT 0 is the response without it (RFC 2181 §9).
	Extra int
}

// NegativeWire is the authority section of every NXDOMAIN and NODATA
// answer, the negative SOA, packed after a question for the zone apex. For a
// question whose name is d octets longer than the apex, every compression
// pointer in it moves d octets: the apex is the last labels of the question
// name, and the record starts d octets later.
//
// Lower follows a question in lower case (its owner points into the
// question), Cased one whose last label has an upper-case letter (as Wire).
// miekg/dns may point a name of the SOA's data at a longer suffix of the
// question than the apex (a question for "x.ns1.<zone>" and the MNAME
// "ns1.<zone>"): the fast path then spells out a label more than
// HandleRequest does; the records are the same.
type NegativeWire struct {
	Lower, Cased NegativeRR
	// ApexLen is the length of the apex name in wire format.
	ApexLen int
}

// NegativeRR is one packing of the negative SOA.
type NegativeRR struct {
	// RR is the record.
	RR []byte
	// Pointers are the offsets in RR of its compression pointers.
	Pointers []int
}

// The header of every template: QR and AA set, one question.
const (
	flagsQRAA    = 0x8400
	maxCompress  = 1 << 14 // miekg/dns's maxCompressionOffset
	maxNameWire  = 255
	maxLabelWire = 63
)

// packer writes messages the way miekg/dns packs them with compression on:
// each name is looked up by its suffixes, longest first, among the names
// written before; a suffix not seen yet is remembered at its offset. Names
// that may be compressed (owners, NS and SOA names) end in a pointer at the
// first suffix seen; SRV targets are never compressed (RFC 2782) but are
// remembered. Lookups are case-sensitive, as in miekg/dns; every name in a
// snapshot is lower case.
type packer struct {
	b    []byte
	seen []compressed
	// cased, while the question is written, keeps its suffixes out of
	// seen: a question whose last label has an upper-case letter matches
	// no name of the snapshot (all lower case).
	cased bool
	// ptrs, when recording, collects the offsets of pointers written.
	ptrs      []int
	recording bool
	// owner is the question's name, known to be packable: most records
	// are owned by it.
	owner string
}

type compressed struct {
	suffix string
	off    int
}

// reset forgets the last message; p.b is nil (answer points it at the
// arena, where the last message may have been kept).
func (p *packer) reset() {
	p.b, p.seen, p.ptrs, p.recording, p.cased = nil, p.seen[:0], p.ptrs[:0], false, false
}

func (p *packer) find(suffix string) (int, bool) {
	for _, c := range p.seen {
		if c.suffix == suffix {
			return c.off, true
		}
	}
	return 0, false
}

// packable reports whether name can be written by the packer: fully
// qualified, no escapes (a snapshot name with one is answered by the slow
// path), labels and name within the limits of RFC 1035.
func packable(name string) bool {
	if name == "." {
		return true
	}
	if !strings.HasSuffix(name, ".") || strings.IndexByte(name, '\\') >= 0 || len(name)+1 > maxNameWire {
		return false
	}
	begin := 0
	for i := 0; i < len(name); i++ {
		if name[i] == '.' {
			if l := i - begin; l == 0 || l > maxLabelWire {
				return false
			}
			begin = i + 1
		}
	}
	return true
}

// name writes a domain name; packable(name) must hold.
func (p *packer) name(name string, compress bool) {
	if name == "." {
		p.b = append(p.b, 0)
		return
	}
	begin := 0
	for i := 0; i < len(name); i++ {
		if name[i] != '.' {
			continue
		}
		suffix := name[begin:]
		if p.cased {
			// Not remembered: see cased.
		} else if off, ok := p.find(suffix); ok {
			if compress {
				if p.recording {
					p.ptrs = append(p.ptrs, len(p.b))
				}
				p.b = binary.BigEndian.AppendUint16(p.b, 0xC000|uint16(off))
				return
			}
		} else if len(p.b) < maxCompress {
			p.seen = append(p.seen, compressed{suffix, len(p.b)})
		}
		p.b = append(p.b, byte(i-begin))
		p.b = append(p.b, name[begin:i]...)
		begin = i + 1
	}
	p.b = append(p.b, 0)
}

func (p *packer) u16(v uint16) { p.b = binary.BigEndian.AppendUint16(p.b, v) }
func (p *packer) u32(v uint32) { p.b = binary.BigEndian.AppendUint32(p.b, v) }

// header writes a response header with the section counts.
func (p *packer) header(rcode, an, ns, ar int) {
	p.u16(0)
	p.u16(flagsQRAA | uint16(rcode))
	p.u16(1)
	p.u16(uint16(an))
	p.u16(uint16(ns))
	p.u16(uint16(ar))
}

// question writes the question for name, class IN; cased: as a question
// whose last label has an upper-case letter would be (the resolver writes
// the client's question over it).
func (p *packer) question(name string, qtype uint16, cased bool) {
	p.owner = name
	p.cased = cased
	p.name(name, true)
	p.cased = false
	p.u16(qtype)
	p.u16(dns.ClassINET)
}

// rr writes one record, and reports false for a record the packer cannot
// write (a type the snapshot never holds, or a name or string with an
// escape).
func (p *packer) rr(rr dns.RR) bool {
	h := rr.Header()
	if h.Name != p.owner && !packable(h.Name) {
		return false
	}
	p.name(h.Name, true)
	p.u16(h.Rrtype)
	p.u16(h.Class)
	p.u32(h.Ttl)
	lenAt := len(p.b)
	p.u16(0)
	switch v := rr.(type) {
	case *dns.A:
		a := v.A.To4()
		if a == nil {
			return false
		}
		p.b = append(p.b, a...)
	case *dns.AAAA:
		a := v.AAAA.To16()
		if a == nil {
			return false
		}
		p.b = append(p.b, a...)
	case *dns.SRV:
		if !packable(v.Target) {
			return false
		}
		p.u16(v.Priority)
		p.u16(v.Weight)
		p.u16(v.Port)
		p.name(v.Target, false)
	case *dns.TXT:
		for _, s := range v.Txt {
			if len(s) > 255 || strings.IndexByte(s, '\\') >= 0 {
				return false
			}
			p.b = append(p.b, byte(len(s)))
			p.b = append(p.b, s...)
		}
	case *dns.NS:
		if !packable(v.Ns) {
			return false
		}
		p.name(v.Ns, true)
	case *dns.SOA:
		if !packable(v.Ns) || !packable(v.Mbox) {
			return false
		}
		p.name(v.Ns, true)
		p.name(v.Mbox, true)
		p.u32(v.Serial)
		p.u32(v.Refresh)
		p.u32(v.Retry)
		p.u32(v.Expire)
		p.u32(v.Minttl)
	default:
		return false
	}
	rdlen := len(p.b) - lenAt - 2
	if rdlen > 0xFFFF {
		return false
	}
	binary.BigEndian.PutUint16(p.b[lenAt:], uint16(rdlen))
	return true
}

// wireBuilder packs the templates of a snapshot, one part at a time: the
// messages of a part go into one buffer, which keep copies into an array of
// its own, at its size, so that a part kept by the next snapshots keeps
// nothing of another.
type wireBuilder struct {
	p packer
	// msg is the message being packed; buf the messages of the part so
	// far, which spans place in its wires.
	msg, buf []byte
	spans    []wireSpan
	// negRR and negPtrs are negative's scratch.
	negRR   []byte
	negPtrs []int
}

// wireSpan says where in wireBuilder.buf the message of wires[wire] is.
type wireSpan struct {
	wire  int
	lower packedSpan
}

// packedSpan is a Packed whose message is buf[start:end].
type packedSpan struct {
	start, end, extra int
}

// answer packs the response for (name, qtype) with the answer and
// additional sections given into buf, for a question in lower case or cased
// (see Wire); false when a name or record cannot be packed or the message
// outgrows DNS (then the slow path answers).
func (wb *wireBuilder) answer(name string, qtype uint16, ans, extra []dns.RR, cased bool) (packedSpan, bool) {
	if len(ans) == 0 || !packable(name) {
		return packedSpan{}, false
	}
	p := &wb.p
	p.reset()
	p.b = wb.msg[:0]
	p.header(dns.RcodeSuccess, len(ans), 0, len(extra))
	p.question(name, qtype, cased)
	ok := true
	for _, rr := range ans {
		ok = ok && p.rr(rr)
	}
	extraAt := len(p.b)
	for _, rr := range extra {
		ok = ok && p.rr(rr)
	}
	wb.msg = p.b[:0]
	if !ok || len(p.b) > dns.MaxMsgSize {
		return packedSpan{}, false
	}
	start := len(wb.buf)
	wb.buf = append(wb.buf, p.b...)
	return packedSpan{start: start, end: len(wb.buf), extra: extraAt}, true
}

// pack packs the answer of set, the part's sets[i] owned by name, for
// wires[i], or, for several rotations, one per order for wires appended
// from set.more (wires[i] stays zero: LookupWire reads the orders). When
// one cannot be packed, those wires stay zero. rrs are the part's records
// (see rrset). The messages reach the wires with keep.
func (wb *wireBuilder) pack(wires []Wire, i int, rrs []dns.RR, name string, set *rrset) []Wire {
	if set.rotations == 1 {
		ans, extra := set.order(rrs, 0)
		if lower, ok := wb.answer(name, set.rrtype, ans, extra, false); ok {
			wb.spans = append(wb.spans, wireSpan{i, lower})
		}
		return wires
	}
	set.more = uint32(len(wires))
	mark, spans := len(wb.buf), len(wb.spans)
	wires = append(wires, make([]Wire, set.rotations)...)
	for r := range uint32(set.rotations) {
		ans, extra := set.order(rrs, r)
		lower, ok := wb.answer(name, set.rrtype, ans, extra, false)
		if !ok {
			// Every order stays zero: the slow path answers them all.
			wb.buf, wb.spans = wb.buf[:mark], wb.spans[:spans]
			return wires
		}
		wb.spans = append(wb.spans, wireSpan{int(set.more + r), lower})
	}
	return wires
}

// keep copies the messages packed since the last keep into one array of
// their size and points wires at them.
func (wb *wireBuilder) keep(wires []Wire) {
	mem := make([]byte, len(wb.buf))
	copy(mem, wb.buf)
	in := func(ps packedSpan) Packed {
		return Packed{Msg: mem[ps.start:ps.end:ps.end], Extra: ps.extra}
	}
	for _, sp := range wb.spans {
		wires[sp.wire].Lower = in(sp.lower)
	}
	wb.buf, wb.spans = wb.buf[:0], wb.spans[:0]
}

// negative packs the negative SOA after a question for the apex, and
// records where its pointers are; nil when it cannot be packed.
func (wb *wireBuilder) negative(zone string, soa dns.RR) *NegativeWire {
	neg := &NegativeWire{}
	if !wb.negativeInto(neg, zone, soa) {
		return nil
	}
	return neg
}

// negativeInto is negative, packing into neg; false when it cannot be
// packed.
func (wb *wireBuilder) negativeInto(neg *NegativeWire, zone string, soa dns.RR) bool {
	if !packable(zone) {
		return false
	}
	// Both packings, and both lists of pointers, share one array each:
	// every cluster zone has its own.
	rrs, ptrs := wb.negRR[:0], wb.negPtrs[:0]
	defer func() { wb.negRR, wb.negPtrs = rrs[:0], ptrs[:0] }()
	var ends [2]int
	var pends [2]int
	for i, cased := range []bool{false, true} {
		p := &wb.p
		p.reset()
		p.b = wb.msg[:0]
		p.header(dns.RcodeSuccess, 0, 1, 0)
		p.question(zone, dns.TypeSOA, cased)
		start := len(p.b)
		p.recording = true
		if !p.rr(soa) {
			return false
		}
		wb.msg = p.b[:0]
		rrs = append(rrs, p.b[start:]...)
		for _, off := range p.ptrs {
			ptrs = append(ptrs, off-start)
		}
		ends[i], pends[i] = len(rrs), len(ptrs)
		neg.ApexLen = start - dnswire.HeaderLen - 4
	}
	mem := make([]byte, len(rrs))
	copy(mem, rrs)
	pmem := make([]int, len(ptrs))
	copy(pmem, ptrs)
	neg.Lower = NegativeRR{RR: mem[:ends[0]:ends[0]], Pointers: pmem[:pends[0]:pends[0]]}
	neg.Cased = NegativeRR{RR: mem[ends[0]:ends[1]:ends[1]], Pointers: pmem[pends[0]:pends[1]:pends[1]]}
	return true
}

// casedAnswer packs the response of w, order r of set (the part's records
// rrs, owned by name), for a question whose last label has an upper-case
// letter, keeps it in w and returns it; nil when it cannot be packed (which
// w remembers as a Packed without a message). Concurrent callers may each
// pack it: the first stored is kept.
func casedAnswer(w *Wire, name string, set *rrset, r uint32, rrs []dns.RR) *Packed {
	var wb wireBuilder
	ans, extra := set.order(rrs, r)
	packed := &Packed{}
	if ps, ok := wb.answer(name, set.rrtype, ans, extra, true); ok {
		packed = &Packed{Msg: append([]byte(nil), wb.buf[ps.start:ps.end]...), Extra: ps.extra}
	}
	w.cased.CompareAndSwap(nil, packed)
	return w.cased.Load().orNil()
}

// orNil returns p, or nil for a Packed without a message.
func (p *Packed) orNil() *Packed {
	if p.Msg == nil {
		return nil
	}
	return p
}
