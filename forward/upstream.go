package forward

import (
	"cmp"
	"context"
	"slices"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Health tracking of upstreams.
//
// An upstream is judged on whether it answers at all, never on whether it
// answers a given name: Consul DNS may legitimately take longer than a try
// for some names (a prepared query failing over to a far datacenter, a
// name sent on to its recursors) while it answers every other name at
// once, and a client flooding such names must not take a live agent out of
// the rotation. So:
//
//   - a failed try counts against its upstream only when the upstream gave
//     no answer at all, to any query, while the try waited;
//   - downAfter such failures in a row make the upstream suspect: it is
//     skipped, and asked a probe (Options.ProbeName SOA, which a Consul
//     agent answers itself); any answer to the probe, whatever its rcode,
//     clears the record: the names were to blame, not the upstream;
//   - a probe that gets no answer marks the upstream down: skipped for
//     backoffMin, doubling with each further failure up to backoffMax,
//     after which the first query to come along starts the next probe.
//
// "upstream down" and "upstream up" are logged at most once per upstream
// per transitionLogEvery; the next line counts the transitions left out.
const (
	// downAfter counted failures in a row make an upstream suspect: one
	// lost datagram only moves it behind its healthy peers, it does not
	// send queries to the other region.
	downAfter = 2
	// An upstream marked down is skipped for backoffMin, doubling with each
	// further failure up to backoffMax.
	backoffMin = time.Second
	backoffMax = 30 * time.Second
	// transitionLogEvery bounds the down/up lines of one upstream: a
	// flapping upstream must not flood the log.
	transitionLogEvery = 30 * time.Second
	// DefaultProbeName is the name whose SOA probes a silent upstream: the
	// Consul DNS domain's apex, answered by the agent without a lookup.
	DefaultProbeName = "consul."
)

// epoch is the origin of the monotonic times an upstream keeps (the last
// answer), compared with the start of a try.
var epoch = time.Now()

// monotonic returns t as nanoseconds since epoch, on the monotonic clock.
func monotonic(t time.Time) int64 { return int64(t.Sub(epoch)) }

// upstream is one Consul DNS address, its health and its counters. The
// fields are atomics: queries read and update them without a lock. An
// upstream outlives a reload that keeps its address (SetUpstreams).
type upstream struct {
	addr string
	// fails counts the failed tries in a row that count against it (see
	// the health rules above), failed probes included.
	fails atomic.Uint32
	// downUntil is when it may be asked again (health clock, Unix
	// nanoseconds; 0: not skipped). Set while suspect or down.
	downUntil atomic.Int64
	// down is true from a probe that got no answer until the next answer:
	// the state logged and reported (regiondns_upstream_up).
	down atomic.Bool
	// probing is true while a probe is in flight: one at a time.
	probing atomic.Bool
	// lastAnswer is when it last answered anything (monotonic).
	lastAnswer  atomic.Int64
	transitions transitionLog
	stats       upstreamStats
}

// skipped reports whether u is left out of the order at now (suspect, or
// down and its backoff not over).
func (u *upstream) skipped(now time.Time) bool {
	until := u.downUntil.Load()
	return until != 0 && now.UnixNano() < until
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

// failed records a failed try of u that started at started (network
// error, timeout, a response that does not answer the query). It counts
// against u only when u answered nothing since started; the downAfter-th
// such failure in a row makes u suspect and sends it a probe.
func (f *Forwarder) failed(u *upstream, started time.Time, err error) {
	if u.lastAnswer.Load() >= monotonic(started) {
		f.logger.Debug("query failed at an upstream that answers others; not counted against it",
			"upstream", u.addr, "error", err)
		return
	}
	n := u.fails.Add(1)
	f.logger.Debug("upstream failed", "upstream", u.addr, "error", err, "consecutive", n)
	if n < downAfter {
		return
	}
	// Skipped from now on; the probe settles whether it is down.
	u.downUntil.Store(f.now().Add(backoff(n)).UnixNano())
	f.probe(u)
}

// succeeded records an answer from u, with any rcode: it is alive.
func (f *Forwarder) succeeded(u *upstream) {
	u.lastAnswer.Store(monotonic(time.Now()))
	n := u.fails.Swap(0)
	u.downUntil.Store(0)
	if u.down.Swap(false) {
		if left, ok := u.transitions.take(f.now()); ok {
			f.logger.Info("upstream up", "upstream", u.addr, "after_failures", n,
				"transitions_not_logged", left)
		}
	}
}

// probe asks u, in the background, the SOA of Options.ProbeName, unless a
// probe of u is already in flight. Any answer clears u's record; none
// marks it down until its backoff is over.
func (f *Forwarder) probe(u *upstream) {
	if !u.probing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer u.probing.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), f.opts.Timeout)
		defer cancel()
		q := new(dns.Msg)
		q.SetQuestion(f.opts.ProbeName, dns.TypeSOA)
		q.RecursionDesired = false
		resp, _, err := f.udp.ExchangeContext(ctx, q, u.addr)
		if resp != nil && resp.Response {
			// Truncated or not, with any rcode: it answers.
			f.logger.Debug("upstream answered its probe", "upstream", u.addr)
			f.succeeded(u)
			return
		}
		n := u.fails.Add(1)
		d := backoff(n)
		u.downUntil.Store(f.now().Add(d).UnixNano())
		if !u.down.Swap(true) {
			if left, ok := u.transitions.take(f.now()); ok {
				f.logger.Warn("upstream down", "upstream", u.addr, "error", err, "retry_in", d,
					"transitions_not_logged", left)
			}
		}
	}()
}

// transitionLog limits the "upstream down" and "upstream up" lines of one
// upstream to one per transitionLogEvery; the transitions in between are
// counted, and the next line reports them.
type transitionLog struct {
	last       atomic.Int64 // Unix nanoseconds of the last line; 0: none yet
	suppressed atomic.Uint32
}

// take reports whether a transition at now may be logged, and how many
// were left out since the last line; when it may not, it counts this one.
func (l *transitionLog) take(now time.Time) (left uint32, ok bool) {
	t := now.UnixNano()
	last := l.last.Load()
	if last != 0 && t-last < int64(transitionLogEvery) || !l.last.CompareAndSwap(last, t) {
		l.suppressed.Add(1)
		return 0, false
	}
	return l.suppressed.Swap(0), true
}

// order returns the upstreams to try at now: group by group, within a group
// the fewest consecutive failures first (configuration order among
// equals), suspect and down upstreams left out. A down upstream whose
// backoff is over gets a probe, and comes back when it answers. When every
// upstream is left out, all are returned in configuration order: trying
// beats giving up unasked.
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
			switch {
			case u.skipped(now):
			case u.downUntil.Load() != 0:
				f.probe(u)
			default:
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
