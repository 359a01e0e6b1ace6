package resolver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// framed returns n copies of wire, each after its TCP length prefix.
func framed(wire []byte, n int) []byte {
	var b []byte
	for range n {
		b = append(binary.BigEndian.AppendUint16(b, uint16(len(wire))), wire...)
	}
	return b
}

// memInUse is the heap and the goroutine stacks in use, after a collection.
func memInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// TestServerTCPFloodIsBounded opens 1,024 TCP connections and pipelines
// 16 queries on each for names whose upstream never answers: queries of
// 60 KB (answered FORMERR unread), and small ones that fill the bound on
// the slow path (the rest answered SERVFAIL). Goroutines stay under 6,000
// and memory under 100 MiB.
func TestServerTCPFloodIsBounded(t *testing.T) {
	const conns, pipelined = 1024, 16
	const maxGoroutines, maxGrowth = 6000, 100 << 20
	raiseFileLimit(t, 2*conns+256)
	tests := []struct {
		name string
		wire []byte
		opts ServerOptions
		done func(Stats) bool
	}{
		{
			name: "60 KB queries",
			wire: paddedQuery(t, "x.slow.", 60<<10),
			done: func(st Stats) bool { return st.Oversized == conns*pipelined },
		},
		{
			name: "one source takes the whole bound",
			wire: pack(t, query("x.slow.", dns.TypeA, 1232)),
			opts: ServerOptions{MaxInflight: DefaultMaxInflight, MaxInflightPerSource: DefaultMaxInflight},
			done: func(st Stats) bool {
				return st.SlowInFlight == DefaultMaxInflight && st.Shed[protoTCP] == conns*pipelined-DefaultMaxInflight
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newHoldGate()
			// Connections wait for their turn to be written longer than
			// the default timeouts on a slow machine.
			tc.opts.IdleTimeout = time.Minute
			srv := startHandlerServer(t, New(testStore(t), Options{Delegator: DelegateFunc(g.delegate)}, nil), tc.opts)
			t.Cleanup(func() { close(g.release) })
			before := memInUse()
			clients := make([]net.Conn, conns)
			defer func() {
				for _, c := range clients {
					if c != nil {
						c.Close()
					}
				}
			}()
			for i := range clients {
				c, err := net.DialTimeout("tcp", srv.Addr(), deadline)
				if err != nil {
					t.Fatalf("connection %d: %v", i, err)
				}
				clients[i] = c
			}
			pipeline := framed(tc.wire, pipelined)
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Go(func() {
					for i := w; i < conns; i += 8 {
						clients[i].SetWriteDeadline(time.Now().Add(deadline))
						if _, err := clients[i].Write(pipeline); err != nil {
							t.Errorf("connection %d: write: %v", i, err)
							return
						}
					}
				})
			}
			wg.Wait()
			eventually(t, "every query handled", func() bool { return tc.done(srv.Stats()) })
			goroutines, grown := runtime.NumGoroutine(), int64(memInUse())-int64(before)
			t.Logf("%d goroutines, heap and stacks grew %d MiB, %d queries at the upstream", goroutines, grown>>20, g.waiting.Load())
			if goroutines >= maxGoroutines {
				t.Errorf("%d goroutines, want fewer than %d", goroutines, maxGoroutines)
			}
			if grown >= maxGrowth {
				t.Errorf("heap and stacks grew %d MiB, want less than %d MiB", grown>>20, maxGrowth>>20)
			}
			// The last connection written has all its answers.
			dc := &dns.Conn{Conn: clients[conns-1]}
			dc.SetReadDeadline(time.Now().Add(deadline))
			for i := range pipelined {
				resp, err := dc.ReadMsg()
				if err != nil {
					if st := srv.Stats(); st.Shed[protoTCP] > 0 {
						// This connection's queries may all be in flight.
						break
					}
					t.Fatalf("answer %d: %v", i, err)
				}
				if resp.Rcode != dns.RcodeFormatError && resp.Rcode != dns.RcodeServerFailure {
					t.Fatalf("answer %d: %v, want FORMERR or SERVFAIL", i, resp)
				}
			}
		})
	}
}

