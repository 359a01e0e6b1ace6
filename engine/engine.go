// Package engine carries data one way, from the watchers to the answers:
// each change the watch package announces is decided by policy, cluster by
// cluster, and the result built into a new cache snapshot that is swapped
// into the store the resolver reads. The engine holds the latest input and
// decision of every cluster under one lock, which a rebuild and a reload of
// the zone file take whole so that one configuration's inputs never meet
// another's zone; queries never take it. It logs the decisions that matter
// to an operator, keeps the last changes of each cluster's answers
// (History), and reports what it does to an Observer (the metrics).
package engine

import (
	"context"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/regiondns/regiondns/cache"
	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/watch"
	"github.com/regiondns/regiondns/zones"
)

// Options are the optional parts of an Engine.
type Options struct {
	// Logger receives the decisions and the reloads; nil discards them.
	Logger *slog.Logger
	// Observer is told of every rebuild, decision and reload; nil tells
	// no one.
	Observer Observer
	// Path is the zone file that Reload reads again.
	Path string
	// BeforeReload, when set, prepares what else a new configuration
	// needs: its error fails the reload (the running configuration
	// stays), and the commit function it returns applies what it prepared
	// once the watcher took the new configuration.
	BeforeReload func(cfg *zones.Config) (commit func(), err error)
	// History is how many decision changes per cluster History and State
	// keep; 0 means DefaultHistory.
	History int
}

// Engine decides the clusters of a zone from what a watcher reads and
// keeps a store's snapshot in step. Its methods are safe for concurrent
// use.
type Engine struct {
	// watcher, store, logger, observer, path and beforeReload are set
	// once by New.
	watcher      *watch.Watcher
	store        *cache.Store
	logger       *slog.Logger
	observer     Observer
	path         string
	beforeReload func(*zones.Config) (commit func(), err error)

	mu sync.Mutex
	// The fields below are guarded by mu; the query path never reads them.
	cfg *zones.Config
	// inputs and decisions hold each configured cluster's latest input and
	// decision, by label; a rebuild replaces the entries of the clusters
	// it decides again, and never writes into a decision it replaces: the
	// snapshot may keep it.
	inputs    map[string]policy.Input
	decisions map[string]policy.Decision
	gen       uint64
	builtAt   time.Time
	// logged is true once the first decisions after every region was read
	// have been logged; changes before that are start-up, not news.
	logged bool
	// loadedAt and reloadErr describe the zone file in use and the last
	// reload.
	loadedAt  time.Time
	reloadErr error
	// history holds each cluster's last historyLen changes, oldest first;
	// lastChange is the ID of the newest change of any cluster.
	history    map[string][]Change
	historyLen int
	lastChange uint64
	// recheckAt is the earliest time a decision changes without new input
	// (policy.Decision.Recheck: a replica settling back under the lag
	// limit); zero when none does.
	recheckAt time.Time

	// rebuilt tells Run that a rebuild may have moved recheckAt.
	rebuilt chan struct{}
}

// New returns an engine for cfg, the configuration w watches, that swaps
// its snapshots into store. Nothing runs yet: Rebuild builds the first
// snapshot (every configured name without data until the first read), Run
// follows the watcher.
func New(cfg *zones.Config, w *watch.Watcher, store *cache.Store, opts Options) *Engine {
	e := &Engine{
		cfg: cfg, watcher: w, store: store, logger: opts.Logger, observer: opts.Observer,
		path: opts.Path, beforeReload: opts.BeforeReload, loadedAt: time.Now(),
		historyLen: opts.History,
		rebuilt:    make(chan struct{}, 1),
	}
	if e.historyLen <= 0 {
		e.historyLen = DefaultHistory
	}
	if e.logger == nil {
		e.logger = slog.New(slog.DiscardHandler)
	}
	if e.observer == nil {
		e.observer = nopObserver{}
	}
	return e
}

// Run rebuilds the snapshot after every change the watcher announces,
// and when a decision said it would change by itself (a replica settling
// back under the lag limit), until ctx is done. The watcher runs on its
// own (watch.Watcher.Run).
func (e *Engine) Run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.watcher.Updates():
			e.Rebuild()
		case <-timer.C:
			e.Recheck()
		case <-e.rebuilt:
		}
		e.mu.Lock()
		at := e.recheckAt
		e.mu.Unlock()
		timer.Stop()
		if !at.IsZero() {
			timer.Reset(max(time.Until(at), 0))
		}
	}
}

// Reload reads the zone file again and, if it is valid and BeforeReload
// accepts it, makes it the configuration in use and rebuilds. A bad file
// keeps the running configuration; the error is returned, logged, told to
// the Observer and kept for State.
func (e *Engine) Reload() error {
	var removed []string
	cfg, err := zones.Load(e.path)
	commit := func() {}
	if err == nil && e.beforeReload != nil {
		commit, err = e.beforeReload(cfg)
	}
	if err == nil {
		e.mu.Lock()
		err = e.watcher.Reconfigure(cfg)
		if err == nil {
			commit()
			removed = e.forgetRemovedLocked(cfg)
			e.cfg, e.loadedAt = cfg, time.Now()
		}
		e.mu.Unlock()
	}
	e.mu.Lock()
	e.reloadErr = err
	e.mu.Unlock()
	e.observer.Reloaded(err)
	if err != nil {
		e.logger.Error("zone file reload failed; the running configuration stays", "path", e.path, "err", err)
		return err
	}
	if len(removed) > 0 {
		// A valid but truncated file (an editor writing in place, a copy
		// cut short) drops clusters without failing the reload: say which,
		// loudly. Replace the file atomically (write, then rename).
		e.logger.Warn("zone file reload removed clusters; their names now answer NXDOMAIN",
			"path", e.path, "removed", removed, "clusters", len(cfg.Clusters))
	}
	e.logger.Info("zone file reloaded", "path", e.path, "zone", cfg.Zone, "clusters", len(cfg.Clusters))
	e.Rebuild()
	return nil
}

