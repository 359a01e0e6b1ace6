package resolver

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/internal/dnswire"
)

// TCP (RFC 7766): one goroutine per connection reads the queries as they
// come, several at once when the client pipelines them; answers of the fast
// path are written together at the end of each burst, and queries of the
// slow path are answered by goroutines of their own, in any order (RFC
// 7766 §6.2.1.1), at most MaxInflightPerConn at once per connection and
// within the server's bounds on the slow path (slowGate).
const (
	tcpReadBuf  = 2 << 10
	tcpWriteBuf = 4 << 10
)

// acceptTCP accepts connections and serves each while fewer than
// MaxTCPConns are open; when that many are, it makes room (roomForTCP).
func (s *Server) acceptTCP() {
	var backoff time.Duration
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			if s.closing.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors, say: wait, as net/http does.
			s.logger.Warn("dns tcp accept", "error", err)
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(backoff):
			case <-s.stop:
				return
			}
			continue
		}
		backoff = 0
		if !s.roomForTCP() {
			conn.Close()
			return
		}
		c := newTCPConn(s, conn)
		if !s.track(c) {
			conn.Close()
			<-s.tcpSlots
			return
		}
		s.tcpConns.Add(1)
		s.loops.Go(c.serve)
	}
}

// roomForTCP takes a place among the MaxTCPConns for a connection just
// accepted. When none is free, it closes the connection idle the longest
// and takes its place (RFC 7766 §6.2.3: a server may close idle
// connections to make room for new clients); while none is idle, it waits
// for one to close or become idle, further clients waiting in the
// kernel's backlog. It reports false once the server stops.
func (s *Server) roomForTCP() bool {
	select {
	case s.tcpSlots <- struct{}{}:
		return true
	default:
	}
	s.acceptWaiting.Store(true)
	defer s.acceptWaiting.Store(false)
	for {
		// Checked after acceptWaiting is set, as a connection checks
		// acceptWaiting after it becomes idle: one of the two sees the
		// other.
		if s.evictIdle() {
			return true
		}
		select {
		case s.tcpSlots <- struct{}{}:
			return true
		case <-s.idle:
		case <-s.stop:
			return false
		}
	}
}

// evictIdle closes the connection idle the longest, if one is, and
// reports true: its place among the MaxTCPConns is the caller's. The
// place passes at once, without waiting for the connection's goroutine to
// end: a backlog of new clients is served at the pace of accept.
func (s *Server) evictIdle() bool {
	var victim *tcpConn
	var oldest int64
	s.mu.Lock()
	for c := range s.conns {
		if since, ok := c.idleSince(); ok && (victim == nil || since < oldest) {
			victim, oldest = c, since
		}
	}
	s.mu.Unlock()
	// A connection ending on its own at this moment gives its place back
	// through tcpSlots instead.
	if victim == nil || !victim.state.CompareAndSwap(connOpen, connEvicted) {
		return false
	}
	// Ends serve's read; answers still in flight fail to write.
	victim.conn.Close()
	s.evicted.Add(1)
	return true
}

// notifyIdle wakes the accept loop, when it waits for room, to close a
// connection that just became idle.
func (s *Server) notifyIdle() {
	if s.acceptWaiting.Load() {
		select {
		case s.idle <- struct{}{}:
		default:
		}
	}
}

// tcpConn is one open TCP connection.
type tcpConn struct {
	s    *Server
	conn net.Conn
	// src is the client's address; key its source's (Server.keys).
	src netip.Addr
	key uint64
	// rbuf holds the octets read and not yet consumed, from roff; wbuf the
	// answers of the fast path not yet written; skip counts the octets of
	// an oversized message still to be thrown away as they come. They
	// belong to serve.
	rbuf []byte
	roff int
	wbuf []byte
	skip int
	// wmu serializes writes to conn: serve's and the slow path's.
	wmu       sync.Mutex
	broken    atomic.Bool
	slow      sync.WaitGroup
	slowSlots chan struct{}
	// inflight counts the queries in the slow path; lastSlow is when the
	// last of them was answered (Unix nanoseconds).
	inflight atomic.Int32
	lastSlow atomic.Int64
	// waiting is when serve began to wait for a new query (Unix
	// nanoseconds), 0 while it serves a burst; with no query in flight,
	// the connection is idle since then (idleSince). state says who gives
	// back its place among the MaxTCPConns: serve when it ends (connOpen
	// to connDone), or nobody, the accept loop having taken it over
	// (connOpen to connEvicted).
	waiting  atomic.Int64
	state    atomic.Int32
	rot, seq uint32
	tally    tally
}

// The states of a tcpConn.
const (
	connOpen = iota
	connDone
	connEvicted
)

