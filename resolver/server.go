package resolver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Server defaults.
const (
	DefaultTCPTimeout  = 10 * time.Second
	DefaultMaxTCPConns = 1024
	// udpReadSize is the largest UDP query read; a query is small, but
	// EDNS options can make it exceed 512 bytes. A larger datagram is
	// detected (the kernel says it cut it) and answered FORMERR.
	udpReadSize = maxQueryLen
	// portAttempts bounds the tries to find a port free for both UDP and
	// TCP when the address asks for port 0.
	portAttempts = 16
)

// ErrNotStarted is returned by Shutdown for a server that never started.
var ErrNotStarted = errors.New("dns server not started")

// ServerOptions configure a Server. The zero value is valid.
type ServerOptions struct {
	// ReadTimeout bounds the wait for the first query on a TCP connection.
	// Default IdleTimeout: a connection that never sends a query is as
	// idle as one that stopped sending them.
	ReadTimeout time.Duration
	// IdleTimeout closes a TCP connection that has sent no further query
	// for that long (RFC 7766 §6.2.3). Default DefaultTCPTimeout.
	IdleTimeout time.Duration
	// WriteTimeout bounds writing a response over TCP. Default
	// DefaultTCPTimeout.
	WriteTimeout time.Duration
	// MaxTCPConns bounds the open TCP connections. When that many are
	// open, a new client is served by closing the connection idle the
	// longest (RFC 7766 §6.2.3); while none is idle, it waits in the
	// kernel's backlog. Default DefaultMaxTCPConns.
	MaxTCPConns int
	// UDPSockets is the number of UDP sockets bound to the address with
	// SO_REUSEPORT, each served by its own goroutine (Linux; elsewhere
	// one). Default GOMAXPROCS.
	UDPSockets int
	// MaxInflight bounds the queries in the slow path at once (waiting
	// for Consul DNS, mostly), UDP and TCP together; a query beyond it is
	// shed: dropped over UDP, answered SERVFAIL over TCP. Default
	// DefaultMaxInflight.
	MaxInflight int
	// MaxInflightPerSource is one source's share of MaxInflight: the most
	// queries of one source (SourcePrefixV4, SourcePrefixV6) in the slow
	// path at once, beyond which its queries are shed, so that one noisy
	// source cannot take the others' room. Default
	// DefaultMaxInflightPerSource, at most MaxInflight.
	MaxInflightPerSource int
	// MaxInflightPerConn bounds the queries of one TCP connection in the
	// slow path; while it is reached the connection is not read. Default
	// DefaultMaxInflightPerConn.
	MaxInflightPerConn int
	// SourcePrefixV4 and SourcePrefixV6 are the prefix lengths of a
	// client's address that make its source, for MaxInflightPerSource and
	// RRL. Defaults DefaultSourcePrefixV4 (/24) and DefaultSourcePrefixV6
	// (/56).
	SourcePrefixV4, SourcePrefixV6 int
	// RRL turns on response rate limiting for UDP (see RRLOptions); nil:
	// off.
	RRL *RRLOptions
}

// Server serves a Handler on UDP and TCP on the same address: the fast
// path (AnswerWire) first, HandleRequest for the rest. See README.md.
type Server struct {
	addr   string
	h      *Handler
	opts   ServerOptions
	logger *slog.Logger

	// shared holds the counters of TCP connections and of the slow path.
	shared   sink
	tcpConns atomic.Int64
	closing  atomic.Bool

	// keys gives each client address its source; gate bounds the slow
	// path; rrl is nil when response rate limiting is off.
	keys sourceKeys
	gate *slowGate
	rrl  *rrl
	// acceptWaiting is set while the accept loop holds a new connection
	// and waits for room; idle then wakes it when a connection becomes
	// idle, to be closed for it. evicted counts the connections closed so.
	acceptWaiting atomic.Bool
	idle          chan struct{}
	evicted       atomic.Uint64

	// mu guards the fields below.
	mu    sync.Mutex
	bound string
	ln    net.Listener
	udp   []*udpLoop
	conns map[*tcpConn]struct{}
	// loops counts the serve loops (UDP sockets, the TCP accept loop and
	// its connections); slow counts UDP queries in the slow path.
	loops, slow sync.WaitGroup
	tcpSlots    chan struct{}
	stop        chan struct{}
	started     bool
	stopped     bool
}

