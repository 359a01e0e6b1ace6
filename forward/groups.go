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
	first, err := localRegion(cfg, local)
	if err != nil {
		return nil, err
	}
	var groups [][]string
	for _, r := range []*zones.Region{first, cfg.Other(first)} {
		if r != nil && len(r.ConsulDNS) > 0 {
			groups = append(groups, r.ConsulDNS)
		}
	}
	return groups, nil
}

// Datacenter returns the Consul datacenter of the region named local (""
// means the main region): the datacenter that names without one are asked
// for (Options.Datacenter, SetDatacenter). local must name a region of
// cfg.
func Datacenter(cfg *zones.Config, local string) (string, error) {
	r, err := localRegion(cfg, local)
	if err != nil || r == nil {
		return "", err
	}
	return r.Datacenter, nil
}

// localRegion returns the region of cfg named local, or the main region
// when local is "".
func localRegion(cfg *zones.Config, local string) (*zones.Region, error) {
	if local == "" {
		return cfg.Main(), nil
	}
	for i := range cfg.Regions {
		if cfg.Regions[i].Name == local {
			return &cfg.Regions[i], nil
		}
	}
	names := make([]string, len(cfg.Regions))
	for i, r := range cfg.Regions {
		names[i] = r.Name
	}
	return nil, fmt.Errorf("%q is not a region of the zone file; want one of %s",
		local, strings.Join(names, ", "))
}
