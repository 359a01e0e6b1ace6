package main

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/zones"
)

// maxSeriesBytesPerCluster bounds what a cluster's series keep between
// scrapes. Vectors of gauges kept about 9 KB per cluster (21 series with
// their label pairs); the cluster collector keeps its clusterSeries.
const maxSeriesBytesPerCluster = 1 << 10

// The per-cluster series of 1,000 decided clusters keep less than
// maxSeriesBytesPerCluster each once a scrape is over, and the scrape
// reports all 21 of each cluster's series.
func TestClusterMetricsMemory(t *testing.T) {
	const clusters = 1000
	cfg := &zones.Config{Regions: []zones.Region{{Name: "main"}, {Name: "standby"}}}
	d := policy.Decision{Active: "main",
		RW: []policy.Endpoint{{Member: "pg-1"}}, RO: []policy.Endpoint{{Member: "pg-2"}, {Member: "pg-3"}},
		PassiveRW: []policy.Endpoint{{Member: "pg-4"}},
		Main:      policy.RegionView{Name: "main", Replicas: []string{"pg-2", "pg-3"}},
		Standby:   policy.RegionView{Name: "standby", Excluded: []policy.Exclusion{{Member: "pg-5", State: policy.ReplicaLagging}}},
	}
	labels := make([]string, clusters)
	for i := range labels {
		labels[i] = fmt.Sprintf("cluster-%04d", i)
	}
	c := newClusterCollector()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, label := range labels {
		c.decided(cfg, label, d)
		c.changed(label)
	}
	// endpoints 4, active region 2, split brain, changes, replicas 2 × 5,
	// pinned, drained, drains not applied.
	if n := testutil.CollectAndCount(c); n != 21*clusters {
		t.Errorf("%d series, want %d", n, 21*clusters)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / clusters
	t.Logf("%d bytes per cluster", per)
	if per > maxSeriesBytesPerCluster {
		t.Errorf("the series keep %d bytes per cluster, want at most %d", per, maxSeriesBytesPerCluster)
	}
	runtime.KeepAlive(c)
}
