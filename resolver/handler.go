// Package resolver is regiondns's DNS server: it answers queries for names
// in the zone from the current cache.Snapshot, hands the other names to a
// Delegator (the forwarder to Consul DNS) or refuses them, and does the
// protocol work around both (header bits, EDNS(0), truncation, malformed
// messages) on UDP and TCP. Most queries take a fast path that answers
// from packed responses, the snapshot's or the Delegator's cached ones,
// without unpacking, packing or allocating; the rest go through miekg/dns
// and HandleRequest.
package resolver

import (
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/cache"
	"github.com/regiondns/regiondns/internal/dnswire"
)

// Options configure a Handler. The zero value is valid.
type Options struct {
	// Delegator answers names outside the zone: its cached answers on the
	// fast path, the others through its Delegate. When nil, they get
	// REFUSED.
	Delegator Delegator
	// DelegationDomains are the names handed to the Delegator, each with
	// the names under it ("consul." covers "web.service.consul."; "."
	// covers every name); other names outside the zone get REFUSED. Nil:
	// every name.
	DelegationDomains []string
	// DelegationClients are the source addresses whose queries for names
	// outside the zone are handed to the Delegator; other clients get
	// REFUSED for them. Names in the zone are answered to every client.
	// Nil: every address.
	DelegationClients []netip.Prefix
	// UDPSize is the EDNS(0) payload size advertised in responses, and caps
	// the client's own: a UDP response never exceeds either.
	// Default dnswire.DefaultUDPSize (1232); values below 512 mean 512.
	UDPSize uint16
}

// Handler answers queries from the snapshot in a cache.Store. It implements
// dns.Handler and is safe for concurrent use.
//
// Responses reference the snapshot's records directly: neither the handler
// nor miekg/dns's Pack modify a record (Pack writes RDLENGTH into the output
// buffer, not into the RR header), so one record can go out in many
// responses at once.
type Handler struct {
	store  *cache.Store
	opts   Options
	scope  delegationScope
	logger *slog.Logger
	// rotation picks the A/AAAA order for AnswerWire, and the order of
	// reordered delegated answers for HandleRequest and ServeDNS; the
	// server's loops keep counters of their own.
	rotation atomic.Uint32
	// panicLogged is when a panic was last logged (Unix nanoseconds).
	panicLogged atomic.Int64
}

var _ dns.Handler = (*Handler)(nil)

// New returns a handler answering from store. A nil logger discards.
func New(store *cache.Store, opts Options, logger *slog.Logger) *Handler {
	if opts.UDPSize == 0 {
		opts.UDPSize = dnswire.DefaultUDPSize
	}
	opts.UDPSize = max(opts.UDPSize, dns.MinMsgSize)
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{store: store, opts: opts, logger: logger,
		scope: newDelegationScope(opts.DelegationDomains, opts.DelegationClients)}
}

// ServeDNS implements dns.Handler. Requests that get no response (a
// response sent to us) are dropped.
func (h *Handler) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	_, tcp := w.RemoteAddr().(*net.TCPAddr)
	resp, _ := h.respond(req, tcp, clientAddr(w.RemoteAddr()), h.rotation.Add(1))
	if resp == nil {
		return
	}
	wire, err := resp.Pack()
	if err != nil {
		// A response that does not pack still gets an answer.
		h.logger.Debug("pack response", "error", err)
		if wire, err = failure(resp, dns.RcodeServerFailure).Pack(); err != nil {
			h.logger.Debug("pack failure response", "error", err)
			return
		}
	}
	// Write adds the length prefix on TCP.
	if _, err := w.Write(wire); err != nil {
		h.logger.Debug("write response", "error", err, "tcp", tcp)
	}
}

// Source says what answered a query, for the metrics.
type Source uint8

// The sources of an answer.
const (
	// SourceSnapshot: a name in the zone, answered from the snapshot.
	SourceSnapshot Source = iota
	// SourceDelegated: a name outside the zone, answered through
	// Options.Delegator (whatever its rcode).
	SourceDelegated
	// SourceError: no lookup was made: a malformed query (FORMERR), an
	// opcode, EDNS version, class or type that is not served (NOTIMP,
	// BADVERS, REFUSED), a name outside the zone without a delegate
	// (REFUSED), no snapshot yet or a panic (SERVFAIL).
	SourceError
	numSources
)

