package patroni_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/regiondns/regiondns/e2e"
)

// Patroni timings, tuned for fast tests. Patroni 3.0.2 validates none of
// them; its own rule is ttl >= loop_wait + 2*retry_timeout (2 + 2*3 <= 10).
// Patroni creates its Consul session with ttl/2 (Consul expires a session
// after twice its TTL), 5 s here, below Consul's default session_ttl_min of
// 10 s: the agents run with session_ttl_min 1s (see startEnv).
const (
	patroniTTL          = 10
	patroniLoopWait     = 2
	patroniRetryTimeout = 3
	serviceCheckEvery   = "1s" // consul.service_check_interval, 5s by default
)

// Binaries of the Debian packages.
const (
	patroniBin    = "/usr/bin/patroni"
	patronictlBin = "/usr/bin/patronictl"
	pgbouncerBin  = "/usr/sbin/pgbouncer"
	pgBinDir      = "/usr/lib/postgresql/15/bin"
)

// member is one Patroni member (and its PostgreSQL) on a Consul node of its
// own.
type member struct {
	Name   string
	Region string // main or standby
	Addr   string // PostgreSQL's and the REST API's address
	Agent  *e2e.Agent
	Dir    string // owned by postgres: config, data, logs, sockets
	Cfg    string // patroni.yml
	// NoFailover is Patroni's nofailover tag: the member never becomes the
	// leader by itself (a switchover cannot pick it either).
	NoFailover bool
	// Scope is the member's Patroni scope; empty, the environment's.
	Scope string
	// DCS is added to the bootstrap's dynamic configuration.
	DCS map[string]any

	e    *env
	proc *proc
}

// DataDir is PostgreSQL's data directory.
func (m *member) DataDir() string { return filepath.Join(m.Dir, "data") }

// APIURL is the REST API's base URL.
func (m *member) APIURL() string { return fmt.Sprintf("http://%s:%d", m.Addr, m.e.apiPort) }

