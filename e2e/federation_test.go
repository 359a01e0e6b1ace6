package e2e

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/miekg/dns"
)

// TestFederationStarts checks the harness against real Consul: the two
// datacenters federate, Patroni members land in Consul as Patroni puts them
// there, health follows the emulated REST API, and one datacenter is
// readable through the other's agents.
func TestFederationStarts(t *testing.T) {
	start := time.Now()
	f := StartFederation(t, FederationOptions{ClientAgents: true})
	t.Logf("federation up in %s", time.Since(start).Round(time.Millisecond))

	// Members register on the servers (the Patroni nodes' agents); the
	// clients are what regiondns would talk to.
	leader := RegisterOnAgent(t, f.DC1.Server, MemberSpec{Scope: "Orders_Main", Name: "pg1", Address: "127.0.0.11", Role: RoleLeader})
	replica := RegisterOnAgent(t, f.DC1.Server, MemberSpec{Scope: "Orders_Main", Name: "pg2", Address: "127.0.0.12"})
	standby := RegisterOnAgent(t, f.DC2.Server, MemberSpec{Scope: "orders-standby", Name: "pg3", Address: "127.0.0.13", Role: RoleStandbyLeader})
	for _, m := range []*PatroniMember{leader, replica, standby} {
		m.WaitCheck(10*time.Second, api.HealthPassing)
	}
	if got := leader.ServiceName(); got != "orders-main" {
		t.Fatalf("service name of scope Orders_Main = %q, want orders-main", got)
	}

	t.Run("registration is Patroni's", func(t *testing.T) {
		entries, _, err := f.DC1.Client.API().Health().Service("orders-main", "", true, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string][]string{"Orders_Main/pg1": {"master", "primary"}, "Orders_Main/pg2": {"replica"}}
		if len(entries) != len(want) {
			t.Fatalf("passing instances = %d, want %d", len(entries), len(want))
		}
		for _, e := range entries {
			if tags, ok := want[e.Service.ID]; !ok || !slices.Equal(e.Service.Tags, tags) {
				t.Errorf("service %s tags %v, want %v", e.Service.ID, e.Service.Tags, tags)
			}
			if e.Service.Port != 5432 || !e.Service.EnableTagOverride {
				t.Errorf("service %s port %d tag override %v, want 5432 and true", e.Service.ID, e.Service.Port, e.Service.EnableTagOverride)
			}
		}
		checks, _, err := f.DC2.Server.API().Health().Checks("orders-standby", nil)
		if err != nil || len(checks) != 1 {
			t.Fatalf("checks of orders-standby: %v, %v", checks, err)
		}
		// An agent's check keeps its definition to itself; its output names
		// the URL it polls.
		wantOut := "HTTP GET " + standby.api.URL + "/standby-leader: 200 OK"
		if c := checks[0]; c.Type != "http" || !strings.HasPrefix(c.Output, wantOut) {
			t.Errorf("standby leader check %s output %q, want an http check starting %q", c.Type, c.Output, wantOut)
		}

		kv := f.DC1.Server.API().KV()
		lk, _, err := kv.Get("service/Orders_Main/leader", nil)
		if err != nil || lk == nil || string(lk.Value) != "pg1" || lk.Session == "" {
			t.Fatalf("leader key %+v (err %v), want pg1 bound to a session", lk, err)
		}
		mk, _, err := kv.Get("service/Orders_Main/members/pg2", nil)
		if err != nil || mk == nil {
			t.Fatalf("member key of pg2: %v", err)
		}
		var member struct {
			Role, State, ConnURL string
			Timeline             int
		}
		if err := json.Unmarshal(mk.Value, &member); err != nil || member.Role != "replica" || member.State != "running" || member.Timeline != 1 {
			t.Errorf("member key of pg2 %s (err %v)", mk.Value, err)
		}
		cfg, _, err := f.DC2.Server.API().KV().Get("service/orders-standby/config", nil)
		if err != nil || cfg == nil || !json.Valid(cfg.Value) || !bytes.Contains(cfg.Value, []byte(`"standby_cluster"`)) {
			t.Errorf("standby config %v (err %v), want a standby_cluster section", cfg, err)
		}
	})

	t.Run("consul DNS", func(t *testing.T) {
		dc1 := f.DC1.Client.DNSAddr()
		srv := Query(t, dc1, "orders-main.service.dc1.consul", dns.TypeSRV, false)
		if len(srv.Answer) != 2 {
			t.Errorf("SRV orders-main.service.dc1.consul: %v, want 2 answers", srv.Answer)
		}
		if got := AnswerAddrs(Query(t, dc1, "master.orders-main.service.consul", dns.TypeA, true)); !slices.Equal(got, []string{"127.0.0.11"}) {
			t.Errorf("master.orders-main.service.consul = %v, want [127.0.0.11]", got)
		}
		// Through dc1's agent into dc2, as delegated names will be asked.
		if got := AnswerAddrs(Query(t, dc1, "standby-leader.orders-standby.service.dc2.consul", dns.TypeA, false)); !slices.Equal(got, []string{"127.0.0.13"}) {
			t.Errorf("standby-leader.orders-standby.service.dc2.consul = %v, want [127.0.0.13]", got)
		}
	})

	t.Run("health follows the REST API", func(t *testing.T) {
		leader.SetHealthy(false)
		leader.WaitCheck(5*time.Second, api.HealthCritical)
		leader.SetHealthy(true)
		leader.WaitCheck(5*time.Second, api.HealthPassing)
	})

	t.Run("node layout with bouncers and pools", func(t *testing.T) {
		m := RegisterOnNode(t, f.DC1.Server, MemberSpec{Scope: "billing", Name: "billing-1", Address: "127.0.0.21", Role: RoleLeader})
		b := RegisterBouncerOnNode(t, m, BouncerSpec{})
		p := RegisterPool(t, f.DC1.Server, BouncerSpec{Service: "ledger-pgbouncer-rw", Address: "127.0.0.31"})
		m.WaitCheck(5*time.Second, api.HealthPassing)
		b.WaitCheck(5*time.Second, api.HealthPassing)
		p.WaitCheck(5*time.Second, api.HealthPassing)
		svcs, _, err := f.DC1.Client.API().Catalog().NodeServiceList(m.NodeName(), nil)
		if err != nil || len(svcs.Services) != 2 {
			t.Fatalf("services on node %s: %+v (err %v), want billing and pgbouncer", m.NodeName(), svcs, err)
		}
		b.SetHealthy(false)
		b.WaitCheck(time.Second, api.HealthCritical)
		p.SetHealthy(false)
		p.WaitCheck(5*time.Second, api.HealthCritical)
	})

	t.Run("promote and demote", func(t *testing.T) {
		standby.Promote(2)
		leader.Demote()
		standby.WaitCheck(5*time.Second, api.HealthPassing)
		leader.WaitCheck(5*time.Second, api.HealthPassing)
		assertTags(t, f.DC2.Server, "orders-standby", "orders-standby/pg3", "master", "primary")
		assertTags(t, f.DC1.Server, "orders-main", "Orders_Main/pg1", "replica")
		kv2 := f.DC2.Server.API().KV()
		if cfg, _, err := kv2.Get("service/orders-standby/config", nil); err != nil || cfg == nil || bytes.Contains(cfg.Value, []byte("standby_cluster")) {
			t.Errorf("promoted config %v (err %v), want no standby_cluster", cfg, err)
		}
		if lk, _, err := kv2.Get("service/orders-standby/leader", nil); err != nil || lk == nil || string(lk.Value) != "pg3" {
			t.Errorf("leader key after promotion %v (err %v), want pg3", lk, err)
		}
		if lk, _, err := f.DC1.Server.API().KV().Get("service/Orders_Main/leader", nil); err != nil || lk != nil {
			t.Errorf("leader key after demotion %v (err %v), want none", lk, err)
		}
	})

	t.Run("dc1 through the dc2 agent", func(t *testing.T) {
		f.DC1.Client.Kill() // the agent regiondns would talk to in dc1
		q := &api.QueryOptions{Datacenter: "dc1"}
		entries, _, err := f.DC2.Client.API().Health().Service("orders-main", "", true, q)
		if err != nil || len(entries) != 2 {
			t.Fatalf("orders-main in dc1 via dc2: %d passing (err %v), want 2", len(entries), err)
		}
		node, _, err := f.DC1.Server.API().Catalog().Node(f.DC1.Client.Name, nil)
		if err != nil || node == nil {
			t.Errorf("killed client's node left the catalog (err %v); a kill must not deregister it", err)
		}
		if got := AnswerAddrs(Query(t, f.DC2.Client.DNSAddr(), "replica.orders-main.service.dc1.consul", dns.TypeA, false)); !slices.Equal(got, []string{"127.0.0.11", "127.0.0.12"}) {
			t.Errorf("replica.orders-main.service.dc1.consul via dc2 = %v, want both members (pg1 was demoted)", got)
		}
		f.DC1.Client.Restart()
	})
	t.Logf("smoke test took %s", time.Since(start).Round(time.Millisecond))
}

// assertTags checks the tags of service id through agent's health API.
func assertTags(t *testing.T, agent *Agent, service, id string, want ...string) {
	t.Helper()
	entries, _, err := agent.API().Health().Service(service, "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Service.ID == id {
			if !slices.Equal(e.Service.Tags, want) {
				t.Errorf("%s tags %v, want %v", id, e.Service.Tags, want)
			}
			return
		}
	}
	t.Errorf("%s not registered in %s", id, service)
}
