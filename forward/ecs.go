package forward

import (
	"net"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// EDNS Client Subnet (RFC 7871).
//
// Consul DNS sorts the answer of a prepared query with `Near: "_ip"` for
// the client: it looks for the node whose address is the query's source,
// the address of the client subnet option when the query has one, and
// puts the instances nearest to it first. Asked by regiondns, Consul would
// see regiondns's address; so every upstream query carries the client's
// subnet: the client's own option, passed on as it is (the client chose
// what to reveal; Consul matches node addresses exactly, so a client that
// wants its own node found sends its full address), or else the client's
// source address cut to SourcePrefixV4 or SourcePrefixV6 bits, as RFC 7871
// §11.1 advises for privacy.
//
// Only names under Consul's domains (Options.Domains) carry it: Consul
// passes a query it does not answer itself on to its recursors as it
// came, and a client's subnet has no business on the internet.
//
// The answer says, with its SCOPE PREFIX-LENGTH, for whom it holds:
// Consul gives 0 (every client) to everything but prepared queries, and
// to those the prefix length it was asked with. A scope of 0, or an answer
// without the option, is cached once for every client; any other scope is
// cached for the subnet asked only, and found again by the next query from
// that subnet.

// The prefix lengths of a client subnet built from a client's source
// address (RFC 7871 §11.1: a /24 for IPv4 and a /56 for IPv6 keep the
// client's own address private).
const (
	SourcePrefixV4 = 24
	SourcePrefixV6 = 56
)

// clientSubnet returns the subnet to ask upstream for: the client's own
// option opt when it has one (a FAMILY of 0, which dig sends with a prefix
// of 0, is no subnet), else src cut to SourcePrefixV4 or SourcePrefixV6
// bits; the zero Prefix when neither is given.
func clientSubnet(opt *dns.EDNS0_SUBNET, src netip.Addr) netip.Prefix {
	if opt != nil {
		var a netip.Addr
		switch opt.Family {
		case 1:
			if ip := opt.Address.To4(); ip != nil {
				a = netip.AddrFrom4([4]byte(ip))
			}
		case 2:
			if ip := opt.Address.To16(); ip != nil {
				a = netip.AddrFrom16([16]byte(ip))
			}
		}
		if a.IsValid() && int(opt.SourceNetmask) <= a.BitLen() {
			p, _ := a.Prefix(int(opt.SourceNetmask))
			return p
		}
		return netip.Prefix{}
	}
	src = src.Unmap()
	switch {
	case src.Is4():
		p, _ := src.Prefix(SourcePrefixV4)
		return p
	case src.Is6():
		p, _ := src.WithZone("").Prefix(SourcePrefixV6)
		return p
	}
	return netip.Prefix{}
}

// subnetOption returns the client subnet option of opt, or nil.
func subnetOption(opt *dns.OPT) *dns.EDNS0_SUBNET {
	if opt == nil {
		return nil
	}
	for _, o := range opt.Option {
		if s, ok := o.(*dns.EDNS0_SUBNET); ok {
			return s
		}
	}
	return nil
}

// newSubnetOption returns the client subnet option for p with scope.
func newSubnetOption(p netip.Prefix, scope uint8) *dns.EDNS0_SUBNET {
	family := uint16(1)
	if p.Addr().Is6() {
		family = 2
	}
	return &dns.EDNS0_SUBNET{
		Code:          dns.EDNS0SUBNET,
		Family:        family,
		SourceNetmask: uint8(p.Bits()),
		SourceScope:   scope,
		Address:       net.IP(p.Addr().AsSlice()),
	}
}

// scopeOf returns the SCOPE PREFIX-LENGTH of resp, the answer to a query
// that asked for the subnet sent (the zero Prefix: none): 0 when it has
// no client subnet option or none was asked for. It reports false when
// resp's option does not echo the FAMILY, SOURCE PREFIX-LENGTH and
// ADDRESS asked for: RFC 7871 §7.3 has such a response dropped.
func scopeOf(resp *dns.Msg, sent netip.Prefix) (uint8, bool) {
	got := subnetOption(resp.IsEdns0())
	if got == nil || !sent.IsValid() {
		return 0, true
	}
	if got.SourceNetmask != uint8(sent.Bits()) || clientSubnet(got, netip.Addr{}) != sent {
		return 0, false
	}
	return got.SourceScope, true
}

// inDomains reports whether name (lower case, fully qualified) is one of
// domains or below one.
func inDomains(name string, domains []string) bool {
	for _, d := range domains {
		if name == d || strings.HasSuffix(name, "."+d) {
			return true
		}
	}
	return false
}
