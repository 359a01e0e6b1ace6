package forward

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/internal/dnswire"
)

// Defaults of LRUOptions.
const (
	// DefaultLRUSize bounds the number of delegated answers kept.
	DefaultLRUSize = 10000
	// DefaultLRUMaxBytes bounds the memory of the delegated answers kept,
	// as entrySize counts it: big answers must not make the entry bound
	// a bound of gigabytes.
	DefaultLRUMaxBytes = 64 << 20
	// DefaultLRUMaxTTL caps how long any delegated answer is kept.
	DefaultLRUMaxTTL = time.Hour
	// DefaultLRUServFailTTL is how long a SERVFAIL is kept: long enough to
	// absorb a client's immediate retries, short enough not to outlive a
	// blip.
	DefaultLRUServFailTTL = time.Second
	// DefaultLRUNegativeTTL is how long an NXDOMAIN or NODATA without an
	// SOA in its authority section is kept (RFC 2308 gives no lifetime for
	// it).
	DefaultLRUNegativeTTL = 5 * time.Second
)

// LRUOptions configure an LRU. The zero value gives the defaults.
type LRUOptions struct {
	// Size is the most entries kept; the least recently used goes first.
	// Zero or less means DefaultLRUSize.
	Size int
	// MaxBytes is the most bytes kept, as entrySize counts them; the least
	// recently used entries go first until the cache is within it. An
	// answer over MaxCachedAnswer is never kept. Zero or less means
	// DefaultLRUMaxBytes.
	MaxBytes int64
	// MaxTTL caps the lifetime of every entry, and so the TTLs handed out.
	// Zero or less means DefaultLRUMaxTTL.
	MaxTTL time.Duration
	// ServFailTTL is the lifetime of a SERVFAIL (capped at MaxTTL). Zero
	// means DefaultLRUServFailTTL; negative: SERVFAIL is never cached.
	ServFailTTL time.Duration
	// NegativeTTL is the lifetime of a negative answer without an SOA.
	// Zero means DefaultLRUNegativeTTL; negative: such answers are never
	// cached.
	NegativeTTL time.Duration
	// Now is the clock; nil means time.Now. Tests inject a fake one.
	Now func() time.Time
}

// Key identifies a delegated answer: the question (name lower-cased, RFC
// 4343), the client's DO bit, since a DNSSEC-aware answer differs from a
// plain one, and the client subnet the answer holds for (ecs.go): the zero
// Prefix for an answer that holds for every client. It is comparable and
// cheap to build.
type Key struct {
	Name   string
	Qtype  uint16
	Qclass uint16
	DO     bool
	Subnet netip.Prefix
}

// NewKey returns the key of question q asked with the DO bit do, for
// every client. It allocates only when the name has an upper-case letter.
func NewKey(q dns.Question, do bool) Key {
	return Key{Name: dnswire.LowerName(q.Name), Qtype: q.Qtype, Qclass: q.Qclass, DO: do}
}

// LRUStats are the LRU's counters since it was created.
type LRUStats struct {
	Hits      uint64 // Get found a live entry
	Misses    uint64 // Get found nothing, or an expired entry
	Evictions uint64 // entries pushed out by the size or byte bound (expired or not)
	Entries   int    // entries held now, expired ones not yet replaced included
	Bytes     int64  // their size, as the byte bound counts it
}

// LRU caches delegated answers, bounded in entries, each kept for the
// lifetime its records allow. It is safe for concurrent use: its only lock
// is golang-lru's, held for the map operation and never across I/O.
//
// Entries are never modified after Add: Get hands out copies of the records
// with their TTLs counted down, so callers may do what they like with them.
type LRU struct {
	entries *lru.Cache[Key, *lruEntry]
	opts    LRUOptions
	// wire indexes the entries in wire form for the resolver's fast path
	// (lru_wire.go); addMu serializes Adds so that it holds exactly the
	// entries of golang-lru. Neither is held across I/O.
	wire  wireMap
	addMu sync.Mutex
	// bytes is the size of the entries held (entrySize); it changes with
	// addMu held, or in the eviction callback that Add runs.
	bytes atomic.Int64

	hits, misses, evictions atomic.Uint64
}

