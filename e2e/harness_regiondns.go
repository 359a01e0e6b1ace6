package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Timeouts of the regiondns process.
const (
	regiondnsReadyTimeout = 30 * time.Second // start to /readyz 200
	regiondnsStopTimeout  = 10 * time.Second // SIGTERM to exit, by contract
)

var regiondnsBin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// BuildRegiondns returns the path of a regiondns binary built with -race
// from <repo>/cmd/regiondns, once per test binary ($REGIONDNS_BIN, if set, is
// used instead). Call CleanupBuilds from TestMain to remove it.
func BuildRegiondns(t testing.TB) string {
	t.Helper()
	regiondnsBin.once.Do(func() {
		if p := os.Getenv("REGIONDNS_BIN"); p != "" {
			regiondnsBin.path = p
			return
		}
		root, err := repoRoot()
		if err != nil {
			regiondnsBin.err = err
			return
		}
		dir, err := os.MkdirTemp("", "regiondns-e2e-bin-")
		if err != nil {
			regiondnsBin.err = err
			return
		}
		regiondnsBin.dir = dir
		regiondnsBin.path = filepath.Join(dir, "regiondns")
		cmd := exec.Command("go", "build", "-race", "-o", regiondnsBin.path, "./cmd/regiondns")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			regiondnsBin.err = fmt.Errorf("go build -race ./cmd/regiondns in %s: %w\n%s", root, err, out)
		}
	})
	if regiondnsBin.err != nil {
		t.Fatal(regiondnsBin.err)
	}
	return regiondnsBin.path
}

// CleanupBuilds removes what BuildRegiondns built. TestMain calls it after
// the tests ran.
func CleanupBuilds() {
	if regiondnsBin.dir != "" {
		_ = os.RemoveAll(regiondnsBin.dir)
	}
}

// Regiondns is one running regiondns process.
type Regiondns struct {
	// ZonePath is the zone file the process reads (REGIONDNS_CONFIG).
	ZonePath string

	t        testing.TB
	dnsAddr  string
	httpAddr string
	cmd      *exec.Cmd
	done     chan struct{} // closed when the process has exited
	logs     *syncBuffer
	stopOnce sync.Once
	exitErr  error // set before done is closed
}

// StartRegiondns writes zoneYAML to a zone file, starts regiondns on free
// loopback ports with REGIONDNS_CONFIG, REGIONDNS_DNS_ADDR and
// REGIONDNS_HTTP_ADDR set (env adds to or overrides the environment), and
// waits until /readyz answers 200. Cleanup sends SIGTERM and fails the test
// unless the process exits 0 within 10 s.
func StartRegiondns(t testing.TB, zoneYAML string, env map[string]string) *Regiondns {
	t.Helper()
	return StartRegiondnsBinary(t, BuildRegiondns(t), zoneYAML, env)
}

