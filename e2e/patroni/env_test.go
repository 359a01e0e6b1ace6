package patroni_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/miekg/dns"
	"github.com/regiondns/regiondns/e2e"
)

const (
	// zone is regiondns's zone; scope is the Patroni scope of both regions.
	zone  = "pg.example.internal."
	scope = "acme"
	// regiondnsIP is where regiondns serves DNS, on port 53: PgBouncer's
	// resolv_conf names it, and c-ares 1.18 reads no port there.
	regiondnsIP = "127.0.0.153"
	// The zone clusters: one per layout, all watching scope.
	direct  = "acme"
	perNode = "acme-node"
	pool    = "acme-pool"
	// Pool-fleet service names.
	poolRWService = "acme-pgbouncer-rw"
	poolROService = "acme-pgbouncer-ro"

	setupTimeout = 90 * time.Second // a member from start to running
	waitTimeout  = 30 * time.Second // regiondns and PgBouncer following a change
)

// env is the whole environment, shared by the scenarios in order.
type env struct {
	root    string // the run directory
	pg      pgUser
	fed     *e2e.Federation
	pgPort  int // every PostgreSQL's port, on the member's own address
	apiPort int // every Patroni REST API's port
	pgbPort int // every PgBouncer's port

	main, standby []*member // [0] is the first leader of the region
	nodeBouncers  map[string]*bouncer
	pools         map[string]*bouncer // by region + "-rw" / "-ro"
	rdns          *e2e.Regiondns

	mu      sync.Mutex
	results []string
	timings []timing
}

