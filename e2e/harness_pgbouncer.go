package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// DefaultBouncerService is the bouncer-per-node service name regiondns
// expects by default.
const DefaultBouncerService = "pgbouncer"

// BouncerSpec describes a PgBouncer instance to register.
type BouncerSpec struct {
	// Service is the Consul service name: "pgbouncer" by default on a
	// member's node; "<cluster>-pgbouncer-rw" or "-ro" for a pool fleet.
	Service string
	// ID is the service ID (default "<service>-<index>", or the service name
	// on a member's node).
	ID string
	// Address is the bouncer's address (default: the member's, or 127.0.0.1).
	Address string
	// Port is the bouncer's port (default 6432 + index).
	Port int
	// Tags are the service tags.
	Tags []string
	// Via says how a pool instance is registered: OnNode (the default) gives
	// it a node of its own, "<id>-node", as a fleet of PgBouncer hosts has;
	// OnAgent puts it on the agent's node with an HTTP check the agent runs.
	// Ignored on a member's node.
	Via Registration
}

// Bouncer is one emulated PgBouncer instance with a health endpoint its
// Consul check reads. Its methods fail the test that registered it.
type Bouncer struct {
	// Service, ID, Address and Port are as registered.
	Service, ID, Address string
	Port                 int
	// Node is the Consul node the service is on.
	Node string

	t       testing.TB
	svc     *consulService
	tags    []string
	health  *httptest.Server
	healthy atomic.Bool
}

// RegisterBouncerOnNode registers the bouncer-per-node PgBouncer of member m:
// a service on m's Consul node (m must be registered OnNode), port 6432 + the
// member's index unless spec says otherwise, with its own check.
func RegisterBouncerOnNode(t testing.TB, m *PatroniMember, spec BouncerSpec) *Bouncer {
	t.Helper()
	if m.Via != OnNode {
		t.Fatalf("bouncer-per-node needs member %s registered OnNode (its own Consul node)", m.Name)
	}
	spec.Service = orDefault(spec.Service, DefaultBouncerService)
	spec.ID = orDefault(spec.ID, spec.Service)
	spec.Address = orDefault(spec.Address, m.Address)
	spec.Port = orDefault(spec.Port, 6432+m.Index)
	return registerBouncer(t, &consulService{
		agent: m.Agent, via: OnNode, node: m.NodeName(), nodeAddr: m.Address,
		id: spec.ID, name: spec.Service, address: spec.Address, port: spec.Port,
	}, spec.Tags)
}

// RegisterPool registers one instance of a pool-fleet service
// (spec.Service, for example "ledger-pgbouncer-rw") through agent.
func RegisterPool(t testing.TB, agent *Agent, spec BouncerSpec) *Bouncer {
	t.Helper()
	if spec.Service == "" {
		t.Fatal("RegisterPool needs BouncerSpec.Service")
	}
	idx := agent.nextIndex()
	spec.ID = orDefault(spec.ID, fmt.Sprintf("%s-%d", spec.Service, idx))
	spec.Address = orDefault(spec.Address, "127.0.0.1")
	spec.Port = orDefault(spec.Port, 6432+idx)
	spec.Via = orDefault(spec.Via, OnNode)
	node := agent.Name
	if spec.Via == OnNode {
		node = spec.ID + "-node"
	}
	return registerBouncer(t, &consulService{
		agent: agent, via: spec.Via, node: node, nodeAddr: spec.Address,
		id: spec.ID, name: spec.Service, address: spec.Address, port: spec.Port,
	}, spec.Tags)
}

