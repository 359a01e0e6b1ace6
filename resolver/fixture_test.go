package resolver

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/cache"
	"github.com/regiondns/regiondns/internal/testzone"
	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/zones"
)

// zone is the apex of the shared test zone (internal/testzone).
const zone = testzone.Zone

// bigCount endpoints do not fit a 512-byte UDP answer.
const bigCount = 40

// testConfig is the shared test zone with the cluster big added (see
// testDecisions).
func testConfig() *zones.Config {
	cfg, _ := testZone()
	return cfg
}

// testDecisions are the shared test zone's decisions and big's: a pool
// fleet whose ro has bigCount IPv4 endpoints, rw 7 of them, and passive-ro
// bigCount IPv6 endpoints in standby, answers too big for 512 octets.
func testDecisions() map[string]policy.Decision {
	_, ds := testZone()
	return ds
}

func testZone() (*zones.Config, map[string]policy.Decision) {
	cfg, ds := testzone.Config(), testzone.Decisions()
	big := policy.Decision{
		Active: "main", Passive: "standby", Reason: "main region is primary",
		Main:    policy.RegionView{Name: "main", State: policy.StatePrimary, Leader: "pg-1", Timeline: 3},
		Standby: policy.RegionView{Name: "standby", State: policy.StateStandby, Leader: "pg-5", Timeline: 3},
	}
	for i := range bigCount {
		pool := fmt.Sprintf("pool-%02d", i)
		big.RO = append(big.RO, testzone.Endpoint(pool, "main", fmt.Sprintf("10.8.0.%d", i+1), 6432))
		if i < 7 {
			big.RW = append(big.RW, testzone.Endpoint(pool, "main", fmt.Sprintf("10.8.0.%d", i+1), 6432))
		}
		big.PassiveRO = append(big.PassiveRO, testzone.Endpoint(pool, "standby", fmt.Sprintf("fd00::8:%x", i+1), 6432))
	}
	testzone.AddCluster(cfg, ds, zones.Cluster{Label: "big", Layout: policy.LayoutPoolFleet}, big)
	return cfg, ds
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

// testClient is the source address of the tests' queries: one that
// Options.DelegationClients allows by default (loopback).
var testClient = netip.MustParseAddr("127.0.0.1")
