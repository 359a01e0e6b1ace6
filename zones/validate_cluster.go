package zones

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/regiondns/regiondns/policy"
)

// clusters validates the clusters. regions are the valid region names, and
// nsLabels maps the labels under the zone that in-zone name servers take
// to the name server's name.
func (v *validator) clusters(cs []fileCluster, regions []string, nsLabels map[string]string) {
	if len(cs) == 0 {
		v.addf("clusters: missing; want at least one cluster")
	}
	labels := map[string]int{}
	services := map[regionService]serviceUse{}
	for i := range cs {
		c := &cs[i]
		path := fmt.Sprintf("clusters[%d]", i)
		if v.clusterLabel(path, c.Label, labels, nsLabels, regions) {
			labels[c.Label] = i
		}
		v.scopes(path, c.Scopes, regions)
		v.services(path, c, regions, services)
		if strings.Trim(*c.Namespace, "/") == "" {
			v.addf("%s.namespace: %q is not valid; want Patroni's KV namespace, such as service", path, *c.Namespace)
		}
		if slices.Contains(policy.Layouts, policy.Layout(c.Layout)) {
			v.pgbouncer(path, policy.Layout(c.Layout), &c.PgBouncer)
		} else {
			v.addf("%s.layout: %q is not valid; want one of %s", path, c.Layout, joinLayouts())
		}
		v.tags(path, &c.Tags)
		if c.ROFallback != string(policy.FallbackLeader) && c.ROFallback != string(policy.FallbackNone) {
			v.addf("%s.ro_fallback: %q is not valid; want one of %s, %s", path, c.ROFallback, policy.FallbackLeader, policy.FallbackNone)
		}
		v.reads(path, c)
	}
}

// maxLagSettle bounds ro_lag_settle: a replica kept out of reads for more
// than a day after it caught up is a typo.
const maxLagSettle = 86400

// reads checks the read-quality keys: ro_max_lag is a size as Patroni
// reads /replica?lag=, above zero; ro_lag_settle is a time in seconds, set
// only with ro_max_lag.
func (v *validator) reads(path string, c *fileCluster) {
	if c.ROMaxLag != nil {
		switch n, ok := parseBytes(string(*c.ROMaxLag)); {
		case !ok:
			v.addf("%s.ro_max_lag: %q is not valid; want a number of bytes, or a number with one of Patroni's units B, kB, MB, GB, TB, such as 16MB", path, *c.ROMaxLag)
		case n <= 0:
			v.addf("%s.ro_max_lag: %q is not valid; want more than 0 bytes, or leave the key out for no limit", path, *c.ROMaxLag)
		}
	}
	switch s := c.ROLagSettle; {
	case s == nil:
	case c.ROMaxLag == nil:
		v.addf("%s.ro_lag_settle: %q is not valid without ro_max_lag; want it only with ro_max_lag set", path, strconv.FormatInt(*s, 10))
	case *s < 0 || *s > maxLagSettle:
		v.addf("%s.ro_lag_settle: %q is not valid; want 0 to %d seconds", path, strconv.FormatInt(*s, 10), maxLagSettle)
	}
}

func joinLayouts() string {
	s := make([]string, len(policy.Layouts))
	for i, l := range policy.Layouts {
		s[i] = string(l)
	}
	return strings.Join(s, ", ")
}

// clusterLabel validates a cluster's label against the labels before it,
// mapped to their index, and the labels in-zone name servers occupy; the
// longest names of the cluster (passive-ro, ro.<region>) must fit a domain
// name.
func (v *validator) clusterLabel(path, label string, before map[string]int, nsLabels map[string]string, regions []string) bool {
	longest := LabelPassiveRO
	for _, r := range regions {
		if n := LabelRO + "." + r; len(n) > len(longest) {
			longest = n
		}
	}
	switch {
	case label == "":
		v.addf("%s.label: missing; want a DNS label, such as orders", path)
	case !validLabel(label):
		v.addf("%s.label: %q is not valid; want a DNS label of a-z, 0-9 and -, such as orders", path, label)
	case nsLabels[label] != "":
		v.addf("%s.label: %q is not valid; want a label other than %s, which name server %s takes", path, label, label, nsLabels[label])
	case v.zone != "" && !validName(longest+"."+label+"."+v.zone):
		v.addf("%s.label: %q is not valid; want a shorter label: %s.%s.%s would be longer than a domain name can be", path, label, longest, label, v.zone)
	default:
		if j, dup := before[label]; dup {
			v.addf("%s.label: %q is not valid; want a label not already used by clusters[%d]", path, label, j)
			return false
		}
		return true
	}
	return false
}

