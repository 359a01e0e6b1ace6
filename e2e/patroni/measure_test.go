package patroni_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/regiondns/regiondns/e2e"
)

// transition describes a leader change to measure.
type transition struct {
	name string
	// from is the leader before (nil: no leader answered before, as in a
	// promotion with the main region stopped); to the leader after.
	from, to *member
	// keyAgent is where to watch Patroni's leader key for to's name; nil:
	// watch to's REST API for the leader role instead (a standby leader
	// holds the leader key already, its promotion does not change it).
	keyAgent *e2e.Agent
	// kvAgent is where to watch to's member key for the primary role: an
	// agent of to's datacenter.
	kvAgent *e2e.Agent
	// consulAgent and consulName: the plain Consul DNS name to compare,
	// asked of consulAgent's DNS interface.
	consulAgent *e2e.Agent
	consulName  string
	// pool is the RW pool PgBouncer the writes go through.
	pool *bouncer
}

// measure starts the watchers, runs trigger, and waits until every watcher
// saw the new leader: Patroni's leader change, regiondns's rw answer, plain
// Consul DNS's answer, and the first write landing on the new leader through
// the RW pool PgBouncer (a DNS client of regiondns), through the per-node
// PgBouncer an application finds by rw.acme-node's SRV record, and directly
// through rw.acme's SRV record. It records the figures relative to the
// leader change.
func (e *env) measure(t *testing.T, tr transition, trigger func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var (
		mu    sync.Mutex
		first = map[string]time.Time{}
		wg    sync.WaitGroup
	)
	mark := func(key string) {
		mu.Lock()
		defer mu.Unlock()
		if _, ok := first[key]; !ok {
			first[key] = time.Now()
		}
	}
	poll := func(key string, every time.Duration, cond func() bool) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if cond() {
					mark(key)
					return
				}
				sleepCtx(ctx, every)
			}
		}()
	}
	want := []string{tr.to.Addr}

	// The leader change, as Patroni records it.
	if tr.keyAgent != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var idx uint64
			for ctx.Err() == nil {
				name, next, err := leaderKey(tr.keyAgent, (&api.QueryOptions{WaitIndex: idx, WaitTime: 2 * time.Second}).WithContext(ctx))
				if err != nil {
					sleepCtx(ctx, 50*time.Millisecond)
					continue
				}
				if name == tr.to.Name {
					mark("leader")
					return
				}
				idx = next
			}
		}()
	} else {
		poll("leader", 50*time.Millisecond, func() bool {
			st, err := tr.to.status()
			return err == nil && st.IsLeader()
		})
	}
	// The first moment to's member key says it was promoted.
	wg.Add(1)
	go func() {
		defer wg.Done()
		var idx uint64
		for ctx.Err() == nil {
			role, next, err := memberRole(tr.kvAgent, tr.to.Name, (&api.QueryOptions{WaitIndex: idx, WaitTime: 2 * time.Second}).WithContext(ctx))
			if err != nil {
				sleepCtx(ctx, 50*time.Millisecond)
				continue
			}
			if role == "master" || role == "primary" {
				mark("memberkey")
				return
			}
			idx = next
		}
	}()
	// DNS answers, with every change of answer on the way.
	var seqMu sync.Mutex
	seqs := map[string][]answerChange{}
	watchDNS := func(key string, lookup func() ([]string, error)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := "(none yet)"
			for ctx.Err() == nil {
				got, err := lookup()
				now := time.Now()
				a := answerString(got, err)
				if a != last {
					seqMu.Lock()
					seqs[key] = append(seqs[key], answerChange{now, a})
					seqMu.Unlock()
					last = a
				}
				if err == nil && slices.Equal(got, want) {
					mark(key)
					return
				}
				sleepCtx(ctx, 5*time.Millisecond)
			}
		}()
	}
	watchDNS("regiondns", func() ([]string, error) { return lookupA(fqdn("rw", direct)) })
	watchDNS("consul", func() ([]string, error) { return consulDNS(tr.consulAgent, tr.consulName) })
	// Writers: each records its last success on the old leader and its
	// first on the new one, trying every writeEvery, one attempt (a psql
	// process) at a time. An attempt is given up after attemptTimeout, as an
	// application with a statement timeout gives up: PgBouncer holds a client
	// whose server is being shut down (a per-node bouncer on the old leader,
	// or the pool before it re-resolves) until that server is back or
	// query_wait_timeout (120 s by default), and a writer that waited for it
	// would measure that hold, not when the layout takes writes again. The
	// attempts given up are counted and reported.
	wantWhere := tr.to.Addr + "|f"
	var lastOld sync.Map // writer -> time.Time
	var heldMu sync.Mutex
	held := map[string]heldAttempts{}
	const (
		writeEvery     = 50 * time.Millisecond
		attemptTimeout = time.Second
	)
	write := func(key string, a access) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var h heldAttempts
			defer func() {
				heldMu.Lock()
				held[key] = h
				heldMu.Unlock()
			}()
			for i := 0; ctx.Err() == nil; i++ {
				actx, acancel := context.WithTimeout(ctx, attemptTimeout)
				began := time.Now()
				got, err := a.runContext(actx, fmt.Sprintf("%s %s %d", tr.name, key, i))
				timedOut := actx.Err() != nil
				acancel()
				if ctx.Err() != nil {
					return
				}
				h.longest = max(h.longest, time.Since(began))
				switch {
				case timedOut:
					h.givenUp++
				case err == nil && got == wantWhere:
					mark(key)
					return
				case err == nil && tr.from != nil && got == tr.from.Addr+"|f":
					lastOld.Store(key, time.Now())
				}
				sleepCtx(ctx, writeEvery)
			}
		}()
	}
	write("write-pool", access{b: tr.pool})
	write("write-node", access{name: fqdn("rw", perNode)})
	write("write-direct", access{name: fqdn("rw", direct)})
	// Without the zone check, a pool may keep its connection to the old
	// leader (a replica after a switchover) for as long as that connection
	// lives: PgBouncer resolves its backend again only when it opens one, so
	// dns_max_ttl does not bound it. Its first write on the new leader is
	// then waited for optionalGrace after every other, and reported missing.
	optional := map[string]bool{"write-pool": !poolsFollowRW()}
	// Let every writer succeed once on the old leader first.
	if tr.from != nil {
		e2e.WaitFor(t, waitTimeout, func() (bool, string) {
			for _, k := range []string{"write-pool", "write-node", "write-direct"} {
				if _, ok := lastOld.Load(k); !ok && !optional[k] {
					return false, k + " has not written to " + tr.from.Name + " yet"
				}
			}
			return true, ""
		})
	}

	t0 := time.Now()
	trigger()
	keys := []string{"leader", "memberkey", "regiondns", "consul", "write-pool", "write-node", "write-direct"}
	var required time.Time // when every key but the optional ones was seen
	for ctx.Err() == nil {
		mu.Lock()
		seen, seenRequired := 0, true
		for _, k := range keys {
			_, ok := first[k]
			if ok {
				seen++
			} else if !optional[k] {
				seenRequired = false
			}
		}
		mu.Unlock()
		if seen == len(keys) {
			break
		}
		if seenRequired {
			if required.IsZero() {
				required = time.Now()
			}
			if time.Since(required) > optionalGrace {
				break
			}
		}
		sleepCtx(ctx, 50*time.Millisecond)
	}
	cancel()
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	var missing []string
	for _, k := range keys {
		if _, ok := first[k]; !ok && !optional[k] {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%s: not seen within 90 s: %s", tr.name, strings.Join(missing, ", "))
	}
	lc := first["leader"]
	since := func(k string) string {
		if _, ok := first[k]; !ok {
			return fmt.Sprintf("none within %v of the rest", optionalGrace)
		}
		return fmt.Sprintf("%+.2fs", first[k].Sub(lc).Seconds())
	}
	how := "leader key names " + tr.to.Name
	if tr.keyAgent == nil {
		how = tr.to.Name + "'s REST API says leader"
	}
	e.result(t, "%s: Patroni leader change (%s) %.2fs after the trigger, at %s", tr.name, how, lc.Sub(t0).Seconds(),
		lc.UTC().Format("15:04:05.000"))
	e.result(t, "%s:   %s's member key says primary %s", tr.name, tr.to.Name, since("memberkey"))
	e.timing(tr.name, t0, first)
	seqMu.Lock()
	defer seqMu.Unlock()
	e.result(t, "%s:   regiondns rw.%s A = %s %s (answers: %s)", tr.name, direct, tr.to.Addr, since("regiondns"), changes(seqs["regiondns"], lc))
	e.result(t, "%s:   plain Consul DNS %s A = %s %s (answers: %s)", tr.name, tr.consulName, tr.to.Addr, since("consul"), changes(seqs["consul"], lc))
	e.result(t, "%s:   first write through the RW pool PgBouncer (%s) %s", tr.name, tr.pool.Name, since("write-pool"))
	e.result(t, "%s:   first write through the per-node PgBouncer (rw.%s SRV) %s", tr.name, perNode, since("write-node"))
	e.result(t, "%s:   first write directly (rw.%s SRV) %s", tr.name, direct, since("write-direct"))
	for _, k := range []string{"write-pool", "write-node", "write-direct"} {
		gap := ""
		if last, ok := lastOld.Load(k); ok && tr.from != nil && !first[k].IsZero() {
			gap = fmt.Sprintf("no write for %.2fs (last on %s to first on %s); ", first[k].Sub(last.(time.Time)).Seconds(), tr.from.Name, tr.to.Name)
		}
		h := held[k]
		e.result(t, "%s:   %s: %slongest attempt %.2fs, %d given up after %v", tr.name, k, gap, h.longest.Seconds(), h.givenUp, attemptTimeout)
	}
}

