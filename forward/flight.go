package forward

import (
	"sync"

	"github.com/miekg/dns"
)

// flights makes concurrent identical cache misses share one upstream
// query (a minimal singleflight: golang.org/x/sync is not a dependency of
// the module). The zero value is ready to use.
type flights struct {
	mu sync.Mutex // guards m; held for map operations only, never across I/O
	m  map[Key]*flight
}

// result is what one upstream query gives every caller of its flight:
// the response, and whether it holds for the client subnet asked only
// (a scope other than 0, ecs.go).
type result struct {
	msg    *dns.Msg
	scoped bool
}

// flight is one upstream query in progress; res and err are written before
// done is closed and only read after.
type flight struct {
	done    chan struct{}
	res     result
	err     error
	waiters int // callers waiting besides the one asking; guarded by flights.mu
}

// do returns fn's result for key, calling fn only when no call for key is
// in progress; otherwise it waits for that call and shares its result.
func (g *flights) do(key Key, fn func() (result, error)) (result, error) {
	g.mu.Lock()
	if fl, ok := g.m[key]; ok {
		fl.waiters++
		g.mu.Unlock()
		<-fl.done
		return fl.res, fl.err
	}
	if g.m == nil {
		g.m = make(map[Key]*flight)
	}
	fl := &flight{done: make(chan struct{})}
	g.m[key] = fl
	g.mu.Unlock()

	defer func() {
		if fl.res.msg == nil && fl.err == nil {
			// fn panicked: the waiters still get an answer.
			fl.err = ErrNoUpstream
		}
		g.mu.Lock()
		delete(g.m, key)
		g.mu.Unlock()
		close(fl.done)
	}()
	fl.res, fl.err = fn()
	return fl.res, fl.err
}

// waiting returns how many callers wait for the flight of key (for tests).
func (g *flights) waiting(key Key) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if fl, ok := g.m[key]; ok {
		return fl.waiters
	}
	return 0
}
