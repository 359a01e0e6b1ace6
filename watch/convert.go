package watch

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"net/url"
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

// readConfig tells from Patroni's config value whether the cluster is a
// standby cluster: it is while "standby_cluster" is set and not null.
func readConfig(value []byte) policy.ClusterConfig {
	var cfg map[string]json.RawMessage
	if json.Unmarshal(value, &cfg) != nil {
		return policy.ConfigUnknown
	}
	if sc, ok := cfg["standby_cluster"]; ok && string(sc) != "null" {
		return policy.ConfigStandby
	}
	return policy.ConfigPrimary
}

// memberKey is the part of Patroni's members/<name> value regiondns reads.
type memberKey struct {
	Role     string `json:"role"`
	Timeline int64  `json:"timeline"`
}

// convertKV reads Patroni's keys under prefix ("service/<scope>/"): the
// leader key, the config, and each member's timeline and role. Unreadable
// member values are skipped: a timeline is only a tie-breaker, and a role
// only makes a member lead earlier than its tags would.
func convertKV(prefix string, pairs api.KVPairs) kvState {
	st := kvState{timelines: map[string]int64{}, roles: map[string]policy.Role{}}
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
			st.config = readConfig(p.Value)
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
		}
	}
	return st
}

// keyValue returns the value of key among pairs (a single key's answer:
// one pair, or none when the key does not exist), trimmed as Patroni's
// leader key is read; "" when key is not there.
func keyValue(key string, pairs api.KVPairs) string {
	for _, p := range pairs {
		if p != nil && p.Key == key {
			return strings.TrimSpace(string(p.Value))
		}
	}
	return ""
}
