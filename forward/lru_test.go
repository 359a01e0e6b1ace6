package forward

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fakeClock is a settable clock for LRUOptions.Now.
type fakeClock struct{ t atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.t.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time              { return time.Unix(0, c.t.Load()) }
func (c *fakeClock) Advance(d time.Duration)     { c.t.Add(int64(d)) }
func newTestLRU(c *fakeClock, o LRUOptions) *LRU { o.Now = c.Now; return NewLRU(o) }

func mustRR(tb testing.TB, s string) dns.RR {
	tb.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		tb.Fatalf("NewRR(%q): %v", s, err)
	}
	return rr
}

// upstreamMsg returns a response with rcode and the records given as text,
// an OPT in the additional section as an upstream sends it.
func upstreamMsg(tb testing.TB, rcode int, answer, ns, extra []string) *dns.Msg {
	tb.Helper()
	m := &dns.Msg{MsgHdr: dns.MsgHdr{Response: true, Rcode: rcode, RecursionAvailable: true, Authoritative: true}}
	for _, s := range answer {
		m.Answer = append(m.Answer, mustRR(tb, s))
	}
	for _, s := range ns {
		m.Ns = append(m.Ns, mustRR(tb, s))
	}
	for _, s := range extra {
		m.Extra = append(m.Extra, mustRR(tb, s))
	}
	m.SetEdns0(1232, false)
	return m
}

const soaText = "consul. 300 IN SOA ns.consul. hostmaster.consul. 1 3600 600 86400 30"

func TestLRULifetime(t *testing.T) {
	tests := []struct {
		name   string
		opts   LRUOptions
		msg    func(testing.TB) *dns.Msg
		cached bool
		life   time.Duration // the entry is a hit just before, a miss at
	}{
		{
			name: "positive: smallest TTL of every section",
			msg: func(tb testing.TB) *dns.Msg {
				return upstreamMsg(tb, dns.RcodeSuccess,
					[]string{"web.service.consul. 60 IN SRV 1 1 80 a.node.dc1.consul.", "web.service.consul. 40 IN SRV 1 1 80 b.node.dc1.consul."},
					nil, []string{"a.node.dc1.consul. 20 IN A 10.0.0.1"})
			},
			cached: true, life: 20 * time.Second,
		},
		{
			name: "positive: capped at MaxTTL",
			opts: LRUOptions{MaxTTL: 10 * time.Second},
			msg: func(tb testing.TB) *dns.Msg {
				return upstreamMsg(tb, dns.RcodeSuccess, []string{"example.com. 86400 IN A 192.0.2.1"}, nil, nil)
			},
			cached: true, life: 10 * time.Second,
		},
		{
			name: "positive with TTL 0 (Consul's default) is not cached",
			msg: func(tb testing.TB) *dns.Msg {
				return upstreamMsg(tb, dns.RcodeSuccess, []string{"web.service.consul. 0 IN A 10.0.0.1"}, nil, nil)
			},
		},
		{
			name: "NXDOMAIN: min(SOA TTL, MINIMUM)",
			msg: func(tb testing.TB) *dns.Msg {
				return upstreamMsg(tb, dns.RcodeNameError, nil, []string{soaText}, nil)
			},
			cached: true, life: 30 * time.Second,
		},
		{
			name: "NODATA: SOA TTL below MINIMUM",
			msg: func(tb testing.TB) *dns.Msg {
				return upstreamMsg(tb, dns.RcodeSuccess, nil, []string{"consul. 7 IN SOA ns.consul. hostmaster.consul. 1 3600 600 86400 30"}, nil)
			},
			cached: true, life: 7 * time.Second,
		},
		{
			name: "NXDOMAIN without SOA: NegativeTTL",
			msg: func(tb testing.TB) *dns.Msg {
				return upstreamMsg(tb, dns.RcodeNameError, nil, nil, nil)
			},
			cached: true, life: DefaultLRUNegativeTTL,
		},
		{
			name: "NXDOMAIN without SOA, NegativeTTL disabled",
			opts: LRUOptions{NegativeTTL: -1},
			msg: func(tb testing.TB) *dns.Msg {
				return upstreamMsg(tb, dns.RcodeNameError, nil, nil, nil)
			},
		},
		{
			name: "SERVFAIL: ServFailTTL",
			msg: func(tb testing.TB) *dns.Msg {
				return upstreamMsg(tb, dns.RcodeServerFailure, nil, nil, nil)
			},
			cached: true, life: DefaultLRUServFailTTL,
		},
		{
			name: "SERVFAIL disabled",
			opts: LRUOptions{ServFailTTL: -1},
			msg: func(tb testing.TB) *dns.Msg {
				return upstreamMsg(tb, dns.RcodeServerFailure, nil, nil, nil)
			},
		},
		{
			name: "REFUSED is not cached",
			msg: func(tb testing.TB) *dns.Msg {
				return upstreamMsg(tb, dns.RcodeRefused, nil, nil, nil)
			},
		},
		{
			name: "truncated is not cached",
			msg: func(tb testing.TB) *dns.Msg {
				m := upstreamMsg(tb, dns.RcodeSuccess, []string{"example.com. 300 IN A 192.0.2.1"}, nil, nil)
				m.Truncated = true
				return m
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			c := newTestLRU(clock, tt.opts)
			k := Key{Name: "q.consul.", Qtype: dns.TypeA, Qclass: dns.ClassINET}
			_, cached := c.Add(k, tt.msg(t))
			if cached != tt.cached {
				t.Fatalf("Add cached = %v, want %v", cached, tt.cached)
			}
			if !cached {
				if _, ok := c.Get(k); ok {
					t.Fatal("Get hit an entry that was not cached")
				}
				return
			}
			clock.Advance(tt.life - time.Millisecond)
			if _, ok := c.Get(k); !ok {
				t.Fatalf("miss %v after Add, want a hit until %v", tt.life-time.Millisecond, tt.life)
			}
			clock.Advance(time.Millisecond)
			if m, ok := c.Get(k); ok {
				t.Fatalf("hit at %v after Add, want a miss: %v", tt.life, m)
			}
		})
	}
}

