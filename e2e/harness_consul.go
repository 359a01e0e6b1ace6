// Package e2e holds the end-to-end tests of regiondns and the harness they run
// on: real Consul agents in two WAN-federated datacenters, Patroni members
// registered exactly as Patroni 3.x registers itself, PgBouncer services, the
// regiondns binary, and DNS helpers. Every process the harness starts is
// killed in t.Cleanup, also when the test fails.
package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// Timeouts of the harness. Generous: CI machines are slow and -race is slower.
const (
	agentUpTimeout      = 20 * time.Second // process start to HTTP answering
	federationTimeout   = 45 * time.Second // leaders, WAN federation, LAN joins
	agentStopTimeout    = 15 * time.Second // SIGINT to exit before SIGKILL
	startAttempts       = 5                // tries when a picked port was taken
	maxLogBytesOnFailed = 64 << 10         // tail of a log printed on failure
)

// FederationOptions tunes StartFederation.
type FederationOptions struct {
	// ClientAgents adds one client agent per datacenter, joined to its server.
	// Register Patroni members on the servers and point regiondns at the
	// clients: a test can then stop the agent regiondns talks to while the
	// datacenter (and the health of its members) stays up.
	ClientAgents bool
	// ExtraConfig is merged into every agent's JSON configuration (top-level
	// keys replace the harness defaults).
	ExtraConfig map[string]any
}

// Federation is two WAN-federated Consul datacenters: dc1 (region "main")
// and dc2 (region "standby").
type Federation struct {
	DC1, DC2 *Datacenter
}

// Datacenter is one Consul datacenter of a Federation.
type Datacenter struct {
	// Name is the Consul datacenter name (dc1, dc2).
	Name string
	// Region is the regiondns region name (main, standby).
	Region string
	// Server is the datacenter's only server agent.
	Server *Agent
	// Client is the client agent, nil without FederationOptions.ClientAgents.
	Client *Agent
}

// Agent returns the agent regiondns should talk to: the client agent when
// there is one, else the server.
func (d *Datacenter) Agent() *Agent {
	if d.Client != nil {
		return d.Client
	}
	return d.Server
}

// Datacenters returns dc1 and dc2, in that order.
func (f *Federation) Datacenters() []*Datacenter { return []*Datacenter{f.DC1, f.DC2} }

// Other returns the datacenter that is not d.
func (f *Federation) Other(d *Datacenter) *Datacenter {
	if d == f.DC1 {
		return f.DC2
	}
	return f.DC1
}

// cleanupAgents kills the agents *agents holds when the test ends, the last
// started first, and logs their output if the test failed.
func cleanupAgents(t testing.TB, agents *[]*Agent) {
	t.Cleanup(func() {
		for _, a := range slices.Backward(*agents) {
			a.Kill()
		}
		if t.Failed() {
			for _, a := range *agents {
				t.Logf("--- consul agent %s log (%s) ---\n%s", a.Name, a.logPath, a.Logs())
			}
		}
	})
}

// StartFederation starts a server agent (and, optionally, a client agent) in
// dc1 and dc2, WAN-joins the servers and waits until both datacenters have a
// leader, see each other, and the client agents are members.
func StartFederation(t testing.TB, opts FederationOptions) *Federation {
	t.Helper()
	bin := ConsulBinary(t)
	root := t.TempDir()
	f := &Federation{
		DC1: &Datacenter{Name: "dc1", Region: "main"},
		DC2: &Datacenter{Name: "dc2", Region: "standby"},
	}
	var agents []*Agent
	cleanupAgents(t, &agents)
	newAgent := func(dc *Datacenter, server bool) *Agent {
		kind := "client"
		if server {
			kind = "server"
		}
		a := &Agent{
			Name:       dc.Name + "-" + kind,
			Datacenter: dc.Name,
			Server:     server,
			t:          t,
			bin:        bin,
			dir:        filepath.Join(root, dc.Name+"-"+kind),
			extra:      opts.ExtraConfig,
		}
		agents = append(agents, a)
		return a
	}

	// Start order matters only for the addresses each agent joins; the agents
	// converge in the background while the next one starts.
	f.DC1.Server = newAgent(f.DC1, true)
	f.DC1.Server.firstStart()
	f.DC2.Server = newAgent(f.DC2, true)
	f.DC2.Server.joinWAN = []string{f.DC1.Server.SerfWANAddr()}
	f.DC2.Server.firstStart()
	// On a restart dc1 rejoins dc2 by itself too.
	f.DC1.Server.joinWAN = []string{f.DC2.Server.SerfWANAddr()}
	if opts.ClientAgents {
		for _, dc := range f.Datacenters() {
			dc.Client = newAgent(dc, false)
			dc.Client.joinLAN = []string{dc.Server.SerfLANAddr()}
			dc.Client.firstStart()
		}
	}

	WaitFor(t, federationTimeout, func() (bool, string) { return f.converged() })
	return f
}

