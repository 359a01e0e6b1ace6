package watch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/regiondns/regiondns/zones"
)

// ErrUnreachable means that no path to a region's Consul answered: neither its
// own agents nor the other region's agents asked with ?dc=.
var ErrUnreachable = errors.New("consul unreachable")

// path is one way to read a region's datacenter: one agent, and the
// datacenter to name in the query when the agent belongs to the other region.
type path struct {
	ep   *endpoint
	addr string // agent address, for logs and the state endpoint
	dc   string // "" for the region's own agents
}

// regionConn reads one region's datacenter, trying its own agents first and
// the other region's agents (with ?dc=) when its own cannot be reached.
type regionConn struct {
	name  string
	dc    string // the region's datacenter
	paths []path // own agents first, then the other region's
	own   int    // number of own paths at the front of paths

	counters *counters

	mu sync.Mutex
	// preferred is the index of the last path that answered; guarded by mu.
	preferred int
	// lastOwnTry is when an own path was last tried; guarded by mu.
	lastOwnTry time.Time
}

// ownRetryInterval is how long a region stays on a fallback path before its
// own agents are tried first again.
const ownRetryInterval = 10 * time.Second

// newRegionConn builds the clients of region r. The Consul environment
// (CONSUL_HTTP_TOKEN, CONSUL_CACERT, ...) applies as consul/api reads it; a
// region's token file overrides the environment's token.
func newRegionConn(r, other *zones.Region, tr *pollTransport, c *counters) (*regionConn, error) {
	rc := &regionConn{name: r.Name, dc: r.Datacenter, counters: c}
	for _, addr := range r.ConsulHTTP {
		p, err := newPath(addr, r.TokenFile, tr)
		if err != nil {
			return nil, fmt.Errorf("region %s: consul_http %q: %w", r.Name, addr, err)
		}
		rc.paths = append(rc.paths, p)
	}
	rc.own = len(rc.paths)
	if other != nil {
		for _, addr := range other.ConsulHTTP {
			// The region's own token: in a federated ACL system tokens are
			// global, and this one is the one allowed to read this region.
			p, err := newPath(addr, r.TokenFile, tr)
			if err != nil {
				return nil, fmt.Errorf("region %s: fallback consul_http %q: %w", r.Name, addr, err)
			}
			p.dc = r.Datacenter
			rc.paths = append(rc.paths, p)
		}
	}
	return rc, nil
}

// clientConfig is the consul/api configuration of the agent at addr: the
// Consul environment (CONSUL_HTTP_TOKEN, CONSUL_CACERT, ...) as consul/api
// reads it, with tokenFile, when set, overriding the environment's token.
func clientConfig(addr, tokenFile string) *api.Config {
	cfg := api.DefaultConfig()
	cfg.Address = addr
	if tokenFile != "" {
		cfg.TokenFile = tokenFile
	}
	return cfg
}

// NewClient returns a consul/api client of the agent at addr that sends
// what the watcher's clients send: the Consul environment's TLS settings
// and token, tokenFile (a region's token_file) overriding the token. It
// uses net/http's transport: for a few requests (regiondns ctl), not for
// blocking queries.
func NewClient(addr, tokenFile string) (*api.Client, error) {
	return api.NewClient(clientConfig(addr, tokenFile))
}

// errorBodyKeep is how much of a Consul error answer is kept: its text is
// quoted in an error message cut to MaxErrorText.
const errorBodyKeep = 4 << 10

// An agent with requests out is checked every agentProbeInterval and is down
// when it does not answer within agentProbeTimeout (see liveness.go): a
// stopped or blackholed agent is noticed within their sum, 5 s, and the
// next agent asked. An agent's HTTP API answers /v1/status/leader in
// milliseconds; 3 s leaves room for a busy one.
const (
	agentProbeInterval = 2 * time.Second
	agentProbeTimeout  = 3 * time.Second
)

