// Package forward answers the names outside regiondns's zone from Consul
// DNS, as Consul DNS itself would answer the client. A Forwarder asks the
// local region's agents first and the other region's when none of them
// answers, asking both for the local datacenter when a name names none;
// passes the client's subnet on, so that prepared queries sort for the
// client; keeps each agent's health and counters; makes identical
// concurrent misses share one upstream query; and caches the answers, per
// client subnet where the answer says so, in an LRU that also holds each
// one packed, so that the resolver's fast path answers a cache hit without
// allocating. It is built once and lives as long as the process: a reload
// replaces its upstreams in place (SetUpstreams), and an agent whose
// address stays keeps its health and its metrics (NewCollector).
package forward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/internal/dnswire"
)

// ErrNoUpstream means no upstream gave an answer: every one tried failed,
// timed out or gave nothing to relay. The resolver answers SERVFAIL.
var ErrNoUpstream = errors.New("no upstream answered")

// errMismatch is an upstream response that does not answer the question
// sent; it counts as a failed try.
var errMismatch = errors.New("response does not match the query")

// Defaults of Options.
const (
	// DefaultTimeout bounds one try of one upstream (each leg: UDP, then
	// TCP after a truncated answer).
	DefaultTimeout = 2 * time.Second
	// DefaultMaxTime bounds all tries of one query together; stub
	// resolvers give up after about 5 s (glibc, musl and Go all default to
	// 5 s per try), so an answer later than that helps nobody.
	DefaultMaxTime = 5 * time.Second
)

// Options configure a Forwarder. The zero value is valid: no upstream
// until SetUpstreams gives some.
type Options struct {
	// Groups are the upstream Consul DNS addresses ("host:port"), one
	// group per region, in order of preference: the local region's agents
	// first, then the other region's (see Groups). A later group is used
	// only when no upstream of the earlier ones answers. SetUpstreams
	// replaces them.
	Groups [][]string
	// Timeout bounds one try of one upstream. Zero or less means
	// DefaultTimeout.
	Timeout time.Duration
	// MaxTime bounds all tries of one query. Zero or less means
	// DefaultMaxTime.
	MaxTime time.Duration
	// ForceTCP queries upstreams over TCP only. Consul trims UDP answers to
	// fit without setting TC unless its dns_config.enable_truncate is on;
	// TCP always gets the whole answer.
	ForceTCP bool
	// Datacenter is the local region's Consul datacenter (see
	// Datacenter): a Consul DNS name that names no datacenter is asked for
	// this one, of every upstream (datacenter.go). Empty: names are asked
	// as the client asked them. SetDatacenter replaces it.
	Datacenter string
	// Domains are the Consul DNS domains (Consul's domain and alt_domain),
	// fully qualified, in which names without a datacenter are looked
	// for, and the names whose upstream queries carry the client's subnet
	// (ecs.go). Empty means DefaultDomain.
	Domains []string
	// ProbeName is the name whose SOA is asked of an upstream that stopped
	// answering, to tell a dead upstream from names that take long (see
	// upstream.go): the Consul DNS domain, which an agent answers itself.
	// Empty means DefaultProbeName.
	ProbeName string
}

// Forwarder answers names outside the zone from Consul DNS, through an
// optional LRU. It implements the resolver's Delegator: Delegate on the
// slow path, CachedWire on the fast path, both answering from the same
// cache. It is safe for concurrent use; a cache hit takes no lock of the
// forwarder and never waits for a query in progress.
type Forwarder struct {
	opts   Options
	cache  *LRU // nil: no caching
	logger *slog.Logger
	udp    *dns.Client
	tcp    *dns.Client
	now    func() time.Time // health clock

	// groups is the current upstream set, read by every miss without a
	// lock; SetUpstreams swaps in a new one.
	groups atomic.Pointer[[][]*upstream]
	// datacenter is the local datacenter (Options.Datacenter), read by
	// every miss without a lock; SetDatacenter swaps in a new one.
	datacenter atomic.Pointer[string]
	// setMu serializes SetUpstreams.
	setMu   sync.Mutex
	flights flights
}

