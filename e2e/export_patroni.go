package e2e

// Exported helpers for the tests with real Patroni, PostgreSQL and PgBouncer
// (e2e/patroni), which live in a package of their own and so see only the
// harness's exported API.

import (
	"fmt"
	"path/filepath"
	"testing"
)

// StartClientAgents starts one more client agent per name in dc, each a Consul
// node of its own named name, joined to dc's server with the harness's
// configuration plus extra (as FederationOptions.ExtraConfig), and waits
// until every one of them knows its leader, has completed its first
// anti-entropy sync and is in the server's catalog. The agents are killed in
// t.Cleanup, before the federation's (cleanups run last in, first out).
//
// The tests with real Patroni give every Patroni node its own agent, as in
// production: a PgBouncer registered on a member's agent is then on the
// member's Consul node, which the bouncer-per-node layout needs.
func (f *Federation) StartClientAgents(t testing.TB, dc *Datacenter, names []string, extra map[string]any) []*Agent {
	t.Helper()
	bin := ConsulBinary(t)
	root := t.TempDir()
	var agents []*Agent
	cleanupAgents(t, &agents)
	for _, name := range names {
		a := &Agent{
			Name: name, Datacenter: dc.Name, t: t, bin: bin,
			dir: filepath.Join(root, name), extra: extra,
			joinLAN: []string{dc.Server.SerfLANAddr()},
		}
		agents = append(agents, a)
		a.firstStart()
	}
	WaitFor(t, federationTimeout, func() (bool, string) {
		for _, a := range agents {
			if ok, why := a.ready(); !ok {
				return false, why
			}
			if ok, why := a.synced(); !ok {
				return false, why
			}
			node, _, err := dc.Server.API().Catalog().Node(a.Name, nil)
			if err != nil || node == nil {
				return false, fmt.Sprintf("node %s not in the catalog of %s (err %v)", a.Name, dc.Name, err)
			}
		}
		return true, ""
	})
	return agents
}
