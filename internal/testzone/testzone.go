// Package testzone is the zone that the tests of cache, resolver and
// forward answer from: one zones.Config and the policy decisions of its
// clusters, written once so that every package tests the same names. Each
// call returns fresh values that a test may change: a package adds what
// only its own tests need (a cluster too big for a UDP answer, say) with
// AddCluster and Endpoint, on top of the shared zone.
package testzone

import (
	"net/netip"

	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/zones"
)

// Zone is the apex of the test zone.
const Zone = "pg.example.internal."

// Config returns the test zone: SOA and TTLs, an in-zone name server with
// IPv4 and IPv6 glue and an out-of-zone one, the regions main (datacenter
// dc1) and standby (dc2), and four clusters: orders (direct, IPv4 and
// IPv6), pay (bouncer per node), split (split brain, stale) and billing
// (no decision yet).
func Config() *zones.Config {
	return &zones.Config{
		Zone: Zone,
		SOA: zones.SOA{
			MName: "ns1." + Zone, RName: "hostmaster.example.internal.",
			Refresh: 3600, Retry: 600, Expire: 86400, Minimum: 5,
		},
		NS: []zones.NameServer{
			{Name: "ns1." + Zone, Addresses: []string{"10.0.0.53", "fd00::53"}},
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

// Endpoint returns an endpoint whose target, member and node are all
// target.
func Endpoint(target, region, addr string, port uint16) policy.Endpoint {
	return policy.Endpoint{
		Target: target, Region: region, Member: target, Node: target,
		Address: netip.MustParseAddr(addr), Port: port,
	}
}

// Decisions returns the decisions of Config's clusters but billing, which
// has none yet, and one for a cluster that Config does not have
// (not-configured), which a snapshot must ignore:
//
//   - orders: main is primary (leader pg-1, timeline 3); rw pg-1, ro pg-2
//     (IPv4), pg-3 (IPv6) and pg-4 (on port 5433), passive-rw pg-5; pg-6
//     left out of reads for lag, pg-7 for noloadbalance; sync pg-2 (the
//     synchronous standby); ro.main as ro, ro.standby pg-5 (no replica);
//   - pay: ro falls back to the leader, the same target as rw (pay-1);
//     passive-rw and passive-ro pay-3;
//   - split: both regions have a leader, standby wins on its timeline;
//     main's data is stale.
func Decisions() map[string]policy.Decision {
	return map[string]policy.Decision{
		"orders": {
			Active: "main", Passive: "standby",
			Main: policy.RegionView{Name: "main", State: policy.StatePrimary, Leader: "pg-1", Timeline: 3,
				RO: []policy.Endpoint{
					Endpoint("pg-2", "main", "10.0.0.2", 5432),
					Endpoint("pg-3", "main", "fd00::3", 5432),
					Endpoint("pg-4", "main", "10.0.0.4", 5433),
				},
				Excluded: []policy.Exclusion{
					{Member: "pg-6", State: policy.ReplicaLagging, Why: "lag 48 MB > 16 MB"},
					{Member: "pg-7", State: policy.ReplicaNoLoadBalance, Why: "noloadbalance"},
				}},
			Standby: policy.RegionView{Name: "standby", State: policy.StateStandby, Leader: "pg-5", Timeline: 3,
				RO: []policy.Endpoint{Endpoint("pg-5", "standby", "10.1.0.5", 5432)}},
			Reason: "main region is primary",
			RW:     []policy.Endpoint{Endpoint("pg-1", "main", "10.0.0.1", 5432)},
			RO: []policy.Endpoint{
				Endpoint("pg-2", "main", "10.0.0.2", 5432),
				Endpoint("pg-3", "main", "fd00::3", 5432),
				Endpoint("pg-4", "main", "10.0.0.4", 5433),
			},
			PassiveRW:  []policy.Endpoint{Endpoint("pg-5", "standby", "10.1.0.5", 5432)},
			Sync:       []policy.Endpoint{Endpoint("pg-2", "main", "10.0.0.2", 5432)},
			SyncReason: "synchronous standby pg-2",
		},
		"pay": {
			Active: "main", Passive: "standby",
			Main:    policy.RegionView{Name: "main", State: policy.StatePrimary, Leader: "pay-1"},
			Standby: policy.RegionView{Name: "standby", State: policy.StateStandby, Leader: "pay-3"},
			Reason:  "main region is primary",
			RW:      []policy.Endpoint{Endpoint("pay-1", "main", "10.2.0.1", 6432)},
			// ro falls back to the leader: the same target as rw.
			RO:        []policy.Endpoint{Endpoint("pay-1", "main", "10.2.0.1", 6432)},
			PassiveRW: []policy.Endpoint{Endpoint("pay-3", "standby", "10.3.0.3", 6432)},
			PassiveRO: []policy.Endpoint{Endpoint("pay-3", "standby", "10.3.0.3", 6432)},
		},
		"split": {
			Active: "standby", Passive: "main",
			Main:       policy.RegionView{Name: "main", State: policy.StatePrimary, Leader: "s-1", Timeline: 4, Stale: true},
			Standby:    policy.RegionView{Name: "standby", State: policy.StatePrimary, Leader: "s-2", Timeline: 5},
			SplitBrain: true, Stale: true,
			Reason:    "split brain: both regions have a leader; promoted standby region wins on timeline 5 > 4",
			RW:        []policy.Endpoint{Endpoint("s-2", "standby", "10.5.0.2", 5432)},
			RO:        []policy.Endpoint{Endpoint("s-2", "standby", "10.5.0.2", 5432)},
			PassiveRW: []policy.Endpoint{Endpoint("s-1", "main", "10.4.0.1", 5432)},
			PassiveRO: []policy.Endpoint{Endpoint("s-1", "main", "10.4.0.1", 5432)},
		},
		"not-configured": {RW: []policy.Endpoint{Endpoint("x", "main", "10.9.9.9", 1)}},
	}
}

// AddCluster adds the cluster c to cfg and its decision d to decisions:
// how a package's tests extend the shared zone with a cluster of their own.
func AddCluster(cfg *zones.Config, decisions map[string]policy.Decision, c zones.Cluster, d policy.Decision) {
	cfg.Clusters = append(cfg.Clusters, c)
	decisions[c.Label] = d
}
