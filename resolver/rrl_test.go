package resolver

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestRRLRate(t *testing.T) {
	const rate = 10
	r := newRRL(RRLOptions{ResponsesPerSecond: rate, Slip: 2})
	a, b := uint64(1)<<32, uint64(2)<<32
	allowed := func(key uint64, now time.Duration, n int) int {
		k := 0
		for range n {
			if r.allow(key, int64(now)) {
				k++
			}
		}
		return k
	}
	// A second's worth at once, then one per tenth of a second.
	if got := allowed(a, 0, 3*rate); got != rate {
		t.Errorf("burst: %d allowed, want %d", got, rate)
	}
	if got := allowed(a, 50*time.Millisecond, rate); got != 0 {
		t.Errorf("after 50ms: %d allowed, want 0", got)
	}
	if got := allowed(a, 100*time.Millisecond, rate); got != 1 {
		t.Errorf("after 100ms: %d allowed, want 1", got)
	}
	if got := allowed(a, 1100*time.Millisecond, 3*rate); got != rate {
		t.Errorf("a second later: %d allowed, want %d", got, rate)
	}
	// Another source has its own rate.
	if got := allowed(b, 100*time.Millisecond, 3*rate); got != rate {
		t.Errorf("other source: %d allowed, want %d", got, rate)
	}
	if n := testing.AllocsPerRun(100, func() { r.allow(a, 0) }); n != 0 {
		t.Errorf("allow allocates %v times", n)
	}
}

func TestRRLSlip(t *testing.T) {
	for _, tc := range []struct {
		slip, want int
	}{
		{slip: 0, want: 0},
		{slip: 1, want: 12},
		{slip: 2, want: 6},
		{slip: 5, want: 2},
	} {
		r := newRRL(RRLOptions{ResponsesPerSecond: 1, Slip: tc.slip})
		got := 0
		for range 12 {
			if r.slipped(7 << 32) {
				got++
			}
		}
		if got != tc.want {
			t.Errorf("slip %d: %d of 12 limited responses slipped, want %d", tc.slip, got, tc.want)
		}
	}
}

// TestServerRRL floods the server over UDP from one source: it gets its
// rate, then every other limited response truncated and the rest
// dropped; another source is answered in full all the while.
func TestServerRRL(t *testing.T) {
	const rate, burst, others = 20, 200, 10
	srv := startServer(t, ServerOptions{RRL: &RRLOptions{ResponsesPerSecond: rate, Slip: 2}})
	wire := pack(t, query("rw.orders."+zone, dns.TypeA, 1232))
	dial := func(local string) *net.UDPConn {
		raddr, err := net.ResolveUDPAddr("udp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(local)}, raddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	flooder, other := dial("127.0.0.1"), dial("127.0.1.2")
	start := time.Now()
	for range burst {
		if _, err := flooder.Write(wire); err != nil {
			t.Fatal(err)
		}
	}
	for range others {
		if _, err := other.Write(wire); err != nil {
			t.Fatal(err)
		}
	}
	// Every answer is written before it is counted: once all are
	// counted, the client sockets hold every answer sent.
	eventually(t, "every query counted", func() bool {
		st := srv.Stats()
		return st.Queries[protoUDP][0][0]+st.Dropped == burst+others
	})
	elapsed := time.Since(start)
	count := func(c *net.UDPConn) (full, truncated int) {
		buf := make([]byte, 2048)
		for {
			c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
			n, err := c.Read(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return full, truncated
			}
			if err != nil {
				t.Fatal(err)
			}
			var m dns.Msg
			if err := m.Unpack(buf[:n]); err != nil {
				t.Fatal(err)
			}
			switch {
			case m.Truncated && len(m.Answer) == 0 && len(m.Question) == 1 && m.IsEdns0() != nil:
				truncated++
			case !m.Truncated && len(m.Answer) == 1:
				full++
			default:
				t.Fatalf("answer %v", &m)
			}
		}
	}
	full, truncated := count(flooder)
	// A second's worth at once, and the rate for the time the test took.
	most := rate + int(elapsed.Seconds()*rate) + 1
	if full < rate || full > most {
		t.Errorf("flooding source: %d full answers in %s, want %d to %d", full, elapsed, rate, most)
	}
	limited := burst - full
	if truncated < limited/2 || truncated > (limited+1)/2 {
		t.Errorf("flooding source: %d of %d limited answers truncated, want every other", truncated, limited)
	}
	if full, truncated := count(other); full != others || truncated != 0 {
		t.Errorf("other source: %d full answers, %d truncated; want all %d in full", full, truncated, others)
	}
	st := srv.Stats()
	if int(st.RateLimited[rrlSlipped]) != truncated || int(st.RateLimited[rrlDropped]) != limited-truncated || int(st.Dropped) != limited-truncated {
		t.Errorf("counted %v limited, %d dropped; want %d slipped and %d dropped", st.RateLimited, st.Dropped, truncated, limited-truncated)
	}
}

// TestServerRRLSparesTheSlowPath: a limited source's queries for the slow
// path never reach the Delegator.
func TestServerRRLSparesTheSlowPath(t *testing.T) {
	const rate, sent = 5, 50
	g := newHoldGate()
	close(g.release)
	srv := startHandlerServer(t, New(testStore(t), Options{Delegator: DelegateFunc(g.delegate)}, nil),
		ServerOptions{RRL: &RRLOptions{ResponsesPerSecond: rate}})
	c, err := net.Dial("udp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wire := pack(t, query("x.slow.", dns.TypeA, 0))
	start := time.Now()
	for range sent {
		if _, err := c.Write(wire); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "every query counted", func() bool {
		st := srv.Stats()
		return st.Queries[protoUDP][0][0]+st.Dropped == sent
	})
	if got, most := int(g.waiting.Load()), rate+int(time.Since(start).Seconds()*rate)+1; got > most {
		t.Errorf("%d queries reached the upstream, want at most %d", got, most)
	}
}

// BenchmarkRRLAllow is what response rate limiting adds to a UDP
// response: the source's key and its bucket.
func BenchmarkRRLAllow(b *testing.B) {
	k := newSourceKeys(DefaultSourcePrefixV4, DefaultSourcePrefixV6)
	r := newRRL(RRLOptions{ResponsesPerSecond: 1e9, Slip: 2})
	a := netip.MustParseAddr("192.0.2.1")
	now := r.now()
	for b.Loop() {
		if !r.allow(k.key(a), now) {
			now = r.now()
		}
	}
}