// NewServer returns a server for handler on addr ("host:port"; port 0
// picks a port free for both UDP and TCP). A nil logger discards.
func NewServer(addr string, handler *Handler, opts ServerOptions, logger *slog.Logger) *Server {
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultTCPTimeout
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = opts.IdleTimeout
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultTCPTimeout
	}
	if opts.MaxTCPConns <= 0 {
		opts.MaxTCPConns = DefaultMaxTCPConns
	}
	if opts.UDPSockets <= 0 {
		opts.UDPSockets = runtime.GOMAXPROCS(0)
	}
	if opts.MaxInflight <= 0 {
		opts.MaxInflight = DefaultMaxInflight
	}
	if opts.MaxInflightPerSource <= 0 {
		opts.MaxInflightPerSource = DefaultMaxInflightPerSource
	}
	opts.MaxInflightPerSource = min(opts.MaxInflightPerSource, opts.MaxInflight)
	if opts.MaxInflightPerConn <= 0 {
		opts.MaxInflightPerConn = DefaultMaxInflightPerConn
	}
	if opts.SourcePrefixV4 <= 0 || opts.SourcePrefixV4 > 32 {
		opts.SourcePrefixV4 = DefaultSourcePrefixV4
	}
	if opts.SourcePrefixV6 <= 0 || opts.SourcePrefixV6 > 128 {
		opts.SourcePrefixV6 = DefaultSourcePrefixV6
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{addr: addr, h: handler, opts: opts, logger: logger,
		keys: newSourceKeys(opts.SourcePrefixV4, opts.SourcePrefixV6),
		gate: &slowGate{max: int32(opts.MaxInflight), perSource: int32(opts.MaxInflightPerSource)},
		idle: make(chan struct{}, 1),
	}
	if o := opts.RRL; o != nil && o.ResponsesPerSecond > 0 {
		s.rrl = newRRL(*o)
	}
	return s
}

// Start binds UDP and TCP and returns once both serve. It fails if either
// cannot bind, or if ctx ends first; it does not stop the server when ctx
// ends later: Shutdown does.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("dns server already started")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	ln, pcs, err := listen(ctx, s.addr, s.opts.UDPSockets)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		ln.Close()
		for _, pc := range pcs {
			pc.Close()
		}
		return err
	}
	loops := make([]*udpLoop, 0, len(pcs))
	for i, pc := range pcs {
		l, err := newUDPLoop(s, pc, i)
		if err != nil {
			ln.Close()
			for _, pc := range pcs {
				pc.Close()
			}
			return fmt.Errorf("dns udp socket on %s: %w", ln.Addr(), err)
		}
		loops = append(loops, l)
	}
	s.started = true
	s.bound, s.ln, s.udp = ln.Addr().String(), ln, loops
	s.conns = make(map[*tcpConn]struct{})
	s.tcpSlots = make(chan struct{}, s.opts.MaxTCPConns)
	s.stop = make(chan struct{})
	for _, l := range loops {
		s.loops.Go(l.run)
	}
	s.loops.Go(s.acceptTCP)
	s.logger.Info("dns server listening", "addr", s.bound, "udp_sockets", len(s.udp))
	return nil
}

// Addr returns the address the server is bound to ("host:port", with the
// actual port when the configured one was 0), or "" before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bound
}

// Stats returns the server's counters since it started. It is cheap
// enough for every scrape: the per-socket counters are summed here, not on
// the query path.
func (s *Server) Stats() Stats {
	var st Stats
	s.shared.addTo(&st)
	s.mu.Lock()
	loops := s.udp
	s.mu.Unlock()
	for _, l := range loops {
		l.sink.addTo(&st)
	}
	st.TCPConnections = s.tcpConns.Load()
	st.TCPEvicted = s.evicted.Load()
	st.SlowInFlight = int64(s.gate.total.Load())
	return st
}

// Shutdown stops reading queries, lets those in flight finish (answers
// being written, queries waiting for Consul DNS) and closes the sockets;
// it gives up when ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.started {
		s.mu.Unlock()
		return ErrNotStarted
	}
	if !s.stopped {
		s.stopped = true
		s.closing.Store(true)
		close(s.stop)
		s.ln.Close()
		// A read deadline in the past ends every blocked read at once.
		for _, l := range s.udp {
			l.conn.SetReadDeadline(time.Now())
		}
		for c := range s.conns {
			c.conn.SetReadDeadline(time.Now())
		}
	}
	udp := s.udp
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.loops.Wait()
		s.slow.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.mu.Lock()
		for c := range s.conns {
			c.conn.Close()
		}
		s.mu.Unlock()
	}
	// Answers of the slow path are written to the UDP sockets: they
	// close last.
	for _, l := range udp {
		l.conn.Close()
	}
	return err
}

// track registers an open TCP connection, or reports false once the server
// is shutting down.
func (s *Server) track(c *tcpConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c *tcpConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
}

// listen binds TCP and then n UDP sockets on the same port. With port 0
// the kernel picks a free TCP port that may be taken for UDP: then it tries
// again.
func listen(ctx context.Context, addr string, n int) (net.Listener, []*net.UDPConn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dns listen address %q: %w", addr, err)
	}
	var lc net.ListenConfig
	attempts := 1
	if port == "0" {
		attempts = portAttempts
	}
	for i := 0; ; i++ {
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("dns listen tcp %s: %w", addr, err)
		}
		bound := net.JoinHostPort(host, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
		pcs, err := listenUDP(ctx, bound, n)
		if err == nil {
			return ln, pcs, nil
		}
		ln.Close()
		if i+1 >= attempts {
			return nil, nil, fmt.Errorf("dns listen udp %s: %w", addr, err)
		}
	}
}
