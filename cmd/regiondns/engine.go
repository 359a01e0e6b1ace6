package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/regiondns/regiondns/cache"
	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/watch"
	"github.com/regiondns/regiondns/zones"
)

// engine carries data one way: watcher -> policy -> snapshot -> store.
type engine struct {
	cfg     *zones.Config
	watcher *watch.Watcher
	store   *cache.Store
	logger  *slog.Logger
	metrics *metrics

	mu sync.Mutex
	// The fields below are guarded by mu; the query path never reads them.
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
	// path, loadedAt and reloadErr describe the zone file in use.
	path      string
	loadedAt  time.Time
	reloadErr error
	// beforeReload, when set, prepares what else a new configuration needs;
	// its error fails the reload, its commit function applies it.
	beforeReload func(*zones.Config) (commit func(), err error)
}

// reload reads the zone file again. A bad file keeps the running
// configuration, and says why in the log, the metrics and /debug/state.
func (e *engine) reload() error {
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
			e.forgetRemovedLocked(cfg)
			e.cfg, e.loadedAt = cfg, time.Now()
		}
		e.mu.Unlock()
	}
	e.mu.Lock()
	e.reloadErr = err
	e.mu.Unlock()
	e.metrics.observeReload(err == nil)
	if err != nil {
		e.logger.Error("zone file reload failed; the running configuration stays", "path", e.path, "err", err)
		return err
	}
	e.logger.Info("zone file reloaded", "path", e.path, "zone", cfg.Zone, "clusters", len(cfg.Clusters))
	e.rebuild()
	return nil
}

// forgetRemovedLocked drops the inputs, decisions and metrics of clusters
// that cfg no longer has; e.mu must be held.
func (e *engine) forgetRemovedLocked(cfg *zones.Config) {
	keep := map[string]bool{}
	for _, cl := range cfg.Clusters {
		keep[cl.Label] = true
	}
	for _, cl := range e.cfg.Clusters {
		if !keep[cl.Label] {
			delete(e.inputs, cl.Label)
			delete(e.decisions, cl.Label)
			e.metrics.forgetCluster(cl.Label)
		}
	}
}

// run rebuilds the snapshot after every change the watcher announces.
func (e *engine) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.watcher.Updates():
			e.rebuild()
		}
	}
}

// rebuild decides the clusters whose inputs changed, builds a snapshot and
// swaps it in. The clusters that did not change keep their decisions, and
// the snapshot their answers.
func (e *engine) rebuild() {
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
	if e.decisions == nil {
		e.inputs = make(map[string]policy.Input, len(inputs))
		e.decisions = make(map[string]policy.Decision, len(inputs))
	}
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
		// Entries are replaced, never written into: the snapshot keeps
		// the decisions it was built from.
		e.inputs[label], e.decisions[label] = in, policy.Decide(in)
		changes = append(changes, change{label: label, before: before, had: had})
	}
	e.gen++
	e.store.Swap(cache.Rebuild(e.store.Load(), e.cfg, e.decisions, e.gen))
	e.metrics.observeBuild(e.gen, time.Since(start))
	for _, c := range changes {
		e.reportLocked(c, ready)
	}
	e.builtAt = time.Now()
	e.logged = e.logged || ready
}

// change is a cluster a rebuild decided again, and its decision before.
type change struct {
	label  string
	before policy.Decision
	had    bool // there was a decision before
}

// reportLocked updates the metrics of a cluster decided again and, once
// every region was read, logs what changed; e.mu must be held.
func (e *engine) reportLocked(c change, ready bool) {
	after := e.decisions[c.label]
	e.metrics.observeDecision(c.label, e.cfg, after)
	switch {
	case !ready:
		return
	case !e.logged || !c.had:
		e.logger.Info("decision", "cluster", c.label, "answers", summary(after), "why", after.Reason)
		return
	}
	if b, a := summary(c.before), summary(after); b != a {
		e.metrics.decisionChanges.WithLabelValues(c.label).Inc()
		e.logger.Info("decision changed", "cluster", c.label, "before", b, "after", a, "why", after.Reason)
	}
	if after.SplitBrain && !c.before.SplitBrain {
		e.logger.Warn("split brain: both regions have a leader", "cluster", c.label,
			"active", after.Active, "why", after.Reason)
	}
}

// summary is the part of a decision whose change is worth a log line.
func summary(d policy.Decision) string {
	var b strings.Builder
	fmt.Fprintf(&b, "active=%s rw=%s ro=%s passive-rw=%s passive-ro=%s split_brain=%t",
		d.Active, endpoints(d.RW), endpoints(d.RO), endpoints(d.PassiveRW), endpoints(d.PassiveRO), d.SplitBrain)
	return b.String()
}

func endpoints(eps []policy.Endpoint) string {
	parts := make([]string, len(eps))
	for i, ep := range eps {
		name := ep.Member
		if name == "" {
			name = ep.Node
		}
		parts[i] = fmt.Sprintf("%s@%s:%d", name, ep.Address, ep.Port)
	}
	return "[" + strings.Join(parts, ",") + "]"
}