// TestServerTCPServesNewClientWhileIdleConnectionsFill opens 2,000 TCP
// connections that never send a query to a server bounded at 1,024: a new
// client is still answered within a second, the longest idle connections
// closed to make room (RFC 7766 §6.2.3). Without that, it would wait for
// the idle timeout, a minute here. Under the race detector, which slows
// accepting, closing and starting goroutines several times over, the
// second is five.
func TestServerTCPServesNewClientWhileIdleConnectionsFill(t *testing.T) {
	const maxConns, idle = 1024, 2000
	within := time.Second
	if raceDetector {
		within = 5 * time.Second
	}
	raiseFileLimit(t, maxConns+idle+256)
	srv := startServer(t, ServerOptions{MaxTCPConns: maxConns, IdleTimeout: time.Minute})
	held := make([]net.Conn, 0, idle)
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := range idle {
		c, err := net.DialTimeout("tcp", srv.Addr(), deadline)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		held = append(held, c)
	}
	eventually(t, "the bound full", func() bool { return srv.Stats().TCPConnections >= maxConns })
	start := time.Now()
	c, err := dns.DialTimeout("tcp", srv.Addr(), within)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(start.Add(within))
	if err := c.WriteMsg(query("rw.orders."+zone, dns.TypeA, 0)); err != nil {
		t.Fatal(err)
	}
	resp, err := c.ReadMsg()
	if err != nil || resp.Rcode != dns.RcodeSuccess {
		t.Fatalf("new client: %v, %v (after %s)", resp, err, time.Since(start))
	}
	t.Logf("new client answered in %s", time.Since(start))
	if st := srv.Stats(); st.TCPEvicted < idle-maxConns+1 {
		t.Errorf("%d connections evicted, want at least %d", st.TCPEvicted, idle-maxConns+1)
	}
	eventually(t, "evicted connections closed", func() bool { return srv.Stats().TCPConnections <= maxConns })
	// The longest idle went first.
	held[0].SetReadDeadline(time.Now().Add(deadline))
	if _, err := held[0].Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("first idle connection: %v, want EOF", err)
	}
}

// TestServerSourceShareKeepsOthersServed floods the slow path from one
// source with names whose upstream never answers, at 8,000 queries a
// second, while another source asks for names of the slow path (mixed
// case, EDNS client subnet, delegated names) over UDP and TCP: at least
// 99 % of those are answered.
func TestServerSourceShareKeepsOthersServed(t *testing.T) {
	tests := []struct {
		name    string
		flooder string
		opts    ServerOptions
	}{
		{name: "flood from another /24", flooder: "127.0.1.2"},
		{name: "flood from the same /24, one source per address", flooder: "127.0.0.2", opts: ServerOptions{SourcePrefixV4: 32}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newHoldGate()
			srv := startHandlerServer(t, New(testStore(t), Options{Delegator: DelegateFunc(g.delegate)}, nil), tc.opts)
			t.Cleanup(func() { close(g.release) })
			raddr, err := net.ResolveUDPAddr("udp", srv.Addr())
			if err != nil {
				t.Fatal(err)
			}
			fc, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(tc.flooder)}, raddr)
			if err != nil {
				t.Fatal(err)
			}
			defer fc.Close()
			var sent atomic.Int64
			stop := make(chan struct{})
			var flood sync.WaitGroup
			flood.Go(func() {
				tick := time.NewTicker(10 * time.Millisecond)
				defer tick.Stop()
				for {
					for range 80 {
						n := sent.Add(1)
						wire, _ := query(fmt.Sprintf("n%d.slow.", n), dns.TypeA, 0).Pack()
						fc.Write(wire)
					}
					select {
					case <-tick.C:
					case <-stop:
						return
					}
				}
			})
			defer func() { close(stop); flood.Wait() }()
			// Enough to fill any bound of the slow path twice over.
			eventually(t, "the flood shed", func() bool {
				return sent.Load() >= 2*DefaultMaxInflight && srv.Stats().Shed[protoUDP] > 0
			})

			subnet := query("rw.orders."+zone, dns.TypeA, 1232)
			subnet.IsEdns0().Option = append(subnet.IsEdns0().Option,
				&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(192, 0, 2, 0)})
			asks := []*dns.Msg{query("Rw.Orders."+zone, dns.TypeA, 0), subnet}
			const rounds = 50
			answered, asked := 0, 0
			for _, network := range []string{"udp", "tcp"} {
				c := &dns.Client{Net: network, Timeout: time.Second}
				for i := range rounds {
					for _, req := range append(asks, query(fmt.Sprintf("ok%d.example.", i), dns.TypeA, 0)) {
						req = req.Copy()
						req.Id = dns.Id()
						asked++
						if resp, _, err := c.Exchange(req, srv.Addr()); err == nil && resp.Rcode == dns.RcodeSuccess {
							answered++
						}
					}
				}
			}
			t.Logf("%d of %d answered while %d flood queries were sent", answered, asked, sent.Load())
			if answered*100 < asked*99 {
				t.Errorf("%d of %d answered, want at least 99 %%", answered, asked)
			}
		})
	}
}

