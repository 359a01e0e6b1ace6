package resolver

import (
	"encoding/binary"
	"net/netip"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/cache"
	"github.com/regiondns/regiondns/internal/dnswire"
)

// The fast path answers the queries that make up nearly all the traffic,
// a question for a name in the zone, from the snapshot's packed answers
// (cache.Wire): it reads the query in place, copies a template and patches
// the ID, the flags and the question. It allocates nothing and takes no
// lock. Names outside the zone whose answer the Delegator holds packed
// (CachedWire) are answered the same way (answerDelegated), and those it
// may not have (scope.go) are refused (writeRefused).
// Anything it is not sure to answer exactly as HandleRequest would
// goes to the slow path (fastResult.ok false): see parseQuery.

// Header bits (RFC 1035 §4.1.1), in the two flag octets.
const (
	flagQR     = 0x80 // octet 2
	flagOpcode = 0x78 // octet 2
	flagAA     = 0x04 // octet 2
	flagTC     = 0x02 // octet 2
	flagRD     = 0x01 // octet 2
	flagRA     = 0x80 // octet 3
	flagAD     = 0x20 // octet 3
	flagCD     = 0x10 // octet 3
)

// optLen is the length of the OPT record the fast path appends: root
// owner, TYPE, CLASS (payload size), TTL (extended rcode, version, flags),
// RDLENGTH 0.
const optLen = 11

// fastQuery is what the fast path reads from a query.
type fastQuery struct {
	// qEnd is the offset just after the question.
	qEnd int
	// nameLen is the length of the question name on the wire.
	nameLen int
	qtype   uint16
	// classIN is true for QCLASS IN, false for ANY (answered without AA).
	classIN bool
	// cased is true when the name's last label has an upper-case letter
	// (see cache.Wire); false when the name is in lower case.
	cased bool
	edns  bool
	do    bool
	size  uint16
}

// fastResult is the outcome of the fast path for one query.
type fastResult struct {
	// n is the length of the response written, when ok.
	n  int
	ok bool
	// need, when not ok, is the room the answer needs: out was too small.
	need  int
	tc    bool
	rcode uint8
	qtype uint16
	// source is what answered: the snapshot, or the delegation cache.
	source Source
}

// maxName is the longest name in presentation format the fast path reads:
// 255 octets on the wire.
const maxName = 255

// parseQuery reads a query the fast path can answer, writing the question
// name lower-cased, with its labels joined by dots, into name. It reports
// false for anything else:
//
//   - not a query: QR set, an opcode other than QUERY, not exactly one
//     question, records in the answer or authority section, more than one
//     additional record;
//   - a name with a compression pointer, or a label octet that the
//     presentation format would escape (so that the name is the key
//     HandleRequest looks up), or longer than 255 octets;
//   - a name with upper-case letters none of which is in its last label
//     (see cache.Wire);
//   - QCLASS other than IN and ANY; QTYPE OPT, AXFR or IXFR;
//   - an additional record that is not an OPT owned by the root, an EDNS
//     version other than 0, or an option miekg/dns might refuse to unpack.
//
// Octets after the last record are ignored, as miekg/dns does.
func parseQuery(q []byte, name *[maxName]byte) (fq fastQuery, k int, ok bool) {
	if len(q) < dnswire.HeaderLen+5 || q[2]&(flagQR|flagOpcode) != 0 ||
		binary.BigEndian.Uint16(q[4:]) != 1 || binary.BigEndian.Uint16(q[6:]) != 0 ||
		binary.BigEndian.Uint16(q[8:]) != 0 {
		return fq, 0, false
	}
	ar := binary.BigEndian.Uint16(q[10:])
	if ar > 1 {
		return fq, 0, false
	}
	off := dnswire.HeaderLen
	upper := false
	for {
		if off >= len(q) {
			return fq, 0, false
		}
		l := int(q[off])
		off++
		if l == 0 {
			break
		}
		if l > 63 || off+l > len(q) || k+l+1 > maxName {
			return fq, 0, false
		}
		upper = upper || fq.cased
		fq.cased = false
		for _, c := range q[off : off+l] {
			switch {
			case 'A' <= c && c <= 'Z':
				c += 'a' - 'A'
				fq.cased = true
			case c <= ' ' || c > '~' || c == '.' || c == '\\' || c == '"' || c == '\'' ||
				c == '(' || c == ')' || c == ';' || c == '@':
				return fq, 0, false
			}
			name[k] = c
			k++
		}
		name[k] = '.'
		k++
		off += l
	}
	if upper && !fq.cased {
		return fq, 0, false
	}
	if k == 0 {
		name[0] = '.'
		k = 1
	}
	fq.nameLen = off - dnswire.HeaderLen
	if fq.nameLen > maxName || off+4 > len(q) {
		return fq, 0, false
	}
	fq.qtype = binary.BigEndian.Uint16(q[off:])
	switch binary.BigEndian.Uint16(q[off+2:]) {
	case dns.ClassINET:
		fq.classIN = true
	case dns.ClassANY:
	default:
		return fq, 0, false
	}
	switch fq.qtype {
	case dns.TypeOPT, dns.TypeAXFR, dns.TypeIXFR:
		return fq, 0, false
	}
	fq.qEnd = off + 4
	if ar == 1 && !parseOPT(q[fq.qEnd:], &fq) {
		return fq, 0, false
	}
	return fq, k, true
}

