package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/zones"
)

// The pin and drain series follow each decision: pinned with its expiry
// while a pin applies, the reason while one is ignored (and no other
// reason), the drained members and the drains not applied; a forgotten
// cluster's series go.
func TestControlMetrics(t *testing.T) {
	m := newMetrics(testMetricsWatcher(t))
	cfg := &zones.Config{Regions: []zones.Region{{Name: "main"}, {Name: "standby"}}}
	expires := time.Date(2030, 1, 2, 16, 0, 0, 0, time.UTC)
	names := []string{"regiondns_cluster_pinned", "regiondns_cluster_pin_expiry_timestamp_seconds",
		"regiondns_cluster_pin_ignored", "regiondns_cluster_drained_members", "regiondns_cluster_drains_not_applied"}
	header := `
# HELP regiondns_cluster_drained_members Drained members of a cluster left out of its read names.
# TYPE regiondns_cluster_drained_members gauge
regiondns_cluster_drained_members{cluster="orders"} %d
# HELP regiondns_cluster_drains_not_applied Drained members of a cluster still answered because they lead a region (a switchover is Patroni's job).
# TYPE regiondns_cluster_drains_not_applied gauge
regiondns_cluster_drains_not_applied{cluster="orders"} %d
# HELP regiondns_cluster_pinned 1 while an operator's pin chooses a cluster's active region.
# TYPE regiondns_cluster_pinned gauge
regiondns_cluster_pinned{cluster="orders"} %d
`
	check := func(step, want string) {
		t.Helper()
		if err := testutil.GatherAndCompare(m.registry, strings.NewReader(want), names...); err != nil {
			t.Errorf("%s: %v", step, err)
		}
	}

	m.Decided(cfg, "orders", policy.Decision{Pin: &policy.PinState{Region: "main", Expires: expires, Applied: true},
		Drained: []string{"pg-2", "pg-3"}, DrainNotApplied: []string{"pg-1"}})
	check("pinned", fmt.Sprintf(header, 2, 1, 1)+`
# HELP regiondns_cluster_pin_expiry_timestamp_seconds Unix time at which the pin that chooses a cluster's active region expires; no series while none does.
# TYPE regiondns_cluster_pin_expiry_timestamp_seconds gauge
regiondns_cluster_pin_expiry_timestamp_seconds{cluster="orders"} 1.8936e+09
`)

	m.Decided(cfg, "orders", policy.Decision{Pin: &policy.PinState{Region: "main", Ignored: policy.PinUnsafe}})
	check("unsafe", fmt.Sprintf(header, 0, 0, 0)+`
# HELP regiondns_cluster_pin_ignored 1 while a cluster's pin is ignored, by reason (invalid, unknown_region, expired, unsafe); no series otherwise.
# TYPE regiondns_cluster_pin_ignored gauge
regiondns_cluster_pin_ignored{cluster="orders",reason="unsafe"} 1
`)

	m.Decided(cfg, "orders", policy.Decision{Pin: &policy.PinState{Region: "main", Ignored: policy.PinExpired}})
	check("expired", fmt.Sprintf(header, 0, 0, 0)+`
# HELP regiondns_cluster_pin_ignored 1 while a cluster's pin is ignored, by reason (invalid, unknown_region, expired, unsafe); no series otherwise.
# TYPE regiondns_cluster_pin_ignored gauge
regiondns_cluster_pin_ignored{cluster="orders",reason="expired"} 1
`)

	m.Decided(cfg, "orders", policy.Decision{})
	check("no pin", fmt.Sprintf(header, 0, 0, 0))

	m.Forgot("orders")
	if n := testutil.CollectAndCount(m.clusters); n != 0 {
		t.Errorf("%d series left after the cluster was forgotten, want 0", n)
	}
}
