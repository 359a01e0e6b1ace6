package forward

import (
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/internal/dnswire"
)

// question returns the question section of a query for name (in lower
// case), qtype and class IN, as the resolver's fast path reads it: the key
// GetWire looks up (nil when the name does not pack, which no test wants).
func question(name string, qtype uint16) []byte {
	q, err := (&dns.Msg{Question: []dns.Question{{Name: name, Qtype: qtype, Qclass: dns.ClassINET}}}).Pack()
	if err != nil {
		return nil
	}
	return q[dnswire.HeaderLen:]
}

// TestGetWire: the wire form is the packed Get response to the lower-case
// question, its TTL offsets point at every record's TTL, and the elapsed
// seconds are those Get takes off.
func TestGetWire(t *testing.T) {
	clock := newFakeClock()
	c := newTestLRU(clock, LRUOptions{})
	m := upstreamMsg(t, dns.RcodeSuccess,
		[]string{"web.service.consul. 60 IN SRV 1 1 80 a.node.dc1.consul.", "web.service.consul. 40 IN SRV 1 1 80 b.node.dc1.consul."},
		nil, []string{"a.node.dc1.consul. 20 IN A 10.0.0.1"})
	k := NewKey(dns.Question{Name: "Web.Service.Consul.", Qtype: dns.TypeSRV, Qclass: dns.ClassINET}, true)
	if _, ok := c.Add(k, m); !ok {
		t.Fatal("not cached")
	}
	web := question("web.service.consul.", dns.TypeSRV)
	if _, _, ok := c.GetWire(web, false); ok {
		t.Error("hit for the other DO bit")
	}
	clock.Advance(5*time.Second + 900*time.Millisecond)
	w, elapsed, ok := c.GetWire(web, true)
	if !ok || elapsed != 5 {
		t.Fatalf("GetWire: %v, elapsed %d", ok, elapsed)
	}
	var got dns.Msg
	if err := got.Unpack(w.Msg); err != nil {
		t.Fatal(err)
	}
	want, _ := c.Get(k)
	if len(w.TTLs) != 3 || w.Extra >= len(w.Msg) || got.Question[0].Name != "web.service.consul." || !got.RecursionAvailable || got.Authoritative {
		t.Fatalf("wire form %+v: %v", w, &got)
	}
	for i, off := range w.TTLs {
		rr := append(append(got.Answer, got.Ns...), got.Extra...)[i]
		if binary.BigEndian.Uint32(w.Msg[off:]) != rr.Header().Ttl {
			t.Errorf("TTL offset %d does not hold %v's TTL", off, rr)
		}
		wrr := append(append(want.Answer, want.Ns...), want.Extra...)[i]
		if rr.Header().Ttl-elapsed != wrr.Header().Ttl {
			t.Errorf("%v minus %d s is not Get's %v", rr, elapsed, wrr)
		}
	}
	if s := c.Stats(); s.Hits != 2 || s.Misses != 0 {
		t.Errorf("stats %+v, want 2 hits (GetWire and Get) and no miss (GetWire counts none)", s)
	}
	clock.Advance(15 * time.Second)
	if _, _, ok := c.GetWire(web, true); ok {
		t.Error("hit after the lifetime")
	}
	if n := testing.AllocsPerRun(100, func() { c.GetWire(web, true) }); n != 0 {
		t.Errorf("GetWire allocates %v times", n)
	}
}

// TestGetWireConcurrent runs GetWire against Adds that evict, under the
// race detector, and checks that the wire index ends with exactly the
// entries of golang-lru.
func TestGetWireConcurrent(t *testing.T) {
	c := NewLRU(LRUOptions{Size: 16})
	msg := func(name string) *dns.Msg {
		return upstreamMsg(t, dns.RcodeSuccess, []string{name + " 60 IN A 192.0.2.1"}, nil, nil)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				name := fmt.Sprintf("n%d.example.com.", (i*7+g)%40)
				c.Add(NewKey(dns.Question{Name: name, Qtype: dns.TypeA, Qclass: dns.ClassINET}, false), msg(name))
			}
		})
		wg.Go(func() {
			for i := range 2000 {
				name := fmt.Sprintf("n%d.example.com.", i%40)
				if w, _, ok := c.GetWire(question(name, dns.TypeA), false); ok && len(w.TTLs) != 1 {
					t.Errorf("%s: %d TTLs", name, len(w.TTLs))
				}
			}
		})
	}
	wg.Wait()
	n := 0
	for i := range c.wire.shards {
		for _, m := range c.wire.shards[i].m {
			n += len(m)
		}
	}
	if n != c.entries.Len() {
		t.Errorf("wire index holds %d entries, golang-lru %d", n, c.entries.Len())
	}
	for _, k := range c.entries.Keys() {
		if _, _, ok := c.GetWire(question(k.Name, k.Qtype), k.DO); !ok {
			t.Errorf("%v: in golang-lru, not in the wire index", k)
		}
	}
}
