package forward

import (
	"strings"

	"github.com/miekg/dns"
)

// Names without a datacenter.
//
// Consul DNS answers a name that names no datacenter for the datacenter of
// the agent asked: x.service.consul from an agent of dc2 is dc2's x. When
// the local region's agents are down and the other region's answer, the
// answer would silently change datacenter. So a name without a datacenter
// is asked for the local datacenter, x.service.<local dc>.consul, of every
// agent: the local region's agents answer it exactly as they answer
// x.service.consul (the datacenter they would assume is the one named),
// and the other region's agents answer for the local datacenter too,
// through the WAN federation. The answer's names are written back to the
// client's question, so the client sees the answer to what it asked.

// DefaultDomain is the Consul DNS domain (Consul's `domain`) when
// Options.Domains is empty.
const DefaultDomain = "consul."

// The labels that name a kind of Consul DNS lookup: the datacenter, when
// given, follows them (`[tag.]<service>.service[.<dc>].<domain>`,
// `<node>.node[.<dc>].<domain>`, `<query>.query[.<dc>].<domain>`,
// `<hex>.addr[.<dc>].<domain>`, and the connect and ingress forms of
// services). The label after `virtual` is a peer for Consul, never a
// datacenter: those names are not rewritten.
var consulKinds = map[string]bool{"service": true, "node": true, "query": true, "addr": true, "connect": true, "ingress": true}

// withDatacenter returns name, lower case and fully qualified, with the
// datacenter dc inserted where Consul DNS reads it, when name is a Consul
// DNS lookup under one of domains that names no datacenter (nor peer,
// partition or namespace); "" when it is not, or dc is "". It reads the
// name as Consul's DNS server does: the last label (from the right) that
// names a kind of lookup, or, for SRV, the last label starting with "_"
// (RFC 2782 `_<service>._<tag>[.<dc>].<domain>`), with at least one label
// before it and nothing between it and the domain.
func withDatacenter(name string, qtype uint16, dc string, domains []string) string {
	if dc == "" {
		return ""
	}
	rest, domain := "", ""
	for _, d := range domains {
		if r, ok := strings.CutSuffix(name, "."+d); ok && r != "" {
			rest, domain = r, d
			break
		}
	}
	if rest == "" {
		return ""
	}
	labels := dns.SplitDomainName(rest + ".")
	for i := len(labels) - 1; i >= 0; i-- {
		l := labels[i]
		switch {
		case consulKinds[l]:
			if i == 0 || i != len(labels)-1 {
				return ""
			}
		case l == "virtual":
			return ""
		case qtype == dns.TypeSRV && strings.HasPrefix(l, "_"):
			if i != len(labels)-1 {
				return ""
			}
		default:
			continue
		}
		return rest + "." + dc + "." + domain
	}
	return ""
}

// rewriteOwners gives the records of m whose owner name is asked, or ends
// with "."+asked, the name client in its place (the same prefix before
// it): the answer to the name sent upstream becomes the answer to the
// client's. Names are compared case-insensitively. m's records are
// modified.
func rewriteOwners(m *dns.Msg, asked, client string) {
	for _, section := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range section {
			h := rr.Header()
			switch n := len(h.Name) - len(asked); {
			case n == 0 && strings.EqualFold(h.Name, asked):
				h.Name = client
			case n > 0 && h.Name[n-1] == '.' && strings.EqualFold(h.Name[n:], asked):
				h.Name = h.Name[:n] + client
			}
		}
	}
}