func newTCPConn(s *Server, conn net.Conn) *tcpConn {
	// Connections start their rotations apart: a client that opens one
	// per query still sees the orders change.
	c := &tcpConn{s: s, conn: conn, src: clientAddr(conn.RemoteAddr()), rot: s.h.rotation.Add(1)}
	c.key = s.keys.key(c.src)
	return c
}

// idleSince reports since when the connection has been idle: waiting for
// a query with every answer out; false when it is not idle, or already
// evicted.
func (c *tcpConn) idleSince() (int64, bool) {
	w := c.waiting.Load()
	if w == 0 || c.inflight.Load() != 0 || c.state.Load() != connOpen {
		return 0, false
	}
	return max(w, c.lastSlow.Load()), true
}

// serve answers the queries of the connection until the client closes
// it, it stays idle for IdleTimeout (ReadTimeout before the first query),
// a write fails, it is evicted, or the server shuts down. A message must
// arrive whole within the timeout that started when the server began to
// wait for it.
func (c *tcpConn) serve() {
	s := c.s
	defer func() {
		c.slow.Wait()
		c.tally.flush(&s.shared)
		c.conn.Close()
		s.untrack(c)
		s.tcpConns.Add(-1)
		if c.state.CompareAndSwap(connOpen, connDone) {
			<-s.tcpSlots
		}
	}()
	c.rbuf = make([]byte, 0, tcpReadBuf)
	c.wbuf = make([]byte, 0, tcpWriteBuf)
	c.slowSlots = make(chan struct{}, s.opts.MaxInflightPerConn)
	timeout, waitNew := s.opts.ReadTimeout, true
	for !c.broken.Load() {
		served := false
		for {
			msg, oversized, ok := c.next()
			if !ok {
				break
			}
			if !served {
				c.waiting.Store(0)
				served = true
			}
			if oversized {
				c.serveOversized(msg)
			} else {
				c.serveQuery(msg)
			}
		}
		if served {
			timeout, waitNew = s.opts.IdleTimeout, true
		}
		c.flush()
		c.tally.flush(&s.shared)
		if waitNew {
			now := time.Now()
			c.conn.SetReadDeadline(now.Add(timeout))
			waitNew = false
			c.waiting.Store(now.UnixNano())
			if c.inflight.Load() == 0 {
				s.notifyIdle()
			}
		}
		// Checked after the deadline is set, as Shutdown sets its own
		// after raising the flag: one of the two sees the other.
		if s.closing.Load() {
			return
		}
		n, err := c.fill()
		if err == nil || n > 0 {
			// Octets that came with an error are answered; the next
			// read returns the error again.
			continue
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) || s.closing.Load() {
			return
		}
		// Idle only once every answer is out: a query waiting for Consul
		// DNS keeps the connection open, and the idle time counts from
		// its answer.
		until := time.Now().Add(s.opts.IdleTimeout)
		if c.inflight.Load() == 0 {
			until = time.Unix(0, c.lastSlow.Load()).Add(s.opts.IdleTimeout)
		}
		if !until.After(time.Now()) {
			return
		}
		c.conn.SetReadDeadline(until)
	}
}

// next returns the next whole message read, if any. A message longer than
// maxQueryLen is returned as its header alone, with oversized set, once
// the header is read; the rest of it is thrown away as it comes, never
// held.
func (c *tcpConn) next() (msg []byte, oversized, ok bool) {
	if c.skip > 0 {
		k := min(c.skip, len(c.rbuf)-c.roff)
		c.roff += k
		c.skip -= k
		if c.skip > 0 {
			return nil, false, false
		}
	}
	rest := c.rbuf[c.roff:]
	if len(rest) < 2 {
		return nil, false, false
	}
	l := int(binary.BigEndian.Uint16(rest))
	if l > maxQueryLen {
		if len(rest) < 2+dnswire.HeaderLen {
			return nil, false, false
		}
		c.roff += 2 + dnswire.HeaderLen
		c.skip = l - dnswire.HeaderLen
		return rest[2 : 2+dnswire.HeaderLen], true, true
	}
	if len(rest) < 2+l {
		return nil, false, false
	}
	c.roff += 2 + l
	return rest[2 : 2+l], false, true
}

// fill reads more octets, making room for the message being read (at most
// maxQueryLen and its length prefix).
func (c *tcpConn) fill() (int, error) {
	rest := c.rbuf[c.roff:]
	need := tcpReadBuf
	if len(rest) >= 2 && c.skip == 0 {
		if l := int(binary.BigEndian.Uint16(rest)); l <= maxQueryLen {
			need = max(need, 2+l)
		}
	}
	if cap(c.rbuf) < need {
		c.rbuf = append(make([]byte, 0, need), rest...)
	} else {
		c.rbuf = c.rbuf[:copy(c.rbuf[:cap(c.rbuf)], rest)]
	}
	c.roff = 0
	n, err := c.conn.Read(c.rbuf[len(c.rbuf):cap(c.rbuf)])
	c.rbuf = c.rbuf[:len(c.rbuf)+n]
	return n, err
}

