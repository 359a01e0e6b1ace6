package main

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/zones"
)

// clusterCollector reports each cluster's series at scrape time, from the
// cluster's last decision: active region, split brain, answer changes,
// endpoints per name, replicas per region and state, pin and drains.
//
// Vectors of gauges would keep every series between scrapes, each with its
// label pairs and its place in the vector's map: about 450 bytes a series
// and 21 series a cluster, 9 MB of a 1,000-cluster fleet's memory target.
// Here a cluster costs its clusterSeries, a few hundred bytes, and the
// series are made for each scrape and dropped after it.
type clusterCollector struct {
	activeRegion, splitBrain, changes, endpoints, replicas *prometheus.Desc
	pinned, pinExpiry, pinIgnored, drained, notApplied     *prometheus.Desc

	mu sync.Mutex
	// clusters are the configured clusters decided at least once, by
	// label; guarded by mu. A series, once stored, is never modified: a
	// scrape reads it after letting go of mu.
	clusters map[string]clusterEntry
}

// clusterEntry is one cluster's series and its count of answer changes.
type clusterEntry struct {
	series  *clusterSeries // nil until the cluster's first decision
	changes uint64
}

// clusterSeries are the gauges of one cluster's decision.
type clusterSeries struct {
	// regions are the configuration's regions; active is the one rw and
	// ro answer from, "" while rw has no endpoint.
	regions []zones.Region
	active  string
	// endpoints are the endpoint counts of rw, ro, passive-rw, passive-ro
	// (endpointNames).
	endpoints  [4]int
	splitBrain bool
	// views are the regions whose replicas are counted (region "" for a
	// view the decision does not have).
	views [2]replicaCounts
	// pinned: a pin applies, until pinExpires (Unix seconds); pinIgnored
	// is why a pin is ignored, "" when none is.
	pinned     bool
	pinExpires int64
	pinIgnored policy.PinIgnored
	drained    int
	notApplied int
}

// replicaCounts counts one region's replicas by state, in the order of
// policy.ReplicaStates.
type replicaCounts struct {
	region string
	counts [5]int
}

// endpointNames are the names of clusterSeries.endpoints, in order.
var endpointNames = [4]string{zones.LabelRW, zones.LabelRO, zones.LabelPassiveRW, zones.LabelPassiveRO}

func newClusterCollector() *clusterCollector {
	if len(policy.ReplicaStates) != len(replicaCounts{}.counts) {
		panic("replicaCounts: one count per policy.ReplicaStates")
	}
	cluster := []string{"cluster"}
	return &clusterCollector{
		clusters: map[string]clusterEntry{},
		activeRegion: prometheus.NewDesc("regiondns_cluster_active_region",
			"1 for the region a cluster's rw and ro names answer from, 0 for the other.", []string{"cluster", "region"}, nil),
		splitBrain: prometheus.NewDesc("regiondns_cluster_split_brain",
			"1 while both regions of a cluster report a leader.", cluster, nil),
		changes: prometheus.NewDesc("regiondns_cluster_decision_changes_total",
			"Changes of a cluster's answers (active region, endpoints, split brain).", cluster, nil),
		endpoints: prometheus.NewDesc("regiondns_cluster_endpoints",
			"Endpoints a cluster's name answers with, by name (rw, ro, passive-rw, passive-ro); 0 is NODATA.",
			[]string{"cluster", "name"}, nil),
		replicas: prometheus.NewDesc("regiondns_cluster_replicas",
			"A cluster's replicas in a region by state: serving reads, or left out of them (lagging, not_streaming, noloadbalance, unhealthy).",
			[]string{"cluster", "region", "state"}, nil),
		pinned: prometheus.NewDesc("regiondns_cluster_pinned",
			"1 while an operator's pin chooses a cluster's active region.", cluster, nil),
		pinExpiry: prometheus.NewDesc("regiondns_cluster_pin_expiry_timestamp_seconds",
			"Unix time at which the pin that chooses a cluster's active region expires; no series while none does.", cluster, nil),
		pinIgnored: prometheus.NewDesc("regiondns_cluster_pin_ignored",
			"1 while a cluster's pin is ignored, by reason (invalid, unknown_region, expired, unsafe); no series otherwise.",
			[]string{"cluster", "reason"}, nil),
		drained: prometheus.NewDesc("regiondns_cluster_drained_members",
			"Drained members of a cluster left out of its read names.", cluster, nil),
		notApplied: prometheus.NewDesc("regiondns_cluster_drains_not_applied",
			"Drained members of a cluster still answered because they lead a region (a switchover is Patroni's job).", cluster, nil),
	}
}