// startEnv starts everything and waits until the steady state: main-1 the
// leader with main-2 streaming, standby-1 the standby leader with standby-2,
// the bouncers registered and passing, and regiondns answering.
func startEnv(t *testing.T) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the Patroni e2e tests run as root: they bind port 53 and run PostgreSQL as the postgres user")
	}
	for _, bin := range []string{patroniBin, patronictlBin, pgbouncerBin, pgBinDir + "/postgres", "/usr/bin/psql"} {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%s missing: run scripts/install-patroni-deps.sh (make e2e-patroni does)", bin)
		}
	}
	reapStaleRuns(t)
	e := &env{pg: lookupPostgres(t), nodeBouncers: map[string]*bouncer{}, pools: map[string]*bouncer{}}
	e.pg.mkdir(t, runBase())
	root, err := os.MkdirTemp(runBase(), "run-")
	if err != nil {
		t.Fatal(err)
	}
	e.root = root
	e.pg.mkdir(t, root)
	if err := os.WriteFile(filepath.Join(root, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("run directory %s (kept when the test fails)", root)
	startWatchdog(t, root)
	// Registered first, so it runs last: after the members are killed.
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("REGIONDNS_PATRONI_KEEP") != "" {
			t.Logf("keeping the run directory %s", root)
			return
		}
		removeAllFiles(t, root)
	})
	ports := e2e.FreePorts(t, 3)
	e.pgPort, e.apiPort, e.pgbPort = ports[0], ports[1], ports[2]

	// Consul: a server and a client agent (regiondns's) per datacenter, then
	// an agent per Patroni node. session_ttl_min lets Patroni's 5 s sessions
	// through (Consul's default minimum is 10 s).
	extra := map[string]any{"session_ttl_min": "1s"}
	e.fed = e2e.StartFederation(t, e2e.FederationOptions{ClientAgents: true, ExtraConfig: extra})
	mainAgents := e.fed.StartClientAgents(t, e.fed.DC1, []string{"main-1-node", "main-2-node", "main-3-node"}, extra)
	standbyAgents := e.fed.StartClientAgents(t, e.fed.DC2, []string{"standby-1-node", "standby-2-node"}, extra)

	newMember := func(region string, n int, agent *e2e.Agent) *member {
		r := 1
		if region == "standby" {
			r = 2
		}
		m := &member{
			Name: fmt.Sprintf("%s-%d", region, n), Region: region,
			Addr: fmt.Sprintf("127.1.%d.%d", r, n), Agent: agent, e: e,
		}
		m.Dir = filepath.Join(root, m.Name)
		m.Cfg = filepath.Join(m.Dir, "patroni.yml")
		e.pg.mkdir(t, m.Dir)
		return m
	}
	for i, a := range mainAgents {
		e.main = append(e.main, newMember("main", i+1, a))
	}
	e.main[2].NoFailover = true // so that the failover's new leader is known: main-1
	for i, a := range standbyAgents {
		e.standby = append(e.standby, newMember("standby", i+1, a))
	}
	t.Cleanup(func() {
		for _, m := range e.members() {
			m.crash()
			if t.Failed() {
				t.Logf("--- patroni %s log (%s) ---\n%s\n--- postgresql %s log ---\n%s", m.Name, m.Dir,
					tailFile(filepath.Join(m.Dir, "patroni.log"), 24<<10), m.Name,
					tailFile(filepath.Join(m.Dir, "pglog", "postgresql.log"), 8<<10))
			}
		}
	})

	// The main cluster: main-1 bootstraps (initdb), then main-2 and main-3
	// clone it. The standby cluster clones main-1 as soon as it runs.
	m1, m2, m3, s1, s2 := e.main[0], e.main[1], e.main[2], e.standby[0], e.standby[1]
	for _, m := range e.main {
		m.writeConfig(t, nil)
	}
	for _, m := range e.standby {
		m.writeConfig(t, m1)
	}
	m1.start(t)
	m1.waitRole(t, setupTimeout, "master")
	m2.start(t)
	m3.start(t)
	s1.start(t)
	s1.waitRole(t, setupTimeout, "standby_leader")
	s2.start(t)
	m2.waitRole(t, setupTimeout, "replica")
	m3.waitRole(t, setupTimeout, "replica")
	s2.waitRole(t, setupTimeout, "replica")
	if _, err := psql(m1.Addr, e.pgPort, "CREATE TABLE probe (id bigserial PRIMARY KEY, note text, at timestamptz DEFAULT now())"); err != nil {
		t.Fatalf("create the probe table on main-1: %v", err)
	}

	// PgBouncers: one per Patroni node (backend: the node's PostgreSQL), and
	// the pools of each region (backend: regiondns's names).
	t.Cleanup(func() {
		for _, b := range e.bouncers() {
			b.proc.kill()
			if t.Failed() {
				t.Logf("--- pgbouncer %s log ---\n%s", b.Name, b.logTail())
			}
		}
	})
	for _, m := range e.members() {
		b := &bouncer{
			Name: "pgbouncer-" + m.Name, Addr: m.Addr, Port: e.pgbPort, Backend: m.Addr,
			Service: e2e.DefaultBouncerService, Agent: m.Agent, e: e,
		}
		b.Dir = filepath.Join(root, b.Name)
		b.start(t)
		e.nodeBouncers[m.Name] = b
	}
	for r, dc := range e.fed.Datacenters() {
		for i, kind := range []string{"rw", "ro"} {
			svc := poolRWService
			if kind == "ro" {
				svc = poolROService
			}
			b := &bouncer{
				Name: fmt.Sprintf("pool-%s-%s", dc.Region, kind), Addr: fmt.Sprintf("127.1.%d.%d", r+1, 101+i),
				Port: e.pgbPort, Backend: kind + "." + direct + "." + strings.TrimSuffix(zone, "."),
				Service: svc, Agent: dc.Server, e: e,
			}
			b.Dir = filepath.Join(root, b.Name)
			b.start(t)
			e.pools[dc.Region+"-"+kind] = b
		}
	}

	// regiondns, reading the client agents.
	if err := checkPort53Free(); err != nil {
		t.Fatal(err)
	}
	zoneYAML := e.fed.ZoneYAML(e2e.ZoneOptions{Zone: zone, Clusters: []e2e.ZoneCluster{
		{Label: direct, MainScope: scope},
		{Label: perNode, MainScope: scope, Layout: "bouncer-per-node"},
		{Label: pool, MainScope: scope, Layout: "pool-fleet", RWService: poolRWService, ROService: poolROService},
	}})
	e.rdns = e2e.StartRegiondns(t, zoneYAML, map[string]string{"REGIONDNS_DNS_ADDR": regiondnsIP + ":53"})
	return e
}

// members returns every Patroni member.
func (e *env) members() []*member { return slices.Concat(e.main, e.standby) }

// bouncers returns every PgBouncer started so far.
func (e *env) bouncers() []*bouncer {
	var out []*bouncer
	for _, b := range e.nodeBouncers {
		out = append(out, b)
	}
	for _, b := range e.pools {
		out = append(out, b)
	}
	return out
}

// result records a line of the results, logs it and keeps it for the file.
func (e *env) result(t *testing.T, format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	t.Log(line)
	e.mu.Lock()
	e.results = append(e.results, line)
	e.mu.Unlock()
}