// New returns a forwarder to the upstream groups of opts, caching in lru
// (nil: no cache). A nil logger discards.
func New(opts Options, lru *LRU, logger *slog.Logger) *Forwarder {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxTime <= 0 {
		opts.MaxTime = DefaultMaxTime
	}
	if opts.ProbeName == "" {
		opts.ProbeName = DefaultProbeName
	}
	opts.ProbeName = dns.Fqdn(opts.ProbeName)
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	domains := []string{DefaultDomain}
	if len(opts.Domains) > 0 {
		domains = make([]string, len(opts.Domains))
		for i, d := range opts.Domains {
			domains[i] = dnswire.LowerName(dns.Fqdn(d))
		}
	}
	opts.Domains = domains
	f := &Forwarder{
		opts:   opts,
		cache:  lru,
		logger: logger,
		// The per-try deadline comes from the context; these timeouts are
		// a backstop only.
		udp: &dns.Client{Net: "udp", Timeout: opts.Timeout},
		tcp: &dns.Client{Net: "tcp", Timeout: opts.Timeout},
		now: time.Now,
	}
	f.SetUpstreams(opts.Groups)
	f.SetDatacenter(opts.Datacenter)
	// The current values are f.groups and f.datacenter.
	f.opts.Groups, f.opts.Datacenter = nil, ""
	return f
}

// SetDatacenter replaces the local datacenter (Options.Datacenter), for a
// reload. Answers already cached are kept until they expire.
func (f *Forwarder) SetDatacenter(dc string) {
	dc = dnswire.LowerName(dc)
	f.datacenter.Store(&dc)
}

// Delegate answers req, received from the client address src (the zero
// Addr: unknown), from the cache or the upstreams. The response carries
// req's ID, question (its case included), RD and CD; the upstream's rcode,
// RA and AD; never AA, since this server is not an authority for the
// name. When a client subnet was asked for (req's own option, or src's
// subnet, for a name under Options.Domains: ecs.go), its Extra ends with an OPT record holding that client
// subnet option, its SCOPE PREFIX-LENGTH the one the answer holds for
// (0: every client). Its records may be shared with concurrent callers
// and must not be modified. The transport of the client does not matter:
// the whole answer is always fetched, and the resolver fits it to the
// client. Without any upstream, a name not in the cache is answered
// REFUSED, as with delegation off. req is not modified.
func (f *Forwarder) Delegate(req *dns.Msg, _ bool, src netip.Addr) (*dns.Msg, error) {
	if len(req.Question) != 1 {
		return nil, fmt.Errorf("%w: %d questions", ErrNoUpstream, len(req.Question))
	}
	var do bool
	var client *dns.EDNS0_SUBNET
	if opt := req.IsEdns0(); opt != nil {
		do = opt.Do()
		client = subnetOption(opt)
	}
	key := NewKey(req.Question[0], do)
	if inDomains(key.Name, f.opts.Domains) {
		key.Subnet = clientSubnet(client, src)
	}
	if f.cache != nil {
		if m, scoped, ok := f.cache.Lookup(key); ok {
			return reply(req, m, key.Subnet, scoped), nil
		}
	}
	if len(*f.groups.Load()) == 0 {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeRefused)
		return m, nil
	}
	// Identical misses from one subnet share a query: until the answer
	// says otherwise, it may hold for that subnet only.
	res, err := f.flights.do(key, func() (result, error) { return f.resolve(key) })
	if err != nil {
		return nil, err
	}
	return reply(req, res.msg, key.Subnet, res.scoped), nil
}

// CachedWire returns the cached answer to question, a query's question
// section in wire form (the name in lower case and uncompressed, QTYPE,
// QCLASS), asked with the DO bit do: the response Delegate gives at this
// instant for it, packed (see LRU.GetWire), and the whole seconds to take
// off its TTLs. It reports false when the cache does not hold it (or there
// is no cache): Delegate then answers. It does not allocate, and takes no
// lock held across I/O.
func (f *Forwarder) CachedWire(question []byte, do bool) (*dnswire.Response, uint32, bool) {
	if f.cache == nil {
		return nil, 0, false
	}
	return f.cache.GetWire(question, do)
}