// TestServerOversizedQueries: messages longer than 4 KiB are answered
// FORMERR, unread; a UDP datagram longer than the read buffer is not
// answered as its first 4 KiB; a 4 KiB query is served.
func TestServerOversizedQueries(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	name := "rw.orders." + zone
	t.Run("TCP", func(t *testing.T) {
		conn, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var pipeline []byte
		want := []int{dns.RcodeFormatError, dns.RcodeSuccess, dns.RcodeFormatError, dns.RcodeSuccess}
		for i, wire := range [][]byte{paddedQuery(t, name, 5<<10), pack(t, query(name, dns.TypeA, 0)),
			paddedQuery(t, name, 60<<10), paddedQuery(t, name, maxQueryLen)} {
			binary.BigEndian.PutUint16(wire, uint16(i+1))
			pipeline = append(pipeline, framed(wire, 1)...)
		}
		conn.SetDeadline(time.Now().Add(deadline))
		if _, err := conn.Write(pipeline); err != nil {
			t.Fatal(err)
		}
		dc := &dns.Conn{Conn: conn}
		for i, rcode := range want {
			resp, err := dc.ReadMsg()
			if err != nil {
				t.Fatalf("answer %d: %v", i+1, err)
			}
			if int(resp.Id) != i+1 || resp.Rcode != rcode || rcode == dns.RcodeFormatError && len(resp.Question) != 0 {
				t.Errorf("answer %d: %v, want %s", i+1, resp, dns.RcodeToString[rcode])
			}
		}
	})
	t.Run("UDP", func(t *testing.T) {
		// A whole query, then octets after it (ignored, as miekg/dns
		// does): whole within 4 KiB, cut beyond.
		for _, tc := range []struct {
			size  int
			rcode int
		}{
			{size: maxQueryLen, rcode: dns.RcodeSuccess},
			{size: 5000, rcode: dns.RcodeFormatError},
		} {
			wire := append(pack(t, query(name, dns.TypeA, 0)), make([]byte, tc.size)...)[:tc.size]
			c, err := net.Dial("udp", srv.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(deadline))
			if _, err := c.Write(wire); err != nil {
				t.Fatal(err)
			}
			resp, err := (&dns.Conn{Conn: c}).ReadMsg()
			if err != nil || resp.Rcode != tc.rcode {
				t.Errorf("%d octets: %v, %v; want %s", tc.size, resp, err, dns.RcodeToString[tc.rcode])
			}
		}
	})
	eventually(t, "three oversized messages counted", func() bool { return srv.Stats().Oversized == 3 })
}

