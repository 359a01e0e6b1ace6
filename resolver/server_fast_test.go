package resolver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/cache"
	"github.com/regiondns/regiondns/internal/testzone"
)

func TestServerManyUDPSockets(t *testing.T) {
	srv := startServer(t, ServerOptions{UDPSockets: 4})
	for i := range 32 {
		// A new client socket each time: the kernel spreads them over the
		// four server sockets.
		resp := exchange(t, "udp", srv.Addr(), query("rw.orders."+zone, dns.TypeA, uint16(i%2)*1232))
		if resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 1 {
			t.Fatalf("query %d: %v", i, resp)
		}
	}
	eventually(t, "32 A answers counted", func() bool {
		return srv.Stats().Queries[protoUDP][0][0] == 32
	})
}

func TestServerStats(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	exchange(t, "udp", srv.Addr(), query("rw.orders."+zone, dns.TypeA, 0))
	exchange(t, "udp", srv.Addr(), query("ro.big."+zone, dns.TypeA, 0)) // truncated
	exchange(t, "tcp", srv.Addr(), query("nope."+zone, dns.TypeSRV, 1232))
	exchange(t, "udp", srv.Addr(), query("example.com.", dns.TypeTXT, 0))                         // REFUSED, slow path
	exchange(t, "udp", srv.Addr(), withEDNSVersion(query("rw.orders."+zone, dns.TypeA, 1232), 1)) // BADVERS
	c, err := net.Dial("udp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp := query("rw.orders."+zone, dns.TypeA, 0)
	resp.Response = true
	wire, _ := resp.Pack()
	c.Write(wire)     // dropped
	c.Write(wire[:5]) // dropped

	var want Stats
	want.Queries[protoUDP][0][0] = 2           // A NOERROR (one truncated)
	want.Queries[protoTCP][2][3] = 1           // SRV NXDOMAIN
	want.Queries[protoUDP][3][5] = 1           // TXT REFUSED
	want.Queries[protoUDP][0][6] = 1           // A BADVERS
	want.Answers = [numSources]uint64{3, 0, 2} // snapshot, delegated, error
	want.Truncated, want.Dropped = 1, 2
	eventually(t, "every query counted", func() bool {
		got := srv.Stats()
		got.Durations = want.Durations
		return got == want
	})
	// One query in durationSample is timed: none of these few, or one.
	for _, d := range srv.Stats().Durations {
		var n uint64
		for _, c := range d.Counts {
			n += c
		}
		if n > 1 {
			t.Errorf("%d queries timed, want at most one", n)
		}
	}
}

func TestServerCountsTCPConnections(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	conn, err := dns.DialTimeout("tcp", srv.Addr(), deadline)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(deadline))
	if err := conn.WriteMsg(query(zone, dns.TypeSOA, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ReadMsg(); err != nil {
		t.Fatal(err)
	}
	if n := srv.Stats().TCPConnections; n != 1 {
		t.Errorf("%d TCP connections counted, want 1", n)
	}
	conn.Close()
	eventually(t, "closed connection uncounted", func() bool { return srv.Stats().TCPConnections == 0 })
}

// holdGate is a delegate that answers names under "slow." only once released.
type holdGate struct {
	release chan struct{}
	waiting atomic.Int32
}

func newHoldGate() *holdGate { return &holdGate{release: make(chan struct{})} }

func (g *holdGate) delegate(req *dns.Msg, _ bool, _ netip.Addr) (*dns.Msg, error) {
	if dns.IsSubDomain("slow.", req.Question[0].Name) {
		g.waiting.Add(1)
		<-g.release
	}
	if req.Question[0].Name == "panic." {
		panic("delegate exploded")
	}
	m := new(dns.Msg)
	m.SetReply(req)
	return m, nil
}

// TestServerTCPAnswersOutOfOrder pipelines a query that waits for its
// upstream and two that the fast path answers: those come back first
// (RFC 7766 §6.2.1.1), the slow one when its upstream answers.
func TestServerTCPAnswersOutOfOrder(t *testing.T) {
	g := newHoldGate()
	srv := startHandlerServer(t, New(testStore(t), Options{Delegator: DelegateFunc(g.delegate)}, nil), ServerOptions{})
	conn, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var pipeline []byte
	for i, name := range []string{"a.slow.", "rw.orders." + zone, "nope." + zone} {
		q := query(name, dns.TypeA, 0)
		q.Id = uint16(i + 1)
		wire, _ := q.Pack()
		pipeline = binary.BigEndian.AppendUint16(pipeline, uint16(len(wire)))
		pipeline = append(pipeline, wire...)
	}
	conn.SetDeadline(time.Now().Add(deadline))
	if _, err := conn.Write(pipeline); err != nil {
		t.Fatal(err)
	}
	dc := &dns.Conn{Conn: conn}
	var order []uint16
	for range 2 {
		resp, err := dc.ReadMsg()
		if err != nil {
			t.Fatal(err)
		}
		order = append(order, resp.Id)
	}
	eventually(t, "slow query at its upstream", func() bool { return g.waiting.Load() == 1 })
	close(g.release)
	resp, err := dc.ReadMsg()
	if err != nil {
		t.Fatal(err)
	}
	order = append(order, resp.Id)
	if order[0] == 1 || order[1] == 1 || order[2] != 1 {
		t.Errorf("answers in the order %v, want the slow one (1) last", order)
	}
}

// TestServerShutdownFinishesInFlight: Shutdown stops reading but answers
// the queries already read, over UDP and TCP, before it returns.
func TestServerShutdownFinishesInFlight(t *testing.T) {
	g := newHoldGate()
	srv := NewServer("127.0.0.1:0", New(testStore(t), Options{Delegator: DelegateFunc(g.delegate)}, nil), ServerOptions{}, nil)
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	answers := make(chan *dns.Msg, 2)
	for _, network := range []string{"udp", "tcp"} {
		go func() {
			c := &dns.Client{Net: network, Timeout: deadline}
			resp, _, err := c.Exchange(query("x.slow.", dns.TypeA, 0), srv.Addr())
			if err != nil {
				t.Errorf("%s: %v", network, err)
			}
			answers <- resp
		}()
	}
	eventually(t, "both queries at the upstream", func() bool { return g.waiting.Load() == 2 })
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) with queries in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(g.release)
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	for range 2 {
		if resp := <-answers; resp == nil || resp.Rcode != dns.RcodeSuccess {
			t.Errorf("in-flight query answered %v", resp)
		}
	}
}

func TestServerRecoversPanics(t *testing.T) {
	g := newHoldGate()
	srv := startHandlerServer(t, New(testStore(t), Options{Delegator: DelegateFunc(g.delegate)}, nil), ServerOptions{})
	for _, network := range []string{"udp", "tcp"} {
		resp := exchange(t, network, srv.Addr(), query("panic.", dns.TypeA, 1232))
		if resp.Rcode != dns.RcodeServerFailure || resp.IsEdns0() == nil || resp.Question[0].Name != "panic." {
			t.Errorf("%s: %v, want SERVFAIL with the question and EDNS", network, resp)
		}
		if resp := exchange(t, network, srv.Addr(), query("rw.orders."+zone, dns.TypeA, 0)); resp.Rcode != dns.RcodeSuccess {
			t.Errorf("%s: after a panic: %v", network, resp)
		}
	}
	eventually(t, "two panics counted", func() bool { return srv.Stats().Panics == 2 })
}

// TestServerTCPLargeAnswers pipelines answers larger than a connection's
// first write buffer between small ones: each arrives whole.
func TestServerTCPLargeAnswers(t *testing.T) {
	const n = 150
	ds := testDecisions()
	big := ds["big"]
	big.RO = nil
	for i := range n {
		big.RO = append(big.RO, testzone.Endpoint(fmt.Sprintf("pool-%03d", i), "main", fmt.Sprintf("10.9.%d.%d", i/200, i%200+1), 6432))
	}
	ds["big"] = big
	h := New(cache.NewStore(cache.Build(testConfig(), ds, 1)), Options{}, nil)
	srv := startHandlerServer(t, h, ServerOptions{})
	conn, err := dns.DialTimeout("tcp", srv.Addr(), deadline)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(deadline))
	names := []string{"ro.big." + zone, "rw.orders." + zone, "ro.big." + zone, "ro.big." + zone}
	var pipeline []byte
	for i, name := range names {
		q := query(name, dns.TypeSRV, 1232)
		q.Id = uint16(i + 1)
		wire, _ := q.Pack()
		pipeline = append(binary.BigEndian.AppendUint16(pipeline, uint16(len(wire))), wire...)
	}
	// The net.Conn: dns.Conn's Write adds a length prefix of its own.
	if _, err := conn.Conn.Write(pipeline); err != nil {
		t.Fatal(err)
	}
	for range names {
		resp, err := conn.ReadMsg()
		if err != nil {
			t.Fatal(err)
		}
		want := n
		if resp.Id == 2 {
			want = 1
		}
		if len(resp.Answer) != want || len(resp.Extra) != want+1 || resp.Truncated {
			t.Errorf("answer %d: %d records, %d additional, TC %v; want %d, %d+OPT", resp.Id, len(resp.Answer), len(resp.Extra), resp.Truncated, want, want)
		}
	}
}

