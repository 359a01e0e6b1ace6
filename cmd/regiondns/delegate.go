package main

import (
	"fmt"
	"log/slog"

	"github.com/regiondns/regiondns/forward"
	"github.com/regiondns/regiondns/zones"
)

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
	lru := forward.NewLRU(forward.LRUOptions{Size: s.CacheSize, MaxTTL: s.CacheMaxTTL})
	return forward.New(forward.Options{Groups: groups, Datacenter: dc, Timeout: s.UpstreamTimeout}, lru, logger), nil
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
