package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/resolver"
	"github.com/regiondns/regiondns/zones"
)

// The engine's reports land in their metrics: the active region per
// region of the configuration, split brain, changes, the generation, the
// reload result; a forgotten cluster's series go.
func TestMetricsObserveTheEngine(t *testing.T) {
	m := newMetrics(testMetricsWatcher(t))
	cfg := &zones.Config{Regions: []zones.Region{{Name: "main"}, {Name: "standby"}}}
	m.Decided(cfg, "orders", policy.Decision{Active: "standby", RW: []policy.Endpoint{{Member: "pg-1"}}, SplitBrain: true})
	m.Changed("orders")
	m.Built(7, time.Millisecond)
	m.Reloaded(errors.New("bad zone file"))
	want := `
# HELP regiondns_cluster_active_region 1 for the region a cluster's rw and ro names answer from, 0 for the other.
# TYPE regiondns_cluster_active_region gauge
regiondns_cluster_active_region{cluster="orders",region="main"} 0
regiondns_cluster_active_region{cluster="orders",region="standby"} 1
# HELP regiondns_cluster_decision_changes_total Changes of a cluster's answers (active region, endpoints, split brain).
# TYPE regiondns_cluster_decision_changes_total counter
regiondns_cluster_decision_changes_total{cluster="orders"} 1
# HELP regiondns_cluster_split_brain 1 while both regions of a cluster report a leader.
# TYPE regiondns_cluster_split_brain gauge
regiondns_cluster_split_brain{cluster="orders"} 1
# HELP regiondns_snapshot_generation Generation of the answer snapshot being served; it goes up by one per rebuild.
# TYPE regiondns_snapshot_generation gauge
regiondns_snapshot_generation 7
# HELP regiondns_config_last_reload_successful 1 if the last zone file (re)load succeeded, 0 if it failed and the previous configuration is still in use.
# TYPE regiondns_config_last_reload_successful gauge
regiondns_config_last_reload_successful 0
# HELP regiondns_config_reloads_total Zone file reloads by result (success, failure).
# TYPE regiondns_config_reloads_total counter
regiondns_config_reloads_total{result="failure"} 1
regiondns_config_reloads_total{result="success"} 0
`
	names := []string{"regiondns_cluster_active_region", "regiondns_cluster_decision_changes_total",
		"regiondns_cluster_split_brain", "regiondns_snapshot_generation",
		"regiondns_config_last_reload_successful", "regiondns_config_reloads_total"}
	if err := testutil.GatherAndCompare(m.registry, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m.buildDuration); n != 1 {
		t.Errorf("%d build duration samples, want 1", n)
	}

	m.Forgot("orders")
	if n := testutil.CollectAndCount(m.clusters); n != 0 {
		t.Errorf("%d series left after the cluster was forgotten, want 0", n)
	}
}

// Each name's endpoint count follows the decision, 0 for a name that
// answers NODATA, and goes with a forgotten cluster: the alert on rw
// without endpoints reads it.
func TestMetricsClusterEndpoints(t *testing.T) {
	m := newMetrics(testMetricsWatcher(t))
	cfg := &zones.Config{Regions: []zones.Region{{Name: "main"}, {Name: "standby"}}}
	m.Decided(cfg, "orders", policy.Decision{Active: "main",
		RW: []policy.Endpoint{{Member: "pg-1"}}, RO: []policy.Endpoint{{Member: "pg-2"}, {Member: "pg-3"}}})
	m.Decided(cfg, "billing", policy.Decision{})
	want := `
# HELP regiondns_cluster_endpoints Endpoints a cluster's name answers with, by name (rw, ro, passive-rw, passive-ro); 0 is NODATA.
# TYPE regiondns_cluster_endpoints gauge
regiondns_cluster_endpoints{cluster="billing",name="passive-ro"} 0
regiondns_cluster_endpoints{cluster="billing",name="passive-rw"} 0
regiondns_cluster_endpoints{cluster="billing",name="ro"} 0
regiondns_cluster_endpoints{cluster="billing",name="rw"} 0
regiondns_cluster_endpoints{cluster="orders",name="passive-ro"} 0
regiondns_cluster_endpoints{cluster="orders",name="passive-rw"} 0
regiondns_cluster_endpoints{cluster="orders",name="ro"} 2
regiondns_cluster_endpoints{cluster="orders",name="rw"} 1
`
	if err := testutil.GatherAndCompare(m.registry, strings.NewReader(want), "regiondns_cluster_endpoints"); err != nil {
		t.Error(err)
	}
	m.Forgot("orders")
	if n := testutil.CollectAndCount(m.clusters, "regiondns_cluster_endpoints"); n != 4 {
		t.Errorf("%d series after orders was forgotten, want billing's 4", n)
	}
}

