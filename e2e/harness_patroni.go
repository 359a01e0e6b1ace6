package e2e

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// Role is a Patroni member role as Patroni 3.x writes it in its member key.
type Role string

// The roles of a Patroni 3.x member.
const (
	RoleLeader        Role = "master"
	RoleReplica       Role = "replica"
	RoleStandbyLeader Role = "standby_leader"
)

// Registration says where a member's (or a bouncer's) service lives in Consul.
//
// OnAgent is how Patroni does it: the service and an HTTP check are registered
// on a Consul agent, and the agent runs the check against the member's REST
// API, so Consul health follows the REST answer within a check interval. It is
// the default, and the right choice for the direct and pool-fleet layouts,
// where only the member's own service matters. On loopback several members
// share one agent and therefore one Consul node.
//
// OnNode gives each member a Consul node of its own ("<member>-node") through
// the catalog API, because one machine cannot run an agent per member. The
// bouncer-per-node layout needs it: a member's PgBouncer is the "pgbouncer"
// service on the member's node. No agent runs catalog checks, so the harness
// sets the check status itself on every change, as the HTTP check would (at
// once instead of within an interval).
type Registration int

// The two ways of registering a service. The zero Registration picks the
// default of the kind: OnAgent for a member, OnNode for a pool instance.
const (
	OnAgent Registration = iota + 1
	OnNode
)

// Patroni 3.x registration constants; only the check interval is faster.
const (
	checkInterval   = "1s"     // Patroni: service_check_interval, 5s by default
	deregisterAfter = "150.0s" // Patroni: ttl/2*10 with ttl 30, formatted by Python
	sessionTTL      = "15.0s"  // Patroni: ttl/2 (Consul doubles it)
	sessionRenew    = 5 * time.Second
	patroniVersion  = "3.0.2"
)

// MemberSpec describes a Patroni member to register.
type MemberSpec struct {
	// Scope is the Patroni scope (cluster name).
	Scope string
	// Name is the member name.
	Name string
	// Address is PostgreSQL's address (default 127.0.0.1); nothing needs to
	// listen there.
	Address string
	// Port is PostgreSQL's port (default 5432).
	Port int
	// Role is the member's initial role (default replica).
	Role Role
	// Timeline is the initial timeline (default 1).
	Timeline int
	// ServiceTags are Patroni's static service_tags.
	ServiceTags []string
	// Via says how the service is registered (default OnAgent).
	Via Registration
	// StandbyHost is the host the standby_cluster section of a standby
	// leader's config points at (default "127.0.0.1").
	StandbyHost string
}

// PatroniMember is one emulated Patroni member: a REST API (an httptest
// server answering the health endpoints by role), a Consul service and the KV
// keys under service/<scope>/. Its methods fail the test that registered it.
type PatroniMember struct {
	// Scope and Name identify the member.
	Scope, Name string
	// Agent is the Consul agent the member registers through.
	Agent *Agent
	// Address and Port are PostgreSQL's.
	Address string
	Port    int
	// Via says how the service is registered.
	Via Registration
	// Index is the member's sequence number on its agent, from 1.
	Index int

	t           testing.TB
	api         *httptest.Server
	svc         *consulService
	tags        []string // static service_tags, sorted as Patroni does
	standbyHost string

	mu       sync.Mutex // guards the fields below; the REST API reads them
	role     Role
	healthy  bool
	timeline int
	xlog     int64
	session  string
	stop     chan struct{} // closed on Deregister: stops session renewal
	// replicationState is what a replica's member key says
	// (replication_state; "" leaves it out, as Patroni before 3.1 does);
	// noLoadBalance is its noloadbalance tag.
	replicationState string
	noLoadBalance    bool
}

// ServiceName, the Consul service name Patroni registers for a scope, is
// regiondns's own (zones.ServiceName), copied: the e2e module does not
// import regiondns, whose dependencies would change the versions the
// Consul it builds is compiled with. TestServiceNameIsZones keeps the copy
// exact.
//go:generate sh -c "{ echo '// Code generated from ../zones/service_name.go by go generate; DO NOT EDIT.'; echo; sed 's/^package zones$/package e2e/' ../zones/service_name.go; } > harness_service_name.go"

// RegisterMember registers a member the way spec.Via says.
func RegisterMember(t testing.TB, agent *Agent, spec MemberSpec) *PatroniMember {
	t.Helper()
	m := newMember(t, agent, spec)
	m.register()
	return m
}