// CacheStats returns the counters of the forwarder's LRU (zero without
// one).
func (f *Forwarder) CacheStats() LRUStats {
	if f.cache == nil {
		return LRUStats{}
	}
	return f.cache.Stats()
}

// reply returns m as the answer to req, a client of subnet (the zero
// Prefix: none asked for), with an OPT holding subnet and the answer's
// scope: subnet's length when scoped, else 0. It copies m's header only:
// m may be shared by every caller of one flight.
func reply(req, m *dns.Msg, subnet netip.Prefix, scoped bool) *dns.Msg {
	r := *m
	if subnet.IsValid() {
		var scope uint8
		if scoped {
			scope = uint8(subnet.Bits())
		}
		opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		opt.Option = []dns.EDNS0{newSubnetOption(subnet, scope)}
		r.Extra = append(m.Extra[:len(m.Extra):len(m.Extra)], opt)
	}
	r.Id = req.Id
	r.Response = true
	r.Opcode = req.Opcode
	r.Authoritative = false
	r.Truncated = false
	r.RecursionDesired = req.RecursionDesired
	r.CheckingDisabled = req.CheckingDisabled
	r.Question = req.Question
	return &r
}

// resolve asks the upstreams for key, healthiest first, group by group,
// and caches the answer. An upstream that answers NOERROR or NXDOMAIN ends
// the search; a network error, timeout, mismatched or truncated response,
// or any other rcode moves on to the next upstream. When none answered
// NOERROR or NXDOMAIN, an upstream's own answer is still relayed: a
// SERVFAIL first, else a REFUSED or NOTIMP (what Consul DNS answers for a
// name outside its domain when it has no recursors: the client gets what
// Consul DNS would have told it, not a SERVFAIL of ours). Only when no
// upstream gave any of these is the result ErrNoUpstream.
//
// key.Subnet, when valid, is the client subnet asked for (ecs.go); the
// answer is cached for every client when its scope is 0, else for that
// subnet. A name without a datacenter is asked for the local one
// (datacenter.go) and its answer's names written back to key.Name.
func (f *Forwarder) resolve(key Key) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), f.opts.MaxTime)
	defer cancel()

	asked := key.Name
	if dcName := withDatacenter(key.Name, key.Qtype, *f.datacenter.Load(), f.opts.Domains); dcName != "" {
		asked = dcName
	}
	var servfail, declined *dns.Msg
	var lastErr error
	tried := 0
	for _, u := range f.order(f.now()) {
		if ctx.Err() != nil {
			lastErr = fmt.Errorf("gave up after %v: %w", f.opts.MaxTime, ctx.Err())
			break
		}
		tried++
		started := time.Now()
		resp, err := f.exchange(ctx, u, key, asked)
		u.stats.observe(time.Since(started), err)
		if err != nil {
			f.failed(u, started, err)
			lastErr = fmt.Errorf("%s: %w", u.addr, err)
			continue
		}
		f.succeeded(u)
		if asked != key.Name {
			rewriteOwners(resp, asked, key.Name)
		}
		switch resp.Rcode {
		case dns.RcodeSuccess, dns.RcodeNameError:
			return f.store(key, resp), nil
		case dns.RcodeServerFailure:
			servfail = resp
		case dns.RcodeRefused, dns.RcodeNotImplemented:
			if declined == nil {
				declined = resp
			}
		}
		lastErr = fmt.Errorf("%s: answered %s", u.addr, dns.RcodeToString[resp.Rcode])
		f.logger.Debug("upstream declined", "upstream", u.addr, "rcode", dns.RcodeToString[resp.Rcode])
	}
	switch {
	case servfail != nil:
		return f.store(key, servfail), nil
	case declined != nil:
		// Not cached (the LRU keeps no REFUSED or NOTIMP); identical
		// concurrent queries still share this one.
		return f.store(key, declined), nil
	}
	if lastErr == nil {
		lastErr = errors.New("no upstream configured")
	}
	return result{}, fmt.Errorf("%w for %s %s (%d tried, last: %w)",
		ErrNoUpstream, key.Name, dns.TypeToString[key.Qtype], tried, lastErr)
}