// serveQuery answers one message: into wbuf from the fast path, or from a
// goroutine of the slow path, or SERVFAIL when the slow path has no room.
func (c *tcpConn) serveQuery(msg []byte) {
	c.seq++
	c.rot++
	smp := sampleQuery(c.seq)
	if f := c.fastPath(msg); f.ok {
		c.tally.count(protoTCP, f.outcome(), smp)
		return
	}
	if len(msg) < dnswire.HeaderLen || msg[2]&flagQR != 0 {
		c.tally.count(protoTCP, outcome{dropped: true}, sample{})
		return
	}
	// The connection's own bound: while its queries fill it, the
	// connection is not read until one is answered.
	select {
	case c.slowSlots <- struct{}{}:
	default:
		// The client waits for these answers while we wait for a slot.
		c.flush()
		c.slowSlots <- struct{}{}
	}
	if !c.s.gate.acquire(c.key) {
		<-c.slowSlots
		c.tally.add(idxShed+protoTCP, 1)
		c.queueShort(msg, dns.RcodeServerFailure, smp)
		return
	}
	query := append([]byte(nil), msg...)
	c.slow.Add(1)
	c.inflight.Add(1)
	go c.slowPath(query, smp)
}

// serveOversized answers a message longer than maxQueryLen, from its
// header: FORMERR.
func (c *tcpConn) serveOversized(hdr []byte) {
	c.seq++
	c.tally.add(idxOversized, 1)
	c.queueShort(hdr, dns.RcodeFormatError, sampleQuery(c.seq))
}

// queueShort queues in wbuf the shortReply to q with rcode.
func (c *tcpConn) queueShort(q []byte, rcode uint8, smp sample) {
	if cap(c.wbuf)-len(c.wbuf) < 2+shortReplyMax {
		c.flush()
	}
	n := len(c.wbuf)
	k, qtype := c.s.h.shortReply(q, c.wbuf[n+2:cap(c.wbuf)], rcode, false)
	binary.BigEndian.PutUint16(c.wbuf[n:n+2], uint16(k))
	c.wbuf = c.wbuf[:n+2+k]
	c.tally.count(protoTCP, outcome{qtype: qtype, rcode: int(rcode), source: SourceError}, smp)
}

// fastPath runs the fast path into wbuf, after a length prefix. A panic in it
// is counted and logged, and the slow path answers the query.
func (c *tcpConn) fastPath(msg []byte) (f fastResult) {
	defer func() {
		if r := recover(); r != nil {
			c.s.h.logPanic(r)
			c.tally.add(idxPanics, 1)
			f = fastResult{}
		}
	}()
	for range 2 {
		n := len(c.wbuf)
		if cap(c.wbuf)-n >= 2 {
			f = c.s.h.answerWire(msg, c.src, true, c.wbuf[n+2:cap(c.wbuf)], c.rot)
			if f.ok {
				binary.BigEndian.PutUint16(c.wbuf[n:n+2], uint16(f.n))
				c.wbuf = c.wbuf[:n+2+f.n]
				return f
			}
			if f.need == 0 {
				return f
			}
		}
		// No room left: write what is queued, and make room for this one.
		c.flush()
		if cap(c.wbuf) < f.need+2 {
			c.wbuf = make([]byte, 0, f.need+2)
		}
	}
	return fastResult{}
}

// flush writes the queued answers.
func (c *tcpConn) flush() {
	if len(c.wbuf) == 0 {
		return
	}
	c.write(c.wbuf)
	c.wbuf = c.wbuf[:0]
}

// write writes octets to the connection, whole; a failure ends the
// connection.
func (c *tcpConn) write(b ...[]byte) {
	if c.broken.Load() {
		return
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(c.s.opts.WriteTimeout))
	bufs := net.Buffers(b)
	if _, err := bufs.WriteTo(c.conn); err != nil {
		c.s.logger.Debug("dns tcp write", "error", err)
		c.broken.Store(true)
		// Ends serve's read, too.
		c.conn.Close()
	}
}

// slowPath answers one query through HandleRequest from its own
// goroutine: a delegated name may wait for Consul DNS.
func (c *tcpConn) slowPath(query []byte, smp sample) {
	defer func() {
		c.s.gate.release(c.key)
		c.lastSlow.Store(time.Now().UnixNano())
		if c.inflight.Add(-1) == 0 {
			c.s.notifyIdle()
		}
		<-c.slowSlots
		c.slow.Done()
	}()
	resp, o := c.s.h.answerSlow(query, true, c.src, c.s.h.rotation.Add(1))
	if resp != nil && len(resp) <= dns.MaxMsgSize {
		c.write(binary.BigEndian.AppendUint16(nil, uint16(len(resp))), resp)
	}
	var t tally
	t.count(protoTCP, o, smp)
	t.flush(&c.s.shared)
}