// converged reports whether the federation is usable, and if not, why.
func (f *Federation) converged() (bool, string) {
	for _, dc := range f.Datacenters() {
		other := f.Other(dc).Name
		for _, a := range []*Agent{dc.Server, dc.Client} {
			if a == nil {
				continue
			}
			if ok, why := a.ready(); !ok {
				return false, why
			}
			if ok, why := a.synced(); !ok {
				return false, why
			}
			dcs, err := a.API().Catalog().Datacenters()
			if err != nil {
				return false, fmt.Sprintf("%s: datacenters: %v", a.Name, err)
			}
			if !slices.Contains(dcs, dc.Name) || !slices.Contains(dcs, other) {
				return false, fmt.Sprintf("%s sees datacenters %v", a.Name, dcs)
			}
			// Cross-datacenter RPC works only once the remote server is known
			// healthy to the local servers' router.
			if _, _, err := a.API().Catalog().Nodes(&api.QueryOptions{Datacenter: other}); err != nil {
				return false, fmt.Sprintf("%s: nodes of %s: %v", a.Name, other, err)
			}
		}
		if dc.Client != nil {
			node, _, err := dc.Server.API().Catalog().Node(dc.Client.Name, nil)
			if err != nil || node == nil {
				return false, fmt.Sprintf("client node %s not in the catalog of %s (err %v)", dc.Client.Name, dc.Name, err)
			}
		}
	}
	return true, ""
}

// Agent is one Consul agent process.
type Agent struct {
	// Name is the agent's node name (for example "dc1-server").
	Name string
	// Datacenter is the agent's datacenter.
	Datacenter string
	// Server says whether the agent is a server.
	Server bool

	t       testing.TB
	bin     string
	dir     string
	logPath string
	extra   map[string]any
	joinLAN []string // serf LAN addresses to retry_join
	joinWAN []string // serf WAN addresses to retry_join_wan
	ports   agentPorts
	client  *api.Client

	mu      sync.Mutex // guards the fields below
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has exited
	nextIdx int           // sequence of members and bouncers registered here
}

type agentPorts struct{ HTTP, DNS, SerfLAN, SerfWAN, Server int }

// HTTPAddr returns the agent's HTTP API address, "127.0.0.1:port".
func (a *Agent) HTTPAddr() string { return fmt.Sprintf("127.0.0.1:%d", a.ports.HTTP) }

// HTTPURL returns the agent's HTTP API URL, "http://127.0.0.1:port".
func (a *Agent) HTTPURL() string { return "http://" + a.HTTPAddr() }

// DNSAddr returns the agent's DNS address, "127.0.0.1:port" (UDP and TCP).
func (a *Agent) DNSAddr() string { return fmt.Sprintf("127.0.0.1:%d", a.ports.DNS) }

// SerfLANAddr returns the agent's LAN gossip address.
func (a *Agent) SerfLANAddr() string { return fmt.Sprintf("127.0.0.1:%d", a.ports.SerfLAN) }

// SerfWANAddr returns the server's WAN gossip address.
func (a *Agent) SerfWANAddr() string { return fmt.Sprintf("127.0.0.1:%d", a.ports.SerfWAN) }

// API returns a Consul API client bound to this agent.
func (a *Agent) API() *api.Client { return a.client }

