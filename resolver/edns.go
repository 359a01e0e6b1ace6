package resolver

import (
	"errors"

	"github.com/miekg/dns"
)

// Malformed EDNS(0) in a request; both are answered with FORMERR.
var (
	errMultipleOPT = errors.New("more than one OPT record")
	errOPTPlace    = errors.New("OPT record with a non-root owner or outside the additional section")
)

// edns is what a request's OPT record asks for.
type edns struct {
	present bool
	version uint8
	do      bool
	size    uint16
	// subnet is the request's client subnet option (RFC 7871) as read;
	// for finish, the option to echo (respond keeps it for a delegated
	// answer only, with the answer's scope).
	subnet *dns.EDNS0_SUBNET
}

// readEDNS returns the request's EDNS(0) parameters, or an error when its
// OPT records are malformed (RFC 6891 §6.1.1).
func readEDNS(req *dns.Msg) (edns, error) {
	var e edns
	for _, rr := range req.Extra {
		opt, ok := rr.(*dns.OPT)
		if !ok {
			continue
		}
		if e.present {
			return edns{}, errMultipleOPT
		}
		if opt.Hdr.Name != "." {
			return edns{}, errOPTPlace
		}
		e = edns{present: true, version: opt.Version(), do: opt.Do(), size: opt.UDPSize()}
		for _, o := range opt.Option {
			if s, ok := o.(*dns.EDNS0_SUBNET); ok {
				e.subnet = s
			}
		}
	}
	for _, section := range [][]dns.RR{req.Answer, req.Ns} {
		for _, rr := range section {
			if rr.Header().Rrtype == dns.TypeOPT {
				return edns{}, errOPTPlace
			}
		}
	}
	return e, nil
}

// finish adds our OPT record when the request had one and makes the response
// fit what the transport and the client accept.
//
// The OPT carries version 0, our payload size and the client's DO bit, and
// no options but the client subnet e holds (a delegated answer's): unknown
// options are ignored, never echoed. The extended part of the rcode
// (BADVERS) is written into it by Pack.
func (h *Handler) finish(resp *dns.Msg, e edns, tcp bool) *dns.Msg {
	limit := dns.MinMsgSize
	if e.present {
		opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		opt.SetUDPSize(h.opts.UDPSize)
		if e.do {
			opt.SetDo()
		}
		if e.subnet != nil {
			opt.Option = []dns.EDNS0{e.subnet}
		}
		// resp.Extra may be a snapshot slice: it is clipped, so this
		// append copies it.
		resp.Extra = append(resp.Extra, opt)
		// RFC 6891 §6.2.5: sizes below 512 mean 512.
		limit = int(min(max(e.size, dns.MinMsgSize), h.opts.UDPSize))
	}
	if tcp {
		limit = dns.MaxMsgSize
	}
	fit(resp, limit)
	return resp
}

// fit makes m pack into limit bytes. The additional section goes first and
// without TC: it is optional data (RFC 2181 §9), and the SRV targets resolve
// from this server anyway. If the answer or authority still does not fit,
// both go and TC is set, so that the client retries over TCP instead of
// using a partial RRset; the question and the OPT record stay.
func fit(m *dns.Msg, limit int) {
	m.Compress = true
	if m.Len() <= limit {
		return
	}
	opt := m.IsEdns0()
	m.Extra = nil
	if opt != nil {
		m.Extra = []dns.RR{opt}
	}
	if m.Len() <= limit {
		return
	}
	m.Truncated = true
	m.Answer, m.Ns = nil, nil
}