// forgetRemovedLocked drops the inputs and decisions of clusters that cfg
// no longer has, tells the Observer, and returns their labels; e.mu must
// be held.
func (e *Engine) forgetRemovedLocked(cfg *zones.Config) (removed []string) {
	keep := map[string]bool{}
	for _, cl := range cfg.Clusters {
		keep[cl.Label] = true
	}
	for _, cl := range e.cfg.Clusters {
		if !keep[cl.Label] {
			delete(e.inputs, cl.Label)
			delete(e.decisions, cl.Label)
			delete(e.history, cl.Label)
			e.observer.Forgot(cl.Label)
			removed = append(removed, cl.Label)
		}
	}
	return removed
}

// Rebuild decides the clusters whose inputs changed, builds a snapshot and
// swaps it in. The clusters that did not change keep their decisions, and
// the snapshot their answers.
func (e *Engine) Rebuild() {
	start := time.Now()
	// The lock spans the whole rebuild so that a reload cannot pair one
	// configuration's inputs with another's zone; queries never take it.
	e.mu.Lock()
	defer e.mu.Unlock()
	// Read readiness first: once true, the inputs below hold every region's
	// first read.
	ready := e.watcher.Ready()
	// Clusters a reload removed are gone already (forgetRemovedLocked).
	inputs, all := e.watcher.Changes()
	if ready && !e.logged && !all {
		// The first decisions after every region was read are all logged,
		// not only those that changed since the last rebuild.
		inputs = e.watcher.Inputs()
	}
	e.decideLocked(start, inputs, all, ready)
}

// Recheck decides again, on their last input, the clusters whose decision
// said it would change by now (policy.Decision.Recheck), and swaps in the
// snapshot if an answer changed.
func (e *Engine) Recheck() {
	start := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	inputs := map[string]policy.Input{}
	for label, d := range e.decisions {
		if !d.Recheck.IsZero() && !d.Recheck.After(start) {
			inputs[label] = e.inputs[label]
		}
	}
	e.decideLocked(start, inputs, false, e.logged)
}

// decideLocked decides the clusters of inputs (all of them, when all) and,
// if a decision changed, builds the snapshot and swaps it in; e.mu must be
// held. Each input gets the time of the decision and the replicas the
// cluster's last decision held out for lag: the history the policy's
// hysteresis needs, which Decide, pure, does not keep.
func (e *Engine) decideLocked(start time.Time, inputs map[string]policy.Input, all, ready bool) {
	if e.decisions == nil {
		e.inputs = make(map[string]policy.Input, len(inputs))
		e.decisions = make(map[string]policy.Decision, len(inputs))
	}
	// Nothing changed unless a decision did: a cluster whose member keys
	// Patroni rewrites (positions, every loop_wait) is decided again
	// after each rewrite, almost always to the same answers.
	changed := all || e.gen == 0
	// Decided in configuration order, so that the log lines of one rebuild
	// come in a stable order.
	changes := make([]change, 0, len(inputs))
	for i := range e.cfg.Clusters {
		label := e.cfg.Clusters[i].Label
		in, ok := inputs[label]
		if !ok {
			continue
		}
		before, had := e.decisions[label]
		in.Now = start
		in.Main.LagHeld = before.LagHeld(in.Main.Name)
		in.Standby.LagHeld = before.LagHeld(in.Standby.Name)
		d := policy.Decide(in)
		same := had && sameButIndexes(&before, &d)
		changed = changed || !same
		// Entries are replaced, never written into: the snapshot keeps
		// the decisions it was built from.
		e.inputs[label], e.decisions[label] = in, d
		changes = append(changes, change{label: label, before: before, had: had})
	}
	e.recheckAt = time.Time{}
	for _, d := range e.decisions {
		if !d.Recheck.IsZero() && (e.recheckAt.IsZero() || d.Recheck.Before(e.recheckAt)) {
			e.recheckAt = d.Recheck
		}
	}
	select {
	case e.rebuilt <- struct{}{}:
	default:
	}
	if changed {
		e.gen++
		e.store.Swap(cache.Rebuild(e.store.Load(), e.cfg, e.decisions, e.gen))
		e.observer.Built(e.gen, time.Since(start))
		e.builtAt = time.Now()
	}
	for _, c := range changes {
		e.reportLocked(c, ready)
	}
	e.logged = e.logged || ready
}

// sameButIndexes reports whether d decides as before, its regions'
// Consul indexes aside, and then gives d before's indexes: an index that
// moved under data that decides nothing new (a reads cluster's positions,
// rewritten every loop_wait) makes no snapshot; the cluster zone's serial
// takes the indexes of the next decision that changes an answer.
func sameButIndexes(before, d *policy.Decision) bool {
	mi, si := d.Main.Index, d.Standby.Index
	d.Main.Index, d.Standby.Index = before.Main.Index, before.Standby.Index
	if reflect.DeepEqual(before, d) {
		return true
	}
	d.Main.Index, d.Standby.Index = mi, si
	return false
}
