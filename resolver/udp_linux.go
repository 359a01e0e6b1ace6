//go:build linux

package resolver

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Linux UDP: SO_REUSEPORT sockets, read with recvmmsg and answered with
// sendmmsg, a batch of datagrams per system call. golang.org/x/net's
// ReadBatch allocates an address per datagram; these calls reuse the same
// headers, buffers and raw socket addresses for every batch, and the
// answer goes to the very sockaddr the query came from.
//
// recvmmsg and sendmmsg are raw system calls (no entersyscall): on a
// non-blocking socket they never block, and telling the scheduler about
// each one lets sysmon hand the loop's P to another thread mid-batch, a
// context switch per hand-off.

// mmsghdr is struct mmsghdr of recvmmsg(2): Go lays it out as C does.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// Control message buffers: received (IP_PKTINFO and IPV6_PKTINFO may both
// come) and sent (one of them).
const (
	recvCtrlSize = 128
	sendCtrlSize = 64
)

type rawSockaddr = [unix.SizeofSockaddrInet6]byte

// udpPeer is where an answer of the slow path goes: the query's source
// address and the control message that makes the answer leave from the
// address the query was sent to.
type udpPeer struct {
	name    rawSockaddr
	namelen uint32
	ctrl    [sendCtrlSize]byte
	ctrllen int
}

// batchIO reads and writes the datagrams of one socket in batches. read,
// msg, out, reply and write belong to the socket's loop; send may be
// called from any goroutine.
type batchIO struct {
	rc      syscall.RawConn
	pktinfo bool
	inSize  int
	outSize int

	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []rawSockaddr
	ctrl  []byte
	in    []byte

	ohdrs []mmsghdr
	oiovs []unix.Iovec
	octrl []byte
	obuf  []byte
	// m is the number of answers queued for write.
	m int

	// What the system call functions report, and where write starts.
	sysN    int
	sysErr  error
	wbase   int
	readFn  func(uintptr) bool
	writeFn func(uintptr) bool
}

func newBatchIO(conn *net.UDPConn, batch, inSize, outSize int) (*batchIO, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	b := &batchIO{
		rc: rc, inSize: inSize, outSize: outSize,
		hdrs: make([]mmsghdr, batch), iovs: make([]unix.Iovec, batch), names: make([]rawSockaddr, batch),
		ctrl: make([]byte, batch*recvCtrlSize), in: make([]byte, batch*inSize),
		ohdrs: make([]mmsghdr, batch), oiovs: make([]unix.Iovec, batch),
		octrl: make([]byte, batch*sendCtrlSize), obuf: make([]byte, batch*outSize),
	}
	b.readFn, b.writeFn = b.recvmmsg, b.sendmmsg
	// Answers leave from the address the query came to: on a socket bound
	// to a wildcard address of a host with several, the kernel would pick
	// one by route otherwise (miekg/dns does the same).
	if a, ok := conn.LocalAddr().(*net.UDPAddr); ok && a.IP.IsUnspecified() {
		b.pktinfo = enablePktinfo(rc)
	}
	for i := range b.hdrs {
		b.iovs[i].Base = &b.in[i*inSize]
		b.iovs[i].SetLen(inSize)
		h := &b.hdrs[i].hdr
		h.Name = &b.names[i][0]
		h.Iov = &b.iovs[i]
		h.SetIovlen(1)
		if b.pktinfo {
			h.Control = &b.ctrl[i*recvCtrlSize]
		}
		b.ohdrs[i].hdr.Iov = &b.oiovs[i]
		b.ohdrs[i].hdr.SetIovlen(1)
	}
	return b, nil
}

// enablePktinfo asks for the destination address of each datagram, IPv4
// and IPv6; it reports false when neither can be had.
func enablePktinfo(rc syscall.RawConn) bool {
	var err4, err6 error
	err := rc.Control(func(fd uintptr) {
		err6 = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
		err4 = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
	})
	return err == nil && (err4 == nil || err6 == nil)
}

