// Package watch follows both regions' Consul datacenters with blocking
// queries and turns what they report into the policy's input.
//
// Each watched resource (a Patroni service's health, a PgBouncer service's
// health, a Patroni KV prefix, the operator's control prefix) has its own
// loop; every change is announced on
// one coalescing channel, and Changes assembles the per-cluster view of the
// clusters whose resources changed.
package watch

import (
	"context"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/zones"
)

// Options tune the blocking queries.
type Options struct {
	// WaitTime is the longest a blocking query waits for a change. The
	// first blocking query of a loop (of a KV prefix: of each follow) waits
	// a random half to all of it, so that loops started together do not
	// stay together.
	WaitTime time.Duration
	// KeyWait is WaitTime for Patroni's leader keys, which change only
	// with leadership: a longer wait costs nothing in how soon a change is
	// seen, and fewer answers that say nothing. Zero: five times WaitTime,
	// at most Consul's longest wait, 10 minutes.
	KeyWait time.Duration
	// MinInterval is the shortest time between two queries of one resource.
	MinInterval time.Duration
	// ControlQuiet is the pause after an answer of the control prefix that
	// changed nothing. Consul answers a blocking list of a prefix that
	// holds no key at every KV write in the datacenter (it watches the
	// nearest node of the KV tree that exists), Patroni's member keys
	// included: the pause bounds that to one request per ControlQuiet and
	// region. An edit of a control key made meanwhile is read when the
	// pause ends, so it applies at most ControlQuiet later.
	ControlQuiet time.Duration
	// MinBackoff and MaxBackoff bound the jittered backoff after errors.
	MinBackoff, MaxBackoff time.Duration
	// KVFollow is how long a Patroni KV prefix is followed with blocking
	// queries after its scope's health changed: long enough for what
	// Patroni writes after a role change (timelines, member keys, and the
	// member keys that expire with a dead member's session, 30 s by
	// default).
	KVFollow time.Duration
	// KVRefresh is how often, on average, a KV prefix that is not followed
	// is read anyway, for changes no health change announces (an
	// operator's edit).
	KVRefresh time.Duration
	// FirstReads bounds the first reads in flight at once. The others
	// wait for a turn, in order and without a goroutine, while first reads
	// make progress; once none finished for FirstReadWait, the waiting
	// ones start without a turn, so that an
	// agent that does not answer delays the others by that much at most.
	FirstReads    int
	FirstReadWait time.Duration
	// MaxResponse bounds the bytes of one Consul answer's body. A longer
	// one fails the read, as an unreachable agent would: the region is
	// stale, and the next read backs off.
	MaxResponse int64
	// Redactor, when set, learns the Consul tokens of every configuration
	// (so that a logger sharing it redacts them too); otherwise the
	// Watcher has its own. Error text kept or logged is redacted by it.
	Redactor *Redactor
}

// maxWait is Consul's longest blocking wait: a longer one is cut to it.
const maxWait = 10 * time.Minute

// DefaultOptions are the options used where a field is zero.
var DefaultOptions = Options{
	WaitTime:     60 * time.Second,
	MinInterval:  10 * time.Millisecond,
	ControlQuiet: time.Second,
	MinBackoff:   250 * time.Millisecond,
	MaxBackoff:   10 * time.Second,
	KVFollow:     2 * time.Minute,
	KVRefresh:    5 * time.Minute,
	// The first reads of a whole fleet started together would hold all
	// their request state at once, and the heap would grow to twice that
	// before the next collection; a few hundred at a time keep a local
	// agent as busy and start-up as fast.
	FirstReads:    256,
	FirstReadWait: time.Second,
	// Consul's largest answers are a service's health of a few hundred
	// instances: a few hundred KiB.
	MaxResponse: 8 << 20,
}

