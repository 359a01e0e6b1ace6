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
// 7766 §6.2.1.1), at most maxSlowPerConn at once per connection.
const (
	tcpReadBuf     = 2 << 10
	tcpWriteBuf    = 4 << 10
	maxSlowPerConn = 16
)

// acceptTCP accepts connections while fewer than MaxTCPConns are open;
// the others wait in the kernel's backlog until one closes.
func (s *Server) acceptTCP() {
	var backoff time.Duration
	for {
		select {
		case s.tcpSlots <- struct{}{}:
		case <-s.stop:
			return
		}
		conn, err := s.ln.Accept()
		if err != nil {
			<-s.tcpSlots
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
		// Connections start their rotations apart: a client that opens
		// one per query still sees the orders change.
		c := &tcpConn{s: s, conn: conn, src: clientAddr(conn.RemoteAddr()), rot: s.h.rotation.Add(1)}
		if !s.track(c) {
			conn.Close()
			<-s.tcpSlots
			return
		}
		s.tcpConns.Add(1)
		s.loops.Go(c.serve)
	}
}

// tcpConn is one open TCP connection.
type tcpConn struct {
	s    *Server
	conn net.Conn
	src  netip.Addr // the client's address
	// rbuf holds the octets read and not yet consumed, from roff; wbuf the
	// answers of the fast path not yet written. Both belong to serve.
	rbuf []byte
	roff int
	wbuf []byte
	// wmu serializes writes to conn: serve's and the slow path's.
	wmu       sync.Mutex
	broken    atomic.Bool
	slow      sync.WaitGroup
	slowSlots chan struct{}
	// inflight counts the queries in the slow path; lastSlow is when the
	// last of them was answered (Unix nanoseconds).
	inflight atomic.Int32
	lastSlow atomic.Int64
	rot, seq uint32
	tally    tally
}

// serve answers the queries of the connection until the client closes
// it, it stays idle for IdleTimeout (ReadTimeout before the first query),
// a write fails, or the server shuts down. A message must arrive whole
// within the timeout that started when the server began to wait for it.
func (c *tcpConn) serve() {
	s := c.s
	defer func() {
		c.slow.Wait()
		c.tally.flush(&s.shared)
		c.conn.Close()
		s.untrack(c)
		s.tcpConns.Add(-1)
		<-s.tcpSlots
	}()
	c.rbuf = make([]byte, 0, tcpReadBuf)
	c.wbuf = make([]byte, 0, tcpWriteBuf)
	c.slowSlots = make(chan struct{}, maxSlowPerConn)
	timeout, waitNew := s.opts.ReadTimeout, true
	for !c.broken.Load() {
		for {
			msg, ok := c.next()
			if !ok {
				break
			}
			c.serveQuery(msg)
			timeout, waitNew = s.opts.IdleTimeout, true
		}
		c.flush()
		c.tally.flush(&s.shared)
		if waitNew {
			c.conn.SetReadDeadline(time.Now().Add(timeout))
			waitNew = false
		}
		// Checked after the deadline is set, as Shutdown sets its own after
		// raising the flag: one of the two sees the other.
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

// next returns the next whole message read, if any.
func (c *tcpConn) next() ([]byte, bool) {
	rest := c.rbuf[c.roff:]
	if len(rest) < 2 {
		return nil, false
	}
	l := int(binary.BigEndian.Uint16(rest))
	if len(rest) < 2+l {
		return nil, false
	}
	c.roff += 2 + l
	return rest[2 : 2+l], true
}

// fill reads more octets, making room for the message being read.
func (c *tcpConn) fill() (int, error) {
	rest := c.rbuf[c.roff:]
	need := tcpReadBuf
	if len(rest) >= 2 {
		need = max(need, 2+int(binary.BigEndian.Uint16(rest)))
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
// goroutine of the slow path.
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
	select {
	case c.slowSlots <- struct{}{}:
	default:
		// The client waits for these answers while we wait for a slot.
		c.flush()
		c.slowSlots <- struct{}{}
	}
	query := append([]byte(nil), msg...)
	c.slow.Add(1)
	c.inflight.Add(1)
	go c.slowPath(query, smp)
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
		c.lastSlow.Store(time.Now().UnixNano())
		c.inflight.Add(-1)
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