// read waits for at least one datagram and returns how many it read.
func (b *batchIO) read() (int, error) {
	for i := range b.hdrs {
		h := &b.hdrs[i].hdr
		h.Namelen = unix.SizeofSockaddrInet6
		if b.pktinfo {
			h.SetControllen(recvCtrlSize)
		}
		h.Flags = 0
	}
	b.sysN, b.sysErr = 0, nil
	if err := b.rc.Read(b.readFn); err != nil {
		return 0, err
	}
	return b.sysN, b.sysErr
}

func (b *batchIO) recvmmsg(fd uintptr) bool {
	// MSG_WAITFORONE: after the first datagram, take what is there.
	n, done, err := mmsg(unix.SYS_RECVMMSG, fd, b.hdrs, unix.MSG_WAITFORONE, "recvmmsg")
	b.sysN, b.sysErr = n, err
	return done
}

// mmsg runs recvmmsg or sendmmsg (trap) on fd for the message headers hdrs,
// again after EINTR. done is false on EAGAIN (the socket is not ready: the
// runtime poller waits and calls again); otherwise n or err is the result.
func mmsg(trap, fd uintptr, hdrs []mmsghdr, flags uintptr, name string) (n int, done bool, err error) {
	if len(hdrs) == 0 {
		return 0, true, nil
	}
	for {
		r, _, e := unix.RawSyscall6(trap, fd, uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), flags, 0, 0)
		switch e {
		case 0:
			return int(r), true, nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, false, nil
		default:
			return 0, true, os.NewSyscallError(name, e)
		}
	}
}

// msg returns datagram i of the batch read.
func (b *batchIO) msg(i int) []byte {
	start := i * b.inSize
	return b.in[start : start+int(b.hdrs[i].len)]
}

// truncated reports whether datagram i was longer than the buffer, and
// cut (MSG_TRUNC).
func (b *batchIO) truncated(i int) bool {
	return b.hdrs[i].hdr.Flags&unix.MSG_TRUNC != 0
}

// out returns the buffer for the answer to datagram i.
func (b *batchIO) out(i int) []byte {
	return b.obuf[i*b.outSize : (i+1)*b.outSize]
}

// reply queues the first n octets of out(i) as the answer to datagram i.
func (b *batchIO) reply(i, n int) {
	oh := &b.ohdrs[b.m]
	oh.hdr.Name = &b.names[i][0]
	oh.hdr.Namelen = b.hdrs[i].hdr.Namelen
	b.oiovs[b.m].Base = &b.obuf[i*b.outSize]
	b.oiovs[b.m].SetLen(n)
	oh.hdr.Control = nil
	oh.hdr.SetControllen(0)
	if b.pktinfo {
		rc := b.ctrl[i*recvCtrlSize : i*recvCtrlSize+int(b.hdrs[i].hdr.Controllen)]
		sc := b.octrl[b.m*sendCtrlSize : (b.m+1)*sendCtrlSize]
		if k := sourceControl(rc, sc); k > 0 {
			oh.hdr.Control = &sc[0]
			oh.hdr.SetControllen(k)
		}
	}
	b.m++
}

