package watch

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/regiondns/regiondns/policy"
)

// kind is what a resource watches.
type kind uint8

const (
	kindHealth  kind = iota // /v1/health/service/<name>?tag=<tag>
	kindKV                  // /v1/kv/<prefix>?recurse
	kindControl             // /v1/kv/<control prefix>/?recurse, see control.go
	kindSync                // /v1/kv/<prefix>sync: Patroni's sync key alone
	kindKey                 // /v1/kv/<prefix>leader: Patroni's leader key alone
)

// resourceKey names one watched Consul resource of one region. Clusters that
// share a resource (every bouncer-per-node cluster of a region watches the
// same pgbouncer service) share one blocking query.
type resourceKey struct {
	region string
	kind   kind
	name   string // service name or KV prefix
	tag    string
}

// path names the resource as Consul's HTTP API does, for error messages:
// health/service/<name>[?tag=<tag>] or kv/<prefix>.
func (k resourceKey) path() string {
	switch {
	case k.kind != kindHealth:
		return "kv/" + k.name
	case k.tag != "":
		return "health/service/" + k.name + "?tag=" + k.tag
	default:
		return "health/service/" + k.name
	}
}

// result is the latest converted answer of a resource.
//
// What a KV prefix, the control prefix or a sync key read is held by
// pointer, nil for the other kinds: a resource keeps its result, and a
// query in flight the one it is reading, 88 bytes instead of 320. What a
// pointer points to is never modified once stored (see setFailed).
type result struct {
	instances []policy.Instance // kindHealth
	// ignored says which instances were left out and why (see
	// convertEntries).
	ignored []string
	kv      *kvState        // kindKV
	control *controlState   // kindControl
	sync    *policy.SyncKey // kindSync; nil when the key does not exist
	key     string          // kindKey: the key's value, "" when there is none
}

// noKV and noControl are what an unread KV or control prefix holds: read
// only.
var (
	noKV      kvState
	noControl controlState
)

// kvs returns the KV prefix's state; empty when there is none.
func (r result) kvs() *kvState {
	if r.kv == nil {
		return &noKV
	}
	return r.kv
}

// ctl returns the control prefix's state; empty when there is none.
func (r result) ctl() *controlState {
	if r.control == nil {
		return &noControl
	}
	return r.control
}

// syncKey returns the sync key's content; empty when there is none.
func (r result) syncKey() policy.SyncKey {
	if r.sync == nil {
		return policy.SyncKey{}
	}
	return *r.sync
}

// kvState is what regiondns reads from Patroni's KV prefix of one scope.
type kvState struct {
	leader    string
	timelines map[string]int64
	members   []string // members with a members/ key: a running Patroni
	config    policy.ClusterConfig
	// memberData holds what the policy reads of each member key (nil
	// when no member key has anything it reads); optime is the status
	// key's, read only for a prefix whose clusters follow reads.
	memberData map[string]policy.MemberKey
	optime     int64
	syncMode   bool
	sync       policy.SyncKey
	roles      map[string]policy.Role // the role each members/ key says
	// any is true when the prefix holds any key: Patroni keeps its
	// config, initialize and history keys whatever its members do, so an
	// empty prefix is one Patroni does not use (a wrong namespace), where
	// a missing leader key says nothing.
	any bool
}