// resultsMu guards resultsStarted: the result files this process has
// started, which its other tests add to.
var (
	resultsMu      sync.Mutex
	resultsStarted = map[string]bool{}
)

// writeResults writes the results to results.txt in the run directory and
// to $REGIONDNS_PATRONI_RESULTS when set.
func (e *env) writeResults(t *testing.T) {
	table := e.resultsTable(t)
	for _, l := range table {
		t.Log(l)
	}
	e.mu.Lock()
	body := strings.Join(e.results, "\n") + "\n\n" + tableOf(table) + "\n"
	e.mu.Unlock()
	paths := []string{filepath.Join(e.root, "results.txt")}
	if p := os.Getenv("REGIONDNS_PATRONI_RESULTS"); p != "" {
		paths = append(paths, p)
	}
	resultsMu.Lock()
	defer resultsMu.Unlock()
	for _, p := range paths {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Errorf("results: %v", err)
			continue
		}
		// The tests run in parallel, each with its own results: the first
		// to finish starts the file, the others add theirs.
		flag := os.O_CREATE | os.O_WRONLY | os.O_APPEND
		if !resultsStarted[p] {
			flag |= os.O_TRUNC
			resultsStarted[p] = true
		}
		f, err := os.OpenFile(p, flag, 0o644)
		if err == nil {
			_, err = f.WriteString(body)
			err = errors.Join(err, f.Close())
		}
		if err != nil {
			t.Errorf("results: %v", err)
		}
	}
	t.Logf("results written to %s", strings.Join(paths, " and "))
}

// checkPort53Free says why regiondns could not bind port 53 of regiondnsIP.
func checkPort53Free() error {
	addr := net.JoinHostPort(regiondnsIP, "53")
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("regiondns needs %s (TCP) for PgBouncer's resolv.conf: %w", addr, err)
	}
	l.Close()
	u, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("regiondns needs %s (UDP) for PgBouncer's resolv.conf: %w", addr, err)
	}
	return u.Close()
}

// ---- DNS ----

// rdnsAddr is regiondns's DNS address.
func rdnsAddr() string { return net.JoinHostPort(regiondnsIP, "53") }

// fqdn returns "<name>.<cluster>.<zone>".
func fqdn(name, cluster string) string { return name + "." + cluster + "." + zone }

// lookupA returns the sorted A addresses regiondns answers for name (UDP).
func lookupA(name string) ([]string, error) { return lookupAOver(name, false) }

// lookupATCP is lookupA over TCP.
func lookupATCP(name string) ([]string, error) { return lookupAOver(name, true) }

func lookupAOver(name string, tcp bool) ([]string, error) {
	resp, err := e2e.Exchange(rdnsAddr(), e2e.NewQuery(name, dns.TypeA), tcp)
	if err != nil {
		return nil, err
	}
	if resp.Rcode != dns.RcodeSuccess {
		return nil, fmt.Errorf("%s", dns.RcodeToString[resp.Rcode])
	}
	return e2e.AnswerAddrs(resp), nil
}

// lookupTXT returns regiondns's TXT line for name.
func lookupTXT(name string) string {
	resp, err := e2e.Exchange(rdnsAddr(), e2e.NewQuery(name, dns.TypeTXT), true)
	if err != nil {
		return fmt.Sprintf("(TXT: %v)", err)
	}
	return strings.Join(e2e.AnswerTXT(resp), " | ")
}

// endpoint resolves name's SRV record through regiondns as an application
// would: the first target's address from the additional section, and the
// port.
func endpoint(name string) (string, int, error) {
	resp, err := e2e.Exchange(rdnsAddr(), e2e.NewQuery(name, dns.TypeSRV), false)
	if err != nil {
		return "", 0, err
	}
	for _, rr := range resp.Answer {
		srv, ok := rr.(*dns.SRV)
		if !ok {
			continue
		}
		for _, x := range resp.Extra {
			if a, ok := x.(*dns.A); ok && strings.EqualFold(a.Hdr.Name, srv.Target) {
				return a.A.String(), int(srv.Port), nil
			}
		}
		return "", 0, fmt.Errorf("SRV %s: no address for target %s", name, srv.Target)
	}
	return "", 0, fmt.Errorf("SRV %s: no records (rcode %s)", name, dns.RcodeToString[resp.Rcode])
}

