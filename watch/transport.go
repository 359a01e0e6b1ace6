package watch

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// pollTransport is the http.RoundTripper of the watch's Consul clients. It
// speaks HTTP/1.1 with keep-alive, like net/http's Transport, but runs each
// request entirely on the caller's goroutine and holds no buffer while a
// blocking query waits for its answer.
//
// A watcher keeps one blocking query open per watched resource, thousands
// of them for a large fleet, so what an open query costs is most of the
// process's memory. net/http's Transport gives each open connection a read
// and a write goroutine and a buffer each way. Here an open query costs its
// caller's goroutine and the connection; buffers come from a pool once the
// answer starts to arrive. The HTTP itself is net/http's: Request.Write and
// ReadResponse.
//
// Deadlines come from the request's context, or else from timeout:
// http.Client.Timeout would cost a goroutine per request with a transport
// other than net/http's, and a context with a deadline per request costs a
// timer and a child in its parent for as long as the query is parked.
//
// What the agent sends is bounded: a response header by maxHeaderBytes, a
// body by maxBody (its reader fails with ErrResponseTooLarge past it, so a
// JSON decoder reading it stops there), and the body of an answer that is
// not a success is read before RoundTrip returns and only its first
// errorBodyKeep bytes kept: an error page is quoted in an error message,
// never decoded.
type pollTransport struct {
	tls    *tls.Config // for https URLs
	dialer net.Dialer
	// timeout bounds a request whose context has no deadline, header and
	// body; 0: no bound. Set before first use.
	timeout time.Duration
	// maxBody bounds the bytes of a response body; 0: no bound. Set before
	// first use.
	maxBody int64
	// errorBodyKeep, when not 0, is how much of the body of an answer that
	// is not a success (2xx) RoundTrip keeps; the rest is read and dropped.
	// Set before first use.
	errorBodyKeep int
	// probeInterval, when not 0, turns on liveness checks (see
	// liveness.go): while requests to an agent are out, it is asked
	// GET probePath every probeInterval and must answer within
	// probeTimeout. Set before first use.
	probeInterval, probeTimeout time.Duration

	mu   sync.Mutex
	idle map[string][]*pollConn // by scheme://host, most recently used last
	// agents are the agents with requests out or found down, by
	// scheme://host; guarded by mu.
	agents map[string]*agentState
}

// maxIdlePerHost bounds the idle connections kept per agent. Each watch
// loop takes its connection back within MinInterval of putting it, so the
// bound only matters after a reconfiguration drops resources.
const maxIdlePerHost = 4096

// idleTimeout closes a connection left idle longer than this: Consul closes
// idle keep-alive connections too, and a loop that wants one dials anew.
const idleTimeout = 90 * time.Second

// maxHeaderBytes bounds a response's header (with what the reader buffered
// of the body), and, past maxBody, the chunk framing and trailers of its
// body: Consul's headers take a few hundred bytes.
const maxHeaderBytes = 64 << 10

// ErrResponseTooLarge means that a Consul answer's body was longer than the
// limit, Options.MaxResponse (REGIONDNS_CONSUL_MAX_RESPONSE in regiondns).
var ErrResponseTooLarge = errors.New("response larger than REGIONDNS_CONSUL_MAX_RESPONSE")

// errHeaderTooLarge means that a response's header was longer than
// maxHeaderBytes.
var errHeaderTooLarge = fmt.Errorf("response header larger than %d bytes", maxHeaderBytes)

// pollConn is one keep-alive connection to an agent.
type pollConn struct {
	net.Conn
	key      string
	reused   bool
	idleFrom time.Time
	// agent is the agent whose in-flight list holds the connection while
	// it carries a request (see track); set and read by the request's
	// goroutine.
	agent *agentState
	// killed is set when the agent failed a liveness check while the
	// connection carried a request, after killErr, the reason.
	killed  atomic.Bool
	killErr error
	// parked is the parked wait of the exchange on the connection, while
	// it has one (see park).
	parked atomic.Pointer[parkedWait]
}

// interrupt makes the exchange on pc fail at once: a blocked read returns,
// a parked wait wakes. killed must be set before.
func (pc *pollConn) interrupt() {
	_ = pc.SetDeadline(time.Unix(1, 0))
	if w := pc.parked.Load(); w != nil {
		w.wake()
	}
}

func newPollTransport(tlsConfig *tls.Config) *pollTransport {
	return &pollTransport{
		tls:    tlsConfig,
		dialer: net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second},
		idle:   map[string][]*pollConn{},
		agents: map[string]*agentState{},
	}
}

var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 1<<10) }}
)

// errNoScheme is returned for a URL that is neither http nor https.
var errNoScheme = errors.New("unsupported URL scheme")

