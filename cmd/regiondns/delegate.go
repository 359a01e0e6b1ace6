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
	fn atomic.Pointer[resolver.DelegateFunc]
}

func (d *delegator) set(fn resolver.DelegateFunc) {
	if fn == nil {
		d.fn.Store(nil)
		return
	}
	d.fn.Store(&fn)
}

// delegate implements resolver.DelegateFunc; with no forwarder it returns
// ErrRefused so the handler refuses the name.
func (d *delegator) delegate(req *dns.Msg, tcp bool) (*dns.Msg, error) {
	fn := d.fn.Load()
	if fn == nil {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeRefused)
		return m, nil
	}
	return (*fn)(req, tcp)
}

// newDelegate builds the forwarder to Consul DNS, or nil when delegation is
// off or no region has a Consul DNS address (out-of-zone names are then
// REFUSED).
func newDelegate(s settings, cfg *zones.Config, lru *cache.LRU, logger *slog.Logger) (resolver.DelegateFunc, error) {
	groups, err := upstreamGroups(cfg, s.LocalRegion)
	if err != nil || !s.Delegation {
		return nil, err
	}
	if len(groups) == 0 {
		logger.Warn("no region has consul_dns addresses; names outside the zone will be refused")
		return nil, nil
	}
	fwd := resolver.NewForwarder(resolver.ForwardOptions{Groups: groups, Timeout: s.UpstreamTimeout}, lru, logger)
	return fwd.Delegate, nil
}
