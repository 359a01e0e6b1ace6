package forward

import (
	"sync/atomic"
	"time"
)

// UpstreamBuckets are the upper bounds, in seconds, of the upstream
// duration histogram. The counters of every upstream are sized from it.
var UpstreamBuckets = [...]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}

// upstreamStats counts one upstream's tries; atomics, no lock.
type upstreamStats struct {
	requests, errors atomic.Uint64
	sumNanos         atomic.Uint64
	// buckets[i] counts the tries within UpstreamBuckets[i], the last one
	// those above every bound.
	buckets [len(UpstreamBuckets) + 1]atomic.Uint64
}

func (s *upstreamStats) observe(d time.Duration, err error) {
	s.requests.Add(1)
	if err != nil {
		s.errors.Add(1)
	}
	s.sumNanos.Add(uint64(d.Nanoseconds()))
	sec := d.Seconds()
	i := 0
	for i < len(UpstreamBuckets) && sec > UpstreamBuckets[i] {
		i++
	}
	s.buckets[i].Add(1)
}

// UpstreamStats are the counters of one Consul DNS upstream since it was
// first configured: every try (a UDP query, with its TCP retry when
// truncated) and the failed ones (network errors, timeouts, answers that
// do not match the query).
type UpstreamStats struct {
	Addr     string
	Requests uint64
	Errors   uint64
	// Up is false while the upstream is marked down: its last tries
	// failed one after another (see downAfter), and no answer came since.
	// An upstream nobody asked yet is up.
	Up bool
	// DurationSum is the total time of the tries, in seconds; Buckets[i]
	// counts the tries that took at most UpstreamBuckets[i] (not
	// cumulative), the last one those that took longer.
	DurationSum float64
	Buckets     [len(UpstreamBuckets) + 1]uint64
}

// Stats returns the counters of every upstream, in the order of the
// current configuration.
func (f *Forwarder) Stats() []UpstreamStats {
	var out []UpstreamStats
	for _, g := range *f.groups.Load() {
		for _, u := range g {
			st := UpstreamStats{
				Addr: u.addr, Requests: u.stats.requests.Load(), Errors: u.stats.errors.Load(),
				DurationSum: float64(u.stats.sumNanos.Load()) / 1e9,
				Up:          u.fails.Load() < downAfter,
			}
			for i := range u.stats.buckets {
				st.Buckets[i] = u.stats.buckets[i].Load()
			}
			out = append(out, st)
		}
	}
	return out
}
