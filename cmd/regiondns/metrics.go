package main

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/regiondns/regiondns/engine"
	"github.com/regiondns/regiondns/internal/promhist"
	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/resolver"
	"github.com/regiondns/regiondns/watch"
	"github.com/regiondns/regiondns/zones"
)

// metrics are the process's metrics, on a registry of its own.
type metrics struct {
	registry        *prometheus.Registry
	generation      prometheus.Gauge
	buildDuration   prometheus.Histogram
	clusters        *clusterCollector
	reloadSuccess   prometheus.Gauge
	reloadTimestamp prometheus.Gauge
	reloads         *prometheus.CounterVec
}

func newMetrics(w *watch.Watcher) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		generation: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "regiondns_snapshot_generation",
			Help: "Generation of the answer snapshot being served; it goes up by one per rebuild.",
		}),
		buildDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "regiondns_snapshot_build_duration_seconds",
			Help:    "Time to decide the clusters whose input changed and build the answer snapshot.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 8),
		}),
		clusters: newClusterCollector(),
		reloadSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "regiondns_config_last_reload_successful",
			Help: "1 if the last zone file (re)load succeeded, 0 if it failed and the previous configuration is still in use.",
		}),
		reloadTimestamp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "regiondns_config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful zone file (re)load.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "regiondns_config_reloads_total",
			Help: "Zone file reloads by result (success, failure).",
		}, []string{"result"}),
	}
	m.reloadSuccess.Set(1)
	m.reloadTimestamp.SetToCurrentTime()
	m.reloads.WithLabelValues("success")
	m.reloads.WithLabelValues("failure")
	m.registry.MustRegister(m.reloadSuccess, m.reloadTimestamp, m.reloads, newBuildInfo(), m.clusters)
	m.registry.MustRegister(m.generation, m.buildDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newRegionCollector(w), newControlCollector(w))
	return m
}

// newBuildInfo is the constant build information gauge.
func newBuildInfo() prometheus.Collector {
	goVersion, commit := buildVCS()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "regiondns_build_info",
		Help:        "Always 1; the labels say which build is running.",
		ConstLabels: prometheus.Labels{"version": version, "revision": commit, "goversion": goVersion},
	})
	g.Set(1)
	return g
}

// metrics are told what the engine does.
var _ engine.Observer = (*metrics)(nil)

// Reloaded implements engine.Observer.
func (m *metrics) Reloaded(err error) {
	if err != nil {
		m.reloadSuccess.Set(0)
		m.reloads.WithLabelValues("failure").Inc()
		return
	}
	m.reloadSuccess.Set(1)
	m.reloadTimestamp.SetToCurrentTime()
	m.reloads.WithLabelValues("success").Inc()
}

// Forgot implements engine.Observer: a removed cluster's series go.
func (m *metrics) Forgot(label string) {
	m.clusters.forgot(label)
}

// Built implements engine.Observer.
func (m *metrics) Built(gen uint64, d time.Duration) {
	m.generation.Set(float64(gen))
	m.buildDuration.Observe(d.Seconds())
}

// Decided implements engine.Observer.
func (m *metrics) Decided(cfg *zones.Config, cluster string, d policy.Decision) {
	m.clusters.decided(cfg, cluster, d)
}

// Changed implements engine.Observer.
func (m *metrics) Changed(cluster string) {
	m.clusters.changed(cluster)
}

// regionCollector reports each region's Consul status at scrape time.
type regionCollector struct {
	w                                           *watch.Watcher
	stale, lastContact, index, requests, errors *prometheus.Desc
	resources, following                        *prometheus.Desc
}

