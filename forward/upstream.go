package forward

import (
	"cmp"
	"slices"
	"sync/atomic"
	"time"
)

// Health tracking of upstreams.
const (
	// downAfter consecutive failures mark an upstream down: one lost
	// datagram only moves it behind its healthy peers, it does not send
	// queries to the other region.
	downAfter = 2
	// An upstream marked down is skipped for backoffMin, doubling with each
	// further failure up to backoffMax; the first query after that tries it
	// again.
	backoffMin = time.Second
	backoffMax = 30 * time.Second
)

// upstream is one Consul DNS address, its health and its counters. The
// fields are atomics: queries read and update them without a lock. An
// upstream outlives a reload that keeps its address (SetUpstreams).
type upstream struct {
	addr      string
	fails     atomic.Uint32 // consecutive failed tries
	downUntil atomic.Int64  // Unix nanoseconds; skipped before then
	stats     upstreamStats
}

// isDown reports whether u is skipped at now.
func (u *upstream) isDown(now time.Time) bool {
	return now.UnixNano() < u.downUntil.Load()
}

// backoff returns how long an upstream with n consecutive failures stays
// down (n >= downAfter).
func backoff(n uint32) time.Duration {
	d := backoffMin
	for i := uint32(downAfter); i < n && d < backoffMax; i++ {
		d *= 2
	}
	return min(d, backoffMax)
}

// failed records a failed try of u (network error, timeout, a response
// that does not answer the query). An answer with any rcode is not a
// failure: the upstream is alive.
func (f *Forwarder) failed(u *upstream, err error) {
	n := u.fails.Add(1)
	f.logger.Debug("upstream failed", "upstream", u.addr, "error", err, "consecutive", n)
	if n < downAfter {
		return
	}
	d := backoff(n)
	u.downUntil.Store(f.now().Add(d).UnixNano())
	if n == downAfter {
		f.logger.Warn("upstream down", "upstream", u.addr, "error", err, "retry_in", d)
	}
}

// succeeded records an answer from u.
func (f *Forwarder) succeeded(u *upstream) {
	if n := u.fails.Swap(0); n >= downAfter {
		f.logger.Info("upstream up", "upstream", u.addr, "after_failures", n)
	}
	u.downUntil.Store(0)
}

// order returns the upstreams to try at now: group by group, within a group
// the fewest consecutive failures first (configuration order among
// equals), down upstreams left out. When every upstream is down, all are
// returned in configuration order: trying beats giving up unasked.
func (f *Forwarder) order(now time.Time) []*upstream {
	type ranked struct {
		u     *upstream
		fails uint32
	}
	var up []*upstream
	var all []*upstream
	for _, g := range *f.groups.Load() {
		var live []ranked
		for _, u := range g {
			all = append(all, u)
			if !u.isDown(now) {
				live = append(live, ranked{u, u.fails.Load()})
			}
		}
		slices.SortStableFunc(live, func(a, b ranked) int { return cmp.Compare(a.fails, b.fails) })
		for _, r := range live {
			up = append(up, r.u)
		}
	}
	if len(up) == 0 {
		return all
	}
	return up
}

// SetUpstreams replaces the upstream groups (as Options.Groups) in place,
// for a reload: an address already in use keeps its upstream, with its
// health and counters, wherever it moves in the order; a new address
// starts afresh, and one no longer given is dropped. An address given
// twice is one upstream, tried where it first appears. Queries in progress
// finish with the set they started with, and the cache is kept. Without
// any address, names not in the cache are answered REFUSED (see
// Delegate), and a warning says so.
func (f *Forwarder) SetUpstreams(groups [][]string) {
	f.setMu.Lock()
	defer f.setMu.Unlock()
	known := make(map[string]*upstream)
	if cur := f.groups.Load(); cur != nil {
		for _, g := range *cur {
			for _, u := range g {
				known[u.addr] = u
			}
		}
	}
	seen := make(map[string]bool)
	next := [][]*upstream{}
	for _, g := range groups {
		var ups []*upstream
		for _, addr := range g {
			if seen[addr] {
				continue
			}
			seen[addr] = true
			u := known[addr]
			if u == nil {
				u = &upstream{addr: addr}
			}
			ups = append(ups, u)
		}
		if len(ups) > 0 {
			next = append(next, ups)
		}
	}
	f.groups.Store(&next)
	if len(next) == 0 {
		f.logger.Warn("no region has consul_dns addresses; names outside the zone will be refused")
	}
}
