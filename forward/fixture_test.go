package forward

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/cache"
	"github.com/regiondns/regiondns/internal/dnswire"
	"github.com/regiondns/regiondns/internal/testzone"
	"github.com/regiondns/regiondns/resolver"
)

// deadline bounds every wait on the network in these tests; none sleeps.
const deadline = 5 * time.Second

// answerFunc is a fake upstream's behaviour: the response to req received
// over tcp, or nil to stay silent (the client times out).
type answerFunc func(req *dns.Msg, tcp bool) *dns.Msg

// fakeUpstream is a real DNS server on 127.0.0.1 (UDP and TCP on one port)
// that answers with an answerFunc and counts what it receives.
type fakeUpstream struct {
	addr     string
	udp, tcp atomic.Int32
	mu       sync.Mutex
	received []*dns.Msg // guarded by mu
}

// startUpstream starts a fake upstream; it stops when the test ends.
func startUpstream(t *testing.T, answer answerFunc) *fakeUpstream {
	t.Helper()
	u := &fakeUpstream{}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		_, tcp := w.RemoteAddr().(*net.TCPAddr)
		if tcp {
			u.tcp.Add(1)
		} else {
			u.udp.Add(1)
		}
		u.mu.Lock()
		u.received = append(u.received, req.Copy())
		u.mu.Unlock()
		if resp := answer(req, tcp); resp != nil {
			w.WriteMsg(resp)
		}
	})
	u.addr = startMiekgServer(t, h)
	return u
}

// startMiekgServer serves h with miekg/dns on UDP and TCP on one port of
// 127.0.0.1, as Consul DNS does; the servers stop when the test ends.
func startMiekgServer(t *testing.T, h dns.Handler) string {
	t.Helper()
	ln, pc := listenBoth(t)
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	servers := []*dns.Server{
		{Listener: ln, Handler: h, NotifyStartedFunc: notify},
		{PacketConn: pc, Handler: h, NotifyStartedFunc: notify},
	}
	for _, srv := range servers {
		go srv.ActivateAndServe()
	}
	for range servers {
		select {
		case <-started:
		case <-ctx.Done():
			t.Fatal("upstream did not start")
		}
	}
	t.Cleanup(func() {
		for _, srv := range servers {
			srv.Shutdown()
		}
	})
	return ln.Addr().String()
}

// listenBoth binds TCP and UDP on one free port of 127.0.0.1: the kernel
// picks a TCP port that may be taken for UDP, so it tries a few.
func listenBoth(t *testing.T) (net.Listener, net.PacketConn) {
	t.Helper()
	for range 16 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		pc, err := net.ListenPacket("udp", ln.Addr().String())
		if err == nil {
			return ln, pc
		}
		ln.Close()
	}
	t.Fatal("no port free for both UDP and TCP")
	return nil, nil
}

// queries returns how many queries u received over UDP and TCP together.
func (u *fakeUpstream) queries() int { return int(u.udp.Load() + u.tcp.Load()) }

// last returns the last query u received.
func (u *fakeUpstream) last(t *testing.T) *dns.Msg {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.received) == 0 {
		t.Fatal("upstream received no query")
	}
	return u.received[len(u.received)-1]
}

// closedAddr returns an address on 127.0.0.1 nothing listens on: UDP
// queries to it fail at once (ICMP port unreachable).
func closedAddr(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

// gate returns a channel that blocks fake upstreams and the function that
// opens it; the test's end opens it too, before the upstreams stop, so
// their shutdown never waits.
func gate(t *testing.T) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(ch) }) }
	t.Cleanup(open)
	return ch, open
}

// answerA answers every query with one A record per address, TTL ttl, AA
// and RA set as Consul does.
func answerA(ttl uint32, addrs ...string) answerFunc {
	return func(req *dns.Msg, _ bool) *dns.Msg {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative, m.RecursionAvailable = true, true
		for _, a := range addrs {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl},
				A:   net.ParseIP(a),
			})
		}
		if opt := req.IsEdns0(); opt != nil {
			m.SetEdns0(opt.UDPSize(), opt.Do())
		}
		return m
	}
}

