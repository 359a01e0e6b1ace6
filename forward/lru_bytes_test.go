package forward

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// txtAnswer returns an upstream answer for name of n TXT records of 240
// octets each, about 250 octets apiece packed.
func txtAnswer(name string, n int) *dns.Msg {
	m := &dns.Msg{MsgHdr: dns.MsgHdr{Response: true}}
	for i := range n {
		m.Answer = append(m.Answer, &dns.TXT{
			Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300},
			Txt: []string{strings.Repeat(string(rune('a'+i%26)), 240)},
		})
	}
	return m
}

func txtKey(i int) Key {
	return Key{Name: fmt.Sprintf("n%d.service.consul.", i), Qtype: dns.TypeTXT, Qclass: dns.ClassINET}
}

// heapInUse returns the bytes of live heap objects after a full collection.
func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// TestLRUByteBound: 3,000 distinct answers of about 15 KB (within
// MaxCachedAnswer, far within the entry bound) keep the cache within its
// byte bound after every Add, the least recently used going first, and
// the heap grows by about the bound, not by the 3,000 answers.
func TestLRUByteBound(t *testing.T) {
	const maxBytes = 4 << 20
	c := NewLRU(LRUOptions{MaxBytes: maxBytes})
	big := txtAnswer("big.service.consul.", 60)
	if _, ok := entrySizeOf(t, big); !ok {
		t.Fatal("the test answer is over MaxCachedAnswer")
	}
	before := heapInUse()
	for i := range 3000 {
		if _, ok := c.Add(txtKey(i), big); !ok {
			t.Fatalf("answer %d not cached", i)
		}
		if st := c.Stats(); st.Bytes > maxBytes {
			t.Fatalf("after %d answers: %d bytes held, bound %d", i+1, st.Bytes, maxBytes)
		}
	}
	grown := heapInUse() - before
	st := c.Stats()
	if st.Entries >= 3000 || st.Entries < 10 || st.Evictions != uint64(3000-st.Entries) {
		t.Errorf("Stats() = %+v; want a few entries kept, the others evicted", st)
	}
	// The estimate is meant to cover the heap the entries hold.
	if grown > 2*maxBytes {
		t.Errorf("heap grew by %d bytes for a cache bound to %d", grown, maxBytes)
	}
	if _, ok := c.Get(txtKey(0)); ok {
		t.Error("the least recently used answer is still cached")
	}
	if _, ok := c.Get(txtKey(2999)); !ok {
		t.Error("the last answer is not cached")
	}
	// Every evicted entry left the wire index too.
	if n := wireEntries(c); n != st.Entries {
		t.Errorf("wire index holds %d entries, golang-lru %d", n, st.Entries)
	}
	runtime.KeepAlive(c)
}

// TestLRUBigAnswerNotCached: 3,000 distinct answers of 60 KB are not
// cached at all (over MaxCachedAnswer): the cache holds no byte of them.
func TestLRUBigAnswerNotCached(t *testing.T) {
	c := NewLRU(LRUOptions{})
	huge := txtAnswer("huge.service.consul.", 240)
	if wire, err := huge.Pack(); err != nil || len(wire) < 60000 {
		t.Fatalf("test answer: %d octets, %v", len(wire), err)
	}
	before := heapInUse()
	for i := range 3000 {
		if _, ok := c.Add(txtKey(i), huge); ok {
			t.Fatalf("a 60 KB answer was cached")
		}
	}
	if st := c.Stats(); st.Entries != 0 || st.Bytes != 0 {
		t.Errorf("Stats() = %+v, want nothing held", st)
	}
	if grown := heapInUse() - before; grown > 8<<20 {
		t.Errorf("heap grew by %d bytes with nothing cached", grown)
	}
	runtime.KeepAlive(c)
}

// TestLRUBytesReplace: replacing an entry (golang-lru does it in place,
// without the eviction callback) counts the new entry's size instead of
// the old one's, and evictions by the entry bound take theirs off.
func TestLRUBytesReplace(t *testing.T) {
	c := NewLRU(LRUOptions{Size: 2})
	small := txtAnswer("x.service.consul.", 1)
	large := txtAnswer("x.service.consul.", 10)
	sSmall, _ := entrySizeOf(t, small)
	sLarge, _ := entrySizeOf(t, large)
	c.Add(txtKey(0), small)
	for range 5 {
		c.Add(txtKey(0), large)
	}
	if got := c.Stats().Bytes; got != sLarge {
		t.Errorf("one entry replaced 5 times: %d bytes, want %d", got, sLarge)
	}
	c.Add(txtKey(1), small)
	c.Add(txtKey(2), small) // evicts key 0, the large one
	if got := c.Stats().Bytes; got != 2*sSmall {
		t.Errorf("after an eviction: %d bytes, want %d", got, 2*sSmall)
	}
}

// entrySizeOf returns what the byte bound counts for m cached under a
// fresh LRU.
func entrySizeOf(t *testing.T, m *dns.Msg) (int64, bool) {
	t.Helper()
	c := NewLRU(LRUOptions{MaxBytes: 1 << 40})
	if _, ok := c.Add(txtKey(0), m); !ok {
		return 0, false
	}
	return c.Stats().Bytes, true
}

// wireEntries returns the number of entries in c's wire index.
func wireEntries(c *LRU) int {
	n := 0
	for i := range c.wire.shards {
		s := &c.wire.shards[i]
		s.mu.RLock()
		n += len(s.m[0]) + len(s.m[1])
		s.mu.RUnlock()
	}
	return n
}

// TestForwardBigAnswerServedNotCached: an answer over MaxCachedAnswer
// reaches the client whole, and the next query asks the upstream again.
func TestForwardBigAnswerServedNotCached(t *testing.T) {
	const records = 1200 // 16 octets apiece packed: over 16 KiB
	up := startUpstream(t, manyA(records))
	f := forwarder(newTestClock(), []string{up.addr})
	for i := range 2 {
		if m := mustAsk(t, f, "big.service.consul.", dns.TypeA); len(m.Answer) != records {
			t.Fatalf("query %d: %d records, want %d", i, len(m.Answer), records)
		}
	}
	if n := up.tcp.Load(); n != 2 {
		t.Errorf("upstream asked %d times over TCP, want 2: the big answer is not cached", n)
	}
	if st := f.CacheStats(); st.Entries != 0 || st.Bytes != 0 {
		t.Errorf("cache %+v, want empty", st)
	}
}