// write sends the answers queued; a datagram the kernel refuses is skipped
// (and its error returned), the others still go.
func (b *batchIO) write() error {
	var first error
	for sent := 0; sent < b.m; {
		b.wbase, b.sysN, b.sysErr = sent, 0, nil
		if err := b.rc.Write(b.writeFn); err != nil {
			b.m = 0
			return err
		}
		if b.sysErr != nil || b.sysN == 0 {
			first = cmpOr(first, b.sysErr)
			sent++
			continue
		}
		sent += b.sysN
	}
	b.m = 0
	return first
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func (b *batchIO) sendmmsg(fd uintptr) bool {
	n, done, err := mmsg(unix.SYS_SENDMMSG, fd, b.ohdrs[b.wbase:b.m], 0, "sendmmsg")
	b.sysN, b.sysErr = n, err
	return done
}

// src returns the source address of datagram i (an IPv4 client on a
// dual-stack socket as IPv4), without allocating.
func (b *batchIO) src(i int) netip.Addr {
	n := &b.names[i]
	switch binary.NativeEndian.Uint16(n[:]) {
	case unix.AF_INET:
		return netip.AddrFrom4([4]byte(n[4:8]))
	case unix.AF_INET6:
		return netip.AddrFrom16([16]byte(n[8:24])).Unmap()
	}
	return netip.Addr{}
}

// peer returns where the answer to datagram i goes, for send.
func (b *batchIO) peer(i int) udpPeer {
	p := udpPeer{name: b.names[i], namelen: b.hdrs[i].hdr.Namelen}
	if b.pktinfo {
		rc := b.ctrl[i*recvCtrlSize : i*recvCtrlSize+int(b.hdrs[i].hdr.Controllen)]
		p.ctrllen = sourceControl(rc, p.ctrl[:])
	}
	return p
}

// send writes one answer to p; it is safe to call from any goroutine.
func (b *batchIO) send(resp []byte, p *udpPeer) error {
	iov := unix.Iovec{Base: &resp[0]}
	iov.SetLen(len(resp))
	h := unix.Msghdr{Name: &p.name[0], Namelen: p.namelen, Iov: &iov}
	h.SetIovlen(1)
	if p.ctrllen > 0 {
		h.Control = &p.ctrl[0]
		h.SetControllen(p.ctrllen)
	}
	var serr error
	err := b.rc.Write(func(fd uintptr) bool {
		for {
			_, _, e := unix.Syscall(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&h)), 0)
			switch e {
			case 0:
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false
			default:
				serr = os.NewSyscallError("sendmsg", e)
			}
			return true
		}
	})
	return cmpOr(err, serr)
}

// sourceControl writes into out the control message that sends an answer
// from the destination address of the query, read from its control
// messages rc, and returns its length (0: none). As miekg/dns does, IPv6
// packet information wins, and an IPv4-mapped address is answered as IPv4.
func sourceControl(rc, out []byte) int {
	var v4 []byte
	for len(rc) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&rc[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(rc) {
			break
		}
		data := rc[unix.SizeofCmsghdr:l]
		switch {
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			addr := (*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0])).Addr
			if ip := net.IP(addr[:]); ip.To4() != nil {
				return putPktinfo4(out, ip.To4())
			}
			return putPktinfo6(out, addr)
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			v4 = data[8:12] // ipi_addr: the header's destination address
		}
		l = unix.CmsgSpace(l - unix.SizeofCmsghdr)
		if l > len(rc) {
			break
		}
		rc = rc[l:]
	}
	if v4 != nil {
		return putPktinfo4(out, v4)
	}
	return 0
}

func putPktinfo4(out, addr []byte) int {
	n := unix.CmsgSpace(unix.SizeofInet4Pktinfo)
	clear(out[:n])
	h := (*unix.Cmsghdr)(unsafe.Pointer(&out[0]))
	h.Level, h.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
	pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&out[unix.SizeofCmsghdr]))
	copy(pi.Spec_dst[:], addr)
	return n
}

func putPktinfo6(out []byte, addr [16]byte) int {
	n := unix.CmsgSpace(unix.SizeofInet6Pktinfo)
	clear(out[:n])
	h := (*unix.Cmsghdr)(unsafe.Pointer(&out[0]))
	h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
	(*unix.Inet6Pktinfo)(unsafe.Pointer(&out[unix.SizeofCmsghdr])).Addr = addr
	return n
}

// socketBuffer is the receive and send buffer asked for each UDP socket
// (the kernel caps it at net.core.rmem_max and wmem_max): bursts wait
// there instead of being dropped.
const socketBuffer = 4 << 20

// listenUDP binds n UDP sockets to addr; with more than one, SO_REUSEPORT
// lets the kernel spread the clients over them.
func listenUDP(ctx context.Context, addr string, n int) ([]*net.UDPConn, error) {
	var lc net.ListenConfig
	if n > 1 {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	conns := make([]*net.UDPConn, 0, n)
	for range n {
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, err
		}
		c := pc.(*net.UDPConn)
		c.SetReadBuffer(socketBuffer)
		c.SetWriteBuffer(socketBuffer)
		conns = append(conns, c)
	}
	return conns, nil
}