// RoundTrip sends req and reads the response header. A GET that fails on a
// reused connection before any of the answer arrived (the agent closed it
// while idle) is sent again once on a new connection.
func (t *pollTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		defer req.Body.Close()
	}
	if err := t.admit(req); err != nil {
		return nil, err
	}
	for fresh := false; ; fresh = true {
		x, err := t.send(req, fresh)
		if err == nil {
			var first [1]byte
			_, err = io.ReadFull(x.pc, first[:])
			var resp *http.Response
			if resp, err = x.receive(first[0], err); err == nil {
				return t.keepErrorBody(resp)
			}
		}
		if !x.retry(err) {
			return nil, err
		}
		// Once, on a new connection: a fresh one is not reused, so a
		// second failure is returned.
	}
}

// Go is RoundTrip for a caller that does not wait for the answer. It sends
// req (a GET without a body) on the calling goroutine and returns; once the
// answer starts to arrive, a new goroutine reads it and calls done with what
// RoundTrip would have returned. Unless the request fails before it is
// sent, in which case done runs on the calling goroutine.
//
// A blocking query spends nearly all its life waiting for the first byte of
// its answer. A request without a context of its own waits parked (see
// park), with no goroutine at all; otherwise, or where parking is not
// available, a goroutine a few frames deep waits (await), whose stack stays
// at the minimum.
//
// sent, when not nil, is told of each exchange before its wait starts (a
// second one when the request is sent again): the caller may abort it
// (exchange.abort), which a request without a context of its own needs to
// stop.
func (t *pollTransport) Go(req *http.Request, sent func(*exchange), done func(*http.Response, error)) {
	if err := t.admit(req); err != nil {
		done(nil, err)
		return
	}
	t.goSend(req, false, sent, done)
}

// goSend sends req (on a new connection with fresh) and starts the wait
// for its answer.
func (t *pollTransport) goSend(req *http.Request, fresh bool, sent func(*exchange), done func(*http.Response, error)) {
	x, err := t.send(req, fresh)
	if err != nil {
		if x.retry(err) {
			t.goSend(req, true, sent, done)
			return
		}
		done(nil, err)
		return
	}
	x.sent = sent
	if sent != nil {
		sent(x)
	}
	// A request with a context that can be canceled waits on a goroutine:
	// the cancellation interrupts a blocked read, not a parked wait.
	if req.Context().Done() != nil || !park(x, done) {
		go x.await(done)
	}
}

// noStop is the stop of an exchange whose context cannot be canceled: as
// context.AfterFunc's, it reports that the cancellation did not run.
func noStop() bool { return true }

// errAborted is what an aborted exchange fails with.
var errAborted = errors.New("request aborted")

// abort makes x fail at once with errAborted, without sending it again:
// its wait, or its reading, is interrupted.
func (x *exchange) abort() {
	// Under the lock that a failed liveness check kills under: the first
	// kill's error is the one reported.
	x.t.mu.Lock()
	if !x.pc.killed.Load() {
		x.pc.killErr = errAborted
		x.pc.killed.Store(true)
	}
	x.t.mu.Unlock()
	x.pc.interrupt()
}

// await waits for the first byte of x's answer, then reads the rest on the
// same goroutine. Kept small: its frame is what a query that cannot park
// holds while it waits.
func (x *exchange) await(done func(*http.Response, error)) {
	// Straight on the connection, no helper in between: every frame here
	// is stack that each parked query keeps.
	var first [1]byte
	n, err := x.pc.Conn.Read(first[:])
	for n == 0 && err == nil {
		n, err = x.pc.Conn.Read(first[:])
	}
	x.answered(first[0], err, done)
}

// answered reads the answer whose first byte (or error) await got, and
// calls done, after sending the request once more when RoundTrip would.
func (x *exchange) answered(first byte, err error, done func(*http.Response, error)) {
	resp, err := x.receive(first, err)
	if err == nil {
		done(x.t.keepErrorBody(resp))
		return
	}
	if x.retry(err) {
		x.t.goSend(x.req, true, x.sent, done)
		return
	}
	done(nil, err)
}

// admit checks what RoundTrip checks before anything is sent.
func (t *pollTransport) admit(req *http.Request) error {
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return fmt.Errorf("%w %q", errNoScheme, req.URL.Scheme)
	}
	// Already canceled: the cancellation's AfterFunc runs on its own
	// goroutine and might not interrupt the exchange before it completes.
	if err := req.Context().Err(); err != nil {
		return err
	}
	// An agent that failed its liveness check is not asked: the request
	// would wait for nothing.
	return t.agentDown(req)
}

// exchange is one request on one connection, from its sending to its
// answer's header.
type exchange struct {
	t        *pollTransport
	req      *http.Request
	pc       *pollConn
	deadline time.Time
	fromCtx  bool
	stop     func() bool
	// gotAnswer is set once any of the answer arrived.
	gotAnswer bool
	// sent is Go's hook, for a request sent again.
	sent func(*exchange)
}