// parseOPT reads the OPT record at the start of rr.
func parseOPT(rr []byte, fq *fastQuery) bool {
	// Root owner, TYPE, CLASS, TTL, RDLENGTH.
	if len(rr) < optLen || rr[0] != 0 || binary.BigEndian.Uint16(rr[1:]) != dns.TypeOPT || rr[6] != 0 {
		return false
	}
	rdlen := int(binary.BigEndian.Uint16(rr[9:]))
	if optLen+rdlen > len(rr) {
		return false
	}
	for opts := rr[optLen : optLen+rdlen]; len(opts) > 0; {
		if len(opts) < 4 {
			return false
		}
		code, l := binary.BigEndian.Uint16(opts), int(binary.BigEndian.Uint16(opts[2:]))
		if 4+l > len(opts) || !opaqueOption(code) {
			return false
		}
		opts = opts[4+l:]
	}
	fq.edns, fq.size, fq.do = true, binary.BigEndian.Uint16(rr[3:]), rr[7]&0x80 != 0
	return true
}

// opaqueOption reports whether miekg/dns unpacks an EDNS option of this code
// as opaque data, which never fails: COOKIE, PADDING and the codes it does
// not know. The others (client subnet, NSID, ...) it parses, and may
// refuse: HandleRequest then answers FORMERR, so the slow path takes them.
func opaqueOption(code uint16) bool {
	switch code {
	case dns.EDNS0LLQ, dns.EDNS0UL, dns.EDNS0NSID, dns.EDNS0ESU, dns.EDNS0DAU, dns.EDNS0DHU, dns.EDNS0N3U,
		dns.EDNS0SUBNET, dns.EDNS0EXPIRE, dns.EDNS0TCPKEEPALIVE, dns.EDNS0EDE, dns.EDNS0REPORTING,
		dns.EDNS0ZONEVERSION:
		return false
	}
	return true
}

// AnswerWire answers query, received from src over TCP when tcp is true,
// into out without allocating, when the fast path can: a query for a name
// in the zone, with or without EDNS(0); a name outside it whose answer the
// Delegator holds packed, or that src may not have delegated. It reports
// false, having written nothing useful, for anything else (see
// parseQuery; other names outside the zone; no snapshot; out too small):
// HandleRequest answers those. The response is the one HandleRequest gives
// for the query with its name in lower case: same header bits, rcode,
// sections and EDNS, the question as the client sent it; over TCP it has
// no length prefix.
func (h *Handler) AnswerWire(query []byte, src netip.Addr, tcp bool, out []byte) (n int, ok bool) {
	f := h.answerWire(query, src, tcp, out, h.rotation.Add(1))
	return f.n, f.ok
}