func (o Options) withDefaults() Options {
	if o.WaitTime <= 0 {
		o.WaitTime = DefaultOptions.WaitTime
	}
	if o.KeyWait <= 0 {
		o.KeyWait = min(5*o.WaitTime, maxWait)
	}
	if o.MinInterval <= 0 {
		o.MinInterval = DefaultOptions.MinInterval
	}
	if o.ControlQuiet <= 0 {
		o.ControlQuiet = DefaultOptions.ControlQuiet
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultOptions.MinBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(DefaultOptions.MaxBackoff, o.MinBackoff)
	}
	if o.KVFollow <= 0 {
		o.KVFollow = DefaultOptions.KVFollow
	}
	if o.KVRefresh <= 0 {
		o.KVRefresh = DefaultOptions.KVRefresh
	}
	if o.FirstReads <= 0 {
		o.FirstReads = DefaultOptions.FirstReads
	}
	if o.FirstReadWait <= 0 {
		o.FirstReadWait = DefaultOptions.FirstReadWait
	}
	if o.MaxResponse <= 0 {
		o.MaxResponse = DefaultOptions.MaxResponse
	}
	if o.Redactor == nil {
		o.Redactor = NewRedactor()
	}
	return o
}

// Watcher watches the resources every configured cluster needs.
type Watcher struct {
	opts    Options
	logger  *slog.Logger
	updates chan struct{}
	errLog  *rateLimiter
	// firstReads holds a token per first read in flight (see
	// Options.FirstReads).
	firstReads chan struct{}
	// firstMu guards firstQueue, the resources whose first read waits for
	// a turn, oldest first, and firstStall, which starts them all without
	// one once no first read finished for FirstReadWait (see
	// queueFirst). Taken without mu, or after it.
	firstMu    sync.Mutex
	firstQueue []*resource
	firstStall *time.Timer
	// transport carries every Consul request, of every configuration.
	transport *pollTransport
	wg        sync.WaitGroup

	mu sync.RWMutex
	// The fields below are guarded by mu.
	cfg       *zones.Config
	resources map[resourceKey]*resource
	// tokenWarnings says, by region name, why the region's token file is
	// unsafe (see tokenFileWarning).
	tokenWarnings map[string]string
	// counters are the Consul request counters by region name, guarded by
	// countersMu (plan runs without mu); never removed.
	countersMu sync.Mutex
	counters   map[string]*counters
	runCtx     context.Context // set by Run; nil before

	// dirtyMu guards dirty and allDirty: the labels of the clusters whose
	// input may have changed since Changes last took them, and whether
	// every cluster's may have (at first, and after Reconfigure). Taken
	// without mu, or after it.
	dirtyMu  sync.Mutex
	dirty    map[string]struct{}
	allDirty bool

	// launchMu guards stopping, which Run sets before it waits for the
	// loops: no loop starts after that.
	launchMu sync.Mutex
	stopping bool
}

// New builds a Watcher for cfg. It fails when a region's Consul client cannot
// be built (a bad address, an unreadable token file).
func New(cfg *zones.Config, opts Options, logger *slog.Logger) (*Watcher, error) {
	opts = opts.withDefaults()
	tr, err := newTransport(max(opts.WaitTime, opts.KeyWait), opts.MaxResponse)
	if err != nil {
		return nil, err
	}
	w := &Watcher{
		transport:  tr,
		opts:       opts,
		logger:     logger,
		updates:    make(chan struct{}, 1),
		errLog:     newRateLimiter(30 * time.Second),
		firstReads: make(chan struct{}, opts.FirstReads),
		counters:   map[string]*counters{},
		allDirty:   true,
	}
	resources, warnings, err := w.plan(cfg)
	if err != nil {
		return nil, err
	}
	link(cfg, resources)
	w.cfg, w.resources, w.tokenWarnings = cfg, resources, warnings
	return w, nil
}

