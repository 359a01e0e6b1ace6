package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/forward"
	"github.com/regiondns/regiondns/resolver"
	"github.com/regiondns/regiondns/zones"
)

// minCacheBytes is the smallest REGIONDNS_CACHE_MAX_BYTES: a few dozen
// answers of the largest size cached.
const minCacheBytes = 1 << 20

// delegationScope returns the names delegated to Consul DNS
// (REGIONDNS_DELEGATION_DOMAINS: fully qualified, lower case) and the
// clients that may have them (REGIONDNS_DELEGATION_CLIENTS: a prefix, or
// an address standing for itself), or an error naming the variable and
// the entry.
func (s settings) delegationScope() ([]string, []netip.Prefix, error) {
	var domains []string
	for _, d := range s.DelegationDomains {
		d = strings.ToLower(strings.TrimSpace(d))
		if _, ok := dns.IsDomainName(d); !ok || d == "" {
			return nil, nil, fmt.Errorf("REGIONDNS_DELEGATION_DOMAINS: %q is not a domain name; want names such as consul. (a comma-separated list)", d)
		}
		domains = append(domains, dns.Fqdn(d))
	}
	if len(domains) == 0 {
		return nil, nil, errors.New("REGIONDNS_DELEGATION_DOMAINS is empty; want at least one domain (consul.), or REGIONDNS_DELEGATION=false to refuse every name outside the zone")
	}
	var clients []netip.Prefix
	for _, c := range s.DelegationClients {
		c = strings.TrimSpace(c)
		p, err := netip.ParsePrefix(c)
		if err != nil {
			a, aerr := netip.ParseAddr(c)
			if aerr != nil || a.Zone() != "" {
				return nil, nil, fmt.Errorf("REGIONDNS_DELEGATION_CLIENTS: %q is not valid; want CIDR prefixes (10.0.0.0/8, fc00::/7) or addresses, comma-separated", c)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		clients = append(clients, p.Masked())
	}
	if len(clients) == 0 {
		return nil, nil, errors.New("REGIONDNS_DELEGATION_CLIENTS is empty; want at least one prefix, or REGIONDNS_DELEGATION=false to refuse every name outside the zone")
	}
	return domains, clients, nil
}

// handlerOptions returns the resolver's options: the delegator (nil:
// delegation off, names outside the zone are REFUSED) and the scope of
// delegation.
func handlerOptions(s settings, d resolver.Delegator) (resolver.Options, error) {
	domains, clients, err := s.delegationScope()
	return resolver.Options{Delegator: d, DelegationDomains: domains, DelegationClients: clients}, err
}

// upstreamGroups returns the Consul DNS upstream groups of cfg, the local
// region's first, and the local region's datacenter, which names without
// one are asked for.
func upstreamGroups(s settings, cfg *zones.Config) ([][]string, string, error) {
	groups, err := forward.Groups(cfg, s.LocalRegion)
	if err != nil {
		return nil, "", fmt.Errorf("REGIONDNS_LOCAL_REGION: %w", err)
	}
	dc, err := forward.Datacenter(cfg, s.LocalRegion)
	if err != nil {
		return nil, "", fmt.Errorf("REGIONDNS_LOCAL_REGION: %w", err)
	}
	return groups, dc, nil
}

// newForwarder returns the forwarder to Consul DNS, or nil when delegation
// is off (names outside the zone are then REFUSED). It lives as long as
// the process: a reload gives it new upstreams (reloadForwarder).
func newForwarder(s settings, cfg *zones.Config, logger *slog.Logger) (*forward.Forwarder, error) {
	groups, dc, err := upstreamGroups(s, cfg)
	if err != nil || !s.Delegation {
		return nil, err
	}
	domains, _, err := s.delegationScope()
	if err != nil {
		return nil, err
	}
	lru := forward.NewLRU(forward.LRUOptions{Size: s.CacheSize, MaxTTL: s.CacheMaxTTL, MaxBytes: s.CacheMaxBytes})
	// The first delegated domain is Consul's: its SOA probes a silent
	// agent.
	return forward.New(forward.Options{Groups: groups, Datacenter: dc, Domains: domains,
		Timeout: s.UpstreamTimeout, ProbeName: domains[0]}, lru, logger), nil
}

// reloadForwarder returns the step a reload takes for delegation: the new
// configuration's upstream groups are checked with the rest of it (one
// naming no local region fails the reload), and given to fwd in place once
// the reload commits, so that the upstreams that stay keep their health
// and metrics, with the local region's datacenter. fwd nil (delegation
// off) only checks.
func reloadForwarder(s settings, fwd *forward.Forwarder) func(*zones.Config) (func(), error) {
	return func(cfg *zones.Config) (func(), error) {
		groups, dc, err := upstreamGroups(s, cfg)
		if err != nil {
			return nil, err
		}
		return func() {
			if fwd != nil {
				fwd.SetUpstreams(groups)
				fwd.SetDatacenter(dc)
			}
		}, nil
	}
}
