package zones

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/policy"
)

const (
	// maxTTL caps every answer TTL at a week: longer ones would outlive any
	// failover.
	maxTTL = 604800
	// maxSOATimer is the largest SOA timer RFC 2181 section 8 allows.
	maxSOATimer = 1<<31 - 1
)

// endpointLabels are the labels under a cluster that name its endpoints; a
// region named like one would share its name with an SRV target's parent.
var endpointLabels = policy.NameLabels

// validator collects every problem in a defaulted fileConfig, in file order.
type validator struct {
	errs []error
	zone string // canonical zone; empty if the zone is not valid
}

func (v *validator) addf(format string, args ...any) {
	v.errs = append(v.errs, invalidf(format, args...))
}

// validate returns every problem in fc, which setDefaults has filled.
func (fc *fileConfig) validate() []error {
	v := &validator{}
	switch {
	case fc.Zone == "":
		v.addf("zone: missing; want the zone's domain name, such as pg.example.internal.")
	case !validZone(fc.Zone):
		v.addf("zone: %q is not valid; want a domain name below the root, such as pg.example.internal.", fc.Zone)
	default:
		v.zone = canonicalName(fc.Zone)
	}
	v.soa(&fc.SOA)
	nsLabels := v.nameServers(fc.NS)
	v.ttl(&fc.TTL)
	regions := v.regions(fc.Regions)
	v.clusters(fc.Clusters, regions, nsLabels)
	v.controlPrefix(*fc.ControlPrefix, fc.Clusters)
	return v.errs
}

func (v *validator) soa(s *fileSOA) {
	// Empty names only remain when the zone is invalid, reported already.
	if s.MName != "" && !validName(s.MName) {
		v.addf("soa.mname: %q is not valid; want a domain name, such as ns1.pg.example.internal.", s.MName)
	}
	if s.RName != "" && !validName(s.RName) {
		v.addf("soa.rname: %q is not valid; want the administrator's mailbox as a domain name, such as hostmaster.pg.example.internal.", s.RName)
	}
	for _, f := range []struct {
		key string
		val int64
	}{{"refresh", *s.Refresh}, {"retry", *s.Retry}, {"expire", *s.Expire}, {"minimum", *s.Minimum}} {
		if f.val < 0 || f.val > maxSOATimer {
			v.addf("soa.%s: %q is not valid; want 0 to %d seconds", f.key, strconv.FormatInt(f.val, 10), maxSOATimer)
		}
	}
}

// nameServers validates ns and returns, for each name server inside the
// zone, the label directly under the zone it takes, mapped to its name.
func (v *validator) nameServers(nss []fileNS) map[string]string {
	if nss != nil && len(nss) == 0 {
		v.addf("ns: an empty list is not valid; want at least one name server, or leave the key out for ns.<zone>")
	}
	occupied := map[string]string{}
	seen := map[string]int{}
	for i, ns := range nss {
		path := fmt.Sprintf("ns[%d]", i)
		for j, a := range ns.Addresses {
			if ip, err := netip.ParseAddr(a); err != nil || ip.Zone() != "" {
				v.addf("%s.addresses[%d]: %q is not valid; want an IPv4 or IPv6 address", path, j, a)
			}
		}
		switch {
		case ns.Name == "":
			v.addf("%s.name: missing; want the name server's domain name, such as ns1.pg.example.internal.", path)
			continue
		case !validName(ns.Name):
			v.addf("%s.name: %q is not valid; want a domain name, such as ns1.pg.example.internal.", path, ns.Name)
			continue
		}
		name := canonicalName(ns.Name)
		if j, dup := seen[name]; dup {
			v.addf("%s.name: %q is not valid; want a name not already used by ns[%d]", path, ns.Name, j)
		}
		seen[name] = i
		if v.zone == "" {
			continue
		}
		inZone := dns.IsSubDomain(v.zone, name)
		if inZone && name != v.zone {
			occupied[firstLabelUnder(v.zone, name)] = name
		}
		if !inZone && len(ns.Addresses) > 0 {
			v.addf("%s.addresses: want none for %q, which is outside zone %q; glue is only served for names inside the zone", path, ns.Name, v.zone)
		}
	}
	return occupied
}

