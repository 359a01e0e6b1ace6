package cache

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/zones"
)

const zone = "pg.example.internal."

// testConfig is a zone with an in-zone and an out-of-zone name server and
// four clusters: orders (direct, IPv4 and IPv6), pay (bouncer per node),
// split (split brain, stale) and billing (no decision yet).
func testConfig() *zones.Config {
	return &zones.Config{
		Zone: zone,
		SOA: zones.SOA{
			MName: "ns1." + zone, RName: "hostmaster.example.internal.",
			Refresh: 3600, Retry: 600, Expire: 86400, Minimum: 5,
		},
		NS: []zones.NameServer{
			{Name: "ns1." + zone, Addresses: []string{"10.0.0.53", "fd00::53"}},
			{Name: "ns.other.example.", Addresses: []string{"192.0.2.1"}},
		},
		TTL: zones.TTL{RW: 5, RO: 10, Passive: 15, Negative: 1, TXT: 20, SOA: 60, NS: 300},
		Regions: []zones.Region{
			{Name: "main", Role: zones.RoleMain, Datacenter: "dc1"},
			{Name: "standby", Role: zones.RoleStandby, Datacenter: "dc2"},
		},
		Clusters: []zones.Cluster{
			{Label: "orders", Layout: policy.LayoutDirect},
			{Label: "pay", Layout: policy.LayoutBouncerPerNode},
			{Label: "split", Layout: policy.LayoutDirect},
			{Label: "billing", Layout: policy.LayoutDirect},
		},
	}
}

func ep(target, region, addr string, port uint16) policy.Endpoint {
	return policy.Endpoint{
		Target: target, Region: region, Member: target, Node: target,
		Address: netip.MustParseAddr(addr), Port: port,
	}
}

func testDecisions() map[string]policy.Decision {
	return map[string]policy.Decision{
		"orders": {
			Active: "main", Passive: "standby",
			Main:    policy.RegionView{Name: "main", State: policy.StatePrimary, Leader: "pg-1", Timeline: 3},
			Standby: policy.RegionView{Name: "standby", State: policy.StateStandby, Leader: "pg-5", Timeline: 3},
			Reason:  "main region is primary",
			RW:      []policy.Endpoint{ep("pg-1", "main", "10.0.0.1", 5432)},
			RO: []policy.Endpoint{
				ep("pg-2", "main", "10.0.0.2", 5432),
				ep("pg-3", "main", "fd00::3", 5432),
				ep("pg-4", "main", "10.0.0.4", 5433),
			},
			PassiveRW: []policy.Endpoint{ep("pg-5", "standby", "10.1.0.5", 5432)},
		},
		"pay": {
			Active: "main", Passive: "standby",
			Main:    policy.RegionView{Name: "main", State: policy.StatePrimary, Leader: "pay-1"},
			Standby: policy.RegionView{Name: "standby", State: policy.StateStandby, Leader: "pay-3"},
			Reason:  "main region is primary",
			RW:      []policy.Endpoint{ep("pay-1", "main", "10.2.0.1", 6432)},
			// ro falls back to the leader: the same target as rw.
			RO:        []policy.Endpoint{ep("pay-1", "main", "10.2.0.1", 6432)},
			PassiveRW: []policy.Endpoint{ep("pay-3", "standby", "10.3.0.3", 6432)},
			PassiveRO: []policy.Endpoint{ep("pay-3", "standby", "10.3.0.3", 6432)},
		},
		"split": {
			Active: "standby", Passive: "main",
			Main:       policy.RegionView{Name: "main", State: policy.StatePrimary, Leader: "s-1", Timeline: 4, Stale: true},
			Standby:    policy.RegionView{Name: "standby", State: policy.StatePrimary, Leader: "s-2", Timeline: 5},
			SplitBrain: true, Stale: true,
			Reason:    "split brain: both regions have a leader; promoted standby region wins on timeline 5 > 4",
			RW:        []policy.Endpoint{ep("s-2", "standby", "10.5.0.2", 5432)},
			RO:        []policy.Endpoint{ep("s-2", "standby", "10.5.0.2", 5432)},
			PassiveRW: []policy.Endpoint{ep("s-1", "main", "10.4.0.1", 5432)},
			PassiveRO: []policy.Endpoint{ep("s-1", "main", "10.4.0.1", 5432)},
		},
		"not-configured": {RW: []policy.Endpoint{ep("x", "main", "10.9.9.9", 1)}},
	}
}

func testSnapshot(tb testing.TB) *Snapshot {
	tb.Helper()
	return Build(testConfig(), testDecisions(), 7)
}

// rrStrings returns the presentation format of rrs.
func rrStrings(rrs []dns.RR) []string {
	out := make([]string, len(rrs))
	for i, rr := range rrs {
		out[i] = rr.String()
	}
	return out
}