// TestServerShedsBeyondTheBound: with the slow path full, a TCP query gets
// SERVFAIL at once and a UDP query is dropped, both counted; the zone is
// still answered.
func TestServerShedsBeyondTheBound(t *testing.T) {
	g := newHoldGate()
	srv := startHandlerServer(t, New(testStore(t), Options{Delegator: DelegateFunc(g.delegate)}, nil),
		ServerOptions{MaxInflight: 2, MaxInflightPerSource: 2})
	waiting := make(chan *dns.Msg, 2)
	for i := range 2 {
		go func() {
			c := &dns.Client{Net: "udp", Timeout: deadline}
			resp, _, err := c.Exchange(query(fmt.Sprintf("w%d.slow.", i), dns.TypeA, 0), srv.Addr())
			if err != nil {
				t.Errorf("query in flight: %v", err)
			}
			waiting <- resp
		}()
	}
	eventually(t, "two queries at the upstream", func() bool { return g.waiting.Load() == 2 })

	resp := exchange(t, "tcp", srv.Addr(), query("x.slow.", dns.TypeSRV, 1232))
	if resp.Rcode != dns.RcodeServerFailure || len(resp.Question) != 1 || resp.IsEdns0() == nil {
		t.Errorf("TCP beyond the bound: %v, want SERVFAIL with the question and OPT", resp)
	}
	c, err := net.Dial("udp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(pack(t, query("y.slow.", dns.TypeA, 0))); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the UDP query shed", func() bool { return srv.Stats().Shed == [len(Protocols)]uint64{1, 1} })
	for _, network := range []string{"udp", "tcp"} {
		if resp := exchange(t, network, srv.Addr(), query("rw.orders."+zone, dns.TypeA, 0)); resp.Rcode != dns.RcodeSuccess {
			t.Errorf("%s zone query with the slow path full: %v", network, resp)
		}
	}
	if n := g.waiting.Load(); n != 2 {
		t.Errorf("%d queries reached the upstream, want 2", n)
	}
	close(g.release)
	for range 2 {
		if resp := <-waiting; resp == nil || resp.Rcode != dns.RcodeSuccess {
			t.Errorf("query in flight answered %v", resp)
		}
	}
	eventually(t, "the slow path empty", func() bool { return srv.Stats().SlowInFlight == 0 })
}

// TestServerTCPPipelineWaitsForItsOwnBound: a connection with
// MaxInflightPerConn queries in the slow path is not read further until
// one is answered; nothing is shed.
func TestServerTCPPipelineWaitsForItsOwnBound(t *testing.T) {
	g := newHoldGate()
	srv := startHandlerServer(t, New(testStore(t), Options{Delegator: DelegateFunc(g.delegate)}, nil),
		ServerOptions{MaxInflightPerConn: 2})
	conn, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var pipeline []byte
	for i, name := range []string{"a.slow.", "b.slow.", "c.slow.", "rw.orders." + zone} {
		q := query(name, dns.TypeA, 0)
		q.Id = uint16(i + 1)
		pipeline = append(pipeline, framed(pack(t, q), 1)...)
	}
	if _, err := conn.Write(pipeline); err != nil {
		t.Fatal(err)
	}
	eventually(t, "two queries at the upstream", func() bool { return g.waiting.Load() == 2 })
	dc := &dns.Conn{Conn: conn}
	// The zone query after the third is not read yet. The wait is short,
	// but a broken bound would fail it, never a slow machine.
	conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if resp, err := dc.ReadMsg(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("answer %v, %v while the connection's bound is full", resp, err)
	}
	close(g.release)
	conn.SetReadDeadline(time.Now().Add(deadline))
	for range 4 {
		if resp, err := dc.ReadMsg(); err != nil || resp.Rcode != dns.RcodeSuccess {
			t.Fatalf("answer: %v, %v", resp, err)
		}
	}
	if st := srv.Stats(); st.Shed != [len(Protocols)]uint64{} {
		t.Errorf("shed %v, want none", st.Shed)
	}
}