// resource is one watched Consul resource: its query loop and its latest
// result.
//
// A service's health is followed with blocking queries all the time. A
// Patroni KV prefix is followed only while it matters: for KVFollow after
// the scope's health changed, and while the scope is unsettled (see
// settled); otherwise it is read when its scope's health changes and every
// KVRefresh, and costs neither a connection nor a goroutine in between.
// Patroni rewrites its member keys every loop_wait; following every scope
// all the time would cost a blocking query per scope and region, and a
// Consul request per rewrite.
//
// A cluster whose read names depend on the members' WAL positions or
// replication state (policy.Options.FollowsReads) needs each rewrite of
// its member keys: its prefix (reads) is followed all the time. Patroni's
// sync key is read with the prefix; while the prefix says synchronous
// mode, the key alone (a kindSync resource, which reads nothing until
// then) is followed too, so that sync.<cluster> moves when Patroni picks
// another standby, at the cost of a request per change of that one key.
type resource struct {
	key resourceKey
	// tags classify the roles of a health resource's instances (nil for
	// the other kinds); shared, never modified.
	tags *policy.RoleTags
	// reads: a KV prefix some of whose clusters follow reads.
	reads bool
	// conn is swapped by Reconfigure; each query loads it.
	conn atomic.Pointer[regionConn]
	// life is lifeNew until the Watcher starts the loop, then lifeRunning,
	// then lifeStopped once a reconfiguration dropped the resource or the
	// Watcher stopped: the loop ends at its next step. Its pauses end
	// with the Watcher's run, a dropped resource's when they are over. (A
	// context per resource would cost a few hundred bytes each, and a
	// child in the run's context: 2 MB for 1,000 clusters.)
	life atomic.Int32
	// kv are the KV prefixes, in every region, of the clusters whose
	// Patroni service this is (of a leader key: its own region's prefix);
	// health is the Patroni service of a KV prefix's scope, lock its leader
	// key, and others the Patroni services of its cluster in the other
	// regions. Linked by the Watcher under its mu.
	kv     []*resource
	health *resource
	lock   *resource
	others []*resource
	// syncKey is a KV prefix's sync key resource, and prefix the KV prefix
	// of a sync key resource; linked likewise.
	syncKey, prefix *resource
	// clusters are the labels of the clusters that read this resource
	// (several, for a shared PgBouncer service); linked likewise.
	clusters []string
	// lp is the loop's own state, touched only by the goroutine running
	// the loop's current step.
	lp loopState

	mu sync.Mutex
	// The fields below are guarded by mu.
	res   result
	index uint64
	// changed is the Consul index of the read that brought the result's
	// present content (the first read's, at first): it moves only when
	// what the policy reads moves, and never backwards.
	changed     uint64
	known       bool   // a result was read at least once
	attempted   bool   // the first read finished, successfully or not
	failing     bool   // the last read failed on every path
	lastErr     string // redacted and cut (Redactor.Error)
	lastContact time.Time
	via         string
	// running: a goroutine runs the loop's step or is about to; poked: a
	// read was asked for while it ran; waiter is closed when the read a
	// poke started from idle has finished (only such a poke makes one, so
	// there is at most one); refresh is an idle KV prefix's timer;
	// followUntil is the end of the KV prefix's follow window.
	// inflight is the exchange of the query out, if any (see abort).
	inflight    *exchange
	running     bool
	poked       bool
	readNow     bool // the next query reads at once: a poke asked for it
	waiter      chan struct{}
	refresh     *time.Timer
	followUntil time.Time
}

// The lives of a resource's loop (resource.life).
const (
	lifeNew int32 = iota
	lifeRunning
	lifeStopped
)

// stopErr returns context.Canceled once the resource's loop must stop,
// else nil.
func (r *resource) stopErr() error {
	if r.life.Load() == lifeStopped {
		return context.Canceled
	}
	return nil
}

// loopState is what a resource's loop carries from one query to the next.
type loopState struct {
	idx     uint64
	lastVia string // the path of the last successful read
	broken  bool   // the last read failed
	backoff time.Duration
	// spread is set once the loop's first blocking query asked for a
	// shorter wait (see waitTime).
	spread bool
	// turn: the next step is the first read, and holds a turn (see
	// Watcher.queueFirst).
	turn bool
	// resume is when the next query may go: MinInterval after the last
	// one started, or the backoff after an error.
	resume time.Time
}

// waitTime returns the wait of a blocking query of the loop. The first one
// (of a KV prefix, the first of each follow) waits a random time between
// half the wait time and all of it: the loops start together, and with the
// same wait their queries would all come back together, every wait time,
// thousands of answers to decode at once.
func (lp *loopState) waitTime(wait time.Duration) time.Duration {
	if lp.spread {
		return wait
	}
	lp.spread = true
	return wait/2 + rand.N(wait/2+1)
}

// snapshot returns the resource's state under its lock.
func (r *resource) snapshot() (res result, known, failing bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.res, r.known, r.failing
}

// readAt returns the Consul index of the resource's last successful read.
func (r *resource) readAt() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.index
}

// changedAt returns the Consul index of the read that brought the
// resource's present content; 0 before its first read.
func (r *resource) changedAt() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// fetch runs one blocking query at index idx on path p and waits for it
// (see fetchAsync).
func (r *resource) fetch(ctx context.Context, p path, idx uint64, wait time.Duration) (res result, next uint64, err error) {
	read := make(chan struct{})
	r.fetchAsync(ctx, p, idx, wait, func(got result, n uint64, ferr error) {
		res, next, err = got, n, ferr
		close(read)
	})
	<-read
	return res, next, err
}

