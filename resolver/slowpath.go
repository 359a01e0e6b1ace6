package resolver

import (
	"fmt"
	"net/netip"
	"runtime/debug"
	"time"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/internal/dnswire"
)

// panicLogEvery bounds the error logs of panics: one per minute, with its
// stack; the rest are only counted.
const panicLogEvery = time.Minute

// answerSlow answers a message from src the fast path did not, as miekg/dns's server
// and ServeDNS answer it: a message shorter than a
// header or a response is dropped (nil); one longer than maxQueryLen is
// answered FORMERR from its header, unparsed; one whose sections do not hold
// what its header counts is cut to its header (sanitize.go); one that does
// not unpack is answered FORMERR as miekg/dns answers it; any other goes
// through HandleRequest and is packed, as the query of client src, with a
// delegated answer reordered as seed picks (respond). It allocates. A
// panic is recovered, logged (once a minute) and answered SERVFAIL.
//
// msg may be modified.
func (h *Handler) answerSlow(msg []byte, tcp bool, src netip.Addr, seed uint32) (wire []byte, o outcome) {
	if len(msg) < dnswire.HeaderLen || msg[2]&flagQR != 0 {
		// Answering a response invites loops and reflection.
		return nil, outcome{dropped: true}
	}
	if len(msg) > maxQueryLen {
		// No legal query needs more: parsing it would only spend memory.
		wire = make([]byte, shortReplyMax)
		n, _ := h.shortReply(msg[:dnswire.HeaderLen], wire, dns.RcodeFormatError, false)
		return wire[:n], outcome{rcode: dns.RcodeFormatError, source: SourceError}
	}
	msg = sanitize(msg)
	req := new(dns.Msg)
	defer func() {
		if r := recover(); r != nil {
			h.logPanic(r)
			wire, o = h.servFail(req), outcome{rcode: dns.RcodeServerFailure, source: SourceError, panicked: true}
			if len(req.Question) == 1 {
				o.qtype = req.Question[0].Qtype
			}
		}
	}()
	var resp *dns.Msg
	if err := req.Unpack(msg); err != nil {
		resp = formErr(req)
		o.source = SourceError
	} else if resp, o.source = h.respond(req, tcp, src, seed); resp == nil {
		return nil, outcome{dropped: true}
	}
	wire, err := resp.Pack()
	if err != nil {
		// A response that does not pack still gets an answer.
		h.logger.Debug("pack response", "error", err)
		resp = failure(resp, dns.RcodeServerFailure)
		if wire, err = resp.Pack(); err != nil {
			h.logger.Debug("pack failure response", "error", err)
			return nil, outcome{dropped: true}
		}
	}
	o.rcode, o.tc = resp.Rcode, resp.Truncated
	if len(req.Question) == 1 {
		o.qtype = req.Question[0].Qtype
	}
	return wire, o
}

// formErr turns req, a message that did not unpack, into the FORMERR
// response miekg/dns's server sends for it: the ID and the questions read
// before the error, opcode QUERY, RD and CD as sent.
func formErr(req *dns.Msg) *dns.Msg {
	req.SetRcodeFormatError(req)
	req.Zero = false
	req.Ns, req.Answer, req.Extra = nil, nil, nil
	return req
}

// servFail returns the packed SERVFAIL response to req (which may be only
// partly unpacked), with an OPT when req had a usable one.
func (h *Handler) servFail(req *dns.Msg) []byte {
	m := &dns.Msg{MsgHdr: dns.MsgHdr{
		Id: req.Id, Response: true, Opcode: req.Opcode, Rcode: dns.RcodeServerFailure,
		RecursionDesired: req.RecursionDesired, CheckingDisabled: req.CheckingDisabled,
	}}
	if len(req.Question) == 1 {
		m.Question = req.Question
	}
	if e, err := readEDNS(req); err == nil && e.present {
		m.SetEdns0(h.opts.UDPSize, e.do)
	}
	wire, err := m.Pack()
	if err != nil {
		m.Question, m.Extra = nil, nil
		wire, _ = m.Pack()
	}
	return wire
}

// logPanic logs a recovered panic with its stack, at most once per
// panicLogEvery.
func (h *Handler) logPanic(r any) {
	now := time.Now().UnixNano()
	last := h.panicLogged.Load()
	if last != 0 && now-last < int64(panicLogEvery) || !h.panicLogged.CompareAndSwap(last, now) {
		return
	}
	h.logger.Error("panic answering a query; answered SERVFAIL (logged once a minute, counted in regiondns_dns_panics_recovered_total)",
		"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
}
