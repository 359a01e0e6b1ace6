package main

import (
	"sync/atomic"

	"fmt"
	"github.com/miekg/dns"
	"log/slog"
	"strings"

	"github.com/regiondns/regiondns/cache"
	"github.com/regiondns/regiondns/resolver"
	"github.com/regiondns/regiondns/zones"
)

// upstreamGroups orders the regions' Consul DNS addresses: the local region
// first, then the other one. local "" means the main region.
func upstreamGroups(cfg *zones.Config, local string) ([][]string, error) {
	first := cfg.Main()
	if local != "" {
		first = nil
		for i := range cfg.Regions {
			if cfg.Regions[i].Name == local {
				first = &cfg.Regions[i]
			}
		}
		if first == nil {
			names := make([]string, len(cfg.Regions))
			for i, r := range cfg.Regions {
				names[i] = r.Name
			}
			return nil, fmt.Errorf("REGIONDNS_LOCAL_REGION: %q is not a region of the zone file; want one of %s",
				local, strings.Join(names, ", "))
		}
	}
	var groups [][]string
	for _, r := range []*zones.Region{first, cfg.Other(first)} {
		if r != nil && len(r.ConsulDNS) > 0 {
			groups = append(groups, r.ConsulDNS)
		}
	}
	return groups, nil
}

// delegator answers out-of-zone names with the forwarder of the running
// configuration; a reload swaps the forwarder without touching the handler.
type delegator struct {
	fwd atomic.Pointer[resolver.Forwarder]
}

func (d *delegator) set(fwd *resolver.Forwarder) { d.fwd.Store(fwd) }

// delegate implements resolver.DelegateFunc; with no forwarder it answers
// REFUSED.
func (d *delegator) delegate(req *dns.Msg, tcp bool) (*dns.Msg, error) {
	fwd := d.fwd.Load()
	if fwd == nil {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeRefused)
		return m, nil
	}
	return fwd.Delegate(req, tcp)
}

// stats returns the running forwarder's upstream counters (none when
// delegation is off). A reload starts them anew.
func (d *delegator) stats() []resolver.UpstreamStats {
	if fwd := d.fwd.Load(); fwd != nil {
		return fwd.Stats()
	}
	return nil
}

// newDelegate builds the forwarder to Consul DNS, or nil when delegation is
// off or no region has a Consul DNS address (out-of-zone names are then
// REFUSED).
func newDelegate(s settings, cfg *zones.Config, lru *cache.LRU, logger *slog.Logger) (*resolver.Forwarder, error) {
	groups, err := upstreamGroups(cfg, s.LocalRegion)
	if err != nil || !s.Delegation {
		return nil, err
	}
	if len(groups) == 0 {
		logger.Warn("no region has consul_dns addresses; names outside the zone will be refused")
		return nil, nil
	}
	return resolver.NewForwarder(resolver.ForwardOptions{Groups: groups, Timeout: s.UpstreamTimeout}, lru, logger), nil
}
