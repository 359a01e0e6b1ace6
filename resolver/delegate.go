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
	// zone received over TCP when tcp is true: the handler takes its
	// rcode, RA and AD bits and records, and sets the header, question and
	// EDNS itself. An error is answered SERVFAIL. It must not modify req,
	// nor the records it returned before.
	Delegate(req *dns.Msg, tcp bool) (*dns.Msg, error)
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
type DelegateFunc func(req *dns.Msg, tcp bool) (*dns.Msg, error)

// Delegate calls fn.
func (fn DelegateFunc) Delegate(req *dns.Msg, tcp bool) (*dns.Msg, error) { return fn(req, tcp) }

// CachedWire reports false: a DelegateFunc has no cached answers.
func (DelegateFunc) CachedWire([]byte, bool) (*dnswire.Response, uint32, bool) { return nil, 0, false }

// delegate answers a name outside the zone, asked by src, through
// Options.Delegator, or refuses it: no Delegator, a client outside
// DelegationClients or a name outside DelegationDomains (scope.go).
func (h *Handler) delegate(req, resp *dns.Msg, src netip.Addr, tcp bool) Source {
	if h.opts.Delegator == nil || !h.scope.allowsClient(src) || !h.scope.coversQuestion(req.Question[0].Name) {
		resp.Rcode = dns.RcodeRefused
		return SourceError
	}
	up, err := h.opts.Delegator.Delegate(req, tcp)
	if err != nil || up == nil {
		h.logger.Debug("delegate", "error", err)
		resp.Rcode = dns.RcodeServerFailure
		return SourceDelegated
	}
	// Extended rcodes travel in the upstream OPT, which is not forwarded;
	// only the 4-bit rcode is meaningful here.
	resp.Rcode = up.Rcode & 0xF
	resp.RecursionAvailable = up.RecursionAvailable
	resp.AuthenticatedData = up.AuthenticatedData
	resp.Answer, resp.Ns, resp.Extra = up.Answer, up.Ns, dnswire.WithoutOPT(up.Extra)
	return SourceDelegated
}

// answerDelegated answers a query for a name outside the zone from the
// Delegator's cached answer in wire form (CachedWire), as HandleRequest
// answers it through the Delegator's Delegate: the ID, RD and CD
// of the query; the cached rcode, RA, AD and records, TTLs counted down;
// no AA; our OPT when the query had one; fitted to the client's limit as
// fit does. A name with an upper-case letter goes to the slow path: the
// cached response is packed after the lower-case question, and miekg/dns
// compresses names case-sensitively, so its compression differs from the
// slow path's for such a question.
func (h *Handler) answerDelegated(q []byte, fq *fastQuery, tcp bool, out []byte) fastResult {
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
	if elapsed > 0 {
		for _, t := range w.TTLs {
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
