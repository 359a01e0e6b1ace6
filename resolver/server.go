package resolver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/netutil"
)

// Server defaults.
const (
	DefaultTCPTimeout  = 10 * time.Second
	DefaultMaxTCPConns = 1024
	// udpReadSize is the largest UDP query read; a query is small, but
	// EDNS options can make it exceed 512 bytes.
	udpReadSize = 4096
	// portAttempts bounds the tries to find a port free for both UDP and
	// TCP when the address asks for port 0.
	portAttempts = 16
)

// ErrNotStarted is returned by Shutdown for a server that never started.
var ErrNotStarted = errors.New("dns server not started")

// ServerOptions configure a Server. The zero value is valid.
type ServerOptions struct {
	// ReadTimeout bounds the wait for the first query on a TCP connection,
	// and for each UDP read. Default IdleTimeout: a connection that never
	// sends a query is as idle as one that stopped sending them.
	ReadTimeout time.Duration
	// IdleTimeout closes a TCP connection that has sent no further query
	// for that long (RFC 7766 §6.2.3). Default DefaultTCPTimeout.
	IdleTimeout time.Duration
	// WriteTimeout bounds writing a response. Default DefaultTCPTimeout.
	WriteTimeout time.Duration
	// MaxTCPConns bounds the open TCP connections; further connections wait
	// in the kernel's backlog until one closes. Default DefaultMaxTCPConns.
	MaxTCPConns int
}

// Server serves a dns.Handler on UDP and TCP on the same address.
type Server struct {
	addr    string
	handler dns.Handler
	opts    ServerOptions
	logger  *slog.Logger

	// mu guards the fields below.
	mu       sync.Mutex
	bound    string
	udp, tcp *dns.Server
	// served is closed once both serve loops have returned.
	served chan struct{}
}

// NewServer returns a server for handler on addr ("host:port"; port 0
// picks a port free for both UDP and TCP). A nil logger discards.
func NewServer(addr string, handler dns.Handler, opts ServerOptions, logger *slog.Logger) *Server {
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
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Server{addr: addr, handler: handler, opts: opts, logger: logger}
}

// Start binds UDP and TCP and returns once both serve. It fails if either
// cannot bind, or if ctx ends first; it does not stop the servers when ctx
// ends later: Shutdown does.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.served != nil {
		return errors.New("dns server already started")
	}
	ln, pc, err := listen(ctx, s.addr)
	if err != nil {
		return err
	}
	s.bound = ln.Addr().String()

	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	idle := s.opts.IdleTimeout
	s.tcp = &dns.Server{
		Net:               "tcp",
		Listener:          netutil.LimitListener(ln, s.opts.MaxTCPConns),
		Handler:           s.handler,
		ReadTimeout:       s.opts.ReadTimeout,
		WriteTimeout:      s.opts.WriteTimeout,
		IdleTimeout:       func() time.Duration { return idle },
		MsgAcceptFunc:     acceptRequests,
		DecorateReader:    strictReader,
		NotifyStartedFunc: notify,
	}
	s.udp = &dns.Server{
		Net:               "udp",
		PacketConn:        pc,
		Handler:           s.handler,
		UDPSize:           udpReadSize,
		ReadTimeout:       s.opts.ReadTimeout,
		WriteTimeout:      s.opts.WriteTimeout,
		MsgAcceptFunc:     acceptRequests,
		DecorateReader:    strictReader,
		NotifyStartedFunc: notify,
	}

	s.served = make(chan struct{})
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	for _, srv := range []*dns.Server{s.tcp, s.udp} {
		wg.Go(func() {
			if err := srv.ActivateAndServe(); err != nil {
				s.logger.Error("dns server stopped", "net", srv.Net, "addr", s.bound, "error", err)
				errs <- fmt.Errorf("serve %s on %s: %w", srv.Net, s.bound, err)
			}
		})
	}
	go func() { wg.Wait(); close(s.served) }()

	for range 2 {
		select {
		case <-started:
		case err := <-errs:
			s.shutdownLocked(context.Background())
			return err
		case <-ctx.Done():
			s.shutdownLocked(context.Background())
			return ctx.Err()
		}
	}
	s.logger.Info("dns server listening", "addr", s.bound)
	return nil
}

// Addr returns the address the server is bound to ("host:port", with the
// actual port when the configured one was 0), or "" before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bound
}

// Shutdown stops accepting queries, unblocks open TCP connections and waits,
// until ctx ends, for the queries in flight.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.served == nil {
		return ErrNotStarted
	}
	return s.shutdownLocked(ctx)
}

// shutdownLocked stops both servers; s.mu must be held. Stopping a server
// whose serve loop has not started yet makes miekg/dns report "not
// started"; its listener is closed directly then, which ends the loop.
func (s *Server) shutdownLocked(ctx context.Context) error {
	var errs []error
	for _, srv := range []*dns.Server{s.tcp, s.udp} {
		if err := srv.ShutdownContext(ctx); err != nil {
			closeListeners(srv)
			if ctx.Err() != nil {
				errs = append(errs, err)
			}
		}
	}
	select {
	case <-s.served:
	case <-ctx.Done():
		errs = append(errs, ctx.Err())
	}
	return errors.Join(errs...)
}

func closeListeners(srv *dns.Server) {
	if srv.Listener != nil {
		srv.Listener.Close()
	}
	if srv.PacketConn != nil {
		srv.PacketConn.Close()
	}
}

// acceptRequests lets every request through to the handler, which answers
// bad opcodes, question counts and EDNS itself (the miekg/dns default would
// reject some with FORMERR before the handler could add EDNS). Responses
// are dropped: answering them invites loops.
func acceptRequests(dh dns.Header) dns.MsgAcceptAction {
	const qr = 1 << 15
	if dh.Bits&qr != 0 {
		return dns.MsgIgnore
	}
	return dns.MsgAccept
}

// listen binds TCP and then UDP on the same port. With port 0 the kernel
// picks a free TCP port that may be taken for UDP: then it tries again.
func listen(ctx context.Context, addr string) (net.Listener, net.PacketConn, error) {
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
		bound := ln.Addr().(*net.TCPAddr).Port
		pc, err := lc.ListenPacket(ctx, "udp", net.JoinHostPort(host, strconv.Itoa(bound)))
		if err == nil {
			return ln, pc, nil
		}
		ln.Close()
		if i+1 >= attempts {
			return nil, nil, fmt.Errorf("dns listen udp %s: %w", addr, err)
		}
	}
}