// RegisterOnAgent registers a member exactly as Patroni does: on agent, with
// an HTTP check against its REST API.
func RegisterOnAgent(t testing.TB, agent *Agent, spec MemberSpec) *PatroniMember {
	t.Helper()
	spec.Via = OnAgent
	return RegisterMember(t, agent, spec)
}

// RegisterOnNode registers a member on a Consul node of its own
// ("<member>-node") through agent's catalog API; see Registration.
func RegisterOnNode(t testing.TB, agent *Agent, spec MemberSpec) *PatroniMember {
	t.Helper()
	spec.Via = OnNode
	return RegisterMember(t, agent, spec)
}

func newMember(t testing.TB, agent *Agent, spec MemberSpec) *PatroniMember {
	if spec.Scope == "" || spec.Name == "" {
		t.Fatalf("MemberSpec needs Scope and Name, got %+v", spec)
	}
	m := &PatroniMember{
		Scope: spec.Scope, Name: spec.Name, Agent: agent,
		Address: orDefault(spec.Address, "127.0.0.1"), Port: orDefault(spec.Port, 5432),
		Via: orDefault(spec.Via, OnAgent), Index: agent.nextIndex(), t: t,
		tags:        slices.Sorted(slices.Values(spec.ServiceTags)),
		standbyHost: orDefault(spec.StandbyHost, "127.0.0.1"),
		role:        orDefault(spec.Role, RoleReplica), healthy: true,
		timeline: orDefault(spec.Timeline, 1), xlog: 50331648,
		stop: make(chan struct{}), replicationState: "streaming",
	}
	m.api = httptest.NewServer(http.HandlerFunc(m.serveREST))
	m.svc = &consulService{
		agent: agent, via: m.Via, node: m.NodeName(), nodeAddr: m.Address,
		id: m.ServiceID(), name: m.ServiceName(), address: m.Address, port: m.Port,
	}
	t.Cleanup(func() {
		m.stopRenewal()
		m.api.Close()
	})
	return m
}

// ServiceName returns the member's Consul service name.
func (m *PatroniMember) ServiceName() string { return ServiceName(m.Scope) }

// ServiceID returns the member's Consul service ID, "<scope>/<member>".
func (m *PatroniMember) ServiceID() string { return m.Scope + "/" + m.Name }

// NodeName returns the Consul node the member's service is on.
func (m *PatroniMember) NodeName() string {
	if m.Via == OnNode {
		return m.Name + "-node"
	}
	return m.Agent.Name
}

// APIURL returns the member's REST API URL as Patroni writes it in api_url.
func (m *PatroniMember) APIURL() string { return m.api.URL + "/patroni" }

// Role returns the member's current role.
func (m *PatroniMember) Role() Role {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.role
}

// Timeline returns the member's current timeline.
func (m *PatroniMember) Timeline() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.timeline
}

// SetHealthy makes the REST API answer the member's role endpoint with 200
// (healthy) or 503; the Consul check follows.
func (m *PatroniMember) SetHealthy(healthy bool) {
	m.t.Helper()
	m.mu.Lock()
	m.healthy = healthy
	m.mu.Unlock()
	if m.Via == OnNode {
		m.registerService()
	}
}

// Promote makes the member the leader on timeline, in Patroni's order: the
// standby_cluster section leaves the config (a standby cluster's promotion),
// the member takes the leader key (from whoever holds it), PostgreSQL is
// promoted (the REST API answers /master), then touch_member re-registers
// the service with the leader tags and a /master check and only after that
// writes the member key with the new role and timeline. A watcher can
// therefore see the leader tags with the old timeline for a moment, as with
// real Patroni. History and status follow.
func (m *PatroniMember) Promote(timeline int) {
	m.t.Helper()
	m.putJSON("config", patroniConfig(""))
	m.TakeLeaderKey()
	m.mu.Lock()
	old := m.timeline
	m.role, m.timeline = RoleLeader, timeline
	m.xlog += 1 << 20
	xlog := m.xlog
	m.mu.Unlock()
	m.registerService()
	m.putMemberKey()
	m.appendHistory(old, xlog)
	m.putJSON("status", map[string]any{"optime": xlog})
}

// RejoinAsStandby makes the member's cluster a standby cluster again, as an
// operator does to end a split brain: standby_cluster (replicating from
// host) goes back into the config, and the member steps down from leader to
// standby leader, which holds the standby cluster's leader key as Patroni's
// does (re-registered with the standby-leader tag and check).
func (m *PatroniMember) RejoinAsStandby(host string) {
	m.t.Helper()
	m.putJSON("config", patroniConfig(host))
	m.TakeLeaderKey()
	m.mu.Lock()
	m.role = RoleStandbyLeader
	m.mu.Unlock()
	m.registerService()
	m.putMemberKey()
}