// lruEntry is an upstream response as cached. Its records are private
// copies whose TTLs are already capped at ttl; it is immutable.
type lruEntry struct {
	rcode             int
	ra, ad            bool
	answer, ns, extra []dns.RR
	ttl               uint32    // lifetime in whole seconds, the TTL ceiling
	stored, expires   time.Time // expires = stored + lifetime
	size              int64     // what the byte bound counts for it (entrySize)
	// key is the entry's key; question its question in wire form, the
	// key of the wire index ("" when the name does not pack); wire its
	// packed response (nil when it does not pack); touched when a GetWire
	// last refreshed its recency in golang-lru (Unix nanoseconds).
	key      Key
	question string
	wire     *dnswire.Response
	touched  atomic.Int64
}

// NewLRU returns an empty LRU configured by opts.
func NewLRU(opts LRUOptions) *LRU {
	if opts.Size <= 0 {
		opts.Size = DefaultLRUSize
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultLRUMaxBytes
	}
	if opts.MaxTTL <= 0 {
		opts.MaxTTL = DefaultLRUMaxTTL
	}
	if opts.ServFailTTL == 0 {
		opts.ServFailTTL = DefaultLRUServFailTTL
	}
	if opts.NegativeTTL == 0 {
		opts.NegativeTTL = DefaultLRUNegativeTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	// New fails only for a size below 1, excluded above.
	c := &LRU{opts: opts}
	c.wire.init()
	c.entries, _ = lru.NewWithEvict[Key, *lruEntry](opts.Size, c.onEvict)
	return c
}

// Get returns the cached response for k, or false when there is none or it
// has expired. The response has the cached rcode, RA and AD bits and
// copies of the records, their TTLs reduced by the whole seconds elapsed
// since they were stored; it has no question, ID or OPT record.
func (c *LRU) Get(k Key) (*dns.Msg, bool) {
	now := c.opts.Now()
	e := c.live(k, now)
	if e == nil {
		c.misses.Add(1)
		return nil, false
	}
	c.hits.Add(1)
	return e.msg(now), true
}

// Lookup returns the cached response to k's question for a client of k's
// subnet, as Get does: the entry that holds for every client (k with its
// Subnet cleared) or, failing that, the one for k.Subnet; scoped says it
// is the latter. It counts one hit or one miss.
func (c *LRU) Lookup(k Key) (m *dns.Msg, scoped, ok bool) {
	now := c.opts.Now()
	global := k
	global.Subnet = netip.Prefix{}
	e := c.live(global, now)
	if e == nil && k.Subnet.IsValid() {
		e, scoped = c.live(k, now), true
	}
	if e == nil {
		c.misses.Add(1)
		return nil, false, false
	}
	c.hits.Add(1)
	return e.msg(now), scoped, true
}

// live returns the entry of k unless there is none or it has expired at
// now. An expired entry stays until the Add that follows the miss
// replaces it or the size bound pushes it out: removing it here could
// race with that Add and drop the fresh entry.
func (c *LRU) live(k Key, now time.Time) *lruEntry {
	e, ok := c.entries.Get(k)
	if !ok || !now.Before(e.expires) {
		return nil
	}
	return e
}

// Add caches m, an upstream response to the question of k, for as long as
// its records allow, and returns what a Get at this instant returns. It
// returns false, caching nothing, when m may not be kept: a truncated
// answer, a zero lifetime, an rcode other than NOERROR, NXDOMAIN and
// SERVFAIL, or an answer over MaxCachedAnswer packed. m is not modified
// or retained. The least recently used entries go when the entry or the
// byte bound is passed.
//
// The lifetime is the smallest TTL of the records (OPT aside) of a
// positive answer; for NXDOMAIN and NODATA the authority SOA's
// min(TTL, MINIMUM) (RFC 2308 §5), or NegativeTTL without an SOA; for
// SERVFAIL, ServFailTTL. MaxTTL caps all of them.
func (c *LRU) Add(k Key, m *dns.Msg) (*dns.Msg, bool) {
	life, ok := c.lifetime(m)
	if !ok || m.Truncated {
		return nil, false
	}
	life = min(life, c.opts.MaxTTL)
	ttl := uint32(life / time.Second)
	now := c.opts.Now()
	e := &lruEntry{
		rcode:   m.Rcode,
		ra:      m.RecursionAvailable,
		ad:      m.AuthenticatedData,
		answer:  capTTL(m.Answer, ttl),
		ns:      capTTL(m.Ns, ttl),
		extra:   capTTL(m.Extra, ttl),
		ttl:     ttl,
		stored:  now,
		expires: now.Add(life),
		key:     k,
	}
	e.touched.Store(now.UnixNano())
	if !k.Subnet.IsValid() {
		// Only an answer for every client is answered on the fast path,
		// which does not know the client's subnet.
		e.question = k.wireQuestion()
		e.wire = packWire(k, e.msg(now))
	}
	var fits bool
	if e.size, fits = entrySize(e, m); !fits {
		return nil, false
	}
	c.addMu.Lock()
	defer c.addMu.Unlock()
	c.replacingLocked(k)
	// golang-lru calls onEvict after releasing its lock, before Add
	// returns: the wire index loses the evicted entry before it gains e.
	if c.entries.Add(k, e) {
		c.evictions.Add(1)
	}
	c.bytes.Add(e.size)
	c.putWire(e)
	c.trimLocked()
	return e.msg(now), true
}

// Stats returns the counters and the number of entries held.
func (c *LRU) Stats() LRUStats {
	return LRUStats{
		Hits:      c.hits.Load(),
		Misses:    c.misses.Load(),
		Evictions: c.evictions.Load(),
		Entries:   c.entries.Len(),
		Bytes:     c.bytes.Load(),
	}
}

// lifetime returns how long m may be kept, or false if it may not.
func (c *LRU) lifetime(m *dns.Msg) (time.Duration, bool) {
	var d time.Duration
	switch {
	case m.Rcode == dns.RcodeSuccess && len(m.Answer) > 0:
		d = seconds(minTTL(m))
	case m.Rcode == dns.RcodeSuccess, m.Rcode == dns.RcodeNameError:
		d = c.opts.NegativeTTL
		for _, rr := range m.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				d = seconds(min(soa.Hdr.Ttl, soa.Minttl))
				break
			}
		}
	case m.Rcode == dns.RcodeServerFailure:
		d = c.opts.ServFailTTL
	}
	return d, d > 0
}