// plan builds the region clients and the (not yet running) resources cfg
// needs, and returns what is unsafe about its token files (see
// tokenFileWarning). The tokens the clients send are added to the Redactor,
// read before and after the clients read them.
func (w *Watcher) plan(cfg *zones.Config) (map[resourceKey]*resource, map[string]string, error) {
	w.learnTokens(cfg)
	defer w.learnTokens(cfg)
	warnings := w.checkTokenFiles(cfg)
	conns := map[string]*regionConn{}
	for i := range cfg.Regions {
		r := &cfg.Regions[i]
		rc, err := newRegionConn(r, cfg.Other(r), w.transport, w.regionCounters(r.Name))
		if err != nil {
			return nil, nil, err
		}
		conns[r.Name] = rc
	}
	resources := map[resourceKey]*resource{}
	for i := range cfg.Regions {
		key := controlKey(cfg, cfg.Regions[i].Name)
		res := &resource{key: key}
		res.conn.Store(conns[key.region])
		resources[key] = res
	}
	// The role tags of the services, one copy of each set: nearly every
	// cluster has Patroni's own.
	var tagSets []*policy.RoleTags
	tagsOf := func(t policy.RoleTags) *policy.RoleTags {
		for _, s := range tagSets {
			if reflect.DeepEqual(*s, t) {
				return s
			}
		}
		tagSets = append(tagSets, &t)
		return &t
	}
	for i := range cfg.Clusters {
		cl := &cfg.Clusters[i]
		reads := cfg.Options(cl).FollowsReads()
		for _, key := range keys(cfg, cl) {
			res, ok := resources[key]
			if !ok {
				res = &resource{key: key}
				if key.kind == kindHealth {
					res.tags = tagsOf(cl.Tags)
				}
				res.conn.Store(conns[key.region])
				resources[key] = res
			}
			if key.kind == kindKV && reads {
				res.reads = true
			}
		}
	}
	return resources, warnings, nil
}

// link pairs each Patroni service with the KV prefixes of its clusters in
// every region (a change of the service reads them all), each KV prefix
// with the Patroni services of its cluster and its leader key (settled
// reads them), each leader key with its prefix (a change of the key reads
// it), and each
// resource with the labels of the clusters that read it (a change marks
// them for Changes).
func link(cfg *zones.Config, resources map[resourceKey]*resource) {
	for _, r := range resources {
		r.kv, r.health, r.lock, r.others, r.clusters, r.syncKey, r.prefix = nil, nil, nil, nil, nil, nil, nil
	}
	// Every cluster reads the control prefixes.
	labels := make([]string, len(cfg.Clusters))
	for i := range cfg.Clusters {
		labels[i] = cfg.Clusters[i].Label
	}
	for i := range cfg.Regions {
		if r := resources[controlKey(cfg, cfg.Regions[i].Name)]; r != nil {
			r.clusters = labels
		}
	}
	for i := range cfg.Clusters {
		label := cfg.Clusters[i].Label
		for _, key := range keys(cfg, &cfg.Clusters[i]) {
			r := resources[key]
			// A resource one cluster reads twice lists its label once.
			if n := len(r.clusters); n == 0 || r.clusters[n-1] != label {
				r.clusters = append(r.clusters, label)
			}
		}
		cks := make([]clusterKeys, len(cfg.Regions))
		for j := range cfg.Regions {
			cks[j] = clusterKeysOf(&cfg.Clusters[i], cfg.Regions[j].Name)
		}
		for j, ck := range cks {
			h, kv, lock := resources[ck.members], resources[ck.kv], resources[ck.leader]
			kv.health, kv.lock = h, lock
			lock.kv = appendNew(lock.kv, kv)
			kv.syncKey, resources[ck.sync].prefix = resources[ck.sync], kv
			for k, other := range cks {
				if k != j {
					kv.others = appendNew(kv.others, resources[other.members])
				}
				h.kv = appendNew(h.kv, resources[other.kv])
			}
		}
	}
}

// appendNew appends r to list unless it is already there.
func appendNew(list []*resource, r *resource) []*resource {
	if slices.Contains(list, r) {
		return list
	}
	return append(list, r)
}