// The DNS duration histogram is made from per-bucket counts by
// promhist.Const: the buckets are cumulative, the overflow counts in the
// total only, and the count is the total.
// The replicas of each region are counted by state: serving, and each
// reason a replica is left out of reads; a state without replicas is 0.
func TestMetricsCountReplicas(t *testing.T) {
	m := newMetrics(testMetricsWatcher(t))
	cfg := &zones.Config{Regions: []zones.Region{{Name: "main"}, {Name: "standby"}}}
	m.Decided(cfg, "orders", policy.Decision{
		Main: policy.RegionView{Name: "main", Replicas: []string{"pg-2", "pg-3"}, Excluded: []policy.Exclusion{
			{Member: "pg-4", State: policy.ReplicaLagging}, {Member: "pg-5", State: policy.ReplicaLagging},
			{Member: "pg-6", State: policy.ReplicaNoLoadBalance}, {Member: "pg-7", State: policy.ReplicaUnhealthy},
		}},
		Standby: policy.RegionView{Name: "standby", Excluded: []policy.Exclusion{{Member: "pg-9", State: policy.ReplicaNotStreaming}}},
	})
	want := `
# HELP regiondns_cluster_replicas A cluster's replicas in a region by state: serving reads, or left out of them (lagging, not_streaming, noloadbalance, unhealthy).
# TYPE regiondns_cluster_replicas gauge
regiondns_cluster_replicas{cluster="orders",region="main",state="lagging"} 2
regiondns_cluster_replicas{cluster="orders",region="main",state="noloadbalance"} 1
regiondns_cluster_replicas{cluster="orders",region="main",state="not_streaming"} 0
regiondns_cluster_replicas{cluster="orders",region="main",state="serving"} 2
regiondns_cluster_replicas{cluster="orders",region="main",state="unhealthy"} 1
regiondns_cluster_replicas{cluster="orders",region="standby",state="lagging"} 0
regiondns_cluster_replicas{cluster="orders",region="standby",state="noloadbalance"} 0
regiondns_cluster_replicas{cluster="orders",region="standby",state="not_streaming"} 1
regiondns_cluster_replicas{cluster="orders",region="standby",state="serving"} 0
regiondns_cluster_replicas{cluster="orders",region="standby",state="unhealthy"} 0
`
	if err := testutil.GatherAndCompare(m.registry, strings.NewReader(want), "regiondns_cluster_replicas"); err != nil {
		t.Error(err)
	}
	m.Forgot("orders")
	if n := testutil.CollectAndCount(m.clusters); n != 0 {
		t.Errorf("%d replica series left after the cluster was forgotten, want 0", n)
	}
}

func TestDurationHistograms(t *testing.T) {
	var st resolver.Stats
	for src := range st.Durations {
		d := &st.Durations[src]
		d.Counts[0], d.Counts[2], d.Counts[len(resolver.DurationBuckets)] = 1, 2, 1
		d.Sum = 3 * time.Second
	}
	tests := []struct {
		name      string
		collector prometheus.Collector
		bounds    int
	}{
		{name: "dns query duration", collector: newDNSCollector(func() resolver.Stats { return st }),
			bounds: len(resolver.DurationBuckets)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			count, sum, cumulative := firstHistogram(t, tt.collector)
			if count != 4 || sum != 3 {
				t.Errorf("count %d sum %g, want 4 and 3", count, sum)
			}
			if len(cumulative) != tt.bounds {
				t.Fatalf("%d buckets, want %d", len(cumulative), tt.bounds)
			}
			for i, got := range cumulative {
				want := uint64(3) // per bucket 1, 0, 2: cumulative 1, 1, 3, 3...
				if i < 2 {
					want = 1
				}
				if got != want {
					t.Errorf("bucket %d: %d, want %d", i, got, want)
				}
			}
		})
	}
}

// firstHistogram returns the count, the sum and the cumulative bucket
// counts of the first histogram sample c collects.
func firstHistogram(t *testing.T, c prometheus.Collector) (count uint64, sum float64, cumulative []uint64) {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			if h := m.GetHistogram(); h != nil {
				for _, b := range h.GetBucket() {
					cumulative = append(cumulative, b.GetCumulativeCount())
				}
				return h.GetSampleCount(), h.GetSampleSum(), cumulative
			}
		}
	}
	t.Fatal("no histogram collected")
	return 0, 0, nil
}
