package main

import (
	"container/list"
	"net"
	"net/http"
	"sync"
)

// connLimiter bounds the connections open on the HTTP port, so that no HTTP
// load can take the file descriptors that DNS needs. Accept waits while max
// connections are open; while it waits, idle connections yield: the one idle
// longest (a keep-alive connection between requests, or a new one that has
// sent nothing yet) is closed, as RFC 7766 §6.2.3 allows for DNS over TCP,
// so that a new client (a probe, a scrape) is not locked out by connections
// that do nothing. The newest connection is spared until it has sent its
// first request or a newer one arrives: it was accepted to be served.
// Connections in the middle of a request are never closed here;
// ReadHeaderTimeout, ReadTimeout and WriteTimeout bound those.
// (golang.org/x/net/netutil.LimitListener bounds too, but only by waiting,
// which lets idle connections hold every slot until IdleTimeout.)
//
// The server's ConnState must be the limiter's connState: it tells which
// connections are idle.
type connLimiter struct {
	net.Listener
	max int

	mu     sync.Mutex
	cond   sync.Cond    // on mu; broadcast when a connection closes or goes idle, or the listener closes
	open   int          // accepted and not closed; guarded by mu
	idle   list.List    // of *limitedConn, idle longest first; guarded by mu
	newest *limitedConn // the last accepted; guarded by mu
	closed bool         // the listener is closed; guarded by mu
}

// newConnLimiter returns ln bounded to max open connections.
func newConnLimiter(ln net.Listener, max int) *connLimiter {
	l := &connLimiter{Listener: ln, max: max}
	l.cond.L = &l.mu
	return l
}

// limitedConn is a connection accepted by a connLimiter; closing it frees
// its slot.
type limitedConn struct {
	net.Conn
	l *connLimiter

	idle   *list.Element // its place in l.idle while idle, else nil; guarded by l.mu
	fresh  bool          // no request read yet (http.StateNew); guarded by l.mu
	closed bool          // guarded by l.mu
}

// Accept waits for a free slot, closing idle connections while there is
// none, then accepts the next connection.
func (l *connLimiter) Accept() (net.Conn, error) {
	if err := l.acquire(); err != nil {
		return nil, err
	}
	c, err := l.Listener.Accept()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.open--
		return nil, err
	}
	lc := &limitedConn{Conn: c, l: l, fresh: true}
	l.newest = lc
	return lc, nil
}

// acquire takes a slot for the next connection.
func (l *connLimiter) acquire() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for !l.closed && l.open >= l.max {
		e := l.idle.Front()
		if e != nil && e.Value == l.newest && l.newest.fresh {
			e = e.Next()
		}
		if e != nil {
			c := e.Value.(*limitedConn)
			l.idle.Remove(e)
			c.idle = nil
			l.mu.Unlock()
			c.Close()
			l.mu.Lock()
			continue
		}
		l.cond.Wait()
	}
	if l.closed {
		return net.ErrClosed
	}
	l.open++
	return nil
}

// Close closes the listener and ends a wait in Accept.
func (l *connLimiter) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.cond.Broadcast()
	return l.Listener.Close()
}

// connState is the http.Server's ConnState hook: it keeps the idle list in
// the order connections became idle.
func (l *connLimiter) connState(nc net.Conn, state http.ConnState) {
	c, ok := nc.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.closed {
		return
	}
	if c.idle != nil {
		l.idle.Remove(c.idle)
		c.idle = nil
	}
	c.fresh = state == http.StateNew
	if state == http.StateNew || state == http.StateIdle {
		c.idle = l.idle.PushBack(c)
		l.cond.Broadcast()
	}
}

// Close closes the connection, then frees its slot (once): the slot is
// free only when the descriptor is.
func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	l := c.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if !c.closed {
		c.closed = true
		if c.idle != nil {
			l.idle.Remove(c.idle)
			c.idle = nil
		}
		l.open--
		l.cond.Broadcast()
	}
	return err
}