// retry reports whether the request that failed with err should be sent
// once more, on a new connection: nothing of the answer arrived, on a
// connection that was reused (the agent may have closed it while idle), not
// killed (a failed liveness check, an abort), and sending again is safe. x
// is nil when no connection was had.
func (x *exchange) retry(err error) bool {
	if x == nil || x.pc == nil {
		return false
	}
	req := x.req
	return !x.gotAnswer && x.pc.reused && !x.pc.killed.Load() && req.Context().Err() == nil &&
		!errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, errAgentUnresponsive) &&
		(req.Method == http.MethodGet || req.Method == http.MethodHead)
}

// send takes a connection to req's agent (a new one with fresh) and writes
// req on it. On error the exchange says whether to retry.
func (t *pollTransport) send(req *http.Request, fresh bool) (*exchange, error) {
	pc, err := t.conn(req, fresh)
	if err != nil {
		return nil, err
	}
	ctx := req.Context()
	x := &exchange{t: t, req: req, pc: pc}
	x.deadline, x.fromCtx = ctx.Deadline()
	if !x.fromCtx && t.timeout > 0 {
		x.deadline = time.Now().Add(t.timeout)
	}
	_ = pc.SetDeadline(x.deadline) // zero: none
	// Cancellation interrupts the blocked read or write: no goroutine waits
	// for it. A request without a context that can be canceled (the
	// watch's, which abort stops) registers nothing.
	x.stop = noStop
	if ctx.Done() != nil {
		x.stop = context.AfterFunc(ctx, func() { _ = pc.SetDeadline(time.Unix(1, 0)) })
	}
	if err := t.track(req, pc); err != nil {
		return x, x.fail(err)
	}
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(pc)
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	bw.Reset(nil)
	writers.Put(bw)
	if err != nil {
		return x, x.fail(err)
	}
	return x, nil
}

// fail closes the exchange's connection and returns the error to report.
func (x *exchange) fail(err error) error {
	pc, ctx := x.pc, x.req.Context()
	x.stop()
	x.t.untrack(pc)
	pc.Close()
	switch timedOut := errors.Is(err, os.ErrDeadlineExceeded); {
	case ctx.Err() != nil:
		err = ctx.Err()
	case pc.killed.Load():
		err = pc.killErr
	case timedOut && x.fromCtx:
		// The connection's deadline is the context's: it can expire
		// before the context's own timer has marked it done.
		err = context.DeadlineExceeded
	case timedOut && !x.deadline.IsZero():
		err = fmt.Errorf("no answer within %s: %w", x.t.timeout, err)
	}
	return err
}

// receive reads the response's header, after its first byte (or the error
// reading it). On success the response's body owns the connection.
func (x *exchange) receive(first byte, err error) (*http.Response, error) {
	if err != nil {
		return nil, x.fail(err)
	}
	x.gotAnswer = true
	t, pc := x.t, x.pc
	body := &pollBody{t: t, pc: pc, stop: x.stop, keep: !x.req.Close, left: -1}
	body.wire = wireBudget{r: io.MultiReader(bytes.NewReader([]byte{first}), pc), n: maxHeaderBytes, err: errHeaderTooLarge}
	body.br = readers.Get().(*bufio.Reader)
	body.br.Reset(&body.wire)
	resp, err := http.ReadResponse(body.br, x.req)
	if err == nil && t.maxBody > 0 && resp.ContentLength > t.maxBody {
		err = ErrResponseTooLarge
	}
	if err != nil {
		body.br.Reset(nil)
		readers.Put(body.br)
		return nil, x.fail(err)
	}
	body.wire.n, body.wire.err = math.MaxInt64, ErrResponseTooLarge
	if t.maxBody > 0 {
		body.wire.n = t.maxBody + maxHeaderBytes
		body.left = t.maxBody
	}
	body.ReadCloser, body.keep = resp.Body, body.keep && !resp.Close
	resp.Body = body
	return resp, nil
}

// keepErrorBody reads the body of resp, when it is not a success and
// errorBodyKeep is set, and keeps only its first errorBodyKeep bytes: the
// connection goes back to the idle list before RoundTrip returns, and the
// caller's copy of an error page is small.
func (t *pollTransport) keepErrorBody(resp *http.Response) (*http.Response, error) {
	if t.errorBodyKeep == 0 || (resp.StatusCode >= 200 && resp.StatusCode <= 299) {
		return resp, nil
	}
	size := t.errorBodyKeep
	if resp.ContentLength >= 0 && resp.ContentLength < int64(size) {
		size = int(resp.ContentLength)
	}
	buf := make([]byte, size)
	n, err := io.ReadFull(resp.Body, buf)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
	} else if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = nil // shorter than errorBodyKeep
	}
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(buf[:n]))
	resp.ContentLength = int64(n)
	return resp, nil
}

