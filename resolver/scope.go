package resolver

import (
	"bytes"
	"net"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// Delegation has a scope and an audience (SPEC §5, §8). Names in the zone
// are answered to every client; a name outside it goes to the Delegator
// only when it is at or under one of Options.DelegationDomains and the
// query comes from an address in Options.DelegationClients. Everything
// else is REFUSED, as by a server that is authoritative for the zone and
// a resolver for nobody else: otherwise regiondns would be an open
// forwarder (an open resolver when Consul has recursors) and a UDP
// amplifier for anyone who can reach it. REFUSED is also what the CoreDNS
// forward plugin's health probe (". IN NS") gets, and any answer counts
// as healthy for it. Both paths apply the same check: the fast path
// answers the refusal itself, without allocating.

// delegationScope is the compiled Options.DelegationDomains and
// DelegationClients; it never changes after New.
type delegationScope struct {
	// domains are the delegated names in lower case with the final dot,
	// as parseQuery writes a name; nil: every name. "." matches every
	// name.
	domains [][]byte
	// clients are the allowed source prefixes; nil: every address.
	clients []netip.Prefix
}

// newDelegationScope compiles the options. Domains are made fully
// qualified and lower case; prefixes holding IPv4-mapped IPv6 addresses
// are not rewritten (sources are unmapped before they are matched).
func newDelegationScope(domains []string, clients []netip.Prefix) delegationScope {
	var s delegationScope
	if domains != nil {
		s.domains = make([][]byte, 0, len(domains))
		for _, d := range domains {
			s.domains = append(s.domains, []byte(strings.ToLower(dns.Fqdn(d))))
		}
	}
	if clients != nil {
		s.clients = make([]netip.Prefix, 0, len(clients))
		for _, p := range clients {
			s.clients = append(s.clients, p.Masked())
		}
	}
	return s
}

// allowsClient reports whether src may have names outside the zone
// delegated. An IPv4 client seen on a dual-stack socket (::ffff:a.b.c.d)
// is matched as IPv4. It does not allocate.
func (s *delegationScope) allowsClient(src netip.Addr) bool {
	if s.clients == nil {
		return true
	}
	src = src.Unmap()
	for _, p := range s.clients {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

// coversName reports whether name (lower case, labels joined by dots, the
// final dot included, no escapes: as parseQuery writes it) is at or under
// one of the delegated domains. It does not allocate.
func (s *delegationScope) coversName(name []byte) bool {
	if s.domains == nil {
		return true
	}
	for _, d := range s.domains {
		if len(d) == 1 && d[0] == '.' {
			return true
		}
		if bytes.HasSuffix(name, d) && (len(name) == len(d) || name[len(name)-len(d)-1] == '.') {
			return true
		}
	}
	return false
}

// coversQuestion is coversName for a name as miekg/dns unpacks it (any
// case, escapes possible): label by label, as the slow path needs.
func (s *delegationScope) coversQuestion(name string) bool {
	if s.domains == nil {
		return true
	}
	for _, d := range s.domains {
		if dns.IsSubDomain(string(d), name) {
			return true
		}
	}
	return false
}

// clientAddr returns the address of a peer as net gives it (zero when it
// is neither UDP nor TCP), unmapped from IPv6 for an IPv4 client.
func clientAddr(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}