// Demote makes the member a replica, in Patroni's order: it releases the
// leader key if it holds it, then re-registers with the replica tag and a
// /replica check, then writes the member key.
func (m *PatroniMember) Demote() {
	m.t.Helper()
	m.releaseLeaderKey()
	m.mu.Lock()
	m.role = RoleReplica
	m.mu.Unlock()
	m.registerService()
	m.putMemberKey()
}

// Deregister removes the member as Patroni does when PostgreSQL stops: the
// service goes, and the session (with the member key, and the leader key if
// held) is destroyed.
func (m *PatroniMember) Deregister() {
	m.t.Helper()
	if err := m.svc.deregister(); err != nil {
		m.t.Fatalf("deregister %s: %v", m.ServiceID(), err)
	}
	m.releaseLeaderKey()
	m.stopRenewal()
	m.mu.Lock()
	session := m.session
	m.session = ""
	m.mu.Unlock()
	if session != "" {
		if _, err := m.Agent.API().Session().Destroy(session, nil); err != nil {
			m.t.Fatalf("destroy session of %s: %v", m.ServiceID(), err)
		}
	}
}

// WaitCheck waits until Consul reports the member's service check with
// status (api.HealthPassing, api.HealthCritical, ...) through its agent.
func (m *PatroniMember) WaitCheck(timeout time.Duration, status string) {
	m.t.Helper()
	WaitFor(m.t, timeout, func() (bool, string) { return m.svc.checkIs(status) })
}

// register creates the session, writes the cluster keys and takes the leader
// key for a leader or standby leader, then registers the service and writes
// the member key, in Patroni's order.
func (m *PatroniMember) register() {
	m.t.Helper()
	if m.Via == OnNode {
		m.registerService() // the session is bound to the member's node
	}
	m.createSession()
	if role := m.Role(); role != RoleReplica {
		standby := ""
		if role == RoleStandbyLeader {
			standby = m.standbyHost
		}
		// Patroni writes initialize once, at bootstrap; cas=0 keeps the first.
		_, _, _ = m.Agent.API().KV().CAS(&api.KVPair{Key: m.key("initialize"), Value: []byte("7300000000000000001")}, nil)
		m.putJSON("config", patroniConfig(standby))
		m.put("history", "[]")
		m.putJSON("status", map[string]any{"optime": m.xlog})
		m.TakeLeaderKey()
	}
	if m.Via == OnAgent {
		m.registerService()
	}
	m.putMemberKey() // touch_member: the service first, then the member key
}

// registerService (re-)registers the service with the current role's tags
// and check, as Patroni's _update_service does.
func (m *PatroniMember) registerService() {
	m.t.Helper()
	m.mu.Lock()
	path := "/" + strings.ReplaceAll(string(m.role), "_", "-")
	tags := append(slices.Clone(m.tags), path[1:])
	if m.role == RoleLeader {
		tags = append(tags, "primary")
	}
	m.mu.Unlock()
	if err := m.svc.register(tags, m.api.URL+path, m.restStatus(path) == http.StatusOK); err != nil {
		m.t.Fatalf("register service %s: %v", m.ServiceID(), err)
	}
}

// serveREST emulates the health endpoints of Patroni's REST API.
func (m *PatroniMember) serveREST(w http.ResponseWriter, r *http.Request) {
	code := m.restStatus(r.URL.Path)
	m.mu.Lock()
	body := map[string]any{
		"state": "running", "role": string(m.role), "timeline": m.timeline,
		"patroni": map[string]any{"version": patroniVersion, "scope": m.Scope, "name": m.Name},
	}
	if !m.healthy {
		body["state"] = "stopped"
	}
	m.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

// restStatus returns the status code Patroni's REST API answers path with.
func (m *PatroniMember) restStatus(path string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ok bool
	switch path {
	case "/liveness", "/patroni":
		return http.StatusOK
	case "/", "/master", "/primary", "/read-write":
		ok = m.role == RoleLeader
	case "/standby-leader", "/standby_leader":
		ok = m.role == RoleStandbyLeader
	case "/leader":
		ok = m.role == RoleLeader || m.role == RoleStandbyLeader
	case "/replica":
		ok = m.role == RoleReplica
	case "/read-only", "/health", "/readiness":
		ok = true
	default:
		return http.StatusNotFound
	}
	if ok && m.healthy {
		return http.StatusOK
	}
	return http.StatusServiceUnavailable
}

// orDefault returns v, or def when v is the zero value.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
