package resolver

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"time"

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
		for i := range n {
			l.serveDatagram(i)
		}
		if err := l.io.write(); err != nil && !l.s.closing.Load() {
			l.s.logger.Debug("dns udp write", "error", err)
		}
		l.tally.flush(&l.sink)
	}
}

// serveDatagram answers datagram i of the batch.
func (l *udpLoop) serveDatagram(i int) {
	msg := l.io.msg(i)
	l.seq++
	l.rot++
	smp := sampleQuery(l.seq)
	src := l.io.src(i)
	if f := l.fastPath(msg, src, l.io.out(i)); f.ok {
		l.io.reply(i, f.n)
		l.tally.count(protoUDP, f.outcome(), smp)
		return
	}
	if len(msg) < dnswire.HeaderLen || msg[2]&flagQR != 0 {
		// Dropped by the slow path anyway: no goroutine for it.
		l.tally.count(protoUDP, outcome{dropped: true}, sample{})
		return
	}
	select {
	case l.s.slowSlots <- struct{}{}:
	default:
		l.tally.count(protoUDP, outcome{dropped: true}, sample{})
		return
	}
	// The loop reuses msg's buffer for the next batch.
	query, peer := append([]byte(nil), msg...), l.io.peer(i)
	l.s.slow.Add(1)
	go l.slowPath(query, src, peer, smp)
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
func (l *udpLoop) slowPath(query []byte, src netip.Addr, peer udpPeer, smp sample) {
	defer func() {
		<-l.s.slowSlots
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