// fetchAsync runs one blocking query at index idx on path p; done gets its
// result and index, on the goroutine that waited for the answer. The
// transport bounds the wait (see newTransport).
func (r *resource) fetchAsync(ctx context.Context, p path, idx uint64, wait time.Duration, done func(result, uint64, error)) {
	if err := ctx.Err(); err != nil {
		// The request would have no context to stop it.
		done(result{}, 0, err)
		return
	}
	apiPath, q, notFound := r.request(idx, wait)
	p.start(apiPath, q, notFound, r.sent, func(resp *http.Response, err error) {
		done(r.answer(ctx.Err(), resp, err))
	})
}

// request returns the API path of the resource's query at index idx for up
// to wait, its query, and whether a 404 is an answer (see path.start).
func (r *resource) request(idx uint64, wait time.Duration) (apiPath string, q query, notFound bool) {
	q = query{index: idx, wait: wait}
	apiPath = "/v1/health/service/" + r.key.name
	switch {
	case r.key.kind == kindKV || r.key.kind == kindControl:
		apiPath, notFound, q.params = "/v1/kv/"+strings.TrimPrefix(r.key.name, "/"), true, "&recurse="
	case r.key.kind == kindKey || r.key.kind == kindSync:
		apiPath, notFound = "/v1/kv/"+strings.TrimPrefix(r.key.name, "/"), true
	case r.key.tag != "":
		q.params = "&tag=" + url.QueryEscape(r.key.tag)
	}
	return apiPath, q, notFound
}

// answer takes in the answer to the resource's query (see path.start):
// its result and index, or why there is none. A stop (the query's
// context done, the loop stopped) is the error when not nil.
func (r *resource) answer(stop error, resp *http.Response, err error) (result, uint64, error) {
	r.answered()
	if stop != nil {
		if err == nil {
			resp.Body.Close()
		}
		err = stop
	}
	if err != nil {
		return result{}, 0, err
	}
	res, err := r.convert(resp)
	if err != nil {
		return result{}, 0, err
	}
	return res, index(resp), nil
}

// sent records x, the exchange of the resource's query, for abort; one
// sent after the resource stopped is aborted at once.
func (r *resource) sent(x *exchange) {
	r.mu.Lock()
	r.inflight = x
	stopped := r.stopErr() != nil
	r.mu.Unlock()
	if stopped {
		x.abort()
	}
}

// answered forgets the exchange whose answer (or error) is in.
func (r *resource) answered() {
	r.mu.Lock()
	r.inflight = nil
	r.mu.Unlock()
}

// abort interrupts the resource's query in flight, if any: a stopped
// resource's query must not wait out its wait time.
func (r *resource) abort() {
	r.mu.Lock()
	x := r.inflight
	r.inflight = nil
	r.mu.Unlock()
	if x != nil {
		x.abort()
	}
}

// convert decodes an answer to the resource's query and closes it.
func (r *resource) convert(resp *http.Response) (result, error) {
	switch r.key.kind {
	case kindKV, kindKey, kindControl, kindSync:
		var pairs api.KVPairs
		if err := decode(resp, &pairs); err != nil {
			return result{}, err
		}
		switch r.key.kind {
		case kindKV:
			kv := convertKV(r.key.name, pairs, r.reads)
			return result{kv: &kv}, nil
		case kindControl:
			c := convertControl(r.key.name, pairs, time.Now())
			return result{control: &c}, nil
		case kindSync:
			var res result
			if v, ok := pairValue(r.key.name, pairs); ok {
				s := readSync(v)
				res.sync = &s
			}
			return res, nil
		}
		v, _ := pairValue(r.key.name, pairs)
		return result{key: strings.TrimSpace(string(v))}, nil
	default:
		var entries []*api.ServiceEntry
		if err := decode(resp, &entries); err != nil {
			return result{}, err
		}
		var tags policy.RoleTags
		if r.tags != nil {
			tags = *r.tags
		}
		instances, ignored := convertEntries(entries, tags)
		return result{instances: instances, ignored: ignored}, nil
	}
}

