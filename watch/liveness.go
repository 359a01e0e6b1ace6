package watch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Liveness checks of the agents.
//
// A blocking query says nothing for up to its wait time, so silence on its
// connection cannot tell a stopped or blackholed agent (one that accepts
// connections, or whose kernel still does, and never answers) from one with
// nothing new to say: without a check, each such query would cost a whole
// wait time before the next agent is tried. So while requests to an agent
// are out, the transport asks the agent something it answers at once
// (probePath) every probeInterval. An agent that does not answer within
// probeTimeout is down: the requests waiting on it fail at once with
// errAgentUnresponsive (their callers go on to the next agent), new ones
// fail without being sent, and the agent is checked on until it answers
// again, or until no request wanted it for agentForget.

// probePath is what a liveness check asks: Consul's HTTP API answers it
// without an ACL token, and any HTTP answer shows the agent is alive.
const probePath = "/v1/status/leader"

// agentForget is how long a down agent is checked after the last request
// that wanted it.
const agentForget = time.Minute

// errAgentUnresponsive means that an agent did not answer a liveness check.
var errAgentUnresponsive = errors.New("did not answer a liveness check (GET " + probePath + ")")

// agentState is what the transport knows of one agent while requests to it
// are out, or while it is down. Guarded by the transport's mu.
type agentState struct {
	inflight map[*pollConn]struct{} // connections carrying a request
	down     error                  // why the agent is down; nil while it answers
	probing  bool                   // a probeLoop runs for it
	lastUsed time.Time              // when a request last wanted it
}

// probeCtxKey marks the context of a liveness check, which is neither
// tracked nor refused.
type probeCtxKey struct{}

// checked reports whether req's agent is subject to liveness checks.
func (t *pollTransport) checked(req *http.Request) bool {
	return t.probeInterval > 0 && req.Context().Value(probeCtxKey{}) == nil
}

// agentDown returns why req's agent is down, or nil.
func (t *pollTransport) agentDown(req *http.Request) error {
	if !t.checked(req) {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.agents[req.URL.Scheme+"://"+req.URL.Host]
	if a == nil || a.down == nil {
		return nil
	}
	a.lastUsed = time.Now()
	return a.down
}

// track adds pc, about to carry req, to its agent's in-flight connections,
// and starts the agent's checks if they do not run. It fails when the agent
// is down.
func (t *pollTransport) track(req *http.Request, pc *pollConn) error {
	if !t.checked(req) {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.agents[pc.key]
	if a == nil {
		a = &agentState{inflight: map[*pollConn]struct{}{}}
		t.agents[pc.key] = a
	}
	a.lastUsed = time.Now()
	if a.down != nil {
		return a.down
	}
	a.inflight[pc] = struct{}{}
	pc.agent = a
	if !a.probing {
		a.probing = true
		go t.probeLoop(pc.key, a)
	}
	return nil
}

// untrack takes pc out of its agent's in-flight connections, if it is in
// them.
func (t *pollTransport) untrack(pc *pollConn) {
	if pc.agent == nil {
		return
	}
	t.mu.Lock()
	delete(pc.agent.inflight, pc)
	t.mu.Unlock()
	pc.agent = nil
}

// probeLoop checks the agent at key every probeInterval while requests to it
// are out, or while it is down and wanted. A failed check interrupts every
// in-flight request; a passed one lets requests through again.
func (t *pollTransport) probeLoop(key string, a *agentState) {
	timer := time.NewTimer(t.probeInterval)
	defer timer.Stop()
	for {
		<-timer.C
		t.mu.Lock()
		if (len(a.inflight) == 0 && a.down == nil) || (a.down != nil && time.Since(a.lastUsed) > agentForget) {
			a.probing = false
			if len(a.inflight) == 0 {
				delete(t.agents, key)
			}
			t.mu.Unlock()
			return
		}
		t.mu.Unlock()

		err := t.probe(key)

		t.mu.Lock()
		switch {
		case err == nil:
			a.down = nil
		case a.down == nil:
			a.down = fmt.Errorf("consul agent %s %w within %s: %w", key, errAgentUnresponsive, t.probeTimeout, err)
			for pc := range a.inflight {
				if !pc.killed.Load() { // not aborted already
					pc.killErr = a.down
					pc.killed.Store(true)
				}
				pc.interrupt()
				delete(a.inflight, pc)
			}
		}
		t.mu.Unlock()
		timer.Reset(t.probeInterval)
	}
}

// probe asks the agent at key for probePath; any HTTP answer within
// probeTimeout passes.
func (t *pollTransport) probe(key string) error {
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), probeCtxKey{}, true), t.probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, key+probePath, nil)
	if err != nil {
		return err
	}
	resp, err := t.RoundTrip(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return err
}