// store caches resp, the answer to a query for key, under key, or under
// key for every client when its scope is 0 (exchange checked it), and
// returns the answer to hand out: the cached view when it was cached,
// else resp cleaned of what is not passed on (OPT, AA, TC).
func (f *Forwarder) store(key Key, resp *dns.Msg) result {
	scope, _ := scopeOf(resp, key.Subnet)
	if scope == 0 {
		key.Subnet = netip.Prefix{}
	}
	res := result{scoped: scope != 0}
	if f.cache != nil {
		if m, ok := f.cache.Add(key, resp); ok {
			res.msg = m
			return res
		}
	}
	res.msg = &dns.Msg{
		MsgHdr: dns.MsgHdr{
			Response:           true,
			Rcode:              resp.Rcode,
			RecursionAvailable: resp.RecursionAvailable,
			AuthenticatedData:  resp.AuthenticatedData,
		},
		Answer: resp.Answer,
		Ns:     resp.Ns,
		Extra:  dnswire.WithoutOPT(resp.Extra),
	}
	return res
}

// exchange asks u for key, with the name asked in its place: over UDP,
// then over TCP when the UDP answer is truncated (or over TCP only with
// ForceTCP). Each leg has its own Timeout, within ctx.
func (f *Forwarder) exchange(ctx context.Context, u *upstream, key Key, asked string) (*dns.Msg, error) {
	client := f.udp
	if f.opts.ForceTCP {
		client = f.tcp
	}
	resp, err := f.try(ctx, client, u.addr, key, asked)
	if client == f.udp && resp != nil && resp.Truncated {
		// A truncated answer may also fail to unpack: the TCP retry
		// settles both.
		resp, err = f.try(ctx, f.tcp, u.addr, key, asked)
	}
	if err != nil {
		return nil, err
	}
	if resp.Truncated {
		return nil, errors.New("truncated answer over TCP")
	}
	return resp, nil
}

// try sends one query for key, asking for the name asked, to addr with
// client and checks that the response answers it, and echoes the client
// subnet asked for. The response is returned with err when it has the TC
// bit, so that the caller can retry over TCP.
func (f *Forwarder) try(ctx context.Context, client *dns.Client, addr string, key Key, asked string) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
	defer cancel()
	q := upstreamQuery(key, asked)
	resp, _, err := client.ExchangeContext(ctx, q, addr)
	if resp != nil && resp.Truncated {
		return resp, err
	}
	if err != nil {
		return nil, err
	}
	if _, ok := scopeOf(resp, key.Subnet); !resp.Response || !answers(resp, q) || !ok {
		return nil, errMismatch
	}
	return resp, nil
}

// upstreamQuery returns a clean query for key asking for the name asked
// (key.Name, or the name with the local datacenter): a fresh ID, the name
// lower-cased (what the cache holds does not depend on the case a client
// used), RD set, EDNS(0) with dnswire.DefaultUDPSize, the client's DO bit
// and the client subnet of key when it has one (no other option), no CD.
func upstreamQuery(key Key, asked string) *dns.Msg {
	q := &dns.Msg{
		MsgHdr:   dns.MsgHdr{Id: dns.Id(), Opcode: dns.OpcodeQuery, RecursionDesired: true},
		Question: []dns.Question{{Name: asked, Qtype: key.Qtype, Qclass: key.Qclass}},
	}
	q.SetEdns0(dnswire.DefaultUDPSize, key.DO)
	if key.Subnet.IsValid() {
		opt := q.IsEdns0()
		opt.Option = append(opt.Option, newSubnetOption(key.Subnet, 0))
	}
	return q
}

// answers reports whether resp carries q's question (case-insensitively:
// an upstream may apply 0x20 or its own case).
func answers(resp, q *dns.Msg) bool {
	if len(resp.Question) != 1 {
		// Some servers leave the question out of errors; the ID matched.
		return len(resp.Question) == 0 && resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError
	}
	a, b := resp.Question[0], q.Question[0]
	return a.Qtype == b.Qtype && a.Qclass == b.Qclass && strings.EqualFold(a.Name, b.Name)
}
