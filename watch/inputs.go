package watch

import (
	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/zones"
)

// changed marks the clusters that read r as changed, then announces it. r's
// new state must already be stored: Changes takes the marks before it reads
// the inputs, so a change is either in the inputs it returns or marked for
// the next call, never lost between the two.
func (w *Watcher) changed(r *resource) {
	w.mu.RLock()
	// link replaces the slice, never writes into it: it stays valid
	// after the unlock.
	labels := r.clusters
	w.mu.RUnlock()
	w.dirtyMu.Lock()
	if !w.allDirty {
		if w.dirty == nil {
			w.dirty = make(map[string]struct{}, len(labels))
		}
		for _, l := range labels {
			w.dirty[l] = struct{}{}
		}
	}
	w.dirtyMu.Unlock()
	w.notify()
}

// markAll marks every cluster as changed: a new configuration may change
// any cluster's options or resources.
func (w *Watcher) markAll() {
	w.dirtyMu.Lock()
	w.dirty, w.allDirty = nil, true
	w.dirtyMu.Unlock()
}

// Changes returns the policy input of each cluster whose input may have
// changed since the previous call, keyed by cluster label, and forgets
// those changes. all is true at the first call and after Reconfigure: then
// inputs holds every configured cluster, as Inputs does, and a caller keeping
// earlier inputs drops the clusters it does not name.
//
// A cluster may be named although nothing it reads changed (a read that
// failed again, a resource shared with a changed cluster's region); a change
// is never missed. Updates announces when there is something to take.
func (w *Watcher) Changes() (inputs map[string]policy.Input, all bool) {
	w.dirtyMu.Lock()
	dirty, all := w.dirty, w.allDirty
	w.dirty, w.allDirty = nil, false
	w.dirtyMu.Unlock()
	if all {
		return w.Inputs(), true
	}
	inputs = make(map[string]policy.Input, len(dirty))
	if len(dirty) == 0 {
		return inputs, false
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	// Labels the configuration no longer has (marked by a resource that
	// Reconfigure just stopped) are dropped here.
	for i := range w.cfg.Clusters {
		cl := &w.cfg.Clusters[i]
		if _, ok := dirty[cl.Label]; ok {
			inputs[cl.Label] = w.inputLocked(cl)
		}
	}
	return inputs, false
}

// Inputs returns the policy input of every cluster, keyed by cluster label.
// It leaves the changes Changes reports as they are.
func (w *Watcher) Inputs() map[string]policy.Input {
	w.mu.RLock()
	defer w.mu.RUnlock()
	out := make(map[string]policy.Input, len(w.cfg.Clusters))
	for i := range w.cfg.Clusters {
		cl := &w.cfg.Clusters[i]
		out[cl.Label] = w.inputLocked(cl)
	}
	return out
}

// inputLocked assembles the policy input of cl; w.mu must be held.
func (w *Watcher) inputLocked(cl *zones.Cluster) policy.Input {
	return policy.Input{
		Options: w.cfg.Options(cl),
		Main:    w.region(cl, w.cfg.Main().Name),
		Standby: w.region(cl, w.cfg.Standby().Name),
		Control: w.controlLocked(cl.Label),
	}
}

// region assembles one cluster's view of one region from its resources. The
// region is known once every resource has been read, and stale while any
// of them fails. Its Index is the highest of its resources' changedAt, once
// it is known; w.mu must be held.
func (w *Watcher) region(cl *zones.Cluster, name string) policy.Region {
	ck := clusterKeysOf(cl, name)
	reg := policy.Region{Name: name, Known: true}
	read := func(key resourceKey) result {
		r := w.resources[key]
		res, known, failing := r.snapshot()
		reg.Known = reg.Known && known
		reg.Stale = reg.Stale || failing
		reg.Index = max(reg.Index, r.changedAt())
		return res
	}
	reg.Members = read(ck.members).instances
	kv := read(ck.kv).kvs()
	reg.LeaderKey, reg.Timelines, reg.Config, reg.MemberKeys = kv.leader, kv.timelines, kv.config, kv.members
	reg.MemberData, reg.Optime, reg.SyncMode, reg.Sync = kv.memberData, kv.optime, kv.syncMode, kv.sync
	if kv.syncMode {
		// In synchronous mode the sync key is followed on its own: once
		// read, it is newer than the prefix's copy.
		if res, known, failing := w.resources[ck.sync].snapshot(); known {
			reg.Sync, reg.Stale = res.syncKey(), reg.Stale || failing
			reg.Index = max(reg.Index, w.resources[ck.sync].changedAt())
		}
	}
	reg.KeyRoles = kv.roles
	lock := read(ck.leader)
	if _, known, _ := w.resources[ck.leader].snapshot(); known && kv.any {
		// The lock decides only where Patroni keeps its keys: in a prefix
		// without any (a namespace Patroni does not use), a missing leader
		// key says nothing. Of the key's own read and the prefix's, the
		// later one (the higher index: one datacenter, one index) holds
		// the key as it is.
		reg.LeaderKeyRead = true
		if w.resources[ck.leader].readAt() >= w.resources[ck.kv].readAt() {
			reg.LeaderKey = lock.key
		}
	}
	if r := w.resources[controlKey(w.cfg, name)]; r != nil {
		// The cluster's pin and drains in this region's KV are data
		// behind its answers too.
		if res, known, _ := r.snapshot(); known {
			reg.Index = max(reg.Index, res.ctl().index[cl.Label])
		}
	}
	if ck.hasBouncers {
		reg.Bouncers = read(ck.bouncers).instances
	}
	if ck.hasPool {
		reg.PoolRW = read(ck.poolRW).instances
		reg.PoolRO = read(ck.poolRO).instances
	}
	if !reg.Known {
		// Not every resource has been read: the region's data, and its
		// index, are not there yet. A partial index would let the answers
		// change, once the rest is read, with no index to show it.
		reg.Index = 0
	}
	return reg
}
