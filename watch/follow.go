package watch

import (
	"time"

	"github.com/regiondns/regiondns/policy"
)

// launch runs the next step of r's loop on a new goroutine, which starts
// with a small stack. It does nothing once Run is stopping.
func (w *Watcher) launch(r *resource) {
	w.launchMu.Lock()
	defer w.launchMu.Unlock()
	if w.stopping {
		return
	}
	w.wg.Add(1)
	go r.step(w)
}

// poke asks for a read of the KV prefix r and, with window, follows it for
// KVFollow from now. It returns a channel closed once that read is done, or
// nil when r's loop was already running (the running loop reads again if
// it was about to stop).
func (w *Watcher) poke(r *resource, window bool) <-chan struct{} {
	if r.life.Load() != lifeRunning {
		return nil
	}
	r.mu.Lock()
	if window {
		r.followUntil = time.Now().Add(w.opts.KVFollow)
	}
	// The next query reads, whatever the follow window says: a blocking
	// one on a prefix that has not changed would keep the caller of wake
	// waiting for nothing.
	r.readNow = true
	if r.running {
		r.poked = true
		r.mu.Unlock()
		return nil
	}
	r.running = true
	if r.refresh != nil {
		r.refresh.Stop()
		r.refresh = nil
	}
	r.waiter = make(chan struct{})
	done := r.waiter
	r.mu.Unlock()
	w.launch(r)
	return done
}

// wakeWait bounds how long a changed Patroni service waits for the reads
// of its KV prefixes before it announces the change.
const wakeWait = time.Second

// wake reads, and follows for KVFollow, the KV prefixes of the Patroni
// service r, whose health just changed; it returns once those reads are
// done (or after wakeWait), so that the change and the KV it came with reach
// the policy together.
func (w *Watcher) wake(r *resource) {
	w.mu.RLock()
	peers := r.kv
	w.mu.RUnlock()
	var dones []<-chan struct{}
	for _, kv := range peers {
		if done := w.poke(kv, true); done != nil {
			dones = append(dones, done)
		}
	}
	if len(dones) == 0 {
		return
	}
	t := time.NewTimer(wakeWait)
	defer t.Stop()
	for _, done := range dones {
		select {
		case <-done:
		case <-t.C:
			return
		case <-w.runCtx.Done():
			return
		}
	}
}

// lockMoved reads, and follows for KVFollow, the KV prefix of the leader
// key r's scope, whose value just changed: the new holder's members/ key
// says when it has been promoted, and a followed prefix shows that within
// moments. The read is announced on its own, after the key's change.
func (w *Watcher) lockMoved(r *resource) {
	w.mu.RLock()
	peers := r.kv
	w.mu.RUnlock()
	for _, kv := range peers {
		w.poke(kv, true)
	}
}

// settle runs after the first read of r. For a Patroni service, it reads
// each KV prefix of its scope that is unsettled and was read before the
// service was known: the prefix decided then not to follow, knowing
// nothing.
func (w *Watcher) settle(r *resource) {
	w.mu.RLock()
	peers := r.kv
	w.mu.RUnlock()
	for _, kv := range peers {
		kv.mu.Lock()
		attempted, running := kv.attempted, kv.running
		kv.mu.Unlock()
		if attempted && !running && !w.settled(kv) {
			w.poke(kv, false)
		}
	}
}

// following reports whether the KV resource r is followed with blocking
// queries at now. A prefix is followed all the time when one of its
// clusters follows reads, else within its follow window or while its
// scope is unsettled; a sync key while its prefix says synchronous mode.
func (w *Watcher) following(r *resource, now time.Time) bool {
	switch r.key.kind {
	case kindKey, kindControl:
		return true
	case kindSync:
		w.mu.RLock()
		prefix := r.prefix
		w.mu.RUnlock()
		if prefix == nil {
			return false
		}
		res, known, _ := prefix.snapshot()
		return known && res.kvs().syncMode
	}
	if r.reads {
		return true
	}
	r.mu.Lock()
	until := r.followUntil
	r.mu.Unlock()
	return now.Before(until) || !w.settled(r)
}

// settled reports whether the scope of the KV prefix r looks at rest, as
// policy.Settled decides from the scope's Patroni service, its KV and the
// cluster's Patroni services in the other regions. A failing read of the
// prefix or of the service leaves the scope unsettled: its KV may be what
// changes next. A scope whose service is not read yet is settled: the
// service's first read settles it again.
func (w *Watcher) settled(r *resource) bool {
	w.mu.RLock()
	h, lock, others := r.health, r.lock, r.others
	opts := policy.Options{WarningIsPassing: w.cfg.WarningIsPassing}
	w.mu.RUnlock()
	kv, kvKnown, kvFailing := r.snapshot()
	if !kvKnown || kvFailing || h == nil {
		return false
	}
	leader := kv.kvs().leader
	if lock != nil {
		// The leader key's own blocking query is the fresher reading.
		if res, known, _ := lock.snapshot(); known {
			leader = res.key
		}
	}
	members, known, failing := h.snapshot()
	if !known {
		return true
	}
	if failing {
		return false
	}
	region := policy.Region{Members: members.instances, LeaderKey: leader, Config: kv.kvs().config}
	// Two regions: one other, kept on the stack.
	var buf [1]policy.Region
	peers := buf[:0]
	for _, o := range others {
		res, known, _ := o.snapshot()
		peers = append(peers, policy.Region{Known: known, Members: res.instances})
	}
	return policy.Settled(opts, &region, peers)
}