// step runs one query of the loop, and launches the next step once the
// answer is in unless the loop ends; the Watcher runs each step on a new
// goroutine, and the step marks its end with w.wg.Done. The query waits
// parked (see pollTransport.Go); its answer is read on a goroutine started
// when it arrives, and the next step launched from there. It follows
// Consul's guidance for blocking queries: an index that goes backwards
// resets to 0, an index of 0 is treated as 1 to avoid a hot loop, calls
// are rate limited, and errors back off with jitter.
func (r *resource) step(w *Watcher) {
	run, lp := w.runCtx, &r.lp
	// A first read's turn, given by startFirst.
	turn := lp.turn
	lp.turn = false
	// The pause the last read asked for (MinInterval between queries, the
	// backoff after an error), taken while this goroutine's stack is small.
	if d := time.Until(lp.resume); d > 0 {
		sleep(run, d)
	}
	if r.stopErr() != nil || run.Err() != nil {
		if turn {
			w.firstReadDone()
		}
		w.wg.Done()
		return
	}
	r.mu.Lock()
	r.poked = false
	first := !r.attempted
	readNow := r.readNow
	r.readNow = false
	r.mu.Unlock()
	started := time.Now()
	q := &stepQuery{r: r, w: w, first: first, readNow: readNow, turn: turn, started: started,
		block: r.key.kind == kindHealth || w.following(r, started)}
	q.paths = r.conn.Load().attempts(started)
	q.attempt()
}

// stepQuery is the query of one step, from its first path to its answer:
// one allocation that lives while the query is parked, where a chain of
// closures took five.
type stepQuery struct {
	r *resource
	w *Watcher
	// paths are the region's paths in the order they are tried; p is the
	// one being tried.
	paths pathAttempts
	p     path
	// first: the loop's first read (turn: it holds a first read's turn);
	// readNow: a poke asked for a read, not a wait; block: the resource
	// is followed with blocking queries.
	first, readNow, block, turn bool
	started                     time.Time
	// res and next are what the answer brought.
	res  result
	next uint64
}

// attempt sends the query on the next path, or ends the step when every
// path failed.
func (q *stepQuery) attempt() {
	p, ok := q.paths.next()
	if !ok {
		q.finish(path{}, q.paths.unreachable())
		return
	}
	q.p = p
	r, lp, o := q.r, &q.r.lp, q.w.opts
	at := lp.idx
	if !q.block || q.readNow || lp.broken || p.addr+dcSuffix(p.dc) != lp.lastVia {
		// A KV prefix not followed, or poked, is read, not waited on.
		// After a failure, or on another path than the one that answered
		// last (its agent is gone, or the own agents are tried again), the
		// read does not block either: the recovery or the switch shows
		// (stale, via, last contact) at once, not only after the next
		// change, up to a wait time later.
		at = 0
	}
	wait := o.WaitTime
	if r.key.kind == kindKey {
		wait = o.KeyWait
	}
	if at != 0 {
		wait = lp.waitTime(wait)
	}
	if r.key.kind == kindControl {
		wait = r.controlWait(wait, time.Now())
	}
	if err := r.stopErr(); err != nil {
		// The request would have no context to stop it.
		q.tried(err)
		return
	}
	apiPath, query, notFound := r.request(at, wait)
	p.start(apiPath, query, notFound, r.sent, q.answered)
}

// answered takes in the answer on the path being tried (see path.start).
func (q *stepQuery) answered(resp *http.Response, err error) {
	r := q.r
	res, next, err := r.answer(r.stopErr(), resp, err)
	if errors.Is(err, ErrResponseTooLarge) {
		dc := q.p.dc
		if dc == "" {
			dc = r.conn.Load().dc
		}
		err = fmt.Errorf("consul %s in %s: %w (%d bytes)", r.key.path(), dc, ErrResponseTooLarge, q.w.opts.MaxResponse)
	}
	q.res, q.next = res, next
	q.tried(err)
}

// tried ends the step with the outcome of the path being tried, or tries
// the next path.
func (q *stepQuery) tried(err error) {
	final, err := q.paths.outcome(err)
	if !final {
		q.attempt()
		return
	}
	q.finish(q.p, err)
}

// finish takes in the step's outcome, read through p (err: on no path),
// and launches the next step unless the loop ends.
func (q *stepQuery) finish(p path, err error) {
	if q.turn {
		q.w.firstReadDone()
	}
	if q.r.read(q.w, p, q.res, q.next, err, q.first, q.started) {
		q.w.launch(q.r)
	}
	q.w.wg.Done()
}

