package zones

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/regiondns/regiondns/policy"
)

// config converts a defaulted, valid fileConfig to a Config with every name
// canonical. It shares no slice or map with fc.
func (fc *fileConfig) config() *Config {
	cfg := &Config{
		Zone: canonicalName(fc.Zone),
		SOA: SOA{
			MName:   canonicalName(fc.SOA.MName),
			RName:   canonicalName(fc.SOA.RName),
			Refresh: uint32(*fc.SOA.Refresh),
			Retry:   uint32(*fc.SOA.Retry),
			Expire:  uint32(*fc.SOA.Expire),
			Minimum: uint32(*fc.SOA.Minimum),
		},
		TTL: TTL{
			RW:       uint32(*fc.TTL.RW),
			RO:       uint32(*fc.TTL.RO),
			Passive:  uint32(*fc.TTL.Passive),
			Negative: uint32(*fc.TTL.Negative),
			TXT:      uint32(*fc.TTL.TXT),
			SOA:      uint32(*fc.TTL.SOA),
			NS:       uint32(*fc.TTL.NS),
		},
		WarningIsPassing: fc.WarningIsPassing,
		ControlPrefix:    strings.Trim(*fc.ControlPrefix, "/"),
	}
	for _, ns := range fc.NS {
		n := NameServer{Name: canonicalName(ns.Name)}
		for _, a := range ns.Addresses {
			n.Addresses = append(n.Addresses, netip.MustParseAddr(a).String())
		}
		cfg.NS = append(cfg.NS, n)
	}
	for _, r := range fc.Regions {
		region := Region{
			Name:       r.Name,
			Role:       RegionRole(r.Role),
			Datacenter: r.Datacenter,
			ConsulHTTP: slices.Clone(r.ConsulHTTP),
			ConsulDNS:  slices.Clone(r.ConsulDNS),
		}
		if len(region.ConsulDNS) == 0 {
			region.ConsulDNS = nil
		}
		if r.TokenFile != nil {
			region.TokenFile = *r.TokenFile
		}
		cfg.Regions = append(cfg.Regions, region)
	}
	for _, c := range fc.Clusters {
		var maxLag int64
		if c.ROMaxLag != nil {
			maxLag, _ = parseBytes(string(*c.ROMaxLag))
		}
		var settle time.Duration
		if c.ROLagSettle != nil {
			settle = time.Duration(*c.ROLagSettle) * time.Second
		}
		cfg.Clusters = append(cfg.Clusters, Cluster{
			Label:     c.Label,
			Scopes:    maps.Clone(c.Scopes),
			Namespace: strings.Trim(*c.Namespace, "/"),
			Layout:    policy.Layout(c.Layout),
			PgBouncer: PgBouncer{
				Service:   c.PgBouncer.Service,
				RWService: c.PgBouncer.RWService,
				ROService: c.PgBouncer.ROService,
				RWTag:     c.PgBouncer.RWTag,
				ROTag:     c.PgBouncer.ROTag,
			},
			Tags: policy.RoleTags{
				Leader:        slices.Clone(c.Tags.Leader),
				Replica:       slices.Clone(c.Tags.Replica),
				StandbyLeader: slices.Clone(c.Tags.StandbyLeader),
			},
			ROFallback:         policy.ROFallback(c.ROFallback),
			ROMaxLag:           maxLag,
			RORequireStreaming: c.RORequireStreaming,
			ROLagSettle:        settle,
		})
	}
	return cfg
}