func (v *validator) ttl(t *fileTTL) {
	for _, f := range []struct {
		key string
		val int64
	}{
		{"rw", *t.RW}, {"ro", *t.RO}, {"passive", *t.Passive}, {"negative", *t.Negative},
		{"txt", *t.TXT}, {"soa", *t.SOA}, {"ns", *t.NS},
	} {
		if f.val < 0 || f.val > maxTTL {
			v.addf("ttl.%s: %q is not valid; want 0 to %d seconds", f.key, strconv.FormatInt(f.val, 10), maxTTL)
		}
	}
}

// regions validates the regions and returns the names they declare, in file
// order, for the clusters' scopes to refer to.
func (v *validator) regions(rs []fileRegion) []string {
	const want = "one with role main and one with role standby"
	switch {
	case len(rs) == 0:
		v.addf("regions: missing; want two regions, %s", want)
	case len(rs) != 2:
		v.addf("regions: a list of %d is not valid; want exactly two, %s", len(rs), want)
	}
	var names []string
	seen := map[string]int{}
	roles := map[string]int{}
	dcs := map[string]int{}
	for i, r := range rs {
		path := fmt.Sprintf("regions[%d]", i)
		if v.regionName(path, r.Name, seen) {
			names = append(names, r.Name)
			seen[r.Name] = i
		}
		switch {
		case r.Role == "":
			v.addf("%s.role: missing; want one of main, standby", path)
		case r.Role != string(RoleMain) && r.Role != string(RoleStandby):
			v.addf("%s.role: %q is not valid; want one of main, standby", path, r.Role)
		default:
			if j, dup := roles[r.Role]; dup {
				other := RoleMain
				if r.Role == string(RoleMain) {
					other = RoleStandby
				}
				v.addf("%s.role: %q is not valid; want %s, as regions[%d] is %s", path, r.Role, other, j, r.Role)
			}
			roles[r.Role] = i
		}
		switch dc := strings.ToLower(r.Datacenter); {
		case r.Datacenter == "":
			v.addf("%s.datacenter: missing; want the region's Consul datacenter, such as dc1", path)
		case !validDatacenter(r.Datacenter):
			v.addf("%s.datacenter: %q is not valid; want letters, digits, - and _, such as dc1", path, r.Datacenter)
		default:
			if j, dup := dcs[dc]; dup {
				v.addf("%s.datacenter: %q is not valid; want a datacenter other than regions[%d]'s", path, r.Datacenter, j)
			}
			dcs[dc] = i
		}
		v.consul(path, &r)
	}
	return names
}

// regionName validates a region's name against the names before it, mapped
// to their index.
func (v *validator) regionName(path, name string, before map[string]int) bool {
	switch {
	case name == "":
		v.addf("%s.name: missing; want a DNS label, such as main", path)
	case !validLabel(name):
		v.addf("%s.name: %q is not valid; want a DNS label of a-z, 0-9 and -, such as main", path, name)
	case slices.Contains(endpointLabels, name):
		v.addf("%s.name: %q is not valid; want a label other than %s, which name endpoints", path, name, strings.Join(endpointLabels, ", "))
	default:
		if j, dup := before[name]; dup {
			v.addf("%s.name: %q is not valid; want a name not already used by regions[%d]", path, name, j)
			return false
		}
		return true
	}
	return false
}

func (v *validator) consul(path string, r *fileRegion) {
	if len(r.ConsulHTTP) == 0 {
		v.addf("%s.consul_http: missing; want at least one Consul HTTP address, such as http://127.0.0.1:8500", path)
	}
	for i, a := range r.ConsulHTTP {
		if !validHTTPAddr(a) {
			v.addf("%s.consul_http[%d]: %q is not valid; want host:port, http://host:port or https://host:port", path, i, a)
		}
	}
	for i, a := range r.ConsulDNS {
		if !validHostPort(a) {
			v.addf("%s.consul_dns[%d]: %q is not valid; want host:port, such as 127.0.0.1:8600", path, i, a)
		}
	}
	if r.TokenFile != nil && strings.TrimSpace(*r.TokenFile) == "" {
		v.addf("%s.token_file: %q is not valid; want the path of a file holding the ACL token, or leave the key out", path, *r.TokenFile)
	}
}