// wireBudget reads from r until n bytes were read, then fails with err.
type wireBudget struct {
	r   io.Reader
	n   int64
	err error
}

func (b *wireBudget) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, b.err
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= int64(n)
	return n, err
}

// conn returns an idle connection to req's agent, or dials one (always,
// with fresh).
func (t *pollTransport) conn(req *http.Request, fresh bool) (*pollConn, error) {
	key := req.URL.Scheme + "://" + req.URL.Host
	if !fresh {
		if pc := t.takeIdle(key); pc != nil {
			return pc, nil
		}
	}
	ctx := req.Context()
	addr := req.URL.Host
	if req.URL.Port() == "" {
		port := "80"
		if req.URL.Scheme == "https" {
			port = "443"
		}
		addr = net.JoinHostPort(req.URL.Hostname(), port)
	}
	c, err := t.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if req.URL.Scheme == "https" {
		cfg := t.tls.Clone()
		if cfg == nil {
			cfg = &tls.Config{}
		}
		if cfg.ServerName == "" {
			cfg.ServerName = req.URL.Hostname()
		}
		tc := tls.Client(c, cfg)
		// An agent that accepts connections but does not answer (a stopped
		// process: the kernel still accepts) must not hold the handshake
		// of a request without a deadline forever; exchange sets the
		// request's own deadline after.
		if _, ok := ctx.Deadline(); !ok && t.dialer.Timeout > 0 {
			_ = c.SetDeadline(time.Now().Add(t.dialer.Timeout))
		}
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, err
		}
		c = tc
	}
	return &pollConn{Conn: c, key: key}, nil
}

// takeIdle returns the most recently used idle connection of key, closing
// those idle too long.
func (t *pollTransport) takeIdle(key string) *pollConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	list := t.idle[key]
	for len(list) > 0 {
		pc := list[len(list)-1]
		list[len(list)-1] = nil
		list = list[:len(list)-1]
		if time.Since(pc.idleFrom) < idleTimeout {
			t.idle[key] = list
			pc.reused = true
			return pc
		}
		pc.Close()
	}
	delete(t.idle, key)
	return nil
}

// putIdle keeps pc for the next request to its agent.
func (t *pollTransport) putIdle(pc *pollConn) {
	_ = pc.SetDeadline(time.Time{})
	pc.idleFrom = time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	list := t.idle[pc.key]
	if len(list) >= maxIdlePerHost {
		pc.Close()
		return
	}
	t.idle[pc.key] = append(list, pc)
}

// CloseIdleConnections closes every idle connection; http.Client calls it.
func (t *pollTransport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = map[string][]*pollConn{}
	t.mu.Unlock()
	for _, list := range idle {
		for _, pc := range list {
			pc.Close()
		}
	}
}

// pollBody is a response body: once read to the end and closed, its
// connection goes back to the idle list and its buffer to the pool.
type pollBody struct {
	io.ReadCloser
	t    *pollTransport
	pc   *pollConn
	br   *bufio.Reader
	wire wireBudget // what br reads from: the connection, bounded
	stop func() bool
	keep bool // the connection may carry another request
	eof  bool
	done bool
	// left is how many more bytes of the body may be read (maxBody); -1:
	// no bound. tooLarge is set once the body went past it.
	left     int64
	tooLarge bool
}

func (b *pollBody) Read(p []byte) (int, error) {
	switch {
	case b.done:
		return 0, errors.New("read on closed response body")
	case b.tooLarge:
		return 0, ErrResponseTooLarge
	case b.left >= 0 && int64(len(p)) > b.left+1:
		// One byte more than allowed tells a body of exactly the limit
		// from a longer one.
		p = p[:b.left+1]
	}
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && b.pc.killed.Load() {
		err = b.pc.killErr
	}
	if b.left >= 0 {
		if int64(n) > b.left {
			n, b.left, b.tooLarge = int(b.left), 0, true
			return n, ErrResponseTooLarge
		}
		b.left -= int64(n)
	}
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// Close releases the connection: to the idle list when the body was read to
// its end, nothing else is buffered, and no cancellation touched it;
// otherwise it is closed.
func (b *pollBody) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	// Before EOF, the wrapped body's Close would read the rest of the body,
	// which may be slow to come or never come: the connection is closed
	// below instead.
	var err error
	if b.eof {
		err = b.ReadCloser.Close()
	}
	b.t.untrack(b.pc)
	reuse := b.keep && b.eof && b.br.Buffered() == 0 && !b.pc.killed.Load()
	b.br.Reset(nil)
	readers.Put(b.br)
	// stop reports false when the cancellation already ran and moved the
	// deadline into the past.
	if b.stop() && reuse {
		b.t.putIdle(b.pc)
	} else {
		b.pc.Close()
	}
	return err
}
