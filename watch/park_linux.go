//go:build linux

package watch

import (
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Parking: a blocking query waits for the first byte of its answer without
// a goroutine.
//
// A fleet of 1,000 clusters holds 4,000 blocking queries open, each on a
// connection of its own (Consul speaks HTTP/1.1). A goroutine blocked in
// Read per query costs its stack, 2 KiB at least, 8 MiB or more in all:
// the largest single share of the process's memory. Instead, every parked
// connection is registered with one epoll instance (next to the Go
// runtime's own registration: a descriptor may be in several), and one
// goroutine waits for all of them. When a connection becomes readable, or
// the exchange's deadline passes, or the exchange is interrupted (an
// abort, a failed liveness check), a goroutine is started that reads the
// answer as await would have: through the connection, with its deadline,
// so that every outcome is the one a blocked Read would have had. The
// deadlines are checked once a second (deadlineTick) by the waiting
// goroutine, without a timer per query: a parked query's deadline is its
// wait time and more, a minute or so, and the read that fails it fails
// only a little later.
//
// Only plain TCP connections park: a TLS connection may hold buffered
// input the descriptor knows nothing about.

// parker is the process's epoll instance for parked exchanges. The
// instance is itself waited on through the Go runtime's poller (an epoll
// descriptor is readable while it has events): the waiting goroutine is
// woken like any other network read, with no thread blocked in
// epoll_wait and no wait for a processor when it returns.
type parker struct {
	epfd int
	file *os.File        // epfd, non-blocking, in the runtime's poller
	raw  syscall.RawConn // file's
	mu   sync.Mutex
	// waits are the parked exchanges by id, the id each registration
	// carries in its event data; guarded by mu.
	waits map[uint64]*parkedWait
	next  uint64
}

// parkedWait is one parked exchange.
type parkedWait struct {
	p    *parker
	id   uint64
	x    *exchange
	raw  syscall.RawConn
	done func(*http.Response, error)
	// state is parking, then parked, then woken; a wake while parking is
	// left for park to carry out (wakeDue), so that nothing park writes
	// can come after the answer is read and the connection carries its
	// next exchange.
	state atomic.Int32
}

// The states of a parkedWait.
const (
	parking int32 = iota
	parked
	wakeDue
	woken
)

var (
	parkOnce   sync.Once
	theParking *parker // nil when epoll is not available
)

// theParker returns the process's parker, started on first use; nil when
// the epoll instance cannot be made (every exchange then waits on a
// goroutine of its own).
func theParker() *parker {
	parkOnce.Do(func() {
		fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			return
		}
		if err := syscall.SetNonblock(fd, true); err != nil {
			syscall.Close(fd)
			return
		}
		// Non-blocking: a File the runtime polls, with deadlines.
		file := os.NewFile(uintptr(fd), "regiondns-parked-queries")
		raw, err := file.SyscallConn()
		if err != nil {
			file.Close()
			return
		}
		theParking = &parker{epfd: fd, file: file, raw: raw, waits: map[uint64]*parkedWait{}}
		go theParking.loop()
	})
	return theParking
}

// park waits for x's answer without a goroutine, and reports false (the
// caller waits on a goroutine) when x cannot park: not plain TCP, or
// epoll refused it.
func park(x *exchange, done func(*http.Response, error)) bool {
	p := theParker()
	tc, ok := x.pc.Conn.(*net.TCPConn)
	if p == nil || !ok {
		return false
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	w := &parkedWait{p: p, x: x, raw: raw, done: done}
	p.mu.Lock()
	p.next++
	w.id = p.next
	p.waits[w.id] = w
	p.mu.Unlock()
	var addErr error
	// Within Control the descriptor cannot be closed and reused.
	err = raw.Control(func(fd uintptr) {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT,
			Fd: int32(uint32(w.id)), Pad: int32(uint32(w.id >> 32))}
		addErr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err != nil || addErr != nil {
		p.mu.Lock()
		delete(p.waits, w.id)
		p.mu.Unlock()
		return false
	}
	// An interrupt sets killed before it looks for a parked wait: either
	// it finds this one, or this finds killed set.
	x.pc.parked.Store(w)
	if x.pc.killed.Load() {
		w.wake()
	}
	if !w.state.CompareAndSwap(parking, parked) {
		w.fire() // woken while parking
	}
	return true
}

// wake ends the parking of w, once: at once if it is parked, else when
// park is done with it.
func (w *parkedWait) wake() {
	for {
		switch w.state.Load() {
		case parking:
			if w.state.CompareAndSwap(parking, wakeDue) {
				return
			}
		case parked:
			if w.state.CompareAndSwap(parked, woken) {
				w.fire()
				return
			}
		default:
			return
		}
	}
}

// fire unregisters w and starts the goroutine that reads the answer (or
// the error: a deadline passed, an interrupt).
func (w *parkedWait) fire() {
	p := w.p
	p.mu.Lock()
	delete(p.waits, w.id)
	p.mu.Unlock()
	// The connection is still open: only the reading goroutine closes it.
	_ = w.raw.Control(func(fd uintptr) {
		_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
	})
	w.x.pc.parked.CompareAndSwap(w, nil)
	go w.x.await(w.done)
}

// deadlineTick is how often the parked exchanges' deadlines are checked.
const deadlineTick = time.Second

// loop wakes the exchanges whose connection became readable, and those
// whose deadline passed.
func (p *parker) loop() {
	events := make([]syscall.EpollEvent, 256)
	var due []*parkedWait
	nextCheck := time.Now().Add(deadlineTick)
	for {
		if now := time.Now(); !now.Before(nextCheck) {
			due = p.expired(now, due[:0])
			for i, w := range due {
				w.wake()
				due[i] = nil
			}
			nextCheck = now.Add(deadlineTick)
		}
		_ = p.file.SetReadDeadline(nextCheck)
		var n int
		var werr error
		err := p.raw.Read(func(fd uintptr) bool {
			// Without waiting: the runtime's poller waits for the next
			// event (the runtime's registration is edge-triggered, so
			// the events are taken until none is left).
			n, werr = syscall.EpollWait(int(fd), events, 0)
			return n > 0 || (werr != nil && werr != syscall.EINTR && werr != syscall.EAGAIN)
		})
		if err == nil {
			err = werr
		}
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			continue
		case err != nil:
			// Not expected; the parked exchanges still wake at their
			// deadline or interrupt.
			time.Sleep(time.Second)
			continue
		}
		for _, ev := range events[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			p.mu.Lock()
			w := p.waits[id]
			p.mu.Unlock()
			if w != nil {
				w.wake()
			}
		}
	}
}

// expired appends to due the parked exchanges whose deadline passed.
func (p *parker) expired(now time.Time, due []*parkedWait) []*parkedWait {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, w := range p.waits {
		if d := w.x.deadline; !d.IsZero() && !now.Before(d) {
			due = append(due, w)
		}
	}
	return due
}

// parkedCount is how many exchanges are parked now (for tests).
func parkedCount() int {
	p := theParker()
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.waits)
}