// read takes in the outcome of a step's query, read through p (err: on no
// path), and reports whether the loop goes on.
func (r *resource) read(w *Watcher, p path, res result, next uint64, err error, first bool, started time.Time) bool {
	o, lp := w.opts, &r.lp
	if r.stopErr() != nil {
		r.finishRead()
		return false
	}
	lp.broken = err != nil
	if err != nil {
		r.setFailed(o.Redactor.Error(err))
		w.logError(r.key, err)
		if first {
			w.settle(r)
		}
		w.changed(r) // staleness is part of the answer (TXT, state)
		r.finishRead()
		lp.resume = time.Now().Add(jitter(lp.backoff))
		lp.backoff = min(lp.backoff*2, o.MaxBackoff)
		return true // a failing resource, KV prefix or not, keeps trying
	}
	lp.backoff = o.MinBackoff
	switch {
	case next < lp.idx:
		next = 0 // the index went backwards: start over with a full read
	case next == 0:
		next = 1
	}
	lp.lastVia = p.addr + dcSuffix(p.dc)
	fresh := r.setResult(res, next, lp.idx, lp.lastVia)
	lp.idx = next
	switch {
	case first:
		w.settle(r)
	case fresh && r.key.kind == kindKey:
		// The lock moved: the new holder's members/ key says whether it
		// has been promoted, and says so within moments. The scope's KV
		// prefix is read now and followed for a while; the change itself
		// is announced at once, so that a leader that lost the lock stops
		// being answered without waiting for that read.
		w.lockMoved(r)
	case fresh:
		// The scope's KV prefixes are read now and followed for a while;
		// their answer joins this one in the same decision.
		w.wake(r)
	}
	if res.kvs().syncMode {
		w.mu.RLock()
		sk := r.syncKey
		w.mu.RUnlock()
		if sk != nil {
			w.poke(sk, false)
		}
	}
	if fresh {
		if len(res.ignored) > 0 {
			w.logger.Warn("consul instances ignored", "region", r.key.region, "resource", r.key.path(),
				"count", len(res.ignored), "why", Truncate(strings.Join(res.ignored, "; "), MaxErrorText))
		}
		w.changed(r)
	}
	r.finishRead()
	lp.resume = started.Add(o.MinInterval)
	if r.key.kind == kindControl && !fresh {
		// Most likely a KV write elsewhere in the datacenter woke an
		// empty prefix's query (see Options.ControlQuiet).
		lp.resume = time.Now().Add(o.ControlQuiet)
	}
	if r.key.kind != kindHealth && !w.following(r, time.Now()) {
		return r.idle(w)
	}
	return true
}

// finishRead releases the waiter of the read that just finished.
func (r *resource) finishRead() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.waiter != nil {
		close(r.waiter)
		r.waiter = nil
	}
}

// idle ends a KV prefix's loop until a poke or its refresh timer; it
// reports true, and the loop goes on, when a poke came during the read.
func (r *resource) idle(w *Watcher) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.poked {
		return true
	}
	r.running = false
	// The next follow of the prefix starts with a spread wait again: a
	// burst of changes starts many at once.
	r.lp.spread = false
	if r.key.kind == kindSync {
		// Read with its prefix until synchronous mode comes back.
		return false
	}
	// KVRefresh on average, spread so that prefixes read together (at
	// start) do not stay together.
	d := w.opts.KVRefresh
	r.refresh = time.AfterFunc(d/2+rand.N(d), func() { w.poke(r, false) })
	return false
}

func dcSuffix(dc string) string {
	if dc == "" {
		return ""
	}
	return "?dc=" + dc
}

// setResult stores a successful read and reports whether anything a decision
// depends on changed: new data, or the end of a failure.
func (r *resource) setResult(res result, next, prev uint64, via string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Patroni rewrites its members/ keys every loop_wait with a new WAL
	// position: the index moves, but nothing a decision reads does.
	moved := !r.known || (next != prev && !reflect.DeepEqual(res, r.res))
	if r.key.kind == kindControl {
		// Each read has a time of its own, and a pin's expiry between
		// two reads is a change whatever the index says.
		moved = !r.known || !r.res.ctl().same(*res.ctl())
	}
	fresh := moved || r.failing
	if moved {
		r.changed = max(r.changed, next)
	}
	r.res, r.index, r.known, r.attempted, r.failing = res, next, true, true, false
	r.lastErr, r.lastContact, r.via = "", time.Now(), via
	return fresh
}

// setFailed stores a failed read; errText is the error's redacted text.
func (r *resource) setFailed(errText string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempted, r.failing, r.lastErr = true, true, errText
	if r.key.kind == kindControl && r.known {
		// The last known keys still expire: their pins are judged at the
		// time of this attempt. A copy: the state read before may be in
		// use (snapshot).
		c := *r.res.ctl()
		c.readAt = time.Now()
		r.res.control = &c
	}
}

// jitter returns a duration drawn uniformly from [d/2, d).
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
