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

// forgetRemovedLocked drops the decisions and metrics of clusters that cfg
// no longer has; e.mu must be held.
func (e *engine) forgetRemovedLocked(cfg *zones.Config) {
	keep := map[string]bool{}
	for _, cl := range cfg.Clusters {
		keep[cl.Label] = true
	}
	for _, cl := range e.cfg.Clusters {
		if !keep[cl.Label] {
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

// rebuild decides every cluster, builds a snapshot and swaps it in.
func (e *engine) rebuild() {
	start := time.Now()
	// The lock spans the whole rebuild so that a reload cannot pair one
	// configuration's inputs with another's zone; queries never take it.
	e.mu.Lock()
	defer e.mu.Unlock()
	// Read readiness first: once true, the inputs below hold every region's
	// first read.
	ready := e.watcher.Ready()
	inputs := e.watcher.Inputs()
	decisions := make(map[string]policy.Decision, len(inputs))
	for label, in := range inputs {
		decisions[label] = policy.Decide(in)
	}
	e.gen++
	e.store.Swap(cache.Build(e.cfg, decisions, e.gen))
	e.metrics.observeBuild(e.gen, time.Since(start))
	for i := range e.cfg.Clusters {
		label := e.cfg.Clusters[i].Label
		before, hadBefore := e.decisions[label]
		after := decisions[label]
		e.metrics.observeDecision(label, e.cfg, after)
		switch {
		case !ready:
			continue
		case !e.logged || !hadBefore:
			e.logger.Info("decision", "cluster", label, "answers", summary(after), "why", after.Reason)
			continue
		}
		if b, a := summary(before), summary(after); b != a {
			e.metrics.decisionChanges.WithLabelValues(label).Inc()
			e.logger.Info("decision changed", "cluster", label, "before", b, "after", a, "why", after.Reason)
		}
		if after.SplitBrain && !before.SplitBrain {
			e.logger.Warn("split brain: both regions have a leader", "cluster", label,
				"active", after.Active, "why", after.Reason)
		}
	}
	e.inputs, e.decisions, e.builtAt = inputs, decisions, time.Now()
	e.logged = e.logged || ready
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