func TestLRUCountsDown(t *testing.T) {
	clock := newFakeClock()
	c := newTestLRU(clock, LRUOptions{})
	k := Key{Name: "web.service.consul.", Qtype: dns.TypeSRV, Qclass: dns.ClassINET}
	up := upstreamMsg(t, dns.RcodeSuccess,
		[]string{"web.service.consul. 60 IN SRV 1 1 80 a.node.dc1.consul."}, nil,
		[]string{"a.node.dc1.consul. 90 IN A 10.0.0.1"})
	m, ok := c.Add(k, up)
	if !ok {
		t.Fatal("not cached")
	}
	if got := ttls(m); got != "60 60" {
		t.Errorf("TTLs on Add = %s, want every record capped at the entry's lifetime 60", got)
	}
	if m.Authoritative || !m.RecursionAvailable || m.IsEdns0() != nil {
		t.Errorf("header or OPT not as cached: AA %v RA %v OPT %v", m.Authoritative, m.RecursionAvailable, m.IsEdns0())
	}

	clock.Advance(3500 * time.Millisecond)
	m, ok = c.Get(k)
	if !ok || ttls(m) != "57 57" {
		t.Fatalf("after 3.5s: hit %v, TTLs %s, want 57 57", ok, ttls(m))
	}
	// The returned records are copies: changing them changes no later answer.
	m.Answer[0].Header().Ttl = 12345
	m.Answer[0].(*dns.SRV).Target = "evil."
	up.Answer[0].(*dns.SRV).Target = "changed.upstream."
	clock.Advance(56 * time.Second)
	m, ok = c.Get(k)
	if !ok || ttls(m) != "1 1" || m.Answer[0].(*dns.SRV).Target != "a.node.dc1.consul." {
		t.Fatalf("after 59.5s: hit %v, %v", ok, m)
	}
}

func TestLRUNegativeSOACountsDown(t *testing.T) {
	clock := newFakeClock()
	c := newTestLRU(clock, LRUOptions{})
	k := Key{Name: "nope.consul.", Qtype: dns.TypeA, Qclass: dns.ClassINET}
	c.Add(k, upstreamMsg(t, dns.RcodeNameError, nil, []string{soaText}, nil))
	clock.Advance(10 * time.Second)
	m, ok := c.Get(k)
	if !ok || m.Rcode != dns.RcodeNameError || ttls(m) != "20" {
		t.Fatalf("hit %v, %v; want NXDOMAIN with the SOA at TTL min(300, 30) - 10 = 20", ok, m)
	}
}

