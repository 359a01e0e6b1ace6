//go:build !linux

package resolver

import (
	"context"
	"net"
	"net/netip"
)

// Elsewhere than Linux: one socket, one datagram per system call, no
// packet information (an answer leaves from the address the kernel picks,
// which matters only on a host with several addresses bound to a wildcard).

type udpPeer struct {
	addr netip.AddrPort
}

// batchIO reads into a buffer one octet longer than inSize: a datagram
// that fills it was longer than inSize (the kernel cut it).
type batchIO struct {
	conn    *net.UDPConn
	in, buf []byte
	inSize  int
	n       int
	from    netip.AddrPort
	replyN  int
}

func newBatchIO(conn *net.UDPConn, _, inSize, outSize int) (*batchIO, error) {
	return &batchIO{conn: conn, in: make([]byte, inSize+1), buf: make([]byte, outSize), inSize: inSize}, nil
}

func (b *batchIO) read() (int, error) {
	n, from, err := b.conn.ReadFromUDPAddrPort(b.in)
	if err != nil {
		return 0, err
	}
	b.n, b.from = n, from
	return 1, nil
}

func (b *batchIO) msg(int) []byte     { return b.in[:min(b.n, b.inSize)] }
func (b *batchIO) truncated(int) bool { return b.n > b.inSize }
func (b *batchIO) src(int) netip.Addr { return b.from.Addr().Unmap() }
func (b *batchIO) out(int) []byte     { return b.buf }
func (b *batchIO) reply(_, n int)     { b.replyN = n }
func (b *batchIO) peer(int) udpPeer   { return udpPeer{addr: b.from} }

func (b *batchIO) write() error {
	if b.replyN == 0 {
		return nil
	}
	_, err := b.conn.WriteToUDPAddrPort(b.buf[:b.replyN], b.from)
	b.replyN = 0
	return err
}

func (b *batchIO) send(resp []byte, p *udpPeer) error {
	_, err := b.conn.WriteToUDPAddrPort(resp, p.addr)
	return err
}

// listenUDP binds one UDP socket to addr, whatever n.
func listenUDP(ctx context.Context, addr string, _ int) ([]*net.UDPConn, error) {
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		return nil, err
	}
	return []*net.UDPConn{pc.(*net.UDPConn)}, nil
}
