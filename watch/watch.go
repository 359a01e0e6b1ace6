// Package watch follows both regions' Consul datacenters with blocking
// queries and turns what they report into the policy's input.
//
// Each watched resource (a Patroni service's health, a PgBouncer service's
// health, a Patroni KV prefix) has its own loop; every change is announced on
// one coalescing channel, and Inputs assembles the per-cluster view on demand.
package watch

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/zones"
)

// Options tune the blocking queries.
type Options struct {
	// WaitTime is the longest a blocking query waits for a change.
	WaitTime time.Duration
	// MinInterval is the shortest time between two queries of one resource.
	MinInterval time.Duration
	// MinBackoff and MaxBackoff bound the jittered backoff after errors.
	MinBackoff, MaxBackoff time.Duration
}

// DefaultOptions are the options used where a field is zero.
var DefaultOptions = Options{
	WaitTime:    60 * time.Second,
	MinInterval: 10 * time.Millisecond,
	MinBackoff:  250 * time.Millisecond,
	MaxBackoff:  10 * time.Second,
}

func (o Options) withDefaults() Options {
	if o.WaitTime <= 0 {
		o.WaitTime = DefaultOptions.WaitTime
	}
	if o.MinInterval <= 0 {
		o.MinInterval = DefaultOptions.MinInterval
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultOptions.MinBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(DefaultOptions.MaxBackoff, o.MinBackoff)
	}
	return o
}

// Watcher watches the resources every configured cluster needs.
type Watcher struct {
	cfg     *zones.Config
	opts    Options
	logger  *slog.Logger
	updates chan struct{}

	regions   map[string]*regionConn
	resources map[resourceKey]*resource // built in New, read-only after
	errLog    *rateLimiter
}

// New builds a Watcher for cfg. It fails when a region's Consul client cannot
// be built (a bad address, an unreadable token file).
func New(cfg *zones.Config, opts Options, logger *slog.Logger) (*Watcher, error) {
	w := &Watcher{
		cfg:       cfg,
		opts:      opts.withDefaults(),
		logger:    logger,
		updates:   make(chan struct{}, 1),
		regions:   map[string]*regionConn{},
		resources: map[resourceKey]*resource{},
		errLog:    newRateLimiter(30 * time.Second),
	}
	for i := range cfg.Regions {
		r := &cfg.Regions[i]
		rc, err := newRegionConn(r, cfg.Other(r), w.opts.WaitTime)
		if err != nil {
			return nil, err
		}
		w.regions[r.Name] = rc
	}
	for i := range cfg.Clusters {
		cl := &cfg.Clusters[i]
		for _, key := range w.keys(cl) {
			if _, ok := w.resources[key]; ok {
				continue
			}
			res := &resource{key: key, conn: w.regions[key.region], tags: cl.Tags}
			w.resources[key] = res
		}
	}
	return w, nil
}

// clusterKeys are the resources of one cluster in one region.
type clusterKeys struct {
	members, kv, bouncers, poolRW, poolRO resourceKey
	hasBouncers, hasPool                  bool
}

func (w *Watcher) clusterKeys(cl *zones.Cluster, region string) clusterKeys {
	scope := cl.Scopes[region]
	ck := clusterKeys{
		members: resourceKey{region: region, kind: kindHealth, name: ServiceName(scope)},
		kv:      resourceKey{region: region, kind: kindKV, name: kvPrefix(cl.Namespace, scope)},
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
	keys := []resourceKey{ck.members, ck.kv}
	if ck.hasBouncers {
		keys = append(keys, ck.bouncers)
	}
	if ck.hasPool {
		keys = append(keys, ck.poolRW, ck.poolRO)
	}
	return keys
}

func (w *Watcher) keys(cl *zones.Cluster) []resourceKey {
	var keys []resourceKey
	for i := range w.cfg.Regions {
		keys = append(keys, w.clusterKeys(cl, w.cfg.Regions[i].Name).all()...)
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

// Run runs every blocking-query loop until ctx is done.
func (w *Watcher) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, r := range w.resources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.run(ctx, w.opts, w.notify, func(err error) { w.logError(r.key, err) })
		}()
	}
	wg.Wait()
}

func (w *Watcher) logError(key resourceKey, err error) {
	if !w.errLog.allow(key.region) {
		return
	}
	w.logger.Warn("consul read failed; serving last known data as stale",
		"region", key.region, "resource", key.name, "err", err)
}

// Inputs returns the policy input of every cluster, keyed by cluster label.
func (w *Watcher) Inputs() map[string]policy.Input {
	out := make(map[string]policy.Input, len(w.cfg.Clusters))
	for i := range w.cfg.Clusters {
		cl := &w.cfg.Clusters[i]
		in := policy.Input{Options: w.cfg.Options(cl)}
		in.Main = w.region(cl, w.cfg.Main().Name)
		in.Standby = w.region(cl, w.cfg.Standby().Name)
		out[cl.Label] = in
	}
	return out
}

// region assembles one cluster's view of one region from its resources. The
// region is known once every resource has been read, and stale while any
// of them fails.
func (w *Watcher) region(cl *zones.Cluster, name string) policy.Region {
	ck := w.clusterKeys(cl, name)
	reg := policy.Region{Name: name, Known: true}
	read := func(key resourceKey) result {
		res, known, failing := w.resources[key].snapshot()
		reg.Known = reg.Known && known
		reg.Stale = reg.Stale || failing
		return res
	}
	reg.Members = read(ck.members).instances
	kv := read(ck.kv).kv
	reg.LeaderKey, reg.Timelines = kv.leader, kv.timelines
	if ck.hasBouncers {
		reg.Bouncers = read(ck.bouncers).instances
	}
	if ck.hasPool {
		reg.PoolRW = read(ck.poolRW).instances
		reg.PoolRO = read(ck.poolRO).instances
	}
	return reg
}