// answerRcode answers every query with rcode and nothing else.
func answerRcode(rcode int) answerFunc {
	return func(req *dns.Msg, _ bool) *dns.Msg {
		m := new(dns.Msg)
		m.SetRcode(req, rcode)
		return m
	}
}

// silent never answers.
func silent(*dns.Msg, bool) *dns.Msg { return nil }

// manyA answers n A records over TCP and, over UDP, an empty answer with
// TC, as a server does when the answer does not fit.
func manyA(n int) answerFunc {
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("10.9.%d.%d", i/250, i%250+1)
	}
	full := answerA(30, addrs...)
	return func(req *dns.Msg, tcp bool) *dns.Msg {
		m := full(req, tcp)
		if !tcp {
			m.Answer, m.Truncated = nil, true
		}
		return m
	}
}

// testClock is a settable clock for LRUOptions.Now.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	return c
}

func (c *testClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// forwarder returns a forwarder to groups with a short per-try timeout and
// an LRU on clock (nil: no cache).
func forwarder(clock *testClock, groups ...[]string) *Forwarder {
	var lru *LRU
	if clock != nil {
		lru = NewLRU(LRUOptions{Now: clock.Now})
	}
	return New(Options{Groups: groups, Timeout: 500 * time.Millisecond}, lru, nil)
}

// query returns a request for name and type, with EDNS(0) when size > 0.
func query(name string, qtype uint16, size uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	if size > 0 {
		m.SetEdns0(size, false)
	}
	return m
}

// ask sends a query for name and qtype through f.Delegate.
func ask(t *testing.T, f *Forwarder, name string, qtype uint16) (*dns.Msg, error) {
	t.Helper()
	return f.Delegate(query(name, qtype, 1232), false, netip.Addr{})
}

// mustAsk is ask for a query that must get a response.
func mustAsk(t *testing.T, f *Forwarder, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m, err := ask(t, f, name, qtype)
	if err != nil {
		t.Fatalf("Delegate(%s): %v", name, err)
	}
	return m
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// handler returns a resolver for the shared test zone (internal/testzone)
// that delegates the names outside it to f: what a client of regiondns
// sees of the forwarder.
func handler(t *testing.T, f *Forwarder) *resolver.Handler {
	t.Helper()
	store := cache.NewStore(cache.Build(testzone.Config(), testzone.Decisions(), 1))
	return resolver.New(store, resolver.Options{Delegator: f}, nil)
}

// startForwardingServer serves handler(t, f) on 127.0.0.1:0 until the test
// ends.
func startForwardingServer(t *testing.T, f *Forwarder) *resolver.Server {
	t.Helper()
	srv := resolver.NewServer("127.0.0.1:0", handler(t, f), resolver.ServerOptions{}, nil)
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return srv
}

// exchange sends req to addr over network and returns the response.
func exchange(t *testing.T, network, addr string, req *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: deadline}
	resp, _, err := c.Exchange(req, addr)
	if err != nil {
		t.Fatalf("%s exchange: %v", network, err)
	}
	return resp
}

// testClient is the source address of roundTrip's queries.
var testClient = netip.MustParseAddr("127.0.0.1")

// roundTrip answers req through h.HandleRequest and returns what a client
// would read: the response packed (within the transport's limit) and
// unpacked again.
func roundTrip(t *testing.T, h *resolver.Handler, req *dns.Msg, tcp bool) *dns.Msg {
	t.Helper()
	resp := h.HandleRequest(req, testClient, tcp)
	if resp == nil {
		t.Fatal("no response")
	}
	wire, err := resp.Pack()
	if err != nil {
		t.Fatalf("pack response: %v", err)
	}
	limit := dns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		limit = int(max(min(opt.UDPSize(), dnswire.DefaultUDPSize), dns.MinMsgSize))
	}
	if !tcp && len(wire) > limit {
		t.Fatalf("UDP response has %d bytes, limit %d", len(wire), limit)
	}
	var got dns.Msg
	if err := got.Unpack(wire); err != nil {
		t.Fatalf("unpack response: %v", err)
	}
	return &got
}