func ttls(m *dns.Msg) string {
	if m == nil {
		return "<nil>"
	}
	var s string
	for _, section := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range section {
			if s != "" {
				s += " "
			}
			s += fmt.Sprint(rr.Header().Ttl)
		}
	}
	return s
}

func TestLRUKey(t *testing.T) {
	c := NewLRU(LRUOptions{})
	q := dns.Question{Name: "Web.Service.CONSUL.", Qtype: dns.TypeA, Qclass: dns.ClassINET}
	c.Add(NewKey(q, false), upstreamMsg(t, dns.RcodeSuccess, []string{"web.service.consul. 30 IN A 10.0.0.1"}, nil, nil))

	if _, ok := c.Get(NewKey(dns.Question{Name: "web.service.consul.", Qtype: dns.TypeA, Qclass: dns.ClassINET}, false)); !ok {
		t.Error("the name's case is part of the key")
	}
	for name, k := range map[string]Key{
		"DO bit": NewKey(q, true),
		"type":   NewKey(dns.Question{Name: q.Name, Qtype: dns.TypeAAAA, Qclass: q.Qclass}, false),
		"class":  NewKey(dns.Question{Name: q.Name, Qtype: q.Qtype, Qclass: dns.ClassCHAOS}, false),
	} {
		if _, ok := c.Get(k); ok {
			t.Errorf("the %s is not part of the key", name)
		}
	}
	if k := NewKey(dns.Question{Name: "a.b."}, false); k.Name != "a.b." {
		t.Errorf("NewKey changed a lower-case name: %q", k.Name)
	}
}

func TestLRUSizeBound(t *testing.T) {
	c := NewLRU(LRUOptions{Size: 2})
	key := func(i int) Key {
		return Key{Name: fmt.Sprintf("n%d.consul.", i), Qtype: dns.TypeA, Qclass: dns.ClassINET}
	}
	for i := range 3 {
		c.Add(key(i), upstreamMsg(t, dns.RcodeSuccess, []string{fmt.Sprintf("n%d.consul. 30 IN A 10.0.0.%d", i, i)}, nil, nil))
		if i == 1 {
			c.Get(key(0)) // n0 is now more recently used than n1
		}
	}
	_, hit0 := c.Get(key(0))
	_, hit1 := c.Get(key(1))
	_, hit2 := c.Get(key(2))
	if !hit0 || hit1 || !hit2 {
		t.Errorf("hits n0 %v n1 %v n2 %v, want the least recently used (n1) evicted", hit0, hit1, hit2)
	}
	want := LRUStats{Hits: 3, Misses: 1, Evictions: 1, Entries: 2}
	got := c.Stats()
	if got.Bytes <= 0 {
		t.Errorf("Stats().Bytes = %d with 2 entries, want more than 0", got.Bytes)
	}
	if got.Bytes = 0; got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

func TestLRUConcurrent(t *testing.T) {
	c := NewLRU(LRUOptions{Size: 16})
	up := upstreamMsg(t, dns.RcodeSuccess, []string{"x.consul. 30 IN A 10.0.0.1"}, nil, nil)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				k := Key{Name: fmt.Sprintf("n%d.consul.", (g+i)%32), Qtype: dns.TypeA, Qclass: dns.ClassINET}
				if m, ok := c.Get(k); ok {
					m.Answer[0].Header().Ttl = 0 // a copy: no race
				} else {
					c.Add(k, up)
				}
			}
		})
	}
	wg.Wait()
	if s := c.Stats(); s.Hits+s.Misses != 1600 || s.Entries > 16 {
		t.Errorf("Stats() = %+v", s)
	}
}

func BenchmarkLRUHit(b *testing.B) {
	c := NewLRU(LRUOptions{})
	q := dns.Question{Name: "web.service.dc1.consul.", Qtype: dns.TypeSRV, Qclass: dns.ClassINET}
	c.Add(NewKey(q, false), upstreamMsg(b, dns.RcodeSuccess,
		[]string{"web.service.dc1.consul. 30 IN SRV 1 1 80 a.node.dc1.consul.", "web.service.dc1.consul. 30 IN SRV 1 1 80 b.node.dc1.consul."},
		nil, []string{"a.node.dc1.consul. 30 IN A 10.0.0.1", "b.node.dc1.consul. 30 IN A 10.0.0.2"}))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.Get(NewKey(q, false)); !ok {
			b.Fatal("miss")
		}
	}
}