// regionCounters returns the counters of a region, made on first use.
func (w *Watcher) regionCounters(name string) *counters {
	w.countersMu.Lock()
	defer w.countersMu.Unlock()
	c, ok := w.counters[name]
	if !ok {
		c = &counters{}
		w.counters[name] = c
	}
	return c
}

// Reconfigure switches the watcher to cfg. Resources that cfg still needs
// keep running with their data (their next query uses the new clients, so a
// changed token file or address applies); resources it no longer needs stop;
// new ones start. On error nothing changes.
func (w *Watcher) Reconfigure(cfg *zones.Config) error {
	next, warnings, err := w.plan(cfg)
	if err != nil {
		return err
	}
	w.mu.Lock()
	for key, old := range w.resources {
		n, ok := next[key]
		if ok && reflect.DeepEqual(n.tags, old.tags) && n.reads == old.reads {
			old.conn.Store(n.conn.Load())
			next[key] = old
			continue
		}
		if old.life.Load() != lifeNew {
			old.life.Store(lifeStopped)
			old.abort()
		}
	}
	link(cfg, next)
	w.cfg, w.resources, w.tokenWarnings = cfg, next, warnings
	w.markAll()
	if w.runCtx != nil {
		for _, r := range next {
			if r.life.Load() == lifeNew {
				w.startLocked(r)
			}
		}
	}
	w.mu.Unlock()
	w.notify()
	return nil
}

// clusterKeys are the resources of one cluster in one region.
type clusterKeys struct {
	members, kv, sync, leader, bouncers, poolRW, poolRO resourceKey
	hasBouncers, hasPool                                bool
}

func clusterKeysOf(cl *zones.Cluster, region string) clusterKeys {
	scope := cl.Scopes[region]
	prefix := kvPrefix(cl.Namespace, scope)
	ck := clusterKeys{
		members: resourceKey{region: region, kind: kindHealth, name: zones.ServiceName(scope)},
		kv:      resourceKey{region: region, kind: kindKV, name: prefix},
		sync:    resourceKey{region: region, kind: kindSync, name: prefix + "sync"},
		leader:  resourceKey{region: region, kind: kindKey, name: prefix + "leader"},
	}
	switch cl.Layout {
	case policy.LayoutBouncerPerNode:
		ck.hasBouncers = true
		ck.bouncers = resourceKey{region: region, kind: kindHealth, name: cl.PgBouncer.Service}
	case policy.LayoutPoolFleet:
		ck.hasPool = true
		ck.poolRW = resourceKey{region: region, kind: kindHealth, name: cl.PgBouncer.RWService, tag: cl.PgBouncer.RWTag}
		ck.poolRO = resourceKey{region: region, kind: kindHealth, name: cl.PgBouncer.ROService, tag: cl.PgBouncer.ROTag}
	}
	return ck
}

func (ck clusterKeys) all() []resourceKey {
	keys := []resourceKey{ck.members, ck.kv, ck.sync, ck.leader}
	if ck.hasBouncers {
		keys = append(keys, ck.bouncers)
	}
	if ck.hasPool {
		keys = append(keys, ck.poolRW, ck.poolRO)
	}
	return keys
}

func keys(cfg *zones.Config, cl *zones.Cluster) []resourceKey {
	var keys []resourceKey
	for i := range cfg.Regions {
		keys = append(keys, clusterKeysOf(cl, cfg.Regions[i].Name).all()...)
	}
	return keys
}

// kvPrefix returns Patroni's KV prefix of a scope: "<namespace>/<scope>/".
func kvPrefix(namespace, scope string) string {
	ns := strings.Trim(namespace, "/")
	if ns == "" {
		return scope + "/"
	}
	return ns + "/" + scope + "/"
}

// Updates returns the channel that receives a value after any change. Several
// changes before the receiver reads coalesce into one.
func (w *Watcher) Updates() <-chan struct{} { return w.updates }

func (w *Watcher) notify() {
	select {
	case w.updates <- struct{}{}:
	default:
	}
}

