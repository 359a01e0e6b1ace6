package watch

import (
	"context"
	"math/rand/v2"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/regiondns/regiondns/policy"
)

// kind is what a resource watches.
type kind uint8

const (
	kindHealth kind = iota // /v1/health/service/<name>?tag=<tag>
	kindKV                 // /v1/kv/<prefix>?recurse
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

// result is the latest converted answer of a resource.
type result struct {
	instances []policy.Instance // kindHealth
	kv        kvState           // kindKV
}

// kvState is what regiondns reads from Patroni's KV prefix of one scope.
type kvState struct {
	leader    string
	timelines map[string]int64
	members   []string // members with a members/ key: a running Patroni
	config    policy.ClusterConfig
}

// resource is one blocking-query loop and its latest result.
type resource struct {
	key  resourceKey
	tags policy.RoleTags // health resources of Patroni services classify roles
	// conn is swapped by Reconfigure; each query loads it.
	conn atomic.Pointer[regionConn]
	// cancel stops the loop; guarded by the Watcher's mu.
	cancel context.CancelFunc

	mu sync.Mutex
	// The fields below are guarded by mu.
	res         result
	index       uint64
	known       bool // a result was read at least once
	attempted   bool // the first read finished, successfully or not
	failing     bool // the last read failed on every path
	lastErr     error
	lastContact time.Time
	via         string
}

// snapshot returns the resource's state under its lock.
func (r *resource) snapshot() (res result, known, failing bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.res, r.known, r.failing
}

// fetch runs one blocking query at index idx on path p.
func (r *resource) fetch(ctx context.Context, p path, idx uint64, wait time.Duration) (result, uint64, error) {
	q := (&api.QueryOptions{WaitIndex: idx, WaitTime: wait, Datacenter: p.dc}).WithContext(ctx)
	switch r.key.kind {
	case kindKV:
		pairs, meta, err := p.client.KV().List(r.key.name, q)
		if err != nil {
			return result{}, 0, err
		}
		return result{kv: convertKV(r.key.name, pairs)}, meta.LastIndex, nil
	default:
		entries, meta, err := p.client.Health().Service(r.key.name, r.key.tag, false, q)
		if err != nil {
			return result{}, 0, err
		}
		return result{instances: convertEntries(entries, r.tags)}, meta.LastIndex, nil
	}
}

// run is the blocking-query loop, following Consul's guidance: an index that
// goes backwards resets to 0, an index of 0 is treated as 1 to avoid a hot
// loop, calls are rate limited, and errors back off with jitter.
func (r *resource) run(ctx context.Context, o Options, changed func(), failed func(error)) {
	var idx uint64
	var (
		lastVia string // the path of the last successful read
		broken  bool   // the last read failed
	)
	backoff := o.MinBackoff
	for ctx.Err() == nil {
		started := time.Now()
		var (
			res  result
			next uint64
		)
		p, err := r.conn.Load().query(func(p path) error {
			at := idx
			if broken || p.addr+dcSuffix(p.dc) != lastVia {
				// After a failure, or on another path than the one that
				// answered last (its agent is gone, or the own agents are
				// tried again), read without blocking: the recovery or the
				// switch shows (stale, via, last contact) at once, not only
				// after the next change, up to a wait time later.
				at = 0
			}
			var ferr error
			res, next, ferr = r.fetch(ctx, p, at, o.WaitTime)
			return ferr
		})
		if ctx.Err() != nil {
			return
		}
		broken = err != nil
		if err != nil {
			r.setFailed(err)
			failed(err)
			changed() // staleness is part of the answer (TXT, state)
			sleep(ctx, jitter(backoff))
			backoff = min(backoff*2, o.MaxBackoff)
			continue
		}
		backoff = o.MinBackoff
		switch {
		case next < idx:
			next = 0 // the index went backwards: start over with a full read
		case next == 0:
			next = 1
		}
		lastVia = p.addr + dcSuffix(p.dc)
		fresh := r.setResult(res, next, idx, lastVia)
		idx = next
		if fresh {
			changed()
		}
		if d := o.MinInterval - time.Since(started); d > 0 {
			sleep(ctx, d)
		}
	}
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
	fresh := !r.known || r.failing || (next != prev && !reflect.DeepEqual(res, r.res))
	r.res, r.index, r.known, r.attempted, r.failing = res, next, true, true, false
	r.lastErr, r.lastContact, r.via = nil, time.Now(), via
	return fresh
}

func (r *resource) setFailed(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempted, r.failing, r.lastErr = true, true, err
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
