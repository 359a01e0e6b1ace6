package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/regiondns/regiondns/watch"
)

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
