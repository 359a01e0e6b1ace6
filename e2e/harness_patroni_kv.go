package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
)

// TakeLeaderKey makes service/<scope>/leader name this member, bound to its
// session, taking it from another member if needed (a test may stage a
// conflict this way).
func (m *PatroniMember) TakeLeaderKey() {
	m.t.Helper()
	kv := m.Agent.API().KV()
	pair := &api.KVPair{Key: m.key("leader"), Value: []byte(m.Name), Session: m.sessionID()}
	ok, _, err := kv.Acquire(pair, nil)
	if err == nil && !ok {
		if _, err = kv.Delete(pair.Key, nil); err == nil {
			ok, _, err = kv.Acquire(pair, nil)
		}
	}
	if err != nil || !ok {
		m.t.Fatalf("take leader key %s for %s: acquired %v, err %v", pair.Key, m.Name, ok, err)
	}
}

// createSession creates the member's session as Patroni does (no health
// checks, delete behaviour) and renews it in the background.
func (m *PatroniMember) createSession() {
	m.t.Helper()
	body := map[string]any{
		"Name": m.Scope + "-" + m.Name, "Checks": []string{},
		"LockDelay": "0s", "Behavior": "delete", "TTL": sessionTTL,
	}
	if m.Via == OnNode {
		body["Node"] = m.NodeName()
	}
	var out struct{ ID string }
	if _, err := m.Agent.API().Raw().Write("/v1/session/create", body, &out, nil); err != nil {
		m.t.Fatalf("create session for %s: %v", m.ServiceID(), err)
	}
	m.mu.Lock()
	m.session = out.ID
	m.mu.Unlock()
	go func() {
		tick := time.NewTicker(sessionRenew)
		defer tick.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-tick.C:
				// Errors are expected while a test has the agent down.
				_, _, _ = m.Agent.API().Session().Renew(out.ID, nil)
			}
		}
	}()
}

func (m *PatroniMember) stopRenewal() {
	m.mu.Lock()
	defer m.mu.Unlock()
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
}

func (m *PatroniMember) sessionID() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.session
}

// putMemberKey writes service/<scope>/members/<name>, bound to the session.
func (m *PatroniMember) putMemberKey() {
	m.t.Helper()
	m.mu.Lock()
	data := map[string]any{
		"conn_url":      fmt.Sprintf("postgres://%s:%d/postgres", m.Address, m.Port),
		"api_url":       m.APIURL(),
		"state":         "running",
		"role":          string(m.role),
		"version":       patroniVersion,
		"xlog_location": m.xlog,
		"timeline":      m.timeline,
	}
	if m.role == RoleReplica && m.replicationState != "" {
		data["replication_state"] = m.replicationState
	}
	if m.noLoadBalance {
		data["tags"] = map[string]any{"noloadbalance": true}
	}
	session := m.session
	m.mu.Unlock()
	b, _ := json.Marshal(data)
	pair := &api.KVPair{Key: m.key("members/" + m.Name), Value: b, Session: session}
	if ok, _, err := m.Agent.API().KV().Acquire(pair, nil); err != nil || !ok {
		m.t.Fatalf("write member key %s: acquired %v, err %v", pair.Key, ok, err)
	}
}

// releaseLeaderKey deletes the leader key if this member holds it, as
// Patroni's delete_leader does.
func (m *PatroniMember) releaseLeaderKey() {
	m.t.Helper()
	kv := m.Agent.API().KV()
	pair, _, err := kv.Get(m.key("leader"), nil)
	if err != nil {
		m.t.Fatalf("read leader key of %s: %v", m.Scope, err)
	}
	if pair == nil || string(pair.Value) != m.Name {
		return
	}
	pair.Value = nil
	if _, _, err := kv.DeleteCAS(pair, nil); err != nil {
		m.t.Fatalf("delete leader key of %s: %v", m.Scope, err)
	}
}

func (m *PatroniMember) appendHistory(oldTimeline int, xlog int64) {
	m.t.Helper()
	var hist []any
	if pair, _, err := m.Agent.API().KV().Get(m.key("history"), nil); err == nil && pair != nil {
		_ = json.Unmarshal(pair.Value, &hist)
	}
	hist = append(hist, []any{oldTimeline, xlog, "no recovery target specified",
		time.Now().UTC().Format("2006-01-02T15:04:05.000000+00:00"), m.Name})
	m.putJSON("history", hist)
}

func (m *PatroniMember) key(suffix string) string { return "service/" + m.Scope + "/" + suffix }

func (m *PatroniMember) putJSON(suffix string, v any) {
	m.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		m.t.Fatal(err)
	}
	m.put(suffix, string(b))
}