// consulDNS returns the sorted A addresses an agent's Consul DNS answers.
func consulDNS(agent *e2e.Agent, name string) ([]string, error) {
	resp, err := e2e.Exchange(agent.DNSAddr(), e2e.NewQuery(name, dns.TypeA), false)
	if err != nil {
		return nil, err
	}
	return e2e.AnswerAddrs(resp), nil
}

// waitA waits until regiondns answers each name (a full name) with exactly
// the addresses given (none: NOERROR without records).
func waitA(t *testing.T, want map[string][]string) {
	t.Helper()
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	slices.Sort(names)
	e2e.WaitFor(t, waitTimeout, func() (bool, string) {
		for _, n := range names {
			got, err := lookupA(n)
			w := want[n]
			if err != nil || !slices.Equal(got, w) {
				return false, fmt.Sprintf("A %s = %v (err %v), want %v; TXT %q", n, got, err, w, lookupTXT(n))
			}
		}
		return true, ""
	})
}

// ---- SQL ----

// psql runs one statement with the psql CLI and returns its trimmed
// unaligned output.
func psql(host string, port int, sql string) (string, error) {
	return psqlContext(context.Background(), host, port, sql)
}

// psqlContext is psql, given up when ctx is done.
func psqlContext(ctx context.Context, host string, port int, sql string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	conn := fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres connect_timeout=2 application_name=regiondns-e2e", host, port)
	cmd := exec.CommandContext(ctx, "/usr/bin/psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", conn, "-c", sql)
	cmd.Env = []string{"PATH=" + sysPath, "LANG=C.UTF-8"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("psql %s:%d %q: %v: %s", host, port, sql, err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// Statements answering "<server address>|<in recovery>": writeSQL inserts a
// row first (and so fails on a read-only server).
const (
	whereSQL = `SELECT host(inet_server_addr()) || '|' || left(pg_is_in_recovery()::text, 1)`
	writeSQL = `WITH w AS (INSERT INTO probe (note) VALUES ('%s') RETURNING id)
SELECT host(inet_server_addr()) || '|' || left(pg_is_in_recovery()::text, 1) FROM w`
)

// where returns "<server address>|<t or f>" of a read (or, with note, a
// write) through host:port.
func where(host string, port int, note string) (string, error) {
	return whereContext(context.Background(), host, port, note)
}

// whereContext is where, given up when ctx is done.
func whereContext(ctx context.Context, host string, port int, note string) (string, error) {
	if note == "" {
		return psqlContext(ctx, host, port, whereSQL)
	}
	return psqlContext(ctx, host, port, fmt.Sprintf(writeSQL, note))
}

// access is a way in: a regiondns name resolved by SRV (an application), or
// a fixed PgBouncer (which resolves its backend through regiondns).
type access struct {
	name string // SRV name, or ""
	b    *bouncer
}

func (a access) String() string {
	if a.name != "" {
		return "SRV " + a.name
	}
	return "pgbouncer " + a.b.Name
}

// run reads (note "") or writes through a.
func (a access) run(note string) (string, error) {
	return a.runContext(context.Background(), note)
}

// runContext is run, given up when ctx is done.
func (a access) runContext(ctx context.Context, note string) (string, error) {
	if a.name == "" {
		return whereContext(ctx, a.b.Addr, a.b.Port, note)
	}
	host, port, err := endpoint(a.name)
	if err != nil {
		return "", err
	}
	return whereContext(ctx, host, port, note)
}

// waitWhere waits until a read (note "") or write through a reaches one of
// want ("<server address>|<t or f>").
func waitWhere(t *testing.T, a access, note string, want ...string) {
	t.Helper()
	e2e.WaitFor(t, waitTimeout, func() (bool, string) {
		got, err := a.run(note)
		if err != nil || !slices.Contains(want, got) {
			return false, fmt.Sprintf("%s (note %q): got %q, err %v; want one of %q", a, note, got, err, want)
		}
		return true, ""
	})
}

// leaderKey reads Patroni's leader key through agent ("" when there is none).
func leaderKey(agent *e2e.Agent, opts *api.QueryOptions) (string, uint64, error) {
	pair, meta, err := agent.API().KV().Get("service/"+scope+"/leader", opts)
	if err != nil {
		return "", 0, err
	}
	if pair == nil {
		return "", meta.LastIndex, nil
	}
	return string(pair.Value), meta.LastIndex, nil
}
