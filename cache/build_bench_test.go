package cache

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/regiondns/regiondns/internal/testzone"
	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/zones"
)

// fleet returns a configuration and decisions for n clusters of three
// members in the main region and two in the standby region, every name
// answering as the policy decides outside synchronous mode: sync the
// leader, ro.<region> as ro and passive-ro.
func fleet(n int) (*zones.Config, map[string]policy.Decision) {
	cfg := testzone.Config()
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
			RW:      []policy.Endpoint{testzone.Endpoint("pg-1", "main", fmt.Sprintf("10.%d.%d.1", a, b), 5432)},
			RO: []policy.Endpoint{
				testzone.Endpoint("pg-2", "main", fmt.Sprintf("10.%d.%d.2", a, b), 5432),
				testzone.Endpoint("pg-3", "main", fmt.Sprintf("10.%d.%d.3", a, b), 5432),
			},
			PassiveRW: []policy.Endpoint{testzone.Endpoint("pg-4", "standby", fmt.Sprintf("10.%d.%d.4", a+100, b), 5432)},
			PassiveRO: []policy.Endpoint{testzone.Endpoint("pg-5", "standby", fmt.Sprintf("10.%d.%d.5", a+100, b), 5432)},
		}
		d := ds[label]
		d.Sync, d.SyncReason = d.RW, "leader: not in synchronous mode"
		d.Main.RO, d.Standby.RO = d.RO, d.PassiveRO
		ds[label] = d
	}
	return cfg, ds
}

// BenchmarkBuild builds the snapshot of a fleet of 1,000 clusters, wire
// templates included: a full build follows every reload, so its time is
// part of how fast a new zone file reaches the answers. It also reports
// retained-B/cluster, the heap one snapshot keeps alive once built (see
// retainedBytes), and names, the size of the snapshot.
func BenchmarkBuild(b *testing.B) {
	const clusters = 1000
	cfg, ds := fleet(clusters)
	b.ReportAllocs()
	for b.Loop() {
		Build(cfg, ds, 1)
	}
	b.StopTimer()
	var s *Snapshot
	retained := retainedBytes(func() { s = Build(cfg, ds, 1) })
	b.ReportMetric(float64(retained)/clusters, "retained-B/cluster")
	b.ReportMetric(float64(len(s.names)), "names")
	runtime.KeepAlive(s)
}

// retainedBytes returns how much the live heap grows by what build keeps
// reachable: the heap after a full collection, before and after build.
// build must store what it keeps in a variable of the caller, which keeps
// it alive past the second collection.
func retainedBytes(build func()) int64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	build()
	runtime.GC()
	runtime.ReadMemStats(&after)
	return int64(after.HeapAlloc) - int64(before.HeapAlloc)
}

// maxRetainedPerCluster bounds what a snapshot keeps per cluster of the
// fleet, with room above what BenchmarkBuild measures (bench/README.md)
// so that the test fails on a change of layout, not on noise.
const maxRetainedPerCluster = 14 << 10

// TestSnapshotMemory guards the heap a snapshot of the fleet retains: the
// resolver must serve 1,000 clusters in well under 100 MB, while a rebuild
// holds two snapshots.
func TestSnapshotMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a fleet of 1,000 clusters")
	}
	const clusters = 1000
	cfg, ds := fleet(clusters)
	var s *Snapshot
	retained := retainedBytes(func() { s = Build(cfg, ds, 1) })
	if per := retained / clusters; per > maxRetainedPerCluster {
		t.Errorf("a snapshot keeps %d bytes per cluster, want at most %d", per, maxRetainedPerCluster)
	}
	runtime.KeepAlive(s)
}

// BenchmarkRebuild rebuilds the snapshot of a fleet of 1,000 clusters after
// one cluster's decision changed: the apex, that cluster and the index of
// names are built; every other part is the last snapshot's.
func BenchmarkRebuild(b *testing.B) {
	const clusters = 1000
	cfg, ds := fleet(clusters)
	prev := Build(cfg, ds, 1)
	label := cfg.Clusters[clusters/2].Label
	leader, replica := ds[label], ds[label]
	replica.RW, replica.RO = leader.RO[:1], append([]policy.Endpoint{leader.RW[0]}, leader.RO[1:]...)
	b.ReportAllocs()
	gen := uint64(1)
	for b.Loop() {
		gen++
		if gen%2 == 0 {
			ds[label] = replica
		} else {
			ds[label] = leader
		}
		prev = Rebuild(prev, cfg, ds, gen)
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
		for pi, p := range s.parts {
			wires := make([]Wire, len(p.sets), len(p.wires))
			for _, nn := range p.names {
				n := nn.node
				n.part = uint32(pi)
				for i := range s.rrsets(n) {
					set := p.sets[int(n.first)+i]
					wires = wb.pack(wires, int(n.first)+i, p.rrs, nn.name, &set)
				}
			}
			wb.keep(wires)
		}
	}
}