// TestServerWildcardAddress serves on every address of the host: answers
// leave from the address each query was sent to (IP_PKTINFO and
// IPV6_PKTINFO on Linux), IPv4 and IPv6 alike.
func TestServerWildcardAddress(t *testing.T) {
	srv := NewServer(":0", New(testStore(t), Options{}, nil), ServerOptions{UDPSockets: 2}, nil)
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	_, port, _ := net.SplitHostPort(srv.Addr())
	// 127.0.0.2: the kernel would answer from 127.0.0.1 by route.
	for _, host := range []string{"127.0.0.1", "127.0.0.2", "::1"} {
		addr := net.JoinHostPort(host, port)
		c, err := net.Dial("udp", addr)
		if err != nil {
			t.Logf("%s: %v (no IPv6 here?)", addr, err)
			continue
		}
		c.Close()
		// A connected client socket accepts answers from addr only: of
		// the fast path and of the slow path.
		resp := exchange(t, "udp", addr, query("rw.orders."+zone, dns.TypeA, 1232))
		if resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 1 {
			t.Errorf("%s: %v", addr, resp)
		}
		if resp := exchange(t, "udp", addr, query("example.com.", dns.TypeA, 0)); resp.Rcode != dns.RcodeRefused {
			t.Errorf("%s: %v", addr, resp)
		}
	}
}

