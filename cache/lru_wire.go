package cache

import (
	"encoding/binary"
	"hash/maphash"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/internal/dnswire"
)

// Delegated answers in wire form.
//
// Every entry the LRU adds is also packed once, as the response the
// resolver's slow path gives a query for its key with the name in lower
// case: header (ID 0, QR, RA, AD and the rcode of the entry), the question
// with the lower-case name, the records with their TTLs as stored, no OPT,
// compressed as miekg/dns compresses. The fast path of the resolver copies
// it, patches the ID, the flags, the TTLs and the EDNS, and answers
// without unpacking, packing or allocating.
//
// The lookup is a sharded map from a key in wire form (see AppendWireKey)
// to the entry, each shard behind a sync.RWMutex: a hit takes one read
// lock for one map lookup (string(b) in the index expression does not
// allocate). Writers (Add, and the eviction callback it runs) hold a
// shard's lock for one map assignment or deletion only, never across I/O;
// Adds are serialized among themselves by addMu so that the map holds
// exactly the entries of golang-lru. An immutable map swapped through an
// atomic.Pointer was the other choice: lock-free reads, but each Add would
// copy the whole map (10,000 entries) or need batching that delays new
// entries; upstream answers arrive at cache-miss rate, which a sharded
// map absorbs without either cost.

// wireShards is the number of shards of the wire map: enough that readers
// on different cores rarely share a lock word.
const wireShards = 32

// WireKeyMax is the longest key AppendWireKey writes.
const WireKeyMax = 255 + 5

// DelegatedWire is an entry of the LRU in wire form. It is immutable.
type DelegatedWire struct {
	// Msg is the packed response (see above).
	Msg []byte
	// QEnd is the offset just after the question.
	QEnd int
	// Extra is the offset of the additional section: Msg[:Extra] with
	// ARCOUNT 0 is the response without it.
	Extra int
	// TTLs are the offsets of the TTL fields of every record, ascending.
	TTLs []uint16
}

// wireShard is one shard of the wire map.
type wireShard struct {
	mu sync.RWMutex
	m  map[string]*lruEntry
	_  [32]byte // 64 octets: shards on cache lines of their own
}

// wireMap is the wire-form index of an LRU's entries.
type wireMap struct {
	seed   maphash.Seed
	shards [wireShards]wireShard
}

func (w *wireMap) init() {
	w.seed = maphash.MakeSeed()
	for i := range w.shards {
		w.shards[i].m = make(map[string]*lruEntry)
	}
}

func (w *wireMap) shard(key []byte) *wireShard {
	return &w.shards[maphash.Bytes(w.seed, key)%wireShards]
}

// AppendWireKey appends to dst the wire-map key of the question (name in
// lower-case presentation format, as in Key.Name, with its final dot),
// asked with the DO bit do, and returns it. It does not allocate when dst
// has room (WireKeyMax octets).
func AppendWireKey(dst, name []byte, qtype, qclass uint16, do bool) []byte {
	dst = append(dst, name...)
	var d byte
	if do {
		d = 1
	}
	return append(dst, byte(qtype>>8), byte(qtype), byte(qclass>>8), byte(qclass), d)
}

func (k Key) wireKey() string {
	var b [WireKeyMax]byte
	return string(AppendWireKey(b[:0], []byte(k.Name), k.Qtype, k.Qclass, k.DO))
}

// GetWire returns the wire form of the live entry whose key (see
// AppendWireKey) is key, and the whole seconds to take off its TTLs
// (never more than a TTL holds: a TTL minus elapsed, floored at zero, is
// what Get hands out). It reports false, counting nothing, when there is
// none, it has expired or has no wire form: the caller then asks Get,
// which counts. A hit counts as one. It does not allocate.
func (c *LRU) GetWire(key []byte) (w *DelegatedWire, elapsed uint32, ok bool) {
	s := c.wire.shard(key)
	s.mu.RLock()
	e := s.m[string(key)]
	s.mu.RUnlock()
	if e == nil || e.wire == nil {
		return nil, 0, false
	}
	now := c.opts.Now()
	if !now.Before(e.expires) {
		return nil, 0, false
	}
	c.hits.Add(1)
	// Keep golang-lru's recency up to date, at most once a second per
	// entry: its Get takes its lock, briefly.
	if t := now.UnixNano(); t-e.touched.Load() >= int64(time.Second) {
		e.touched.Store(t)
		c.entries.Get(e.key)
	}
	return e.wire, e.elapsed(now), true
}

// elapsed returns the whole seconds since e was stored, at most its TTL
// ceiling.
func (e *lruEntry) elapsed(now time.Time) uint32 {
	if d := now.Sub(e.stored); d > 0 {
		return uint32(min(d/time.Second, time.Duration(e.ttl)))
	}
	return 0
}

// putWire indexes e under k; called by Add with addMu held.
func (c *LRU) putWire(k Key, e *lruEntry) {
	wk := k.wireKey()
	s := c.wire.shard([]byte(wk))
	s.mu.Lock()
	s.m[wk] = e
	s.mu.Unlock()
}

// evicted removes e from the wire index, unless its key already holds a
// newer entry.
func (c *LRU) evicted(k Key, e *lruEntry) {
	wk := k.wireKey()
	s := c.wire.shard([]byte(wk))
	s.mu.Lock()
	if s.m[wk] == e {
		delete(s.m, wk)
	}
	s.mu.Unlock()
}

// packWire returns the wire form of the response m (as msg returns it, with
// no elapsed time) to the question of k, or nil when it does not pack or
// its layout is not what the fast path patches.
func packWire(k Key, m *dns.Msg) *DelegatedWire {
	r := *m
	r.Question = []dns.Question{{Name: k.Name, Qtype: k.Qtype, Qclass: k.Qclass}}
	r.Compress = true
	msg, err := r.Pack()
	if err != nil || len(msg) > dns.MaxMsgSize {
		return nil
	}
	w := &DelegatedWire{Msg: msg}
	off := dnswire.SkipName(msg, dnswire.HeaderLen)
	if off < 0 || off+4 > len(msg) {
		return nil
	}
	w.QEnd = off + 4
	off = w.QEnd
	an := int(binary.BigEndian.Uint16(msg[6:]))
	ns := int(binary.BigEndian.Uint16(msg[8:]))
	ar := int(binary.BigEndian.Uint16(msg[10:]))
	if binary.BigEndian.Uint16(msg[4:]) != 1 {
		return nil
	}
	w.Extra = -1
	for i := range an + ns + ar {
		if i == an+ns {
			w.Extra = off
		}
		if off = dnswire.SkipName(msg, off); off < 0 || off+10 > len(msg) {
			return nil
		}
		if binary.BigEndian.Uint16(msg[off:]) == dns.TypeOPT {
			return nil
		}
		w.TTLs = append(w.TTLs, uint16(off+4))
		off += 10 + int(binary.BigEndian.Uint16(msg[off+8:]))
		if off > len(msg) {
			return nil
		}
	}
	if w.Extra < 0 {
		w.Extra = off
	}
	if off != len(msg) {
		return nil
	}
	return w
}
