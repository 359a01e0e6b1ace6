package engine

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/zones"
)

// fullInput is an input whose every field that a decision reads is set,
// in both regions.
func fullInput() policy.Input {
	at := time.Date(2030, 1, 2, 15, 0, 0, 0, time.UTC)
	inst := func(id, member, node, addr string, port uint16, role policy.Role, h policy.Health, tags ...string) policy.Instance {
		return policy.Instance{ID: id, Member: member, Node: node, Address: netip.MustParseAddr(addr), Port: port,
			Tags: tags, Role: role, Health: h, CheckRole: role, OtherHealth: h}
	}
	region := func(name, prefix string) policy.Region {
		return policy.Region{
			Name: name, Known: true, Stale: true,
			Members: []policy.Instance{
				inst("orders/"+prefix+"1", prefix+"1", "n1", "10.0.0.1", 5432, policy.RoleLeader, policy.HealthWarning, "primary"),
				inst("orders/"+prefix+"2", prefix+"2", "n2", "10.0.0.2", 5432, policy.RoleReplica, policy.HealthPassing, "replica"),
				inst("orders/"+prefix+"3", prefix+"3", "n3", "10.0.0.3", 5432, policy.RoleStandbyLeader, policy.HealthCritical, "standby-leader"),
			},
			Bouncers:   []policy.Instance{inst("pgbouncer", "pgbouncer", "n1", "10.0.1.1", 6432, policy.RoleUnknown, policy.HealthCritical, "b")},
			PoolRW:     []policy.Instance{inst("pool-rw", "pool-rw", "p1", "10.0.2.1", 6432, policy.RoleUnknown, policy.HealthWarning)},
			PoolRO:     []policy.Instance{inst("pool-ro", "pool-ro", "p2", "2001:db8::1", 6433, policy.RoleUnknown, policy.HealthPassing)},
			LeaderKey:  prefix + "1",
			Timelines:  map[string]int64{prefix + "1": 3, prefix + "9": 4},
			Config:     policy.ConfigPrimary,
			MemberKeys: []string{prefix + "1", prefix + "9"},
			MemberData: map[string]policy.MemberKey{
				prefix + "1": {XLogLocation: 1000},
				prefix + "2": {XLogLocation: 900, ReplayLSN: 800, ReceiveLSN: 950, ReplicationState: "streaming", NoLoadBalance: true},
			},
			Optime:   1100,
			SyncMode: true,
			Sync:     policy.SyncKey{Leader: prefix + "1", Standbys: []string{prefix + "2"}, Quorum: 1},
			LagHeld:  map[string]time.Time{prefix + "2": at.Add(-time.Minute)},
			// The lock: m1's key says it leads, m9 has a key but no service.
			LeaderKeyRead: true,
			KeyRoles:      map[string]policy.Role{prefix + "1": policy.RoleLeader, prefix + "9": policy.RoleReplica},
			Index:         4711,
		}
	}
	in := policy.Input{
		Options: policy.Options{Layout: policy.LayoutDirect, ROFallback: policy.FallbackNone, WarningIsPassing: true},
		Main:    region("main", "m"), Standby: region("standby", "s"),
		Control: policy.Control{
			Pin:    &policy.Pin{Active: "standby", Reason: "drill", Expires: at.Add(time.Hour), Invalid: "x"},
			Drains: []policy.Drain{{Member: "m2", Reason: "rebuild"}},
			ReadAt: at, Source: "standby", Stale: true,
		},
	}
	in.Standby.Config = policy.ConfigStandby
	return in
}

// zeroFields returns the names of v's fields that are zero, v a struct.
func zeroFields(v any) []string {
	rv := reflect.ValueOf(v)
	var out []string
	for i := range rv.NumField() {
		if rv.Field(i).IsZero() {
			out = append(out, rv.Type().Field(i).Name)
		}
	}
	return out
}

// /debug/state carries a cluster's input whole: read back from its JSON,
// it is the input the decision was made from, so that regiondns ctl
// decides as the server did. A field added to policy.Region, Instance or
// Control must be set in fullInput (the first check) and carried through
// ClusterState (the second).
func TestStateCarriesTheInput(t *testing.T) {
	in := fullInput()
	for what, v := range map[string]any{
		"Region": in.Main, "Instance": in.Main.Members[0], "Control": in.Control, "Pin": *in.Control.Pin, "Drain": in.Control.Drains[0],
	} {
		if z := zeroFields(v); len(z) > 0 {
			t.Errorf("fullInput leaves policy.%s fields %v zero: set them, and carry them in ClusterState", what, z)
		}
	}
	cl := &zones.Cluster{Label: "orders", Layout: policy.LayoutDirect, Scopes: map[string]string{"main": "orders", "standby": "orders"}}
	body, err := json.Marshal(clusterState(cl, in, policy.Decide(in)))
	if err != nil {
		t.Fatal(err)
	}
	var cs ClusterState
	if err := json.Unmarshal(body, &cs); err != nil {
		t.Fatal(err)
	}
	got := cs.Input(in.Options, "main", "standby")
	if !reflect.DeepEqual(got, in) {
		t.Errorf("input read back from /debug/state:\n got %+v\nwant %+v", got, in)
	}
	if !reflect.DeepEqual(policy.Decide(got), policy.Decide(in)) {
		t.Error("the input read back decides otherwise")
	}
}