// TestServerTCPIdleWaitsForAnswers: a query waiting for its upstream
// longer than the idle timeout still gets its answer on the connection;
// the idle time counts from the answer.
func TestServerTCPIdleWaitsForAnswers(t *testing.T) {
	g := newHoldGate()
	const idle = 50 * time.Millisecond
	srv := startHandlerServer(t, New(testStore(t), Options{Delegator: DelegateFunc(g.delegate)}, nil), ServerOptions{IdleTimeout: idle})
	conn, err := dns.DialTimeout("tcp", srv.Addr(), deadline)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(deadline))
	if err := conn.WriteMsg(query("a.slow.", dns.TypeA, 0)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "query at the upstream", func() bool { return g.waiting.Load() == 1 })
	time.AfterFunc(3*idle, func() { close(g.release) })
	resp, err := conn.ReadMsg()
	if err != nil || resp.Rcode != dns.RcodeSuccess {
		t.Fatalf("answer after %s at the upstream: %v, %v", 3*idle, resp, err)
	}
	answered := time.Now()
	if _, err := conn.ReadMsg(); !errors.Is(err, io.EOF) {
		t.Fatalf("read on the idle connection: %v, want EOF", err)
	}
	if after := time.Since(answered); after < idle/2 {
		t.Errorf("closed %s after the answer, want about %s", after, idle)
	}
}