// scopes checks that the cluster has a Patroni scope for each region, and
// for regions only.
func (v *validator) scopes(path string, scopes map[string]string, regions []string) {
	want := "each region"
	if len(regions) > 0 {
		want = "each region: " + strings.Join(regions, ", ")
	}
	if len(scopes) == 0 {
		v.addf("%s.scopes: missing; want the cluster's Patroni scope in %s", path, want)
		return
	}
	keys := make([]string, 0, len(scopes))
	for k := range scopes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		// Without a valid region name there is nothing to compare with;
		// the regions' own errors say what to fix.
		if len(regions) > 0 && !slices.Contains(regions, k) {
			v.addf("%s.scopes: key %q is not valid; want a region name, one of %s", path, k, strings.Join(regions, ", "))
		}
	}
	for _, r := range regions {
		switch scope, ok := scopes[r]; {
		case !ok || scope == "":
			v.addf("%s.scopes.%s: missing; want the cluster's Patroni scope in region %s", path, r, r)
		case strings.Contains(scope, "/"):
			v.addf("%s.scopes.%s: %q is not valid; want a Patroni scope, which has no /", path, r, scope)
		}
	}
}

// regionService is a Consul service name in one region.
type regionService struct{ region, service string }

// serviceUse is the first scope of the zone file that maps to a service.
type serviceUse struct{ path, scope, namespace string }

// services checks that no two Patroni clusters of a region map to one
// Consul service. Patroni names its service after the scope alone (see
// ServiceName): two scopes that map to one name (orders.eu and orders_eu,
// or two scopes alike past the 230th character), or one scope in two
// namespaces, would register both clusters' members in one service, and
// each cluster's names would answer the other's members. A scope named
// twice in one namespace is the same cluster, and may be.
func (v *validator) services(path string, c *fileCluster, regions []string, first map[regionService]serviceUse) {
	ns := strings.Trim(*c.Namespace, "/")
	for _, r := range regions {
		scope := c.Scopes[r]
		if scope == "" || strings.Contains(scope, "/") {
			continue // scopes says what is wrong
		}
		key := regionService{region: r, service: ServiceName(scope)}
		prev, seen := first[key]
		switch {
		case !seen:
			first[key] = serviceUse{path: path + ".scopes." + r, scope: scope, namespace: ns}
		case prev.scope != scope || prev.namespace != ns:
			v.addf("%s.scopes.%s: %q is not valid; want a scope whose Consul service name is not %s, which Patroni also registers for %s %q in namespace %s",
				path, r, scope, key.service, prev.path, prev.scope, prev.namespace)
		}
	}
}

// pgbouncer checks that only the PgBouncer keys the layout uses are set, and
// that those it needs are.
func (v *validator) pgbouncer(path string, layout policy.Layout, p *filePgBouncer) {
	path += ".pgbouncer"
	notFor := func(key, value string, only policy.Layout) {
		if value != "" && layout != only {
			v.addf("%s.%s: %q is not valid with layout %s; want it only with layout %s", path, key, value, layout, only)
		}
	}
	notFor("service", p.Service, policy.LayoutBouncerPerNode)
	notFor("rw_service", p.RWService, policy.LayoutPoolFleet)
	notFor("ro_service", p.ROService, policy.LayoutPoolFleet)
	notFor("rw_tag", p.RWTag, policy.LayoutPoolFleet)
	notFor("ro_tag", p.ROTag, policy.LayoutPoolFleet)
	if layout != policy.LayoutPoolFleet {
		return
	}
	if p.RWService == "" {
		v.addf("%s.rw_service: missing; want the Consul service of the read-write PgBouncer pool, as layout is pool-fleet", path)
	}
	if p.ROService == "" {
		v.addf("%s.ro_service: missing; want the Consul service of the read-only PgBouncer pool, as layout is pool-fleet", path)
	}
	if p.RWService != "" && p.RWService == p.ROService && (p.RWTag == "" || p.ROTag == "" || p.RWTag == p.ROTag) {
		v.addf("%s.ro_service: %q is not valid; want a service other than rw_service, or different rw_tag and ro_tag to tell the pools apart", path, p.ROService)
	}
}

// tags checks that each role has at least one tag and that no tag marks two
// roles.
func (v *validator) tags(path string, t *fileTags) {
	def := policy.DefaultRoleTags()
	owner := map[string]string{} // lower-case tag -> key of its list
	for _, l := range []struct {
		key  string
		tags []string
		def  []string
	}{
		{"leader", t.Leader, def.Leader},
		{"replica", t.Replica, def.Replica},
		{"standby_leader", t.StandbyLeader, def.StandbyLeader},
	} {
		if len(l.tags) == 0 {
			v.addf("%s.tags.%s: an empty list is not valid; want at least one tag, or leave the key out for Patroni's %s", path, l.key, strings.Join(l.def, ", "))
		}
		for i, tag := range l.tags {
			key := strings.ToLower(tag)
			switch other, dup := owner[key]; {
			case tag == "":
				v.addf("%s.tags.%s[%d]: \"\" is not valid; want a Consul service tag", path, l.key, i)
			case dup && other != l.key:
				v.addf("%s.tags.%s[%d]: %q is not valid; want a tag that is not also in tags.%s", path, l.key, i, tag, other)
			default:
				owner[key] = l.key
			}
		}
	}
}
