// Package promhist turns histogram counts kept outside Prometheus (per
// bucket, not cumulative, as the query path's lock-free counters keep them)
// into a Prometheus const histogram: the one place where regiondns converts
// its own bucket counts into the exposition format.
package promhist

import "github.com/prometheus/client_golang/prometheus"

// Const returns a histogram for desc from per-bucket counts: counts[i] is
// the observations of at most bounds[i] (and more than bounds[i-1]),
// counts[len(bounds)] those above every bound. sum is their total in the
// histogram's unit. The count is the total of counts, so that it is never
// below the highest bucket even while other goroutines keep counting.
// counts must have len(bounds)+1 elements.
func Const(desc *prometheus.Desc, bounds []float64, counts []uint64, sum float64, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(bounds))
	var count uint64
	for i, upper := range bounds {
		count += counts[i]
		buckets[upper] = count
	}
	count += counts[len(bounds)]
	return prometheus.MustNewConstHistogram(desc, count, sum, buckets, labels...)
}
