package resolver

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// deadline bounds every wait on the network in these tests; none sleeps.
const deadline = 5 * time.Second

// startServer runs a server for the test store on 127.0.0.1:0 and shuts it
// down when the test ends.
func startServer(t *testing.T, opts ServerOptions) *Server {
	t.Helper()
	return startHandlerServer(t, New(testStore(t), Options{}, nil), opts)
}

// startHandlerServer runs a server for h on 127.0.0.1:0 and shuts it down
// when the test ends.
func startHandlerServer(t *testing.T, h *Handler, opts ServerOptions) *Server {
	t.Helper()
	srv := NewServer("127.0.0.1:0", h, opts, nil)
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

func exchange(t *testing.T, network, addr string, req *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: deadline}
	resp, _, err := c.Exchange(req, addr)
	if err != nil {
		t.Fatalf("%s exchange: %v", network, err)
	}
	return resp
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

func TestServerUDPAndTCPOnOnePort(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	host, port, err := net.SplitHostPort(srv.Addr())
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("Addr() = %q", srv.Addr())
	}
	for _, network := range []string{"udp", "tcp"} {
		resp := exchange(t, network, srv.Addr(), query("rw.orders."+zone, dns.TypeA, 0))
		if resp.Rcode != dns.RcodeSuccess || !resp.Authoritative || len(resp.Answer) != 1 {
			t.Errorf("%s: %v", network, resp)
		}
	}
}

func TestServerQueries(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	tests := []struct {
		name    string
		network string
		req     *dns.Msg
		rcode   int
		answer  int
		tc      bool
		check   func(t *testing.T, resp *dns.Msg)
	}{
		{name: "big answer truncated over UDP", network: "udp", req: query("ro.big."+zone, dns.TypeA, 0), tc: true},
		{name: "EDNS buffer honoured over UDP", network: "udp", req: query("ro.big."+zone, dns.TypeA, 4096), answer: bigCount},
		{name: "big answer over TCP", network: "tcp", req: query("passive-ro.big."+zone, dns.TypeSRV, 0), answer: bigCount},
		{name: "BADVERS", network: "udp", req: withEDNSVersion(query("rw.orders."+zone, dns.TypeA, 1232), 1), rcode: dns.RcodeBadVers},
		{name: "NOTIMP", network: "udp", req: withOpcode(query(zone, dns.TypeSOA, 0), dns.OpcodeStatus), rcode: dns.RcodeNotImplemented},
		{name: "FORMERR for two questions", network: "udp", req: withQuestions(query(zone, dns.TypeSOA, 0), 2), rcode: dns.RcodeFormatError},
		{name: "REFUSED out of zone", network: "tcp", req: query("example.com.", dns.TypeA, 0), rcode: dns.RcodeRefused},
		{name: "mixed case echoed", network: "udp", req: query("RO.Orders.PG.example.INTERNAL.", dns.TypeAAAA, 0), answer: 1,
			check: func(t *testing.T, resp *dns.Msg) {
				if got := resp.Question[0].Name; got != "RO.Orders.PG.example.INTERNAL." {
					t.Errorf("question echoed as %q", got)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := exchange(t, tc.network, srv.Addr(), tc.req)
			if resp.Rcode != tc.rcode || len(resp.Answer) != tc.answer || resp.Truncated != tc.tc {
				t.Errorf("rcode %s, %d answers, TC %v; want %s, %d, %v",
					dns.RcodeToString[resp.Rcode], len(resp.Answer), resp.Truncated, dns.RcodeToString[tc.rcode], tc.answer, tc.tc)
			}
			if tc.check != nil {
				tc.check(t, resp)
			}
		})
	}
}

func TestServerSeveralQueriesOnOneTCPConnection(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	conn, err := dns.DialTimeout("tcp", srv.Addr(), deadline)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i, name := range []string{"rw.orders." + zone, "ro.orders." + zone, "passive-rw.orders." + zone, "nope." + zone} {
		req := query(name, dns.TypeA, 1232)
		conn.SetDeadline(time.Now().Add(deadline))
		if err := conn.WriteMsg(req); err != nil {
			t.Fatalf("query %d: write: %v", i, err)
		}
		resp, err := conn.ReadMsg()
		if err != nil {
			t.Fatalf("query %d: read: %v", i, err)
		}
		if resp.Id != req.Id || resp.Question[0].Name != name {
			t.Fatalf("query %d: answer to another question: %v", i, resp)
		}
	}
}

func TestServerRotation(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	// One client socket: its queries reach the same server socket (the
	// kernel spreads clients over the SO_REUSEPORT sockets by address),
	// whose loop counts its queries to pick each answer's order.
	conn, err := dns.DialTimeout("udp", srv.Addr(), deadline)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	first := func() string {
		conn.SetDeadline(time.Now().Add(deadline))
		if err := conn.WriteMsg(query("ro.orders."+zone, dns.TypeA, 0)); err != nil {
			t.Fatal(err)
		}
		resp, err := conn.ReadMsg()
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Answer) != 2 {
			t.Fatalf("answer %v", resp.Answer)
		}
		return resp.Answer[0].String()
	}
	if a, b := first(), first(); a == b {
		t.Fatalf("first record %q did not rotate", a)
	}
}

