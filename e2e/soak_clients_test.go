package e2e

// The soak's clients: a class of traffic counts what it sent and how it
// ended, per sampling window; UDP clients pace queries at a rate and match
// answers by ID; the TCP client opens connections and pipelines queries on
// each. Nothing here calls t.Fatal: the clients run on goroutines of their
// own while the test goroutine drives Consul.

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// soakClass is one kind of client traffic. Well-behaved classes are held
// to the answer rate; hostile ones are reported.
type soakClass struct {
	// Name is the class's column in the report.
	Name string
	// Hostile marks traffic from the hostile source.
	Hostile bool
	// Note says what the class sends, for the report's legend.
	Note string

	sent, ok, failed atomic.Int64
	open             atomic.Int64 // connections held open (the idle class)
}

// soakCount is what a class did in one window: queries sent, and queries
// that ended answered (OK) or not (Failed: no answer in time, or a wrong
// one). Open is the connections the class held at the end of the window.
type soakCount struct{ Sent, OK, Failed, Open int64 }

// take returns the class's counts since the last take and starts anew.
func (c *soakClass) take() soakCount {
	return soakCount{Sent: c.sent.Swap(0), OK: c.ok.Swap(0), Failed: c.failed.Swap(0), Open: c.open.Load()}
}

func (c *soakClass) outcome(ok bool) {
	if ok {
		c.ok.Add(1)
	} else {
		c.failed.Add(1)
	}
}

// Done is the number of queries that ended in the window.
func (n soakCount) Done() int64 { return n.OK + n.Failed }

// Rate is the share of the queries that ended in the window that were
// answered, 0 when none ended.
func (n soakCount) Rate() float64 {
	if n.Done() == 0 {
		return 0
	}
	return float64(n.OK) / float64(n.Done())
}

// soakQuery is one query of a generator: the packed message (its ID is
// overwritten) and the judge of the answer (nil: any answer counts).
type soakQuery struct {
	wire  []byte
	check func(resp *dns.Msg) bool
}

// soakGen makes the i-th query of a class.
type soakGen func(rng *rand.Rand, i int) soakQuery

// soakPending is a UDP query waiting for its answer.
type soakPending struct {
	id    uint16
	at    time.Time
	check func(*dns.Msg) bool
	done  bool
}

// udpClient sends one class's queries from one socket at a steady rate and
// matches answers to queries by ID; a query unanswered after timeout has
// failed.
type udpClient struct {
	class   *soakClass
	conn    *net.UDPConn
	gen     soakGen
	rate    float64
	timeout time.Duration

	mu      sync.Mutex // guards the fields below
	pending map[uint16]*soakPending
	queue   []*soakPending // in sending order: the oldest expires first
	nextID  uint16
}

// runUDP starts a client of class sending rate queries a second from src
// (an IP address) to server until ctx ends; wg counts its goroutines.
func runUDP(ctx context.Context, wg *sync.WaitGroup, class *soakClass, src, server string, rate float64, timeout time.Duration, gen soakGen) error {
	raddr, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		return err
	}
	conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)}, raddr)
	if err != nil {
		return err
	}
	_ = conn.SetReadBuffer(1 << 20)
	c := &udpClient{class: class, conn: conn, gen: gen, rate: rate, timeout: timeout,
		pending: map[uint16]*soakPending{}, nextID: uint16(rand.Uint32())}
	wg.Add(3)
	go func() { defer wg.Done(); c.send(ctx); conn.Close() }()
	go func() { defer wg.Done(); c.receive() }()
	go func() { defer wg.Done(); c.sweep(ctx) }()
	return nil
}

// send paces the queries on a 10-ms tick; a client that fell more than a
// second behind gives up the backlog rather than bursting it.
func (c *udpClient) send(ctx context.Context) {
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	start, n := time.Now(), 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		due := int(time.Since(start).Seconds() * c.rate)
		if due-n > int(c.rate) {
			n = due - int(c.rate)
		}
		for ; n < due; n++ {
			c.sendOne(c.gen(rng, n))
		}
	}
}