// StartRegiondnsBinary is StartRegiondns with the regiondns binary at bin.
func StartRegiondnsBinary(t testing.TB, bin, zoneYAML string, env map[string]string) *Regiondns {
	t.Helper()
	zonePath := filepath.Join(t.TempDir(), "zone.yml")
	if err := os.WriteFile(zonePath, []byte(zoneYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for range startAttempts {
		r, err := spawnRegiondns(t, bin, zonePath, env)
		if err == nil {
			return r
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("start regiondns: %v\nzone file:\n%s", lastErr, zoneYAML)
	return nil
}

func spawnRegiondns(t testing.TB, bin, zonePath string, env map[string]string) (*Regiondns, error) {
	ports := FreePorts(t, 2)
	r := &Regiondns{
		ZonePath: zonePath, t: t,
		dnsAddr:  fmt.Sprintf("127.0.0.1:%d", ports[0]),
		httpAddr: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		done:     make(chan struct{}),
		logs:     &syncBuffer{},
	}
	vars := map[string]string{
		"REGIONDNS_CONFIG":    zonePath,
		"REGIONDNS_DNS_ADDR":  r.dnsAddr,
		"REGIONDNS_HTTP_ADDR": r.httpAddr,
	}
	for k, v := range env {
		vars[k] = v
	}
	r.cmd = exec.Command(bin)
	r.cmd.Env = os.Environ()
	for k, v := range vars {
		r.cmd.Env = append(r.cmd.Env, k+"="+v)
	}
	r.cmd.Stdout, r.cmd.Stderr = r.logs, r.logs
	r.cmd.SysProcAttr = procAttr()
	if err := r.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { r.exitErr = r.cmd.Wait(); close(r.done) }()

	deadline := time.Now().Add(regiondnsReadyTimeout)
	var why string
	for time.Now().Before(deadline) {
		select {
		case <-r.done:
			return nil, fmt.Errorf("exited before ready (%v):\n%s", r.exitErr, r.Logs())
		case <-time.After(50 * time.Millisecond):
		}
		code, body, err := r.get("/readyz")
		if err == nil && code == http.StatusOK {
			t.Cleanup(r.cleanup)
			return r, nil
		}
		why = fmt.Sprintf("/readyz: %d %q %v", code, body, err)
	}
	r.kill()
	return nil, fmt.Errorf("not ready within %s (last %s):\n%s", regiondnsReadyTimeout, why, r.Logs())
}

// DNSAddr returns the UDP and TCP address regiondns serves DNS on.
func (r *Regiondns) DNSAddr() string { return r.dnsAddr }

// HTTPAddr returns the address of the metrics, health and state endpoints.
func (r *Regiondns) HTTPAddr() string { return r.httpAddr }

// Logs returns everything the process wrote so far.
func (r *Regiondns) Logs() string { return r.logs.String() }

// Get fetches path from the HTTP endpoint and returns the status and body,
// failing the test when the request fails.
func (r *Regiondns) Get(path string) (int, []byte) {
	r.t.Helper()
	code, body, err := r.get(path)
	if err != nil {
		r.t.Fatalf("GET %s: %v", path, err)
	}
	return code, body
}

// WriteZone replaces the zone file; Reload makes the process read it.
func (r *Regiondns) WriteZone(zoneYAML string) {
	r.t.Helper()
	if err := os.WriteFile(r.ZonePath, []byte(zoneYAML), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// Reload sends SIGHUP.
func (r *Regiondns) Reload() { r.signal(syscall.SIGHUP) }

// Stop sends SIGTERM and fails the test unless the process exits with code 0
// within 10 s. Cleanup calls it; later calls do nothing.
func (r *Regiondns) Stop() {
	r.t.Helper()
	r.stopOnce.Do(func() {
		r.signal(syscall.SIGTERM)
		select {
		case <-r.done:
		case <-time.After(regiondnsStopTimeout):
			r.kill()
			r.t.Errorf("regiondns did not exit within %s of SIGTERM", regiondnsStopTimeout)
			return
		}
		var exit *exec.ExitError
		switch {
		case errors.As(r.exitErr, &exit):
			r.t.Errorf("regiondns exited with %v after SIGTERM, want code 0", exit.ProcessState)
		case r.exitErr != nil:
			r.t.Errorf("regiondns: %v", r.exitErr)
		}
	})
}

func (r *Regiondns) cleanup() {
	r.Stop()
	if r.t.Failed() {
		r.t.Logf("--- regiondns log ---\n%s", r.Logs())
	}
}

func (r *Regiondns) signal(sig syscall.Signal) {
	if err := r.cmd.Process.Signal(sig); err != nil {
		r.t.Errorf("send %v to regiondns: %v", sig, err)
	}
}

// kill ends the process group at once.
func (r *Regiondns) kill() {
	_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
	<-r.done
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

func (r *Regiondns) get(path string) (int, []byte, error) {
	resp, err := httpClient.Get("http://" + r.httpAddr + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// syncBuffer is a bytes.Buffer safe for the process's writers and readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// ZoneCluster is one cluster of a rendered zone file.
type ZoneCluster struct {
	// Label is the cluster's DNS label.
	Label string
	// MainScope and StandbyScope are the Patroni scopes per region
	// (StandbyScope defaults to MainScope).
	MainScope, StandbyScope string
	// Layout is direct (default), bouncer-per-node or pool-fleet.
	Layout string
	// BouncerService is the bouncer-per-node service (default "pgbouncer").
	BouncerService string
	// RWService and ROService are the pool-fleet services (default
	// "<label>-pgbouncer-rw" and "-ro").
	RWService, ROService string
}

// ZoneOptions renders a zone file for a Federation.
type ZoneOptions struct {
	// Zone is the zone (default "pg.example.internal.").
	Zone string
	// TTL is every answer TTL in seconds (default 1).
	TTL int
	// Clusters are the clusters, in order.
	Clusters []ZoneCluster
	// Agents picks the agents of a datacenter regiondns talks to (default:
	// Datacenter.Agent, the client agent when there is one).
	Agents func(*Datacenter) []*Agent
	// ConsulDNS gives the consul_dns addresses of a datacenter (default:
	// the DNS addresses of the agents Agents picks).
	ConsulDNS func(*Datacenter) []string
	// Extra is appended verbatim as more top-level YAML.
	Extra string
}

// ZoneYAML renders a zone file whose regions are the federation's
// datacenters: main is dc1, standby is dc2.
func (f *Federation) ZoneYAML(opts ZoneOptions) string {
	zone := orDefault(opts.Zone, "pg.example.internal.")
	ttl := orDefault(opts.TTL, 1)
	agents := opts.Agents
	if agents == nil {
		agents = func(d *Datacenter) []*Agent { return []*Agent{d.Agent()} }
	}
	var b strings.Builder
	fmt.Fprintf(&b, "zone: %s\n", zone)
	fmt.Fprintf(&b, "ttl: {rw: %d, ro: %d, passive: %d, negative: %d}\n", ttl, ttl, ttl, ttl)
	b.WriteString("regions:\n")
	for _, dc := range f.Datacenters() {
		var httpAddrs, dnsAddrs []string
		for _, a := range agents(dc) {
			httpAddrs = append(httpAddrs, fmt.Sprintf("%q", a.HTTPURL()))
			dnsAddrs = append(dnsAddrs, fmt.Sprintf("%q", a.DNSAddr()))
		}
		if opts.ConsulDNS != nil {
			dnsAddrs = dnsAddrs[:0]
			for _, addr := range opts.ConsulDNS(dc) {
				dnsAddrs = append(dnsAddrs, fmt.Sprintf("%q", addr))
			}
		}
		fmt.Fprintf(&b, "  - {name: %s, role: %s, datacenter: %s, consul_http: [%s], consul_dns: [%s]}\n",
			dc.Region, dc.Region, dc.Name, strings.Join(httpAddrs, ", "), strings.Join(dnsAddrs, ", "))
	}
	b.WriteString("clusters:\n")
	for _, c := range opts.Clusters {
		layout := orDefault(c.Layout, "direct")
		fmt.Fprintf(&b, "  - {label: %s, scopes: {main: %q, standby: %q}, layout: %s",
			c.Label, c.MainScope, orDefault(c.StandbyScope, c.MainScope), layout)
		switch layout {
		case "bouncer-per-node":
			fmt.Fprintf(&b, ", pgbouncer: {service: %s}", orDefault(c.BouncerService, DefaultBouncerService))
		case "pool-fleet":
			fmt.Fprintf(&b, ", pgbouncer: {rw_service: %s, ro_service: %s}",
				orDefault(c.RWService, c.Label+"-pgbouncer-rw"), orDefault(c.ROService, c.Label+"-pgbouncer-ro"))
		}
		b.WriteString("}\n")
	}
	if opts.Extra != "" {
		b.WriteString(strings.TrimRight(opts.Extra, "\n") + "\n")
	}
	return b.String()
}

// PID returns the process ID of the running regiondns.
func (r *Regiondns) PID() int { return r.cmd.Process.Pid }
