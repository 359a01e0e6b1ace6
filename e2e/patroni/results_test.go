package patroni_test

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// timing is one measured leader change: when each watcher of measure
// first saw the new leader, from the trigger.
type timing struct {
	name string
	at   map[string]time.Duration
}

// timing records the figures of one leader change for the results table.
func (e *env) timing(name string, t0 time.Time, first map[string]time.Time) {
	tm := timing{name: name, at: map[string]time.Duration{}}
	for k, v := range first {
		tm.at[k] = v.Sub(t0)
	}
	e.mu.Lock()
	e.timings = append(e.timings, tm)
	e.mu.Unlock()
}

// since returns how long after event from the watcher k saw the new leader.
func (tm timing) since(k, from string) time.Duration { return tm.at[k] - tm.at[from] }

// seen reports whether the watcher k saw the new leader at all (an optional
// first write may not have come).
func (tm timing) seen(k string) bool { _, ok := tm.at[k]; return ok }

// The targets of the results table.
const (
	targetRW    = 200 * time.Millisecond // rw after the member key, p99
	targetWrite = time.Second            // first write through PgBouncer after rw
)

// resultsTable renders the leader changes measured, one row each, with
// every figure from the Patroni leader change, and a summary against the
// targets.
func (e *env) resultsTable(t *testing.T) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.timings) == 0 {
		return nil
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%+d", d.Milliseconds()) }
	none := fmt.Sprintf("none in %v", optionalGrace)
	// msSince is ms(tm.since(k, from)), or none when k never came.
	msSince := func(tm timing, k, from string) string {
		if !tm.seen(k) {
			return none
		}
		return ms(tm.since(k, from))
	}
	lines := []string{
		"PgBouncer: its defaults (dns_max_ttl 15 s) but the recipe of deploy/pgbouncer: " + recipeSummary(t),
		"regiondns: " + binaryKind(),
		"",
		"| event | leader change after trigger (s) | member key says primary | regiondns rw | plain Consul DNS | first write: RW pool | per-node bouncer | direct | rw − member key | Consul DNS − member key | pool − rw | per-node − rw |",
		"| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
	}
	for _, tm := range e.timings {
		lines = append(lines, fmt.Sprintf("| %s | %.2f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |", tm.name,
			tm.at["leader"].Seconds(), ms(tm.since("memberkey", "leader")), ms(tm.since("regiondns", "leader")),
			ms(tm.since("consul", "leader")), msSince(tm, "write-pool", "leader"), ms(tm.since("write-node", "leader")),
			ms(tm.since("write-direct", "leader")), ms(tm.since("regiondns", "memberkey")), ms(tm.since("consul", "memberkey")),
			msSince(tm, "write-pool", "regiondns"), ms(tm.since("write-node", "regiondns"))))
	}
	lines = append(lines, "", "(milliseconds from the Patroni leader change, but where the column says otherwise)", "")
	var rwKey, pool, node []time.Duration
	ahead, poolNone := 0, 0
	for _, tm := range e.timings {
		rwKey = append(rwKey, tm.since("regiondns", "memberkey"))
		if tm.seen("write-pool") {
			pool = append(pool, tm.since("write-pool", "regiondns"))
		} else {
			poolNone++
		}
		node = append(node, tm.since("write-node", "regiondns"))
		if tm.at["regiondns"] < tm.at["consul"] {
			ahead++
		}
	}
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	p99 := func(ds []time.Duration) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[int(math.Ceil(0.99*float64(len(s))))-1]
	}
	lines = append(lines,
		fmt.Sprintf("rw after the member key: p50 %s ms, p99 %s ms over %d leader changes (target: p99 within %d ms): %s",
			ms(p50(rwKey)), ms(p99(rwKey)), len(rwKey), targetRW.Milliseconds(), verdict(p99(rwKey) <= targetRW)),
		fmt.Sprintf("rw ahead of plain Consul DNS in %d of %d: %s", ahead, len(e.timings), verdict(ahead == len(e.timings))),
		poolLine(pool, poolNone, none, ms, verdict),
		fmt.Sprintf("first write through a per-node bouncer after rw: p50 %s ms, max %s ms (target: within %d ms): %s",
			ms(p50(node)), ms(slices.Max(node)), targetWrite.Milliseconds(), verdict(slices.Max(node) <= targetWrite)),
	)
	return lines
}

// poolLine is the summary of the first writes through the RW pool: every
// one came within targetWrite of rw, or the target is missed (and says how
// many never came).
func poolLine(pool []time.Duration, never int, none string, ms func(time.Duration) string, verdict func(bool) string) string {
	if len(pool) == 0 {
		return fmt.Sprintf("first write through the RW pool after rw: %s in %d of %d (target: within %d ms): %s",
			none, never, never, targetWrite.Milliseconds(), verdict(false))
	}
	missing := ""
	if never > 0 {
		missing = fmt.Sprintf("; %s in %d of %d", none, never, len(pool)+never)
	}
	return fmt.Sprintf("first write through the RW pool after rw: p50 %s ms, max %s ms%s (target: within %d ms): %s",
		ms(p50(pool)), ms(slices.Max(pool)), missing, targetWrite.Milliseconds(), verdict(never == 0 && slices.Max(pool) <= targetWrite))
}

func p50(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// switchovers is how many switchovers the Switchover step measures:
// $REGIONDNS_PATRONI_SWITCHOVERS, 5 by default (an odd number: the step
// ends with main-2 leading, as the next steps expect).
func switchovers() int {
	var n int
	if _, err := fmt.Sscan(os.Getenv("REGIONDNS_PATRONI_SWITCHOVERS"), &n); err == nil && n > 0 {
		return n | 1
	}
	return 5
}

// tableOf joins lines for the results file.
func tableOf(lines []string) string { return strings.Join(lines, "\n") }

// binaryKind says which regiondns the figures are of: $REGIONDNS_BIN (make
// e2e-patroni builds it without -race for the run whose figures it keeps),
// or the race build the harness makes.
func binaryKind() string {
	if p := os.Getenv("REGIONDNS_BIN"); p != "" {
		return p + " (as built by the caller; make e2e-patroni: without -race)"
	}
	return "built with -race by the test (slower to react than the product)"
}
