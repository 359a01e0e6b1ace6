package resolver

import (
	"encoding/binary"
	"net/netip"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/internal/dnswire"
)

// Delegator answers the names outside the zone (Options.Delegator); in
// regiondns, a forward.Forwarder. One value serves both paths, so that a
// cache hit answered on the fast path is the answer Delegate gives.
type Delegator interface {
	// Delegate returns the answer to req, a query for a name outside the
	// zone received over TCP when tcp is true from the client address src
	// (the zero Addr when unknown): the handler takes its rcode, RA and AD
	// bits and records, and sets the header, question and EDNS itself. An
	// OPT record in the answer may hold a client subnet option (RFC
	// 7871): its SCOPE PREFIX-LENGTH says whom the answer holds for, and
	// the handler echoes it to a client that sent a client subnet. An
	// error is answered SERVFAIL. It must not modify req, nor the records
	// it returned before.
	Delegate(req *dns.Msg, tcp bool, src netip.Addr) (*dns.Msg, error)
	// CachedWire returns, packed, the answer Delegate gives at this
	// instant to question (a query's question section in wire form: its
	// name in lower case and uncompressed, QTYPE, QCLASS) asked with the
	// DO bit do, and the whole seconds to take off its TTLs; false when
	// Delegate would have to do more than read a cache. The fast path
	// calls it for every name outside the zone: it must not allocate or
	// block.
	CachedWire(question []byte, do bool) (resp *dnswire.Response, elapsed uint32, ok bool)
}

// DelegateFunc adapts a function to a Delegator that caches nothing: every
// name outside the zone goes to the function, on the slow path.
type DelegateFunc func(req *dns.Msg, tcp bool, src netip.Addr) (*dns.Msg, error)

// Delegate calls fn.
func (fn DelegateFunc) Delegate(req *dns.Msg, tcp bool, src netip.Addr) (*dns.Msg, error) {
	return fn(req, tcp, src)
}

// CachedWire reports false: a DelegateFunc has no cached answers.
func (DelegateFunc) CachedWire([]byte, bool) (*dnswire.Response, uint32, bool) { return nil, 0, false }

// delegate answers a name outside the zone, asked by src, through
// Options.Delegator, or refuses it (no Delegator, a client outside
// DelegationClients or a name outside DelegationDomains: scope.go), and returns the scope of the answer's client subnet (0 when
// it holds for every client). An answer for every client whose records
// may be reordered (dnswire.Shuffleable) is served in the order that seed
// picks, as the fast path serves it (answerDelegated): a cached answer
// changes order with every query, as Consul DNS's do.
func (h *Handler) delegate(req, resp *dns.Msg, tcp bool, src netip.Addr, seed uint32) (Source, uint8) {
	if h.opts.Delegator == nil || !h.scope.allowsClient(src) || !h.scope.coversQuestion(req.Question[0].Name) {
		resp.Rcode = dns.RcodeRefused
		return SourceError, 0
	}
	up, err := h.opts.Delegator.Delegate(req, tcp, src)
	if err != nil || up == nil {
		h.logger.Debug("delegate", "error", err)
		resp.Rcode = dns.RcodeServerFailure
		return SourceDelegated, 0
	}
	var scope uint8
	for _, o := range optOptions(up.IsEdns0()) {
		if s, ok := o.(*dns.EDNS0_SUBNET); ok {
			scope = s.SourceScope
		}
	}
	// Extended rcodes travel in the upstream OPT, which is not forwarded;
	// only the 4-bit rcode is meaningful here.
	resp.Rcode = up.Rcode & 0xF
	resp.RecursionAvailable = up.RecursionAvailable
	resp.AuthenticatedData = up.AuthenticatedData
	resp.Answer, resp.Ns, resp.Extra = up.Answer, up.Ns, dnswire.WithoutOPT(up.Extra)
	if scope == 0 && dnswire.Shuffleable(resp.Answer) {
		// up's records may be shared: the new order goes into a copy.
		perm := make([]uint16, len(resp.Answer))
		dnswire.Permutation(seed, perm)
		answer := make([]dns.RR, len(perm))
		for k, i := range perm {
			answer[k] = up.Answer[i]
		}
		resp.Answer = answer
	}
	return SourceDelegated, scope
}

// optOptions returns the options of opt (nil: none).
func optOptions(opt *dns.OPT) []dns.EDNS0 {
	if opt == nil {
		return nil
	}
	return opt.Option
}

// answerDelegated answers a query for a name outside the zone from the
// Delegator's cached answer in wire form (CachedWire), as HandleRequest
// answers it through the Delegator's Delegate: the ID, RD and CD
// of the query; the cached rcode, RA, AD and records, TTLs counted down;
// no AA; our OPT when the query had one; fitted to the client's limit as
// fit does; its answer records in the order seed picks when they may be
// reordered (dnswire.Response.Reorder), as delegate orders them. A name
// with an upper-case letter goes to the slow path: the cached response is
// packed after the lower-case question, and miekg/dns compresses names
// case-sensitively, so its compression differs from the slow path's for
// such a question.
func (h *Handler) answerDelegated(q []byte, fq *fastQuery, tcp bool, out []byte, seed uint32) fastResult {
	d := h.opts.Delegator
	if d == nil || fq.cased {
		return fastResult{}
	}
	// Without an upper-case letter in its last label, the name has none
	// (parseQuery): the question is in lower case, as CachedWire wants it.
	w, elapsed, ok := d.CachedWire(q[dnswire.HeaderLen:fq.qEnd], fq.do)
	if !ok || w.QEnd != fq.qEnd {
		return fastResult{}
	}
	msg := w.Msg
	f := fastResult{qtype: fq.qtype, rcode: msg[3] & 0xF, source: SourceDelegated}
	n, tc, fits, need := fitted(msg, w.Extra, w.QEnd, q, out, fq.optSize(), h.limit(fq, tcp))
	if !fits {
		return fastResult{need: need}
	}
	f.ok, f.tc = true, tc
	ttls := w.TTLs
	if r := w.Reorder; r != nil && !tc && n >= int(r.Bounds[len(r.Bounds)-1]) {
		// Writes the answer records anew, their TTLs counted down.
		w.PermuteAnswer(out, n, seed, elapsed)
		ttls = ttls[len(r.Bounds)-1:]
	}
	if elapsed > 0 {
		for _, t := range ttls {
			if int(t)+4 > n {
				break
			}
			ttl := binary.BigEndian.Uint32(out[t:])
			binary.BigEndian.PutUint32(out[t:], ttl-min(ttl, elapsed))
		}
	}
	// ID, QR, opcode QUERY, no AA, TC when truncated, RD from the query;
	// RA, AD and the rcode cached, Z clear, CD from the query.
	out[0], out[1] = q[0], q[1]
	flags := byte(flagQR) | q[2]&flagRD
	if f.tc {
		flags |= flagTC
	}
	out[2] = flags
	out[3] = msg[3]&(flagRA|flagAD|0xF) | q[3]&flagCD
	f.n = h.appendOPT(fq, out, n)
	return f
}
