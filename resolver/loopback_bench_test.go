//go:build linux

package resolver

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// loopbackWindow is how many queries the loopback benchmarks keep in
// flight, as a load generator does: the server never waits for the client.
const loopbackWindow = 64

// startMiekg runs the handler on a plain miekg/dns UDP server, without the
// fast path and the batched sockets: the baseline of BenchmarkLoopbackUDP.
func startMiekg(b *testing.B, h *Handler) string {
	b.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: h, UDPSize: udpReadSize, NotifyStartedFunc: func() { close(started) }}
	go srv.ActivateAndServe()
	<-started
	b.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

func startBenchServer(b *testing.B, h *Handler) string {
	return startBenchServerWith(b, h, ServerOptions{})
}

func startBenchServerWith(b *testing.B, h *Handler, opts ServerOptions) string {
	b.Helper()
	srv := NewServer("127.0.0.1:0", h, opts, nil)
	if err := srv.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return srv.Addr()
}

// BenchmarkLoopbackUDP sends queries over a real UDP socket on loopback
// with loopbackWindow in flight and counts answers: ns/op is the time per
// answered query with client and server on the same machine (and, for
// allocs/op, in the same process: the client does not allocate). The
// server runs with response rate limiting off, on (a rate never
// reached), and on with every response limited and sent truncated.
func BenchmarkLoopbackUDP(b *testing.B) {
	h := New(testStore(b), Options{}, nil)
	servers := []struct {
		name  string
		start func(*testing.B, *Handler) string
	}{
		{"miekg", startMiekg},
		{"regiondns", startBenchServer},
		{"regiondns-RRL-on", func(b *testing.B, h *Handler) string {
			return startBenchServerWith(b, h, ServerOptions{RRL: &RRLOptions{ResponsesPerSecond: 1e9, Slip: 2}})
		}},
		{"regiondns-RRL-slip", func(b *testing.B, h *Handler) string {
			return startBenchServerWith(b, h, ServerOptions{RRL: &RRLOptions{ResponsesPerSecond: 1, Slip: 1}})
		}},
	}
	queries := []struct {
		name string
		msg  *dns.Msg
	}{
		{"A", query("rw.orders."+zone, dns.TypeA, 0)},
		{"A-EDNS", query("ro.orders."+zone, dns.TypeA, 1232)},
		{"SRV-EDNS", query("ro.orders."+zone, dns.TypeSRV, 1232)},
		{"NXDOMAIN", query("nope."+zone, dns.TypeA, 0)},
	}
	for _, srv := range servers {
		for _, q := range queries {
			b.Run(srv.name+"/"+q.name, func(b *testing.B) {
				wire, err := q.msg.Pack()
				if err != nil {
					b.Fatal(err)
				}
				loopbackUDP(b, srv.start(b, h), wire)
			})
		}
	}
}

// loopbackUDP keeps loopbackWindow queries in flight to addr from one
// connected socket, sending and reading them in batches (sendmmsg,
// recvmmsg) so that the client costs little next to the server.
func loopbackUDP(b *testing.B, addr string, wire []byte) {
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		b.Fatal(err)
	}
	conn, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadBuffer(4 << 20)
	c, err := newBatchClient(conn, loopbackWindow, wire)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	sent, answered, refills := 0, 0, 0
	for answered < b.N {
		if k := min(loopbackWindow-(sent-answered), b.N-sent); k > 0 {
			if err := c.send(k); err != nil {
				b.Fatal(err)
			}
			sent += k
		}
		conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := c.recv()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				// Datagrams lost on loopback (a socket buffer was
				// full): count the window as lost and fill it again.
				refills++
				sent = answered
				continue
			}
			b.Fatal(err)
		}
		answered += n
	}
	b.ReportMetric(float64(refills), "refills")
}

// BenchmarkLoopbackTCP pipelines loopbackWindow queries at a time on one
// TCP connection to the server, and reads the answers.
func BenchmarkLoopbackTCP(b *testing.B) {
	h := New(testStore(b), Options{}, nil)
	for _, q := range []struct {
		name string
		msg  *dns.Msg
	}{
		{"A", query("rw.orders."+zone, dns.TypeA, 0)},
		{"SRV-EDNS", query("ro.orders."+zone, dns.TypeSRV, 1232)},
	} {
		b.Run(q.name, func(b *testing.B) {
			wire, err := q.msg.Pack()
			if err != nil {
				b.Fatal(err)
			}
			conn, err := net.Dial("tcp", startBenchServer(b, h))
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			frame := append(binary.BigEndian.AppendUint16(nil, uint16(len(wire))), wire...)
			window := bytes.Repeat(frame, loopbackWindow)
			buf := make([]byte, 64<<10)
			b.ReportAllocs()
			b.ResetTimer()
			for answered := 0; answered < b.N; {
				k := min(loopbackWindow, b.N-answered)
				if _, err := conn.Write(window[:k*len(frame)]); err != nil {
					b.Fatal(err)
				}
				// Read k framed answers.
				have := 0
				for got := 0; got < k; {
					n, err := conn.Read(buf[have:])
					if err != nil {
						b.Fatal(err)
					}
					have += n
					off := 0
					for off+2 <= have {
						l := int(binary.BigEndian.Uint16(buf[off:]))
						if off+2+l > have {
							break
						}
						off += 2 + l
						got++
					}
					have = copy(buf, buf[off:have])
				}
				answered += k
			}
		})
	}
}
