package watch

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/regiondns/regiondns/policy"
)

// convertEntries turns Consul health entries into policy instances. An
// entry whose address is not an IP literal, or whose port is outside
// 1-65535, is left out, and ignored says which and why: DNS answers need an
// address, and an SRV record a port that is one (cutting 70000 to 16 bits
// would send clients to another service).
func convertEntries(entries []*api.ServiceEntry, tags policy.RoleTags) (out []policy.Instance, ignored []string) {
	out = make([]policy.Instance, 0, len(entries))
	for _, e := range entries {
		if e == nil || e.Service == nil {
			continue
		}
		addr := e.Service.Address
		if addr == "" && e.Node != nil {
			addr = e.Node.Address
		}
		ip, err := netip.ParseAddr(addr)
		if err != nil {
			ignored = append(ignored, fmt.Sprintf("%s: address %q is not an IP address", e.Service.ID, addr))
			continue
		}
		if e.Service.Port < 1 || e.Service.Port > math.MaxUint16 {
			ignored = append(ignored, fmt.Sprintf("%s: port %d is outside 1-65535", e.Service.ID, e.Service.Port))
			continue
		}
		in := policy.Instance{
			ID:      e.Service.ID,
			Address: ip.Unmap(),
			Port:    uint16(e.Service.Port),
			Tags:    e.Service.Tags,
			Role:    tags.Classify(e.Service.Tags),
			Health:  health(e.Checks),
		}
		in.CheckRole, in.OtherHealth = roleCheck(e.Checks, e.Service.ID)
		if e.Node != nil {
			in.Node = e.Node.Node
		}
		// Patroni's service ID is "<scope>/<member>".
		if _, member, ok := strings.Cut(e.Service.ID, "/"); ok {
			in.Member = member
		} else {
			in.Member = e.Service.ID
		}
		out = append(out, in)
	}
	return out, ignored
}

func health(checks api.HealthChecks) policy.Health {
	switch checks.AggregatedStatus() {
	case api.HealthPassing:
		return policy.HealthPassing
	case api.HealthWarning:
		return policy.HealthWarning
	default:
		return policy.HealthCritical
	}
}

// roleCheck finds, among the checks of the instance of service serviceID,
// Patroni's check of its REST API role endpoint, and returns the role it
// tests and the worst status of the other checks (the node's included).
// Consul does not return a check's URL, but an HTTP check's output starts
// with it: "HTTP GET http://<api>/replica: 200 OK Output: ...".
func roleCheck(checks api.HealthChecks, serviceID string) (policy.Role, policy.Health) {
	role, at := policy.RoleUnknown, -1
	for i, c := range checks {
		if c == nil || c.ServiceID != serviceID {
			continue
		}
		if r := checkedRole(c.Output); r != policy.RoleUnknown {
			role, at = r, i
			break
		}
	}
	if at < 0 {
		return policy.RoleUnknown, health(checks)
	}
	others := make(api.HealthChecks, 0, len(checks)-1)
	others = append(others, checks[:at]...)
	return role, health(append(others, checks[at+1:]...))
}

// checkedRole returns the role whose Patroni REST API endpoint an HTTP
// check's output names: /master, /primary or /read-write for a leader,
// /replica for a replica, /standby-leader for a standby leader.
func checkedRole(output string) policy.Role {
	rest, ok := strings.CutPrefix(output, "HTTP GET ")
	if !ok {
		return policy.RoleUnknown
	}
	target, _, ok := strings.Cut(rest, ": ")
	if !ok {
		return policy.RoleUnknown
	}
	u, err := url.Parse(target)
	if err != nil {
		return policy.RoleUnknown
	}
	switch strings.Trim(u.Path, "/") {
	case "master", "primary", "read-write":
		return policy.RoleLeader
	case "replica":
		return policy.RoleReplica
	case "standby-leader", "standby_leader":
		return policy.RoleStandbyLeader
	}
	return policy.RoleUnknown
}

// patroniConfig is the part of Patroni's config value regiondns reads.
type patroniConfig struct {
	StandbyCluster  json.RawMessage `json:"standby_cluster"`
	SynchronousMode json.RawMessage `json:"synchronous_mode"`
}

// readConfig tells from Patroni's config value whether the cluster is a
// standby cluster (while "standby_cluster" is set and not null), and
// whether it is in synchronous mode as Patroni's global_config reads
// synchronous_mode: true as parse_bool reads it (on, true, yes, 1), or
// quorum.
func readConfig(value []byte) (cfg policy.ClusterConfig, syncMode bool) {
	var c patroniConfig
	if json.Unmarshal(value, &c) != nil {
		return policy.ConfigUnknown, false
	}
	cfg = policy.ConfigPrimary
	if len(c.StandbyCluster) > 0 && string(c.StandbyCluster) != "null" {
		cfg = policy.ConfigStandby
	}
	mode := strings.ToLower(strings.Trim(string(c.SynchronousMode), `"`))
	switch mode {
	case "on", "true", "yes", "1", "quorum":
		syncMode = true
	}
	return cfg, syncMode
}

// memberKey is the part of Patroni's members/<name> value regiondns reads.
type memberKey struct {
	Role             string                     `json:"role"`
	Timeline         int64                      `json:"timeline"`
	XLogLocation     int64                      `json:"xlog_location"`
	ReplayLSN        int64                      `json:"replay_lsn"`
	ReceiveLSN       int64                      `json:"receive_lsn"`
	ReplicationState string                     `json:"replication_state"`
	Tags             map[string]json.RawMessage `json:"tags"`
}