func newRegionCollector(w *watch.Watcher) *regionCollector {
	return &regionCollector{
		w: w,
		stale: prometheus.NewDesc("regiondns_region_stale",
			"1 while a region's Consul cannot be read and its last known data is served.", []string{"region"}, nil),
		lastContact: prometheus.NewDesc("regiondns_region_last_contact_timestamp_seconds",
			"Unix time of the last successful read of a region's Consul.", []string{"region"}, nil),
		index: prometheus.NewDesc("regiondns_region_consul_index",
			"Highest Consul blocking-query index seen in a region.", []string{"region"}, nil),
		requests: prometheus.NewDesc("regiondns_region_consul_requests_total",
			"HTTP requests to Consul for a region, through its own agents or the other region's.", []string{"region"}, nil),
		errors: prometheus.NewDesc("regiondns_region_consul_errors_total",
			"Failed HTTP requests to Consul for a region.", []string{"region"}, nil),
		resources: prometheus.NewDesc("regiondns_region_consul_resources",
			"Consul resources watched in a region: services, Patroni KV prefixes, leader keys and sync keys, and the control prefix.", []string{"region"}, nil),
		following: prometheus.NewDesc("regiondns_region_consul_following",
			"Resources of a region followed with a blocking query (one connection to the agent each): every service, the KV prefixes of unsettled or recently changed clusters and of clusters that follow reads, every leader key, the control prefix, and the sync keys of clusters in synchronous mode.",
			[]string{"region"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *regionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.stale
	ch <- c.lastContact
	ch <- c.index
	ch <- c.requests
	ch <- c.errors
	ch <- c.resources
	ch <- c.following
}

// Collect implements prometheus.Collector.
func (c *regionCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.w.Status() {
		stale := 0.0
		if st.Stale {
			stale = 1
		}
		ch <- prometheus.MustNewConstMetric(c.stale, prometheus.GaugeValue, stale, st.Name)
		var last float64
		if !st.LastContact.IsZero() {
			last = float64(st.LastContact.UnixNano()) / 1e9
		}
		ch <- prometheus.MustNewConstMetric(c.lastContact, prometheus.GaugeValue, last, st.Name)
		ch <- prometheus.MustNewConstMetric(c.index, prometheus.GaugeValue, float64(st.Index), st.Name)
		ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(st.Requests), st.Name)
		ch <- prometheus.MustNewConstMetric(c.errors, prometheus.CounterValue, float64(st.Errors), st.Name)
		ch <- prometheus.MustNewConstMetric(c.resources, prometheus.GaugeValue, float64(st.Resources), st.Name)
		ch <- prometheus.MustNewConstMetric(c.following, prometheus.GaugeValue, float64(st.Following), st.Name)
	}
}

// dnsCollector reports the DNS server's counters at scrape time: the
// server counts per socket loop and per connection without labels or
// locks, and the sums are made here.
type dnsCollector struct {
	stats                                         func() resolver.Stats
	queries, answers, duration, truncated, panics *prometheus.Desc
	dropped, tcpConns                             *prometheus.Desc
	oversized, shed, rateLimited, tcpEvicted      *prometheus.Desc
	slowInFlight                                  *prometheus.Desc

	// bounds are resolver.DurationBuckets in seconds.
	bounds []float64
}

func newDNSCollector(stats func() resolver.Stats) *dnsCollector {
	bounds := make([]float64, len(resolver.DurationBuckets))
	for i, b := range resolver.DurationBuckets {
		bounds[i] = b.Seconds()
	}
	return &dnsCollector{
		stats:  stats,
		bounds: bounds,
		queries: prometheus.NewDesc("regiondns_dns_queries_total",
			"DNS queries answered, by protocol (udp, tcp), query type (A, AAAA, SRV, TXT, SOA, NS, ANY, other) and response code.",
			[]string{"proto", "type", "rcode"}, nil),
		answers: prometheus.NewDesc("regiondns_dns_answers_total",
			"DNS queries answered, by source: snapshot (names in the zone), delegated (Consul DNS), error (rejected before any lookup).",
			[]string{"source"}, nil),
		duration: prometheus.NewDesc("regiondns_dns_query_duration_seconds",
			"Time from reading a query to its response being ready, by source; one query in 64 is timed.",
			[]string{"source"}, nil),
		truncated: prometheus.NewDesc("regiondns_dns_truncated_responses_total",
			"DNS responses sent with TC set (too big for UDP: the client retries over TCP).", nil, nil),
		panics: prometheus.NewDesc("regiondns_dns_panics_recovered_total",
			"Queries whose handling panicked; each was answered SERVFAIL (or by the slow path, for a panic of the fast path).", nil, nil),
		dropped: prometheus.NewDesc("regiondns_dns_dropped_messages_total",
			"DNS messages not answered: responses, messages shorter than a header, UDP queries shed by the slow path, UDP responses dropped by rate limiting.", nil, nil),
		tcpConns: prometheus.NewDesc("regiondns_dns_tcp_connections",
			"Open DNS TCP connections.", nil, nil),
		oversized: prometheus.NewDesc("regiondns_dns_oversized_messages_total",
			"DNS messages longer than 4 KiB, answered FORMERR without being read.", nil, nil),
		shed: prometheus.NewDesc("regiondns_dns_shed_queries_total",
			"Queries the slow path had no room for (its bound on queries in flight, or their source's share), by protocol: dropped over UDP, answered SERVFAIL over TCP.",
			[]string{"proto"}, nil),
		rateLimited: prometheus.NewDesc("regiondns_dns_rate_limited_responses_total",
			"UDP responses held back by response rate limiting, by action: dropped, or slipped (sent truncated).",
			[]string{"action"}, nil),
		tcpEvicted: prometheus.NewDesc("regiondns_dns_tcp_evicted_connections_total",
			"Idle DNS TCP connections closed to serve a new client while the bound on connections was reached.", nil, nil),
		slowInFlight: prometheus.NewDesc("regiondns_dns_slow_queries_in_flight",
			"Queries in the slow path now (waiting for Consul DNS, mostly).", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *dnsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.queries, c.answers, c.duration, c.truncated, c.panics, c.dropped, c.tcpConns,
		c.oversized, c.shed, c.rateLimited, c.tcpEvicted, c.slowInFlight} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. Every label combination is
// reported, zero or not, so that rates never start from a missing series.
func (c *dnsCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	for p, proto := range resolver.Protocols {
		for q, qtype := range resolver.QueryTypes {
			for r, rcode := range resolver.Rcodes {
				ch <- prometheus.MustNewConstMetric(c.queries, prometheus.CounterValue, float64(st.Queries[p][q][r]), proto, qtype, rcode)
			}
		}
	}
	for src, source := range resolver.Sources {
		ch <- prometheus.MustNewConstMetric(c.answers, prometheus.CounterValue, float64(st.Answers[src]), source)
		d := st.Durations[src]
		ch <- promhist.Const(c.duration, c.bounds, d.Counts[:], d.Sum.Seconds(), source)
	}
	ch <- prometheus.MustNewConstMetric(c.truncated, prometheus.CounterValue, float64(st.Truncated))
	ch <- prometheus.MustNewConstMetric(c.panics, prometheus.CounterValue, float64(st.Panics))
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(st.Dropped))
	ch <- prometheus.MustNewConstMetric(c.tcpConns, prometheus.GaugeValue, float64(st.TCPConnections))
	ch <- prometheus.MustNewConstMetric(c.oversized, prometheus.CounterValue, float64(st.Oversized))
	for p, proto := range resolver.Protocols {
		ch <- prometheus.MustNewConstMetric(c.shed, prometheus.CounterValue, float64(st.Shed[p]), proto)
	}
	for a, action := range resolver.RRLActions {
		ch <- prometheus.MustNewConstMetric(c.rateLimited, prometheus.CounterValue, float64(st.RateLimited[a]), action)
	}
	ch <- prometheus.MustNewConstMetric(c.tcpEvicted, prometheus.CounterValue, float64(st.TCPEvicted))
	ch <- prometheus.MustNewConstMetric(c.slowInFlight, prometheus.GaugeValue, float64(st.SlowInFlight))
}