// answerWire is AnswerWire with the rotation given; it also says what
// the metrics count.
func (h *Handler) answerWire(q []byte, src netip.Addr, tcp bool, out []byte, rot uint32) fastResult {
	var name [maxName]byte
	fq, k, ok := parseQuery(q, &name)
	if !ok {
		return fastResult{}
	}
	snap := h.store.Load()
	if snap == nil {
		return fastResult{}
	}
	w, neg, res := snap.LookupWireZone(name[:k], fq.qtype, rot, fq.cased)
	if res == cache.OutOfZone {
		if h.opts.Delegator == nil || !h.scope.allowsClient(src) || !h.scope.coversName(name[:k]) {
			return h.writeRefused(q, &fq, out)
		}
		return h.answerDelegated(q, &fq, tcp, out, rot)
	}
	limit := h.limit(&fq, tcp)
	switch res {
	case cache.Success:
		if w == nil {
			return fastResult{}
		}
		return h.writeAnswer(q, &fq, w, limit, out)
	case cache.NXDomain, cache.NoData:
		// The SOA of the name's zone: the apex's, or its cluster's.
		if neg == nil {
			return fastResult{}
		}
		rcode := uint8(dns.RcodeSuccess)
		if res == cache.NXDomain {
			rcode = dns.RcodeNameError
		}
		return h.writeNegative(q, &fq, neg, rcode, limit, out)
	}
	return fastResult{}
}

// optSize is the room our OPT record takes in the response: optLen with
// EDNS, none without.
func (fq *fastQuery) optSize() int {
	if fq.edns {
		return optLen
	}
	return 0
}

// limit returns the largest response the query may get: 512 bytes over UDP
// without EDNS, the client's EDNS size (at least 512, at most ours) with it,
// 64 KiB over TCP.
func (h *Handler) limit(fq *fastQuery, tcp bool) int {
	switch {
	case tcp:
		return dns.MaxMsgSize
	case fq.edns:
		return int(min(max(fq.size, dns.MinMsgSize), h.opts.UDPSize))
	default:
		return dns.MinMsgSize
	}
}

// fitted copies the packed response msg into out as the answer to q: whole,
// without its additional section (from extra on), or cut to its question
// (ending at qEnd) with TC set, the first that fits limit with opt bytes to
// spare for our OPT, as fit does for HandleRequest (RFC 2181 §9: the
// additional section goes first). The question bytes are the client's, and
// the counts of the sections dropped are cleared. ok is false when msg does
// not hold its question, and need is the size out lacks when it is too small.
func fitted(msg []byte, extra, qEnd int, q, out []byte, opt, limit int) (n int, tc, ok bool, need int) {
	if qEnd > len(msg) || extra < qEnd || extra > len(msg) {
		return 0, false, false, 0
	}
	whole := len(msg)
	switch {
	case len(msg)+opt <= limit:
	case extra+opt <= limit:
		msg = msg[:extra]
	default:
		msg, tc = msg[:qEnd], true
	}
	if len(msg)+opt > len(out) {
		return 0, false, false, len(msg) + opt
	}
	n = copy(out, msg)
	copy(out[dnswire.HeaderLen:qEnd], q[dnswire.HeaderLen:qEnd])
	switch {
	case tc:
		clear(out[6:dnswire.HeaderLen])
	case n < whole:
		clear(out[10:dnswire.HeaderLen])
	}
	return n, tc, true, 0
}

// writeAnswer writes the template p (for the question's case) as the
// answer to q: whole, or without its additional section, or truncated to its
// question with TC set, the first that fits limit (as fit does for
// HandleRequest).
func (h *Handler) writeAnswer(q []byte, fq *fastQuery, p *cache.Packed, limit int, out []byte) fastResult {
	n, tc, fits, need := fitted(p.Msg, p.Extra, fq.qEnd, q, out, fq.optSize(), limit)
	if !fits {
		return fastResult{need: need}
	}
	h.writeHeader(q, fq, out, tc)
	return fastResult{n: h.appendOPT(fq, out, n), ok: true, tc: tc, qtype: fq.qtype, rcode: p.Msg[3] & 0xF}
}

