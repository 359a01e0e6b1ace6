package forward

import (
	"github.com/miekg/dns"
)

// The byte bound of the LRU.
//
// The entry bound alone lets a few thousand big answers (a service with
// hundreds of instances, asked over TCP) take gigabytes. So every entry
// has a size, and Add pushes out the least recently used entries until the
// sum is within LRUOptions.MaxBytes. The size is an estimate of the heap
// the entry holds, cheap to compute once at Add: the packed response (the
// wire form the fast path answers from, about as big as the records' own
// data), and a fixed overhead per entry and per record (the parsed
// records' headers, owner names and interface values, the slices and maps
// around them). Answers over MaxCachedAnswer packed are served but never
// kept: a handful of them would push out thousands of ordinary answers.

const (
	// MaxCachedAnswer is the largest answer the LRU keeps, packed; bigger
	// ones are relayed to the client and not cached.
	MaxCachedAnswer = 16 << 10
	// entryOverhead is what an entry costs besides its records: the entry,
	// its key and question strings, golang-lru's element and map slot, the
	// wire index's map slot and the packed response's header.
	entryOverhead = 512
	// recordOverhead is what a parsed record costs besides its data: its
	// struct and header, its owner name, its interface value, and its TTL
	// offset in the wire form.
	recordOverhead = 160
)

// entrySize returns the size the byte bound counts for e, cached from the
// upstream response m, and false when m is over MaxCachedAnswer packed.
func entrySize(e *lruEntry, m *dns.Msg) (int64, bool) {
	var packed int
	if e.wire != nil {
		packed = len(e.wire.Msg)
	} else {
		// No wire form: its packed length as miekg/dns counts it.
		packed = m.Len()
	}
	if packed > MaxCachedAnswer {
		return 0, false
	}
	records := len(e.answer) + len(e.ns) + len(e.extra)
	// The packed response, and the parsed records' data: about as much
	// again.
	return int64(entryOverhead + 2*packed + records*recordOverhead), true
}

// onEvict is golang-lru's eviction callback: e leaves the byte count and
// the wire index.
func (c *LRU) onEvict(k Key, e *lruEntry) {
	c.bytes.Add(-e.size)
	c.evicted(k, e)
}

// replacingLocked takes the entry that the Add of k is about to replace
// out of the byte count: golang-lru replaces a value in place, without
// the eviction callback. Called with addMu held.
func (c *LRU) replacingLocked(k Key) {
	if old, ok := c.entries.Peek(k); ok {
		c.bytes.Add(-old.size)
	}
}

// trimLocked pushes out the least recently used entries until the byte
// count is within MaxBytes. Called with addMu held.
func (c *LRU) trimLocked() {
	for c.bytes.Load() > c.opts.MaxBytes {
		if _, _, ok := c.entries.RemoveOldest(); !ok {
			return
		}
		c.evictions.Add(1)
	}
}
