package resolver

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/internal/dnswire"
)

// udpBatch is how many datagrams one loop reads (and answers) per system
// call where the system reads in batches (Linux: recvmmsg, sendmmsg).
const udpBatch = 64

// udpLoop serves one UDP socket from one goroutine: it reads a batch of
// queries, answers each from the fast path into its own preallocated
// buffer, writes the answers as one batch, and hands what the fast path
// does not answer to a goroutine of the slow path. Its counters are its
// own: plain increments per query, published once per batch.
type udpLoop struct {
	s    *Server
	conn *net.UDPConn
	io   *batchIO
	// rot picks A/AAAA rotations; seq picks the queries timed.
	rot, seq uint32
	tally    tally
	// now is the clock of the response rate limit, read once per batch.
	now int64
	// sink holds this loop's published counters (Server.Stats sums them).
	sink sink
}

func newUDPLoop(s *Server, conn *net.UDPConn, index int) (*udpLoop, error) {
	io, err := newBatchIO(conn, udpBatch, udpReadSize, int(s.h.opts.UDPSize))
	if err != nil {
		return nil, err
	}
	// Loops start their rotations apart: a client whose queries land on
	// different sockets still sees the orders change.
	return &udpLoop{s: s, conn: conn, io: io, rot: uint32(index)}, nil
}

func (l *udpLoop) run() {
	var backoff time.Duration
	for {
		n, err := l.io.read()
		if err != nil {
			if l.s.closing.Load() || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) {
				return
			}
			// Unexpected (the kernel out of memory, say): say so, and do
			// not spin on it.
			l.s.logger.Warn("dns udp read", "error", err)
			backoff = min(max(2*backoff, time.Millisecond), time.Second)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if l.s.rrl != nil {
			// One clock read per batch: the batch takes microseconds.
			l.now = l.s.rrl.now()
		}
		for i := range n {
			l.serveDatagram(i)
		}
		if err := l.io.write(); err != nil && !l.s.closing.Load() {
			l.s.logger.Debug("dns udp write", "error", err)
		}
		l.tally.flush(&l.sink)
	}
}

// serveDatagram answers datagram i of the batch: an oversized one FORMERR,
// the others from the fast path or the slow path, within the response
// rate limit when it is on.
func (l *udpLoop) serveDatagram(i int) {
	msg := l.io.msg(i)
	l.seq++
	l.rot++
	smp := sampleQuery(l.seq)
	if len(msg) < dnswire.HeaderLen || msg[2]&flagQR != 0 {
		// Answering a response invites loops and reflection; a runt
		// has no ID to answer.
		l.tally.count(protoUDP, outcome{dropped: true}, sample{})
		return
	}
	src := l.io.src(i)
	var key uint64
	if l.s.rrl != nil {
		key = l.s.keys.key(src)
		if !l.s.rrl.allow(key, l.now) {
			l.limited(i, key)
			return
		}
	}
	if l.io.truncated(i) {
		// Longer than maxQueryLen: the kernel cut it to the buffer.
		// Answered from its header, unread.
		n, _ := l.s.h.shortReply(msg[:dnswire.HeaderLen], l.io.out(i), dns.RcodeFormatError, false)
		l.io.reply(i, n)
		l.tally.add(idxOversized, 1)
		l.tally.count(protoUDP, outcome{rcode: dns.RcodeFormatError, source: SourceError}, smp)
		return
	}
	if f := l.fastPath(msg, src, l.io.out(i)); f.ok {
		l.io.reply(i, f.n)
		l.tally.count(protoUDP, f.outcome(), smp)
		return
	}
	if l.s.rrl == nil {
		key = l.s.keys.key(src)
	}
	if !l.s.gate.acquire(key) {
		l.tally.add(idxShed+protoUDP, 1)
		l.tally.count(protoUDP, outcome{dropped: true}, sample{})
		return
	}
	// The loop reuses msg's buffer for the next batch.
	query, peer := append([]byte(nil), msg...), l.io.peer(i)
	l.s.slow.Add(1)
	go l.slowPath(query, src, peer, key, smp)
}

// limited handles datagram i, over its source's response rate: dropped,
// or, every Slip-th time, answered truncated (no records, TC set), so that
// a real client retries over TCP.
func (l *udpLoop) limited(i int, key uint64) {
	if l.s.rrl.slipped(key) {
		msg := l.io.msg(i)
		if l.io.truncated(i) {
			msg = msg[:dnswire.HeaderLen]
		}
		n, qtype := l.s.h.shortReply(msg, l.io.out(i), dns.RcodeSuccess, true)
		l.io.reply(i, n)
		l.tally.add(idxRRL+rrlSlipped, 1)
		l.tally.count(protoUDP, outcome{qtype: qtype, source: SourceError, tc: true}, sample{})
		return
	}
	l.tally.add(idxRRL+rrlDropped, 1)
	l.tally.count(protoUDP, outcome{dropped: true}, sample{})
}

// fastPath runs the fast path on msg; a panic in it is counted and logged, and
// the slow path answers the query.
func (l *udpLoop) fastPath(msg []byte, src netip.Addr, out []byte) (f fastResult) {
	defer func() {
		if r := recover(); r != nil {
			l.s.h.logPanic(r)
			l.tally.add(idxPanics, 1)
			f = fastResult{}
		}
	}()
	return l.s.h.answerWire(msg, src, false, out, l.rot)
}

// slowPath answers one query through HandleRequest and sends the answer
// from its own goroutine: a delegated name may wait for Consul DNS.
func (l *udpLoop) slowPath(query []byte, src netip.Addr, peer udpPeer, key uint64, smp sample) {
	defer func() {
		l.s.gate.release(key)
		l.s.slow.Done()
	}()
	resp, o := l.s.h.answerSlow(query, false, src, l.s.h.rotation.Add(1))
	if resp != nil {
		if err := l.io.send(resp, &peer); err != nil && !l.s.closing.Load() {
			l.s.logger.Debug("dns udp write", "error", err)
		}
	}
	var t tally
	t.count(protoUDP, o, smp)
	t.flush(&l.s.shared)
}
