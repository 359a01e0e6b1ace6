package forward

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/regiondns/regiondns/internal/promhist"
)

// collector reports a Forwarder's counters at scrape time: the upstreams
// and the cache count with atomics on the query path, and the metrics are
// made from them here.
type collector struct {
	f                                *Forwarder
	requests, errors, duration, up   *prometheus.Desc
	hits, misses, evictions, entries *prometheus.Desc
}

// NewCollector returns the Prometheus collector of f's metrics, to
// register on the process's own registry: per upstream (label upstream,
// its address) its queries, failed queries, query durations and whether
// it is up, and the
// cache's hits, misses, evictions and entries. The upstreams are those of
// the current configuration; an upstream that a reload keeps keeps its
// counts.
func NewCollector(f *Forwarder) prometheus.Collector {
	labels := []string{"upstream"}
	return &collector{
		f: f,
		requests: prometheus.NewDesc("regiondns_upstream_requests_total",
			"Queries sent to a Consul DNS upstream (a truncated UDP answer's TCP retry counts with it).", labels, nil),
		errors: prometheus.NewDesc("regiondns_upstream_errors_total",
			"Queries to a Consul DNS upstream that failed: network error, timeout, mismatched answer.", labels, nil),
		duration: prometheus.NewDesc("regiondns_upstream_request_duration_seconds",
			"Time of one query to a Consul DNS upstream.", labels, nil),
		up: prometheus.NewDesc("regiondns_upstream_up",
			"0 while a Consul DNS upstream is marked down (consecutive failed tries, no answer since), 1 otherwise.", labels, nil),
		hits: prometheus.NewDesc("regiondns_delegation_cache_hits_total",
			"Delegated queries answered from the cache.", nil, nil),
		misses: prometheus.NewDesc("regiondns_delegation_cache_misses_total",
			"Delegated queries not found in the cache (or found expired).", nil, nil),
		evictions: prometheus.NewDesc("regiondns_delegation_cache_evictions_total",
			"Cache entries pushed out by the size bound.", nil, nil),
		entries: prometheus.NewDesc("regiondns_delegation_cache_entries",
			"Entries held in the delegation cache.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.requests, c.errors, c.duration, c.up, c.hits, c.misses, c.evictions, c.entries} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.f.Stats() {
		ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(st.Requests), st.Addr)
		ch <- prometheus.MustNewConstMetric(c.errors, prometheus.CounterValue, float64(st.Errors), st.Addr)
		ch <- promhist.Const(c.duration, UpstreamBuckets[:], st.Buckets[:], st.DurationSum, st.Addr)
		up := 0.0
		if st.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, st.Addr)
	}
	st := c.f.CacheStats()
	ch <- prometheus.MustNewConstMetric(c.hits, prometheus.CounterValue, float64(st.Hits))
	ch <- prometheus.MustNewConstMetric(c.misses, prometheus.CounterValue, float64(st.Misses))
	ch <- prometheus.MustNewConstMetric(c.evictions, prometheus.CounterValue, float64(st.Evictions))
	ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(st.Entries))
}
