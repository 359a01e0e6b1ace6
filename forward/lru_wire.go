package forward

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
// Every entry the LRU adds is also packed once (a dnswire.Response), as the
// response the resolver's slow path gives a query for its key with the
// name in lower case: header (ID 0, QR, RA, AD and the rcode of the
// entry), the question with the lower-case name, the records with their
// TTLs as stored, no OPT, compressed as miekg/dns compresses. The
// resolver's fast path copies it, patches the ID, the flags, the TTLs and
// the EDNS, and answers without unpacking, packing or allocating.
//
// The lookup is keyed by the question as a query carries it: the name in
// wire form (lower case, uncompressed), QTYPE and QCLASS, so that the fast
// path looks up the bytes of the query itself. The index is a sharded map
// per DO bit from that key to the entry, each shard behind a
// sync.RWMutex: a hit takes one read lock for one map lookup (string(b) in
// the index expression does not allocate). Writers (Add, and the eviction
// callback it runs) hold a shard's lock for one map assignment or
// deletion only, never across I/O; Adds are serialized among themselves
// by addMu so that the maps hold exactly the entries of golang-lru. An
// immutable map swapped through an atomic.Pointer was the other choice:
// lock-free reads, but each Add would copy the whole map or need batching
// that delays new entries; upstream answers arrive at cache-miss rate,
// which a sharded map absorbs without either cost.

// wireShards is the number of shards of the wire index: enough that
// readers on different cores rarely share a lock word.
const wireShards = 32

// maxQuestion is the longest question in wire form: a name of 255
// octets, QTYPE and QCLASS.
const maxQuestion = 255 + 4

// wireShard is one shard of the wire index: an entry by its question, one
// map per DO bit.
type wireShard struct {
	mu sync.RWMutex
	m  [2]map[string]*lruEntry
	_  [24]byte // 64 octets: shards on cache lines of their own
}

// wireMap is the wire-form index of an LRU's entries.
type wireMap struct {
	seed   maphash.Seed
	shards [wireShards]wireShard
}

func (w *wireMap) init() {
	w.seed = maphash.MakeSeed()
	for i := range w.shards {
		for do := range w.shards[i].m {
			w.shards[i].m[do] = make(map[string]*lruEntry)
		}
	}
}

func (w *wireMap) shard(question []byte) *wireShard {
	return &w.shards[maphash.Bytes(w.seed, question)%wireShards]
}

// shardOf is shard for a question held as a string (the same hash).
func (w *wireMap) shardOf(question string) *wireShard {
	return &w.shards[maphash.String(w.seed, question)%wireShards]
}

func doIndex(do bool) int {
	if do {
		return 1
	}
	return 0
}

// wireQuestion returns k's question in wire form: the name packed without
// compression, QTYPE and QCLASS. "" when the name does not pack.
func (k Key) wireQuestion() string {
	var b [maxQuestion]byte
	n, err := dns.PackDomainName(k.Name, b[:], 0, nil, false)
	if err != nil || n+4 > len(b) {
		return ""
	}
	binary.BigEndian.PutUint16(b[n:], k.Qtype)
	binary.BigEndian.PutUint16(b[n+2:], k.Qclass)
	return string(b[:n+4])
}

// GetWire returns the wire form of the live entry for question (a query's
// question section: the name in lower case without compression, QTYPE,
// QCLASS) asked with the DO bit do, and the whole seconds to take off its
// TTLs (never more than a TTL holds: a TTL minus elapsed, floored at zero,
// is what Get hands out). It reports false, counting nothing, when there
// is none, it has expired or has no wire form: the caller then asks Get,
// which counts. A hit counts as one. It does not allocate.
func (c *LRU) GetWire(question []byte, do bool) (w *dnswire.Response, elapsed uint32, ok bool) {
	s := c.wire.shard(question)
	s.mu.RLock()
	e := s.m[doIndex(do)][string(question)]
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

// putWire indexes e under its question; called by Add with addMu held.
func (c *LRU) putWire(e *lruEntry) {
	if e.question == "" {
		return
	}
	s := c.wire.shardOf(e.question)
	s.mu.Lock()
	s.m[doIndex(e.key.DO)][e.question] = e
	s.mu.Unlock()
}

// evicted removes e from the wire index, unless its key already holds a
// newer entry.
func (c *LRU) evicted(_ Key, e *lruEntry) {
	if e.question == "" {
		return
	}
	s := c.wire.shardOf(e.question)
	m := s.m[doIndex(e.key.DO)]
	s.mu.Lock()
	if m[e.question] == e {
		delete(m, e.question)
	}
	s.mu.Unlock()
}

// packWire returns the wire form of the response m (as msg returns it, with
// no elapsed time) to the question of k, or nil when it does not pack or
// its layout is not what the fast path patches. An answer that may be
// served in a new order per query (dnswire.Shuffleable) has a Reorder, or
// no wire form when its names do not allow one: the slow path, which
// orders it anew before packing, answers it then, so that a query gets the
// same answer on either path.
func packWire(k Key, m *dns.Msg) *dnswire.Response {
	r := *m
	r.Question = []dns.Question{{Name: k.Name, Qtype: k.Qtype, Qclass: k.Qclass}}
	r.Compress = true
	msg, err := r.Pack()
	if err != nil || len(msg) > dns.MaxMsgSize {
		return nil
	}
	w := &dnswire.Response{Msg: msg}
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
	records := make([]int, 0, an+ns+ar+1)
	for i := range an + ns + ar {
		if i == an+ns {
			w.Extra = off
		}
		records = append(records, off)
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
	if dnswire.Shuffleable(m.Answer) {
		if w.Reorder = dnswire.NewReorder(msg, append(records, off), an); w.Reorder == nil {
			return nil
		}
	}
	return w
}