// writeConfig writes patroni.yml (JSON, which is YAML). upstream is the main
// member a standby cluster replicates from, nil in the main region.
func (m *member) writeConfig(t *testing.T, upstream *member) {
	t.Helper()
	e := m.e
	dcs := map[string]any{
		"ttl": patroniTTL, "loop_wait": patroniLoopWait, "retry_timeout": patroniRetryTimeout,
		"maximum_lag_on_failover": 16 << 20,
		"postgresql": map[string]any{
			"use_pg_rewind": true, "use_slots": true,
			"parameters": map[string]any{
				"max_connections": 40, "shared_buffers": "16MB", "wal_level": "replica",
				"hot_standby": "on", "max_wal_senders": 8, "max_replication_slots": 8,
				"wal_keep_size": "128MB", "fsync": "off", "synchronous_commit": "off",
				"autovacuum": "off",
			},
		},
	}
	for k, v := range m.DCS {
		dcs[k] = v
	}
	if upstream != nil {
		dcs["standby_cluster"] = map[string]any{
			"host": upstream.Addr, "port": e.pgPort, "create_replica_methods": []string{"basebackup"},
		}
	}
	auth := map[string]any{"username": "postgres", "password": "postgres"}
	memberScope := scope
	if m.Scope != "" {
		memberScope = m.Scope
	}
	cfg := map[string]any{
		"scope": memberScope, "name": m.Name,
		"log":  map[string]any{"level": "INFO"},
		"tags": map[string]any{"nofailover": m.NoFailover},
		"restapi": map[string]any{
			"listen":          fmt.Sprintf("%s:%d", m.Addr, e.apiPort),
			"connect_address": fmt.Sprintf("%s:%d", m.Addr, e.apiPort),
		},
		"consul": map[string]any{
			"host": m.Agent.HTTPAddr(), "register_service": true,
			"service_check_interval": serviceCheckEvery,
		},
		"bootstrap": map[string]any{
			"dcs":    dcs,
			"initdb": []any{map[string]any{"encoding": "UTF8"}, map[string]any{"locale": "C"}, "no-sync"},
		},
		"postgresql": map[string]any{
			"listen":          fmt.Sprintf("%s:%d", m.Addr, e.pgPort),
			"connect_address": fmt.Sprintf("%s:%d", m.Addr, e.pgPort),
			"data_dir":        m.DataDir(),
			"bin_dir":         pgBinDir,
			"pgpass":          filepath.Join(m.Dir, "pgpass"),
			"authentication": map[string]any{
				"superuser":   auth,
				"rewind":      auth,
				"replication": map[string]any{"username": "replicator", "password": "replicator"},
			},
			"parameters": map[string]any{
				"unix_socket_directories": m.Dir,
				"logging_collector":       "on",
				"log_directory":           filepath.Join(m.Dir, "pglog"),
				"log_filename":            "postgresql.log",
			},
			"pg_hba": []string{
				"local all all trust",
				"host all all 127.0.0.0/8 trust",
				"host replication all 127.0.0.0/8 trust",
			},
			"basebackup": []any{map[string]any{"checkpoint": "fast"}},
		},
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	e.pg.writeFile(t, m.Cfg, string(b)+"\n", 0o600)
}

// start starts Patroni (which starts PostgreSQL).
func (m *member) start(t *testing.T) {
	t.Helper()
	m.proc = startProc(t, m.e.pg, "patroni "+m.Name, filepath.Join(m.Dir, "patroni.log"),
		filepath.Join(m.Dir, "patroni.proc.pid"), patroniBin, m.Cfg)
}

// stop stops Patroni gracefully (SIGTERM: it stops PostgreSQL, gives up the
// leader key and deregisters), killing both after 30 s.
func (m *member) stop(t *testing.T) {
	t.Helper()
	if m.proc == nil || !m.proc.running() {
		return
	}
	if !m.proc.stop(syscall.SIGTERM, 30*time.Second) {
		t.Errorf("patroni %s did not stop within 30 s of SIGTERM; killed", m.Name)
	}
	killPostmaster(m.DataDir())
}

// crash kills Patroni and PostgreSQL with SIGKILL, as a machine failure.
func (m *member) crash() {
	if m.proc != nil {
		m.proc.kill()
	}
	killPostmaster(m.DataDir())
}

// status is the part of Patroni's REST API /patroni answer the tests read.
type status struct {
	State    string `json:"state"`
	Role     string `json:"role"`
	Timeline int    `json:"timeline"`
}

// IsLeader reports whether the role is a read-write leader's.
func (s status) IsLeader() bool { return s.Role == "master" || s.Role == "primary" }

var restClient = &http.Client{Timeout: 2 * time.Second}

// status reads the member's REST API.
func (m *member) status() (status, error) {
	var st status
	resp, err := restClient.Get(m.APIURL() + "/patroni")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

// waitRole waits until the member runs PostgreSQL in role (master, replica,
// standby_leader).
func (m *member) waitRole(t *testing.T, timeout time.Duration, role string) status {
	t.Helper()
	var st status
	e2e.WaitFor(t, timeout, func() (bool, string) {
		var err error
		st, err = m.status()
		if err != nil {
			return false, fmt.Sprintf("%s REST API: %v", m.Name, err)
		}
		if st.State != "running" || st.Role != role {
			return false, fmt.Sprintf("%s is %s %s, want running %s", m.Name, st.State, st.Role, role)
		}
		return true, ""
	})
	return st
}

// patronictl runs patronictl with the member's configuration.
func (m *member) patronictl(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, patronictlBin, append([]string{"-c", m.Cfg}, args...)...)
	cmd.Env = []string{"PATH=" + sysPath, "HOME=" + m.Dir, "LANG=C.UTF-8"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("patronictl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// zoneCheckPeriod is PgBouncer's dns_zone_check_period in seconds:
// $REGIONDNS_PATRONI_ZONE_CHECK, 1 by default (0 turns the check off, as
// PgBouncer's own default does; PgBouncer takes fractions of a second).
func zoneCheckPeriod() string {
	if v, err := strconv.ParseFloat(os.Getenv("REGIONDNS_PATRONI_ZONE_CHECK"), 64); err == nil && v >= 0 {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return "1"
}

// recipeFile is the PgBouncer configuration the README recommends.
const recipeFile = "../../deploy/pgbouncer/pgbouncer.ini"

// recipeOwn are the settings of recipeFile that describe a deployment, not
// how PgBouncer follows regiondns: the test sets its own.
var recipeOwn = map[string]bool{
	"listen_addr": true, "listen_port": true, "auth_type": true, "auth_file": true,
	"resolv_conf": true, "logfile": true, "pidfile": true, "unix_socket_dir": true, "admin_users": true,
}

// recipe returns the [pgbouncer] settings of recipeFile, as "key = value"
// lines, but the deployment's own (recipeOwn), with dns_zone_check_period
// replaced by zoneCheckPeriod: every PgBouncer of the test runs the recipe
// and PgBouncer's defaults otherwise, so that the figures are what users of
// the recipe get.
func recipe(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(recipeFile)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	section, zoneCheck := "", false
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, ";") {
			continue
		}
		if strings.HasPrefix(line, "[") {
			section = line
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || section != "[pgbouncer]" || recipeOwn[k] {
			continue
		}
		if k == "dns_zone_check_period" {
			v, zoneCheck = zoneCheckPeriod(), true
		}
		fmt.Fprintf(&out, "%s = %s\n", k, v)
	}
	if !zoneCheck {
		t.Fatalf("%s sets no dns_zone_check_period", recipeFile)
	}
	return out.String()
}

// recipeSummary is recipe on one line, for the results.
func recipeSummary(t *testing.T) string {
	return strings.Join(strings.Split(strings.TrimSpace(recipe(t)), "\n"), ", ")
}

// bouncer is one PgBouncer process and its Consul service.
type bouncer struct {
	Name    string // also the directory name
	Addr    string
	Port    int
	Backend string // host= of its only database, "postgres"
	Service string // Consul service name
	Agent   *e2e.Agent
	Dir     string

	e    *env
	proc *proc
}

// start writes the configuration, starts PgBouncer, waits until it accepts
// connections and registers its Consul service with a TCP check.
func (b *bouncer) start(t *testing.T) {
	t.Helper()
	e := b.e
	e.pg.mkdir(t, b.Dir)
	ini := filepath.Join(b.Dir, "pgbouncer.ini")
	userlist := filepath.Join(b.Dir, "userlist.txt")
	resolv := filepath.Join(b.Dir, "resolv.conf")
	e.pg.writeFile(t, userlist, "\"postgres\" \"\"\n", 0o600)
	// c-ares (PgBouncer's resolver) reads this instead of /etc/resolv.conf.
	e.pg.writeFile(t, resolv, fmt.Sprintf("nameserver %s\noptions timeout:1 attempts:2\n", regiondnsIP), 0o644)
	cfg := fmt.Sprintf(`[databases]
postgres = host=%s port=%d dbname=postgres user=postgres

[pgbouncer]
listen_addr = %s
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
admin_users = postgres
logfile = %s
pidfile = %s
resolv_conf = %s
; The recipe of deploy/pgbouncer/pgbouncer.ini, every other setting at
; PgBouncer's default:
%s`, b.Backend, e.pgPort, b.Addr, b.Port, userlist,
		filepath.Join(b.Dir, "pgbouncer.log"), filepath.Join(b.Dir, "pgbouncer.pid"), resolv, recipe(t))
	e.pg.writeFile(t, ini, cfg, 0o644)
	b.proc = startProc(t, e.pg, "pgbouncer "+b.Name, filepath.Join(b.Dir, "stderr.log"),
		filepath.Join(b.Dir, "pgbouncer.proc.pid"), pgbouncerBin, ini)
	e2e.WaitFor(t, 10*time.Second, func() (bool, string) {
		if !b.proc.running() {
			t.Fatalf("pgbouncer %s exited:\n%s\n%s", b.Name, b.proc.logTail(4096), tailFile(filepath.Join(b.Dir, "pgbouncer.log"), 4096))
		}
		c, err := net.DialTimeout("tcp", b.HostPort(), time.Second)
		if err != nil {
			return false, fmt.Sprintf("pgbouncer %s: %v", b.Name, err)
		}
		c.Close()
		return true, ""
	})
	err := b.Agent.API().Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: b.Name, Name: b.Service, Address: b.Addr, Port: b.Port,
		Check: &api.AgentServiceCheck{TCP: b.HostPort(), Interval: "1s", Timeout: "1s"},
	})
	if err != nil {
		t.Fatalf("register %s: %v", b.Name, err)
	}
}

// HostPort is the address clients connect to.
func (b *bouncer) HostPort() string { return net.JoinHostPort(b.Addr, strconv.Itoa(b.Port)) }

// logTail returns the end of PgBouncer's log.
func (b *bouncer) logTail() string {
	return tailFile(filepath.Join(b.Dir, "pgbouncer.log"), 8<<10) + b.proc.logTail(2<<10)
}

// removeAllFiles is os.RemoveAll that reports instead of failing.
func removeAllFiles(t *testing.T, dir string) {
	if err := os.RemoveAll(dir); err != nil {
		t.Logf("remove %s: %v", dir, err)
	}
}