// writeNegative writes an NXDOMAIN or NODATA answer: the header, the
// client's question and the negative SOA, its pointers moved after the
// question name. One that does not fit goes to the slow path, which
// truncates it.
func (h *Handler) writeNegative(q []byte, fq *fastQuery, neg *cache.NegativeWire, rcode uint8, limit int, out []byte) fastResult {
	opt := fq.optSize()
	r := &neg.Lower
	if fq.cased {
		r = &neg.Cased
	}
	d := fq.nameLen - neg.ApexLen
	n := fq.qEnd + len(r.RR)
	if d < 0 || n+opt > limit {
		return fastResult{}
	}
	if n+opt > len(out) {
		return fastResult{need: n + opt}
	}
	copy(out[dnswire.HeaderLen:fq.qEnd], q[dnswire.HeaderLen:fq.qEnd])
	rr := out[fq.qEnd:n]
	copy(rr, r.RR)
	for _, p := range r.Pointers {
		ptr := binary.BigEndian.Uint16(rr[p:])&0x3FFF + uint16(d)
		binary.BigEndian.PutUint16(rr[p:], 0xC000|ptr)
	}
	// Counts: one question, one authority record.
	binary.BigEndian.PutUint64(out[4:], 1<<48|1<<16)
	out[3] = rcode
	h.writeHeader(q, fq, out, false)
	return fastResult{n: h.appendOPT(fq, out, n), ok: true, qtype: fq.qtype, rcode: rcode}
}

// writeRefused writes the REFUSED answer to a name outside the zone that
// is not delegated (scope.go): the client's header bits (RD, CD) and
// question, our OPT when the query had one, nothing else; no AA, no RA.
// It always fits a UDP response: a name has at most 255 octets.
func (h *Handler) writeRefused(q []byte, fq *fastQuery, out []byte) fastResult {
	n := fq.qEnd
	if n+fq.optSize() > len(out) {
		return fastResult{need: n + fq.optSize()}
	}
	copy(out[:n], q[:n])
	// Counts: one question, nothing else (appendOPT adds its own).
	binary.BigEndian.PutUint64(out[4:], 1<<48)
	out[2] = flagQR | q[2]&flagRD
	out[3] = dns.RcodeRefused | q[3]&flagCD
	return fastResult{n: h.appendOPT(fq, out, n), ok: true, qtype: fq.qtype, rcode: dns.RcodeRefused, source: SourceError}
}

// writeHeader sets the ID and the flags of the response in out: QR, AA for
// class IN, TC when truncated, RD and CD from the query, opcode QUERY, RA,
// Z and AD clear; the rcode bits of out are kept.
func (h *Handler) writeHeader(q []byte, fq *fastQuery, out []byte, tc bool) {
	out[0], out[1] = q[0], q[1]
	flags := byte(flagQR) | q[2]&flagRD
	if fq.classIN {
		flags |= flagAA
	}
	if tc {
		flags |= flagTC
	}
	out[2] = flags
	out[3] = out[3]&0xF | q[3]&flagCD
}

// appendOPT appends the response's OPT record when the query had one
// (version 0, our payload size, the client's DO bit, no options) and
// returns the response's length.
func (h *Handler) appendOPT(fq *fastQuery, out []byte, n int) int {
	if !fq.edns {
		return n
	}
	o := out[n : n+optLen]
	o[0] = 0
	binary.BigEndian.PutUint16(o[1:], dns.TypeOPT)
	binary.BigEndian.PutUint16(o[3:], h.opts.UDPSize)
	binary.BigEndian.PutUint32(o[5:], 0)
	if fq.do {
		o[7] = 0x80
	}
	binary.BigEndian.PutUint16(o[9:], 0)
	binary.BigEndian.PutUint16(out[10:], binary.BigEndian.Uint16(out[10:])+1)
	return n + optLen
}