// truthy reports whether a JSON value is true as Python's bool() says,
// which is how Patroni reads its noloadbalance tag: false, null, 0, "",
// [] and {} are false, anything else (the string "false" too) is true.
func truthy(v json.RawMessage) bool {
	var x any
	if len(v) == 0 || json.Unmarshal(v, &x) != nil {
		return false
	}
	switch x := x.(type) {
	case bool:
		return x
	case float64:
		return x != 0
	case string:
		return x != ""
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	default:
		return false
	}
}

// readMember returns what the policy reads of a member key; with reads
// false, only what changes rarely (the noloadbalance tag), so that
// Patroni's rewrites of WAL positions every loop_wait change nothing for
// a cluster that does not look at them.
func readMember(m *memberKey, reads bool) policy.MemberKey {
	k := policy.MemberKey{NoLoadBalance: truthy(m.Tags["noloadbalance"])}
	if reads {
		k.XLogLocation, k.ReplayLSN, k.ReceiveLSN = m.XLogLocation, m.ReplayLSN, m.ReceiveLSN
		k.ReplicationState = m.ReplicationState
	}
	return k
}

// syncValue is Patroni's sync key.
type syncValue struct {
	Leader      *string         `json:"leader"`
	SyncStandby *string         `json:"sync_standby"`
	Quorum      json.RawMessage `json:"quorum"`
}

// readSync reads Patroni's sync value as SyncState.from_node does: a JSON
// object, sync_standby a comma-separated list of names (blanks dropped),
// quorum counted only with a leader. Anything else is no sync state.
func readSync(value []byte) policy.SyncKey {
	var v syncValue
	if json.Unmarshal(value, &v) != nil || v.Leader == nil {
		return policy.SyncKey{}
	}
	k := policy.SyncKey{Leader: *v.Leader}
	if v.SyncStandby != nil {
		for _, name := range strings.Split(*v.SyncStandby, ",") {
			if name = strings.TrimSpace(name); name != "" {
				k.Standbys = append(k.Standbys, name)
			}
		}
	}
	if k.Leader != "" {
		q := strings.Trim(string(v.Quorum), `"`)
		if n, err := strconv.Atoi(q); err == nil && n > 0 {
			k.Quorum = n
		}
	}
	return k
}

// readOptime reads the leader's WAL position from Patroni's status value
// ({"optime": N, ...}), or from the legacy optime/leader value (a number),
// as Patroni does: anything unreadable is 0.
func readOptime(value []byte, legacy bool) int64 {
	if legacy {
		n, _ := strconv.ParseInt(strings.TrimSpace(string(value)), 10, 64)
		return n
	}
	var st struct {
		Optime json.Number `json:"optime"`
	}
	if json.Unmarshal(value, &st) != nil {
		return 0
	}
	n, _ := st.Optime.Int64()
	return n
}

// convertKV reads Patroni's keys under prefix ("service/<scope>/"): the
// leader key, the config, each member key (timeline, role, tags and, with
// reads, WAL positions and replication state), the sync key and, with
// reads, the leader's position (status, or the legacy optime/leader).
// Unreadable member values are skipped: a timeline is only a tie-breaker,
// and a role only makes a member lead earlier than its tags would.
func convertKV(prefix string, pairs api.KVPairs, reads bool) kvState {
	st := kvState{timelines: map[string]int64{}, roles: map[string]policy.Role{}}
	var status, legacy []byte
	for _, p := range pairs {
		if p == nil {
			continue
		}
		st.any = true
		rest := strings.TrimPrefix(p.Key, prefix)
		switch {
		case rest == "leader":
			st.leader = strings.TrimSpace(string(p.Value))
		case rest == "config":
			st.config, st.syncMode = readConfig(p.Value)
		case rest == "sync":
			st.sync = readSync(p.Value)
		case rest == "status":
			status = p.Value
		case rest == "optime/leader":
			legacy = p.Value
		case strings.HasPrefix(rest, "members/"):
			name := strings.TrimPrefix(rest, "members/")
			st.members = append(st.members, name)
			var m memberKey
			if json.Unmarshal(p.Value, &m) != nil {
				continue
			}
			if m.Timeline > 0 {
				st.timelines[name] = m.Timeline
			}
			if role := policy.KeyRole(m.Role); role != policy.RoleUnknown {
				st.roles[name] = role
			}
			if k := readMember(&m, reads); k != (policy.MemberKey{}) {
				if st.memberData == nil {
					st.memberData = map[string]policy.MemberKey{}
				}
				st.memberData[name] = k
			}
		}
	}
	if reads {
		// Patroni reads the legacy key only without a status key.
		if status != nil {
			st.optime = readOptime(status, false)
		} else if legacy != nil {
			st.optime = readOptime(legacy, true)
		}
	}
	return st
}

// pairValue returns the value of key among pairs (a single key's answer:
// one pair, or none when the key does not exist), and whether it is there.
func pairValue(key string, pairs api.KVPairs) ([]byte, bool) {
	for _, p := range pairs {
		if p != nil && p.Key == key {
			return p.Value, true
		}
	}
	return nil, false
}