// Run runs every query loop until ctx is done, and returns once all of them
// have stopped.
func (w *Watcher) Run(ctx context.Context) {
	w.mu.Lock()
	w.runCtx = ctx
	for _, r := range w.resources {
		w.startLocked(r)
	}
	w.mu.Unlock()
	<-ctx.Done()
	w.launchMu.Lock()
	w.stopping = true
	w.launchMu.Unlock()
	// Every loop stops; the queries out have no context to end them: each
	// is aborted (one sent after its resource stopped aborts itself).
	w.mu.RLock()
	for _, r := range w.resources {
		r.life.Store(lifeStopped)
	}
	for _, r := range w.resources {
		r.abort()
	}
	w.mu.RUnlock()
	w.wg.Wait()
}

// startLocked starts r's loop with a first read; w.mu must be held. A
// sync key has nothing to read until its prefix says synchronous mode
// (then the prefix pokes it): it counts as read, and waits.
func (w *Watcher) startLocked(r *resource) {
	r.life.Store(lifeRunning)
	r.lp.backoff = w.opts.MinBackoff
	r.mu.Lock()
	if r.key.kind == kindSync {
		r.attempted = true
		r.mu.Unlock()
		return
	}
	r.running = true
	r.mu.Unlock()
	w.queueFirst(r)
}

// queueFirst starts r's loop once its first read has a turn (see
// Options.FirstReads). A resource waiting for its turn is in a queue, not
// a goroutine: at start, thousands of them wait, and every goroutine the
// process ever ran at once keeps its descriptor for good.
func (w *Watcher) queueFirst(r *resource) {
	w.firstMu.Lock()
	w.firstQueue = append(w.firstQueue, r)
	w.firstMu.Unlock()
	w.startFirst()
}

// startFirst starts the loops of the queued resources that a free turn is
// left for, and keeps the stall timer running while any waits.
func (w *Watcher) startFirst() {
	w.firstMu.Lock()
	var start []*resource
turns:
	for len(w.firstQueue) > 0 {
		select {
		case w.firstReads <- struct{}{}:
		default:
			break turns
		}
		r := w.firstQueue[0]
		w.firstQueue[0] = nil
		w.firstQueue = w.firstQueue[1:]
		r.lp.turn = true // read by the loop, which starts below
		start = append(start, r)
	}
	switch {
	case len(w.firstQueue) == 0 && w.firstStall != nil:
		w.firstStall.Stop()
		w.firstStall = nil
	case len(w.firstQueue) > 0 && w.firstStall == nil:
		w.firstStall = time.AfterFunc(w.opts.FirstReadWait, w.firstStalled)
	}
	w.firstMu.Unlock()
	for _, r := range start {
		w.launch(r)
	}
}

// firstReadDone gives back a first read's turn: progress, which puts off
// the stall, and room for the next queued resource.
func (w *Watcher) firstReadDone() {
	<-w.firstReads
	w.firstMu.Lock()
	if w.firstStall != nil {
		w.firstStall.Reset(w.opts.FirstReadWait)
	}
	w.firstMu.Unlock()
	w.startFirst()
}

// firstStalled starts every queued resource without a turn: no first read
// finished for FirstReadWait, the turns are held by reads an agent does
// not answer.
func (w *Watcher) firstStalled() {
	w.firstMu.Lock()
	start := w.firstQueue
	w.firstQueue, w.firstStall = nil, nil
	w.firstMu.Unlock()
	for _, r := range start {
		w.launch(r)
	}
}

func (w *Watcher) logError(key resourceKey, err error) {
	if !w.errLog.allow(key.region) {
		return
	}
	w.logger.Warn("consul read failed; serving last known data as stale",
		"region", key.region, "resource", key.name, "err", w.opts.Redactor.Error(err))
}

// Redactor returns the Redactor that knows the tokens of every
// configuration the Watcher has had.
func (w *Watcher) Redactor() *Redactor { return w.opts.Redactor }