// minTTL returns the smallest TTL of m's records, OPT aside: no record is
// handed out after its own TTL has run out.
func minTTL(m *dns.Msg) uint32 {
	ttl := uint32(^uint32(0))
	for _, section := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range section {
			if h := rr.Header(); h.Rrtype != dns.TypeOPT {
				ttl = min(ttl, h.Ttl)
			}
		}
	}
	return ttl
}

func seconds(ttl uint32) time.Duration { return time.Duration(ttl) * time.Second }

// capTTL returns copies of rrs, OPT left out, with TTLs at most ttl.
func capTTL(rrs []dns.RR, ttl uint32) []dns.RR {
	var out []dns.RR
	for _, rr := range dnswire.WithoutOPT(rrs) {
		cp := dns.Copy(rr)
		cp.Header().Ttl = min(cp.Header().Ttl, ttl)
		out = append(out, cp)
	}
	return out
}

// msg returns the entry as a response at now: copies of the records with
// the elapsed whole seconds taken off their TTLs, never below zero.
func (e *lruEntry) msg(now time.Time) *dns.Msg {
	var elapsed uint32
	if d := now.Sub(e.stored); d > 0 {
		elapsed = uint32(min(d/time.Second, time.Duration(e.ttl)))
	}
	m := &dns.Msg{
		MsgHdr: dns.MsgHdr{
			Response:           true,
			Rcode:              e.rcode,
			RecursionAvailable: e.ra,
			AuthenticatedData:  e.ad,
		},
		Answer: countDown(e.answer, elapsed),
		Ns:     countDown(e.ns, elapsed),
		Extra:  countDown(e.extra, elapsed),
	}
	return m
}

// countDown returns copies of rrs with elapsed taken off their TTLs.
func countDown(rrs []dns.RR, elapsed uint32) []dns.RR {
	if len(rrs) == 0 {
		return nil
	}
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		cp := dns.Copy(rr)
		h := cp.Header()
		h.Ttl -= min(h.Ttl, elapsed)
		out[i] = cp
	}
	return out
}