// Running reports whether the agent process is running.
func (a *Agent) Running() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done == nil {
		return false
	}
	select {
	case <-a.done:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL to the agent's process group and waits for it to exit:
// the agent is gone without leaving, so its node stays in the catalog and
// turns critical once the servers notice.
func (a *Agent) Kill() {
	a.mu.Lock()
	cmd, done := a.cmd, a.done
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

// Stop sends SIGINT and waits for the agent to exit (SIGKILL after a
// timeout). A client agent leaves its datacenter gracefully; a server does
// not (Consul's skip_leave_on_interrupt default for servers).
func (a *Agent) Stop() {
	a.mu.Lock()
	cmd, done := a.cmd, a.done
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-done:
	case <-time.After(agentStopTimeout):
		a.t.Logf("consul agent %s did not stop on SIGINT within %s; killing it", a.Name, agentStopTimeout)
		a.Kill()
	}
}

// Restart stops the agent if it runs (SIGINT), starts it again with the same
// ports and data directory, and waits until it knows its leader.
func (a *Agent) Restart() {
	a.t.Helper()
	a.Stop()
	if err := a.spawn(); err != nil {
		a.t.Fatalf("restart consul agent %s: %v\n%s", a.Name, err, a.Logs())
	}
	WaitFor(a.t, federationTimeout, a.ready)
}

// Logs returns the tail of the agent's log.
func (a *Agent) Logs() string { return tailFile(a.logPath, maxLogBytesOnFailed) }

// ready reports whether the agent answers HTTP and knows a leader.
func (a *Agent) ready() (bool, string) {
	leader, err := a.API().Status().Leader()
	if err != nil {
		return false, fmt.Sprintf("%s: leader: %v", a.Name, err)
	}
	if leader == "" {
		return false, a.Name + " has no leader yet"
	}
	return true, ""
}

// synced reports whether the agent's anti-entropy has completed its first
// full sync, which writes the node's tagged addresses into the catalog (the
// leader's reconcile registers the node without them). Until then the agent
// pushes no service or check change to the catalog; and a full sync that
// finds the agent busy registering a service is put off by 15-30 s, so a test
// that registers members right after the leader election would see their
// checks reach the catalog only that much later.
func (a *Agent) synced() (bool, string) {
	node, _, err := a.API().Catalog().Node(a.Name, nil)
	if err != nil {
		return false, fmt.Sprintf("%s: catalog node: %v", a.Name, err)
	}
	if node == nil || node.Node == nil || len(node.Node.TaggedAddresses) == 0 {
		return false, a.Name + " has not completed its first anti-entropy sync"
	}
	return true, ""
}

// firstStart picks ports and starts the agent, picking new ports when one was
// taken between picking and binding.
func (a *Agent) firstStart() {
	a.t.Helper()
	if err := os.MkdirAll(a.dir, 0o755); err != nil {
		a.t.Fatal(err)
	}
	a.logPath = filepath.Join(a.dir, "consul.log")
	var err error
	for range startAttempts {
		p := FreePorts(a.t, 5)
		a.ports = agentPorts{HTTP: p[0], DNS: p[1], SerfLAN: p[2], SerfWAN: p[3], Server: p[4]}
		a.client = newAPIClient(a.HTTPAddr(), "")
		if err = a.spawn(); err == nil {
			return
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	a.t.Fatalf("start consul agent %s: %v", a.Name, err)
}

// spawn writes the configuration, starts the process and waits until its
// HTTP API answers or it exits.
func (a *Agent) spawn() error {
	cfgPath := filepath.Join(a.dir, "agent.json")
	cfg, err := json.MarshalIndent(a.config(), "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		return err
	}
	logf, err := os.OpenFile(a.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child keeps its own descriptor
	fmt.Fprintf(logf, "==> harness: starting %s with %s\n", a.Name, cfgPath)
	args := []string{"agent", "-config-file", cfgPath, "-bind", "127.0.0.1", "-client", "127.0.0.1"}
	if a.Server {
		args = append(args, "-server", "-bootstrap-expect=1")
	}
	cmd := exec.Command(a.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	a.mu.Lock()
	a.cmd, a.done = cmd, done
	a.mu.Unlock()

	deadline := time.Now().Add(agentUpTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("exited early (%v):\n%s", cmd.ProcessState, a.Logs())
		case <-time.After(50 * time.Millisecond):
		}
		if _, err := a.API().Agent().Self(); err == nil {
			return nil
		}
	}
	a.Kill()
	return fmt.Errorf("HTTP API at %s not up within %s:\n%s", a.HTTPAddr(), agentUpTimeout, a.Logs())
}

// config returns the agent's JSON configuration, tuned for fast tests.
func (a *Agent) config() map[string]any {
	ports := map[string]any{
		"http": a.ports.HTTP, "dns": a.ports.DNS, "serf_lan": a.ports.SerfLAN,
		"serf_wan": a.ports.SerfWAN, "server": a.ports.Server,
		"grpc": -1, "grpc_tls": -1, "https": -1,
	}
	if !a.Server {
		ports["serf_wan"] = -1 // clients do not gossip over the WAN
	}
	cfg := map[string]any{
		"datacenter":            a.Datacenter,
		"node_name":             a.Name,
		"data_dir":              filepath.Join(a.dir, "data"),
		"ports":                 ports,
		"performance":           map[string]any{"raft_multiplier": 1},
		"check_update_interval": "0s", // check status changes reach the catalog at once
		"disable_update_check":  true,
		"log_level":             "warn",
		"connect":               map[string]any{"enabled": false},
		"ui_config":             map[string]any{"enabled": false},
		"enable_script_checks":  false,
		"retry_interval":        "1s", // default 30s: far too slow for tests
		"retry_interval_wan":    "1s",
	}
	if len(a.joinLAN) > 0 {
		cfg["retry_join"] = a.joinLAN
	}
	if len(a.joinWAN) > 0 {
		cfg["retry_join_wan"] = a.joinWAN
	}
	for k, v := range a.extra {
		cfg[k] = v
	}
	return cfg
}

// nextIndex returns the next sequence number of a member or bouncer
// registered on this agent, from 1.
func (a *Agent) nextIndex() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.nextIdx++
	return a.nextIdx
}

// newAPIClient returns a Consul client for addr ("host:port"), optionally
// pinned to a datacenter, with a request timeout so that a dead agent fails
// fast.
func newAPIClient(addr, dc string) *api.Client {
	cfg := api.DefaultConfig()
	cfg.Address = addr
	cfg.Scheme = "http"
	cfg.Datacenter = dc
	cfg.Token = ""
	cfg.HttpClient = &http.Client{
		Transport: http.DefaultTransport.(*http.Transport).Clone(),
		Timeout:   10 * time.Second,
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		panic(err) // only on an invalid static configuration
	}
	return c
}

var consulBin struct {
	once sync.Once
	path string
	err  error
}

// ConsulBinary returns the path of the Consul binary: $REGIONDNS_CONSUL_BIN if
// set, else <repo>/.cache/bin/consul, built from the e2e module's tool
// dependency when missing (about three minutes, once).
func ConsulBinary(t testing.TB) string {
	t.Helper()
	consulBin.once.Do(func() {
		if p := os.Getenv("REGIONDNS_CONSUL_BIN"); p != "" {
			consulBin.path = p
			if _, err := os.Stat(p); err != nil {
				consulBin.err = fmt.Errorf("REGIONDNS_CONSUL_BIN: %w", err)
			}
			return
		}
		root, err := repoRoot()
		if err != nil {
			consulBin.err = err
			return
		}
		consulBin.path = filepath.Join(root, ".cache", "bin", "consul")
		if _, err := os.Stat(consulBin.path); err == nil {
			return
		}
		t.Logf("building %s (takes a few minutes)", consulBin.path)
		cmd := exec.Command("go", "build", "-o", consulBin.path, "github.com/hashicorp/consul")
		cmd.Dir = filepath.Join(root, "e2e")
		if out, err := cmd.CombinedOutput(); err != nil {
			consulBin.err = fmt.Errorf("go build consul: %w\n%s", err, out)
		}
	})
	if consulBin.err != nil {
		t.Fatal(consulBin.err)
	}
	return consulBin.path
}
