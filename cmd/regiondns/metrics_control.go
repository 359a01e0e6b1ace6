package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/watch"
)

// controlMetrics say what the operator's pins and drains do, per cluster.
type controlMetrics struct {
	pinned, pinExpiry, drained, notApplied *prometheus.GaugeVec
	pinIgnored                             *prometheus.GaugeVec
}

func newControlMetrics() *controlMetrics {
	return &controlMetrics{
		pinned: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "regiondns_cluster_pinned",
			Help: "1 while an operator's pin chooses a cluster's active region.",
		}, []string{"cluster"}),
		pinExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "regiondns_cluster_pin_expiry_timestamp_seconds",
			Help: "Unix time at which the pin that chooses a cluster's active region expires; no series while none does.",
		}, []string{"cluster"}),
		pinIgnored: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "regiondns_cluster_pin_ignored",
			Help: "1 while a cluster's pin is ignored, by reason (invalid, unknown_region, expired, unsafe); no series otherwise.",
		}, []string{"cluster", "reason"}),
		drained: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "regiondns_cluster_drained_members",
			Help: "Drained members of a cluster left out of its read names.",
		}, []string{"cluster"}),
		notApplied: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "regiondns_cluster_drains_not_applied",
			Help: "Drained members of a cluster still answered because they lead a region (a switchover is Patroni's job).",
		}, []string{"cluster"}),
	}
}

func (c *controlMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{c.pinned, c.pinExpiry, c.pinIgnored, c.drained, c.notApplied}
}

// decided sets a cluster's series from its decision.
func (c *controlMetrics) decided(cluster string, d policy.Decision) {
	pinned := d.Pin != nil && d.Pin.Applied
	c.pinned.WithLabelValues(cluster).Set(b2f(pinned))
	if pinned {
		c.pinExpiry.WithLabelValues(cluster).Set(float64(d.Pin.Expires.Unix()))
	} else {
		c.pinExpiry.DeleteLabelValues(cluster)
	}
	for _, r := range policy.PinIgnoredReasons {
		if d.Pin != nil && d.Pin.Ignored == r {
			c.pinIgnored.WithLabelValues(cluster, string(r)).Set(1)
		} else {
			c.pinIgnored.DeleteLabelValues(cluster, string(r))
		}
	}
	c.drained.WithLabelValues(cluster).Set(float64(len(d.Drained)))
	c.notApplied.WithLabelValues(cluster).Set(float64(len(d.DrainNotApplied)))
}

// forgot drops a removed cluster's series.
func (c *controlMetrics) forgot(cluster string) {
	l := prometheus.Labels{"cluster": cluster}
	for _, v := range []*prometheus.GaugeVec{c.pinned, c.pinExpiry, c.pinIgnored, c.drained, c.notApplied} {
		v.DeletePartialMatch(l)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// controlCollector reports how the control keys are read, at scrape time.
type controlCollector struct {
	w              *watch.Watcher
	unknown, stale *prometheus.Desc
}

func newControlCollector(w *watch.Watcher) *controlCollector {
	return &controlCollector{
		w: w,
		unknown: prometheus.NewDesc("regiondns_control_unknown_keys",
			"Keys under the control prefix that apply to no configured cluster, or are neither pin/<cluster> nor drain/<cluster>/<member>.", nil, nil),
		stale: prometheus.NewDesc("regiondns_control_stale",
			"1 while no region's control prefix can be read and the last known pins and drains apply.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *controlCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.unknown
	ch <- c.stale
}

// Collect implements prometheus.Collector.
func (c *controlCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.w.ControlStatus()
	ch <- prometheus.MustNewConstMetric(c.unknown, prometheus.GaugeValue, float64(st.Unknown))
	ch <- prometheus.MustNewConstMetric(c.stale, prometheus.GaugeValue, b2f(st.Stale))
}