// sleepCtx sleeps for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// answerChange is a DNS answer seen from a moment on.
type answerChange struct {
	at     time.Time
	answer string
}

// answerString renders an answer: "[addresses]", or "(no answer: why)".
func answerString(got []string, err error) string {
	if err == nil {
		return fmt.Sprint(got)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "(no answer: timeout)"
	}
	return "(no answer: " + err.Error() + ")"
}

// changes renders a sequence of answers with their times relative to ref:
// "[a] -> [] at -7.51s -> [b] at +1.21s".
func changes(seq []answerChange, ref time.Time) string {
	var parts []string
	for i, c := range seq {
		if i == 0 {
			parts = append(parts, c.answer)
			continue
		}
		parts = append(parts, fmt.Sprintf("%s at %+.2fs", c.answer, c.at.Sub(ref).Seconds()))
	}
	return strings.Join(parts, " -> ")
}

// memberRole reads the role in Patroni's member key of member through
// agent ("" when there is none).
func memberRole(agent *e2e.Agent, member string, opts *api.QueryOptions) (string, uint64, error) {
	pair, meta, err := agent.API().KV().Get("service/"+scope+"/members/"+member, opts)
	if err != nil {
		return "", 0, err
	}
	if pair == nil {
		return "", meta.LastIndex, nil
	}
	var v struct {
		Role string `json:"role"`
	}
	if err := json.Unmarshal(pair.Value, &v); err != nil {
		return "", meta.LastIndex, nil
	}
	return v.Role, meta.LastIndex, nil
}

// optionalGrace is how long measure waits for an optional first write
// after every other was seen: longer than PgBouncer's dns_max_ttl (15 s).
const optionalGrace = 20 * time.Second

// heldAttempts describes a writer's attempts up to its first write on the
// new leader: the longest one, and how many were given up.
type heldAttempts struct {
	longest time.Duration
	givenUp int
}