func registerBouncer(t testing.TB, svc *consulService, tags []string) *Bouncer {
	t.Helper()
	b := &Bouncer{
		Service: svc.name, ID: svc.id, Address: svc.address, Port: svc.port, Node: svc.node,
		t: t, svc: svc, tags: tags,
	}
	b.healthy.Store(true)
	b.health = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if b.healthy.Load() {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(b.health.Close)
	b.register()
	return b
}

// SetHealthy flips the bouncer's health endpoint (on a node: its check).
func (b *Bouncer) SetHealthy(healthy bool) {
	b.t.Helper()
	b.healthy.Store(healthy)
	if b.svc.via == OnNode {
		b.register()
	}
}

// Deregister removes the bouncer's service.
func (b *Bouncer) Deregister() {
	b.t.Helper()
	if err := b.svc.deregister(); err != nil {
		b.t.Fatalf("deregister %s: %v", b.ID, err)
	}
}

// WaitCheck waits until Consul reports the bouncer's check with status.
func (b *Bouncer) WaitCheck(timeout time.Duration, status string) {
	b.t.Helper()
	WaitFor(b.t, timeout, func() (bool, string) { return b.svc.checkIs(status) })
}

func (b *Bouncer) register() {
	b.t.Helper()
	if err := b.svc.register(b.tags, b.health.URL+"/health", b.healthy.Load()); err != nil {
		b.t.Fatalf("register %s: %v", b.ID, err)
	}
}

// consulService is one service registration with one HTTP check: on an agent,
// which runs the check, or on a catalog node, whose check status the harness
// sets (see Registration).
type consulService struct {
	agent    *Agent
	via      Registration
	node     string // the Consul node: the agent's, or a catalog node
	nodeAddr string
	id, name string
	address  string
	port     int
}

// checkID is the ID Consul gives a service's only check.
func (s *consulService) checkID() string { return "service:" + s.id }

// register (re-)registers the service and its check against checkURL;
// passing is the status of a catalog check (an agent runs its own).
func (s *consulService) register(tags []string, checkURL string, passing bool) error {
	if s.via == OnAgent {
		return s.agent.API().Agent().ServiceRegister(&api.AgentServiceRegistration{
			ID: s.id, Name: s.name, Tags: tags, Address: s.address, Port: s.port,
			EnableTagOverride: true,
			Check: &api.AgentServiceCheck{
				HTTP: checkURL, Interval: checkInterval, DeregisterCriticalServiceAfter: deregisterAfter,
			},
		})
	}
	status, output := api.HealthCritical, "HTTP GET "+checkURL+": 503 Service Unavailable"
	if passing {
		status, output = api.HealthPassing, "HTTP GET "+checkURL+": 200 OK"
	}
	_, err := s.agent.API().Catalog().Register(&api.CatalogRegistration{
		Node: s.node, Address: s.nodeAddr, Datacenter: s.agent.Datacenter,
		Service: &api.AgentService{
			ID: s.id, Service: s.name, Tags: tags, Address: s.address, Port: s.port,
			EnableTagOverride: true,
		},
		Checks: api.HealthChecks{{
			Node: s.node, CheckID: s.checkID(), Name: fmt.Sprintf("Service '%s' check", s.name),
			Status: status, Output: output, ServiceID: s.id, ServiceName: s.name, Type: "http",
			Definition: api.HealthCheckDefinition{
				HTTP: checkURL, IntervalDuration: time.Second, DeregisterCriticalServiceAfterDuration: 150 * time.Second,
			},
		}},
	}, nil)
	return err
}

// deregister removes the service (and its check), keeping the node.
func (s *consulService) deregister() error {
	if s.via == OnAgent {
		return s.agent.API().Agent().ServiceDeregister(s.id)
	}
	_, err := s.agent.API().Catalog().Deregister(&api.CatalogDeregistration{
		Node: s.node, ServiceID: s.id, Datacenter: s.agent.Datacenter,
	}, nil)
	return err
}

// checkIs reports whether the catalog (what regiondns reads) has the
// service's check with status.
func (s *consulService) checkIs(status string) (bool, string) {
	checks, _, err := s.agent.API().Health().Checks(s.name, nil)
	if err != nil {
		return false, fmt.Sprintf("health checks of %s: %v", s.name, err)
	}
	for _, c := range checks {
		if c.Node == s.node && c.ServiceID == s.id && c.CheckID == s.checkID() {
			if c.Status == status {
				return true, ""
			}
			return false, fmt.Sprintf("check %s on %s is %s, want %s (output %q)", c.CheckID, s.node, c.Status, status, c.Output)
		}
	}
	return false, fmt.Sprintf("no check %s on node %s yet", s.checkID(), s.node)
}