// decided stores a cluster's series from its decision under cfg.
func (c *clusterCollector) decided(cfg *zones.Config, cluster string, d policy.Decision) {
	s := &clusterSeries{
		regions:    cfg.Regions,
		endpoints:  [4]int{len(d.RW), len(d.RO), len(d.PassiveRW), len(d.PassiveRO)},
		splitBrain: d.SplitBrain,
		drained:    len(d.Drained),
		notApplied: len(d.DrainNotApplied),
	}
	if len(d.RW) > 0 {
		s.active = d.Active
	}
	for i, view := range []*policy.RegionView{&d.Main, &d.Standby} {
		if view.Name == "" {
			continue
		}
		s.views[i].region = view.Name
		for _, e := range view.Excluded {
			if j := stateIndex(e.State); j >= 0 {
				s.views[i].counts[j]++
			}
		}
		s.views[i].counts[stateIndex(policy.ReplicaServing)] = len(view.Replicas)
	}
	if p := d.Pin; p != nil {
		s.pinned = p.Applied
		if p.Applied {
			s.pinExpires = p.Expires.Unix()
		}
		s.pinIgnored = p.Ignored
	}
	c.mu.Lock()
	e := c.clusters[cluster]
	e.series = s
	c.clusters[cluster] = e
	c.mu.Unlock()
}

// stateIndex is the place of st in policy.ReplicaStates; -1 for none.
func stateIndex(st policy.ReplicaState) int {
	for i, s := range policy.ReplicaStates {
		if s == st {
			return i
		}
	}
	return -1
}

// changed counts a change of a cluster's answers.
func (c *clusterCollector) changed(cluster string) {
	c.mu.Lock()
	e := c.clusters[cluster]
	e.changes++
	c.clusters[cluster] = e
	c.mu.Unlock()
}

// forgot drops a removed cluster's series.
func (c *clusterCollector) forgot(cluster string) {
	c.mu.Lock()
	delete(c.clusters, cluster)
	c.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.activeRegion, c.splitBrain, c.changes, c.endpoints, c.replicas,
		c.pinned, c.pinExpiry, c.pinIgnored, c.drained, c.notApplied} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. The entries are copied under mu
// and reported without it: a scrape never holds up a rebuild.
func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	type labeled struct {
		label string
		clusterEntry
	}
	c.mu.Lock()
	entries := make([]labeled, 0, len(c.clusters))
	for label, e := range c.clusters {
		entries = append(entries, labeled{label, e})
	}
	c.mu.Unlock()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, e := range entries {
		ch <- prometheus.MustNewConstMetric(c.changes, prometheus.CounterValue, float64(e.changes), e.label)
		s := e.series
		if s == nil {
			continue
		}
		for i, name := range endpointNames {
			gauge(c.endpoints, float64(s.endpoints[i]), e.label, name)
		}
		for _, r := range s.regions {
			gauge(c.activeRegion, b2f(r.Name == s.active), e.label, r.Name)
		}
		gauge(c.splitBrain, b2f(s.splitBrain), e.label)
		for _, v := range s.views {
			if v.region == "" {
				continue
			}
			for i, state := range policy.ReplicaStates {
				gauge(c.replicas, float64(v.counts[i]), e.label, v.region, string(state))
			}
		}
		gauge(c.pinned, b2f(s.pinned), e.label)
		if s.pinned {
			gauge(c.pinExpiry, float64(s.pinExpires), e.label)
		}
		if s.pinIgnored != "" {
			gauge(c.pinIgnored, 1, e.label, string(s.pinIgnored))
		}
		gauge(c.drained, float64(s.drained), e.label)
		gauge(c.notApplied, float64(s.notApplied), e.label)
	}
}