func (c *udpClient) sendOne(q soakQuery) {
	p := &soakPending{at: time.Now(), check: q.check}
	c.mu.Lock()
	for range 16 { // skip IDs still waiting for an answer
		c.nextID++
		if _, busy := c.pending[c.nextID]; !busy {
			break
		}
	}
	p.id = c.nextID
	c.pending[p.id] = p
	c.queue = append(c.queue, p)
	c.mu.Unlock()
	binary.BigEndian.PutUint16(q.wire, p.id)
	c.class.sent.Add(1)
	if _, err := c.conn.Write(q.wire); err != nil {
		c.finish(p.id, nil)
	}
}

// finish ends the pending query id with resp (nil: failed).
func (c *udpClient) finish(id uint16, resp []byte) {
	c.mu.Lock()
	p, ok := c.pending[id]
	if ok {
		delete(c.pending, id)
		p.done = true
	}
	c.mu.Unlock()
	if ok {
		c.class.outcome(resp != nil && judge(p.check, resp))
	}
}

func (c *udpClient) receive() {
	buf := make([]byte, 65535)
	for {
		n, err := c.conn.Read(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil || n < 12 {
			continue // ICMP refusals and runts: the query's timeout counts it
		}
		c.finish(binary.BigEndian.Uint16(buf), buf[:n])
	}
}

// sweep fails the queries older than the timeout.
func (c *udpClient) sweep(ctx context.Context) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		expired := 0
		c.mu.Lock()
		cut := time.Now().Add(-c.timeout)
		i := 0
		for ; i < len(c.queue) && (c.queue[i].done || c.queue[i].at.Before(cut)); i++ {
			if p := c.queue[i]; !p.done {
				delete(c.pending, p.id)
				p.done = true
				expired++
			}
		}
		c.queue = c.queue[i:]
		c.mu.Unlock()
		c.class.failed.Add(int64(expired))
	}
}

// judge reports whether resp answers a query as check wants.
func judge(check func(*dns.Msg) bool, resp []byte) bool {
	if check == nil {
		return true
	}
	var m dns.Msg
	if m.Unpack(resp) != nil {
		return false
	}
	return check(&m)
}

// runTCPPipelined opens connsPerSec TCP connections a second from src to
// server until ctx ends; each sends perConn queries in one write, as a
// client that pipelines does, reads the answers (in any order, RFC 7766
// §6.2.1.1) and closes. A query not answered within timeout of the dial
// has failed.
func runTCPPipelined(ctx context.Context, wg *sync.WaitGroup, class *soakClass, src, server string, connsPerSec float64, perConn int, timeout time.Duration, gen soakGen) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
		tick := time.NewTicker(time.Duration(float64(time.Second) / connsPerSec))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			qs := make([]soakQuery, perConn)
			for j := range qs {
				qs[j] = gen(rng, i*perConn+j)
			}
			wg.Add(1)
			go func() { defer wg.Done(); tcpExchange(class, src, server, timeout, qs) }()
		}
	}()
}

func tcpExchange(class *soakClass, src, server string, timeout time.Duration, qs []soakQuery) {
	class.sent.Add(int64(len(qs)))
	deadline := time.Now().Add(timeout)
	waiting := map[uint16]func(*dns.Msg) bool{}
	defer func() { class.failed.Add(int64(len(waiting))) }()
	base := uint16(rand.Uint32())
	var out []byte
	for j, q := range qs {
		id := base + uint16(j)
		binary.BigEndian.PutUint16(q.wire, id)
		waiting[id] = q.check
		out = binary.BigEndian.AppendUint16(out, uint16(len(q.wire)))
		out = append(out, q.wire...)
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Deadline: deadline}
	conn, err := d.Dial("tcp", server)
	if err != nil {
		return
	}
	defer conn.Close()
	_ = conn.SetDeadline(deadline)
	if _, err := conn.Write(out); err != nil {
		return
	}
	for len(waiting) > 0 {
		msg, err := readFrame(conn)
		if err != nil {
			return
		}
		if len(msg) < 12 {
			continue
		}
		id := binary.BigEndian.Uint16(msg)
		if check, ok := waiting[id]; ok {
			delete(waiting, id)
			class.outcome(judge(check, msg))
		}
	}
}

// readFrame reads one length-prefixed DNS message from a TCP stream.
func readFrame(r io.Reader) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	msg := make([]byte, binary.BigEndian.Uint16(l[:]))
	_, err := io.ReadFull(r, msg)
	return msg, err
}
