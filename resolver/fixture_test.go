package resolver

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/cache"
	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/zones"
)

const zone = "pg.example.internal."

// bigCount endpoints do not fit a 512-byte UDP answer.
const bigCount = 40

func testConfig() *zones.Config {
	return &zones.Config{
		Zone: zone,
		SOA: zones.SOA{
			MName: "ns1." + zone, RName: "hostmaster.example.internal.",
			Refresh: 3600, Retry: 600, Expire: 86400, Minimum: 5,
		},
		NS:  []zones.NameServer{{Name: "ns1." + zone, Addresses: []string{"10.0.0.53"}}},
		TTL: zones.TTL{RW: 5, RO: 10, Passive: 15, Negative: 1, TXT: 20, SOA: 60, NS: 300},
		Regions: []zones.Region{
			{Name: "main", Role: zones.RoleMain, Datacenter: "dc1"},
			{Name: "standby", Role: zones.RoleStandby, Datacenter: "dc2"},
		},
		Clusters: []zones.Cluster{
			{Label: "orders", Layout: policy.LayoutDirect},
			{Label: "pay", Layout: policy.LayoutBouncerPerNode},
			{Label: "split", Layout: policy.LayoutDirect},
			{Label: "big", Layout: policy.LayoutPoolFleet},
			{Label: "billing", Layout: policy.LayoutDirect},
		},
	}
}

func ep(target, region, addr string, port uint16) policy.Endpoint {
	return policy.Endpoint{Target: target, Region: region, Member: target, Node: target, Address: netip.MustParseAddr(addr), Port: port}
}

func testDecisions() map[string]policy.Decision {
	mainPrimary := policy.RegionView{Name: "main", State: policy.StatePrimary, Leader: "pg-1", Timeline: 3}
	standby := policy.RegionView{Name: "standby", State: policy.StateStandby, Leader: "pg-5", Timeline: 3}
	big := policy.Decision{Active: "main", Passive: "standby", Main: mainPrimary, Standby: standby, Reason: "main region is primary"}
	for i := range bigCount {
		big.RO = append(big.RO, ep(fmt.Sprintf("pool-%02d", i), "main", fmt.Sprintf("10.8.0.%d", i+1), 6432))
		if i < 7 {
			big.RW = append(big.RW, ep(fmt.Sprintf("pool-%02d", i), "main", fmt.Sprintf("10.8.0.%d", i+1), 6432))
		}
		big.PassiveRO = append(big.PassiveRO, ep(fmt.Sprintf("pool-%02d", i), "standby", fmt.Sprintf("fd00::8:%x", i+1), 6432))
	}
	return map[string]policy.Decision{
		"orders": {
			Active: "main", Passive: "standby", Main: mainPrimary, Standby: standby,
			Reason: "main region is primary",
			RW:     []policy.Endpoint{ep("pg-1", "main", "10.0.0.1", 5432)},
			RO: []policy.Endpoint{
				ep("pg-2", "main", "10.0.0.2", 5432),
				ep("pg-3", "main", "fd00::3", 5432),
				ep("pg-4", "main", "10.0.0.4", 5432),
			},
			PassiveRW: []policy.Endpoint{ep("pg-5", "standby", "10.1.0.5", 5432)},
		},
		"pay": {
			Active: "main", Passive: "standby", Main: mainPrimary, Standby: standby,
			Reason:    "main region is primary",
			RW:        []policy.Endpoint{ep("pay-1", "main", "10.2.0.1", 6432)},
			RO:        []policy.Endpoint{ep("pay-2", "main", "10.2.0.2", 6432)},
			PassiveRW: []policy.Endpoint{ep("pay-5", "standby", "10.3.0.5", 6432)},
			PassiveRO: []policy.Endpoint{ep("pay-5", "standby", "10.3.0.5", 6432)},
		},
		"split": {
			Active: "standby", Passive: "main",
			Main:       policy.RegionView{Name: "main", State: policy.StatePrimary, Leader: "s-1", Timeline: 4},
			Standby:    policy.RegionView{Name: "standby", State: policy.StatePrimary, Leader: "s-2", Timeline: 5},
			SplitBrain: true,
			Reason:     "split brain: both regions have a leader; promoted standby region wins on timeline 5 > 4",
			RW:         []policy.Endpoint{ep("s-2", "standby", "10.5.0.2", 5432)},
		},
		"big": big,
	}
}

func testStore(tb testing.TB) *cache.Store {
	tb.Helper()
	return cache.NewStore(cache.Build(testConfig(), testDecisions(), 1))
}

// query returns a request for name and type, with EDNS(0) when size > 0.
func query(name string, qtype uint16, size uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	if size > 0 {
		m.SetEdns0(size, false)
	}
	return m
}