func (m *PatroniMember) put(suffix, value string) {
	m.t.Helper()
	if _, err := m.Agent.API().KV().Put(&api.KVPair{Key: m.key(suffix), Value: []byte(value)}, nil); err != nil {
		m.t.Fatalf("write %s: %v", m.key(suffix), err)
	}
}

// patroniConfig returns Patroni's dynamic configuration, with a
// standby_cluster section pointing at standbyHost when it is not empty.
func patroniConfig(standbyHost string) map[string]any {
	cfg := map[string]any{
		"ttl": 30, "loop_wait": 10, "retry_timeout": 10,
		"maximum_lag_on_failover": 1048576,
		"postgresql":              map[string]any{"use_pg_rewind": true, "use_slots": true},
	}
	if standbyHost != "" {
		cfg["standby_cluster"] = map[string]any{
			"host": standbyHost, "port": 5432, "create_replica_methods": []string{"basebackup"},
		}
	}
	return cfg
}

// XLog returns the WAL position the member's key holds.
func (m *PatroniMember) XLog() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.xlog
}

// SetXLog rewrites the member key with WAL position xlog (a replica's
// replayed and received position, a leader's current one), as Patroni's
// loop does every loop_wait; a leader also writes it as the status key's
// optime, as Patroni does when it renews the leader lock.
func (m *PatroniMember) SetXLog(xlog int64) {
	m.t.Helper()
	m.mu.Lock()
	m.xlog = xlog
	leader := m.role == RoleLeader || m.role == RoleStandbyLeader
	m.mu.Unlock()
	m.putMemberKey()
	if leader {
		m.putJSON("status", map[string]any{"optime": xlog})
	}
}

// SetReplicationState rewrites the member key with replication_state s
// (Patroni 3.1 and later write "streaming" or "in archive recovery"; ""
// leaves the field out, as earlier versions do).
func (m *PatroniMember) SetReplicationState(s string) {
	m.t.Helper()
	m.mu.Lock()
	m.replicationState = s
	m.mu.Unlock()
	m.putMemberKey()
}

// SetNoLoadBalance rewrites the member key with Patroni's noloadbalance tag
// set or not. The service check is not touched: a test can show the tag
// honoured whatever the check says.
func (m *PatroniMember) SetNoLoadBalance(on bool) {
	m.t.Helper()
	m.mu.Lock()
	m.noLoadBalance = on
	m.mu.Unlock()
	m.putMemberKey()
}

// SetSynchronousMode rewrites the cluster's config key with
// synchronous_mode on or off (a standby leader's keeps its
// standby_cluster section).
func (m *PatroniMember) SetSynchronousMode(on bool) {
	m.t.Helper()
	host := ""
	if m.Role() == RoleStandbyLeader {
		host = m.standbyHost
	}
	cfg := patroniConfig(host)
	cfg["synchronous_mode"] = on
	m.putJSON("config", cfg)
}

// PutSync writes the sync key as Patroni does for this member as leader:
// its synchronous standbys comma-separated and sorted, null for none.
func (m *PatroniMember) PutSync(standbys ...string) {
	m.t.Helper()
	var list any
	if len(standbys) > 0 {
		sorted := slices.Sorted(slices.Values(standbys))
		list = strings.Join(sorted, ",")
	}
	m.putJSON("sync", map[string]any{"leader": m.Name, "sync_standby": list})
}

// RewriteMemberKey writes the member key again with a new WAL position and
// nothing else changed, as Patroni does every loop_wait while PostgreSQL
// takes writes. It returns the key's new ModifyIndex.
func (m *PatroniMember) RewriteMemberKey() uint64 {
	m.t.Helper()
	m.mu.Lock()
	m.xlog += 4096
	m.mu.Unlock()
	m.putMemberKey()
	pair, _, err := m.Agent.API().KV().Get(m.key("members/"+m.Name), nil)
	if err != nil || pair == nil {
		m.t.Fatalf("read back member key of %s: %v, %v", m.Name, pair, err)
	}
	return pair.ModifyIndex
}

// WaitCheckOutput waits until the catalog has the output of the member's
// check for its current role's endpoint: a re-registered check keeps its
// last output until it runs again, and the agent syncs that output (a
// write to the catalog) when it does.
func (m *PatroniMember) WaitCheckOutput(timeout time.Duration) {
	m.t.Helper()
	path := "/" + strings.ReplaceAll(string(m.Role()), "_", "-")
	WaitFor(m.t, timeout, func() (bool, string) {
		checks, _, err := m.Agent.API().Health().Checks(m.ServiceName(), nil)
		if err != nil {
			return false, err.Error()
		}
		for _, c := range checks {
			if c.ServiceID == m.ServiceID() && c.CheckID == m.svc.checkID() {
				return strings.Contains(c.Output, path+":"), fmt.Sprintf("check of %s: output %q, want one of %s", m.Name, c.Output, path)
			}
		}
		return false, "no check of " + m.ServiceID()
	})
}