// newTransport returns the transport of every Consul client, with the TLS
// settings of the Consul environment (CONSUL_CACERT, CONSUL_CLIENT_CERT,
// ...), bodies bounded by maxBody, and liveness checks of the agents. A
// blocking query returns within its wait (wait is the longest) plus
// Consul's jitter of wait/16; past that margin the agent is hung, and the
// next path should be tried (the liveness checks notice most hung agents
// much sooner).
func newTransport(wait time.Duration, maxBody int64) (*pollTransport, error) {
	cfg := api.DefaultConfig()
	tlsConfig, err := api.SetupTLSConfig(&cfg.TLSConfig)
	if err != nil {
		return nil, fmt.Errorf("consul TLS settings: %w", err)
	}
	tr := newPollTransport(tlsConfig)
	tr.timeout = wait + wait/16 + 5*time.Second
	tr.maxBody, tr.errorBodyKeep = maxBody, errorBodyKeep
	tr.probeInterval, tr.probeTimeout = agentProbeInterval, agentProbeTimeout
	return tr, nil
}

// order returns the order in which to try the paths for the next query.
func (rc *regionConn) order(now time.Time) []int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	start := rc.preferred
	if start >= rc.own && now.Sub(rc.lastOwnTry) >= ownRetryInterval {
		start = 0
	}
	if start < rc.own {
		rc.lastOwnTry = now
	}
	idx := make([]int, 0, len(rc.paths))
	for i := range rc.paths {
		idx = append(idx, (start+i)%len(rc.paths))
	}
	return idx
}

func (rc *regionConn) succeeded(i int) {
	rc.mu.Lock()
	rc.preferred = i
	rc.mu.Unlock()
}

// attempts returns the paths of the next query, in the order they are
// tried.
func (rc *regionConn) attempts(now time.Time) pathAttempts {
	return pathAttempts{rc: rc, order: rc.order(now)}
}

// pathAttempts tries a query on each path of a region in turn until one
// answers. An ACL denial, or an answer over the size limit, is final:
// another agent of the same datacenter would answer the same, and the
// operator must see it.
type pathAttempts struct {
	rc    *regionConn
	order []int
	// k is the place in order of the path being tried, or next to be.
	k    int
	errs []error
}

// next returns the next path to try and counts its request; false when
// every path was tried (see unreachable).
func (a *pathAttempts) next() (path, bool) {
	if a.k == len(a.order) {
		return path{}, false
	}
	p := a.rc.paths[a.order[a.k]]
	a.rc.counters.requests.Add(1)
	return p, true
}

// outcome takes in the outcome of the attempt on the path next returned:
// final reports that the query ends with err (the one to report); else
// the next path is tried.
func (a *pathAttempts) outcome(err error) (final bool, _ error) {
	rc, i := a.rc, a.order[a.k]
	switch {
	case err == nil:
		rc.succeeded(i)
		return true, nil
	case isDenied(err) || errors.Is(err, ErrResponseTooLarge):
		rc.counters.errors.Add(1)
		return true, fmt.Errorf("region %s via %s: %w", rc.name, rc.paths[i].addr, err)
	case errors.Is(err, errAborted) || errors.Is(err, context.Canceled):
		// Stopped: no other path.
		return true, err
	}
	rc.counters.errors.Add(1)
	a.errs = append(a.errs, fmt.Errorf("via %s: %w", rc.paths[i].addr, err))
	a.k++
	return false, nil
}

// unreachable is the error of a query that every path failed.
func (a *pathAttempts) unreachable() error {
	return fmt.Errorf("region %s: %w: %w", a.rc.name, ErrUnreachable, errors.Join(a.errs...))
}

// counters count a region's Consul requests; they outlive reconfigurations.
type counters struct {
	requests, errors atomic.Uint64
}

func isDenied(err error) bool {
	var se api.StatusError
	if errors.As(err, &se) {
		return se.Code == http.StatusForbidden
	}
	return false
}
