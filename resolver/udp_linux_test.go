//go:build linux

package resolver

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// datagramLoop returns the UDP loop of a server that is not started, on
// a socket of its own, whose batch a test fills by hand (load) and serves
// datagram by datagram, without system calls.
func datagramLoop(tb testing.TB, opts ServerOptions) *udpLoop {
	tb.Helper()
	srv := NewServer("127.0.0.1:0", New(testStore(tb), Options{}, nil), opts, nil)
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { pc.Close() })
	l, err := newUDPLoop(srv, pc, 0)
	if err != nil {
		tb.Fatal(err)
	}
	if srv.rrl != nil {
		l.now = srv.rrl.now()
	}
	return l
}

// load puts msg, sent from the IPv4 address from, as datagram i of the
// batch, cut to the buffer (MSG_TRUNC) when longer.
func (b *batchIO) load(i int, msg []byte, from netip.AddrPort) {
	n := copy(b.in[i*b.inSize:(i+1)*b.inSize], msg)
	b.hdrs[i].len = uint32(n)
	h := &b.hdrs[i].hdr
	h.Flags = 0
	if n < len(msg) {
		h.Flags = unix.MSG_TRUNC
	}
	h.SetControllen(0)
	sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&b.names[i][0]))
	sa.Family = unix.AF_INET
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], from.Port())
	sa.Addr = from.Addr().As4()
	h.Namelen = unix.SizeofSockaddrInet4
}

// datagramModes are the UDP loop's settings that the fast path's cost
// depends on: response rate limiting off, on and never reached, and on
// and reached for every response (each one sent truncated).
var datagramModes = []struct {
	name string
	opts ServerOptions
}{
	{name: "RRL-off"},
	{name: "RRL-on", opts: ServerOptions{RRL: &RRLOptions{ResponsesPerSecond: 1e9, Slip: 2}}},
	{name: "RRL-slip", opts: ServerOptions{RRL: &RRLOptions{ResponsesPerSecond: 1, Slip: 1}}},
}

// TestServeDatagramDoesNotAllocate: the UDP loop's work per datagram
// answered by the fast path allocates nothing, whether response rate
// limiting is off, on, or limiting.
func TestServeDatagramDoesNotAllocate(t *testing.T) {
	from := netip.MustParseAddrPort("192.0.2.1:5353")
	for _, mode := range datagramModes {
		l := datagramLoop(t, mode.opts)
		for _, q := range fastQueries {
			if q.tcp {
				continue
			}
			wire, err := q.msg.Pack()
			if err != nil {
				t.Fatal(err)
			}
			l.io.load(0, wire, from)
			serve := func() {
				l.serveDatagram(0)
				l.io.m = 0
			}
			serve()
			if n := testing.AllocsPerRun(200, serve); n != 0 {
				t.Errorf("%s %s: %v allocations per datagram, want 0", mode.name, q.name, n)
			}
			l.serveDatagram(0)
			if l.io.m != 1 {
				t.Errorf("%s %s: no answer queued", mode.name, q.name)
			}
			l.io.m = 0
		}
	}
}

// BenchmarkServeDatagram is the UDP loop's work for one datagram that the
// fast path answers (system calls aside), with response rate limiting
// off, on, and limiting every response.
func BenchmarkServeDatagram(b *testing.B) {
	from := netip.MustParseAddrPort("192.0.2.1:5353")
	for _, mode := range datagramModes {
		for _, q := range fastQueries {
			if q.tcp || !strings.HasSuffix(q.name, "/A") {
				continue
			}
			wire, err := q.msg.Pack()
			if err != nil {
				b.Fatal(err)
			}
			b.Run(mode.name+"/"+q.name, func(b *testing.B) {
				l := datagramLoop(b, mode.opts)
				l.io.load(0, wire, from)
				b.ReportAllocs()
				for b.Loop() {
					l.serveDatagram(0)
					l.io.m = 0
				}
			})
		}
	}
}