// HandleRequest returns the response to req, received from src over TCP
// when tcp is true (which sets the size limit), or nil when req must not be
// answered. src decides whether a name outside the zone may be delegated
// (Options.DelegationClients). It never modifies req.
//
// Class handling: IN is answered from the zone; ANY (RFC 1035 QCLASS *) is
// answered from the same IN data but without AA, since the response does not
// claim to cover every class (RFC 6895 §3.1); any other class is REFUSED,
// as this server is authoritative for no zone in it.
func (h *Handler) HandleRequest(req *dns.Msg, src netip.Addr, tcp bool) *dns.Msg {
	resp, _ := h.respond(req, tcp, src, h.rotation.Add(1))
	return resp
}

// respond is HandleRequest, reordering a delegated answer as seed picks;
// it says what answered.
func (h *Handler) respond(req *dns.Msg, tcp bool, src netip.Addr, seed uint32) (*dns.Msg, Source) {
	if req.Response {
		// Answering a response invites loops and reflection.
		return nil, SourceError
	}
	resp := &dns.Msg{MsgHdr: dns.MsgHdr{
		Id:               req.Id,
		Response:         true,
		Opcode:           req.Opcode,
		RecursionDesired: req.RecursionDesired,
		CheckingDisabled: req.CheckingDisabled,
	}}
	if len(req.Question) == 1 {
		resp.Question = req.Question
	}

	e, err := readEDNS(req)
	if err != nil {
		// RFC 6891 §6.1.1: more than one OPT (or a malformed one) is
		// FORMERR, answered without EDNS.
		resp.Rcode = dns.RcodeFormatError
		return resp, SourceError
	}
	// The client subnet goes back with a delegated answer only.
	client := e.subnet
	e.subnet = nil
	source := SourceError
	switch {
	case e.present && e.version != 0:
		resp.Rcode = dns.RcodeBadVers
	case req.Opcode != dns.OpcodeQuery:
		resp.Rcode = dns.RcodeNotImplemented
	case len(req.Question) != 1:
		resp.Rcode = dns.RcodeFormatError
	default:
		var scope uint8
		source, scope = h.answer(req, resp, tcp, src, seed)
		if source == SourceDelegated && client != nil {
			// RFC 7871 §7.2.1: the client's option comes back, with the
			// scope the answer holds for.
			echo := *client
			echo.SourceScope = scope
			e.subnet = &echo
		}
	}
	return h.finish(resp, e, tcp), source
}

// answer fills resp with the answer to req's single question, and returns
// what answered and, for a delegated answer, the scope of its client
// subnet (delegate).
func (h *Handler) answer(req, resp *dns.Msg, tcp bool, src netip.Addr, seed uint32) (Source, uint8) {
	q := req.Question[0]
	switch q.Qclass {
	case dns.ClassINET, dns.ClassANY:
	default:
		resp.Rcode = dns.RcodeRefused
		return SourceError, 0
	}
	switch q.Qtype {
	case dns.TypeOPT:
		// OPT is a pseudo-record; it cannot be asked for (RFC 6891 §6.1.1).
		resp.Rcode = dns.RcodeFormatError
		return SourceError, 0
	case dns.TypeAXFR, dns.TypeIXFR:
		// Zone transfers are not offered: the zone is synthesized from
		// Consul, and every server builds its own.
		resp.Rcode = dns.RcodeRefused
		return SourceError, 0
	}

	snap := h.store.Load()
	if snap == nil {
		resp.Rcode = dns.RcodeServerFailure
		return SourceError, 0
	}
	ans := snap.Lookup(dnswire.LowerName(dns.Fqdn(q.Name)), q.Qtype)
	if !ans.InZone() {
		return h.delegate(req, resp, tcp, src, seed)
	}
	resp.Authoritative = q.Qclass == dns.ClassINET
	resp.Rcode = ans.Rcode()
	resp.Answer, resp.Ns, resp.Extra = ans.Answer, ans.Ns, ans.Extra
	return SourceSnapshot, 0
}

// failure returns a copy of resp's header, question and OPT record with
// rcode, and nothing else.
func failure(resp *dns.Msg, rcode int) *dns.Msg {
	m := &dns.Msg{MsgHdr: resp.MsgHdr}
	m.Authoritative, m.Truncated = false, false
	m.Rcode = rcode
	m.Question = resp.Question
	if opt := resp.IsEdns0(); opt != nil {
		m.Extra = []dns.RR{opt}
	}
	return m
}
