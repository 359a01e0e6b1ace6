package forward

import (
	"fmt"
	"strings"

	"github.com/regiondns/regiondns/zones"
)

// Groups returns the Consul DNS addresses of cfg's regions as upstream
// groups (Options.Groups, SetUpstreams): the region named local first (""
// means the main region), then the other one. A region without consul_dns
// addresses is left out; no group at all means no upstream. local must
// name a region of cfg.
func Groups(cfg *zones.Config, local string) ([][]string, error) {
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
			return nil, fmt.Errorf("%q is not a region of the zone file; want one of %s",
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