func TestServerSurvivesMalformedQueries(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	conn, err := net.Dial("udp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, junk := range [][]byte{{0x01}, make([]byte, 12), {0xde, 0xad, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05}} {
		if _, err := conn.Write(junk); err != nil {
			t.Fatal(err)
		}
	}
	resp := exchange(t, "udp", srv.Addr(), query("rw.orders."+zone, dns.TypeA, 0))
	if resp.Rcode != dns.RcodeSuccess {
		t.Fatalf("after junk: %v", resp)
	}
}

func TestServerTCPIdleTimeout(t *testing.T) {
	srv := startServer(t, ServerOptions{IdleTimeout: 50 * time.Millisecond})
	conn, err := dns.DialTimeout("tcp", srv.Addr(), deadline)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(deadline))
	if err := conn.WriteMsg(query(zone, dns.TypeSOA, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ReadMsg(); err != nil {
		t.Fatal(err)
	}
	// The server closes the idle connection long before our deadline.
	if _, err := conn.ReadMsg(); !errors.Is(err, io.EOF) {
		t.Fatalf("read on idle connection: %v, want EOF", err)
	}
}

// TestServerBoundsTCPConnections: with MaxTCPConns open, a new client
// waits while the open connection has a query in flight, and is served
// once it is idle, by closing it (RFC 7766 §6.2.3).
func TestServerBoundsTCPConnections(t *testing.T) {
	g := newHoldGate()
	srv := startHandlerServer(t, New(testStore(t), Options{Delegator: DelegateFunc(g.delegate)}, nil), ServerOptions{MaxTCPConns: 1})
	first, err := dns.DialTimeout("tcp", srv.Addr(), deadline)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	first.SetDeadline(time.Now().Add(deadline))
	if err := first.WriteMsg(query("a.slow.", dns.TypeA, 0)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the first connection's query at the upstream", func() bool { return g.waiting.Load() == 1 })
	second, err := dns.DialTimeout("tcp", srv.Addr(), deadline)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	second.SetDeadline(time.Now().Add(100 * time.Millisecond))
	if err := second.WriteMsg(query(zone, dns.TypeSOA, 0)); err != nil {
		t.Fatal(err)
	}
	// Not served while the first connection waits for its answer. The
	// wait is short, but a broken limit would fail it, never a slow
	// machine.
	if _, err := second.ReadMsg(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("second connection served while the first has a query in flight: %v", err)
	}
	close(g.release)
	if resp, err := first.ReadMsg(); err != nil || resp.Rcode != dns.RcodeSuccess {
		t.Fatalf("first connection's answer: %v, %v", resp, err)
	}
	// Now idle, the first connection makes room for the second.
	second.SetDeadline(time.Now().Add(deadline))
	if _, err := second.ReadMsg(); err != nil {
		t.Fatalf("second connection not served once the first was idle: %v", err)
	}
	if _, err := first.ReadMsg(); !errors.Is(err, io.EOF) {
		t.Fatalf("read on the evicted connection: %v, want EOF", err)
	}
	if n := srv.Stats().TCPEvicted; n != 1 {
		t.Errorf("%d connections evicted, want 1", n)
	}
}

func TestServerPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv := NewServer(ln.Addr().String(), New(testStore(t), Options{}, nil), ServerOptions{}, nil)
	if err := srv.Start(t.Context()); err == nil {
		srv.Shutdown(context.Background())
		t.Fatal("started on a port in use")
	}
	if err := srv.Shutdown(context.Background()); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("Shutdown of a server that never started: %v", err)
	}
}

func TestServerShutdownTwice(t *testing.T) {
	srv := NewServer("127.0.0.1:0", New(testStore(t), Options{}, nil), ServerOptions{}, nil)
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	}
	c := &dns.Client{Net: "tcp", Timeout: deadline}
	if _, _, err := c.Exchange(query(zone, dns.TypeSOA, 0), srv.Addr()); err == nil {
		t.Fatal("server answers after shutdown")
	}
}
