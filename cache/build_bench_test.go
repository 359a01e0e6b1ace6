package cache

import (
	"fmt"
	"testing"

	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/zones"
)

// fleet returns a configuration and decisions for n clusters of three
// members in the main region and two in the standby region.
func fleet(n int) (*zones.Config, map[string]policy.Decision) {
	cfg := testConfig()
	cfg.Clusters = nil
	ds := make(map[string]policy.Decision, n)
	for i := range n {
		label := fmt.Sprintf("c%04d", i)
		cfg.Clusters = append(cfg.Clusters, zones.Cluster{Label: label, Layout: policy.LayoutDirect})
		a, b := i/250, i%250+1
		ds[label] = policy.Decision{
			Active: "main", Passive: "standby",
			Main:    policy.RegionView{Name: "main", State: policy.StatePrimary, Leader: "pg-1", Timeline: 3},
			Standby: policy.RegionView{Name: "standby", State: policy.StateStandby, Leader: "pg-4", Timeline: 3},
			Reason:  "main region is primary",
			RW:      []policy.Endpoint{ep("pg-1", "main", fmt.Sprintf("10.%d.%d.1", a, b), 5432)},
			RO: []policy.Endpoint{
				ep("pg-2", "main", fmt.Sprintf("10.%d.%d.2", a, b), 5432),
				ep("pg-3", "main", fmt.Sprintf("10.%d.%d.3", a, b), 5432),
			},
			PassiveRW: []policy.Endpoint{ep("pg-4", "standby", fmt.Sprintf("10.%d.%d.4", a+100, b), 5432)},
			PassiveRO: []policy.Endpoint{ep("pg-5", "standby", fmt.Sprintf("10.%d.%d.5", a+100, b), 5432)},
		}
	}
	return cfg, ds
}

// BenchmarkBuild builds the snapshot of a fleet of 1,000 clusters, wire
// templates included (issue #4: a rebuild under 50 ms).
func BenchmarkBuild(b *testing.B) {
	cfg, ds := fleet(1000)
	b.ReportAllocs()
	for b.Loop() {
		Build(cfg, ds, 1)
	}
}

// BenchmarkWireTemplates packs the templates of the same fleet: the part of
// BenchmarkBuild the fast path costs.
func BenchmarkWireTemplates(b *testing.B) {
	cfg, ds := fleet(1000)
	s := Build(cfg, ds, 1)
	b.ReportAllocs()
	for b.Loop() {
		var wb wireBuilder
		wb.negative(s.zone, s.negative[0])
		for name, n := range s.names {
			wb.node(name, n)
		}
	}
}
