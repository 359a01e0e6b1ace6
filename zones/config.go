// Package zones reads the zone file: the zone, its TTLs, the two regions and
// the clusters. It parses YAML with unknown keys rejected, sets defaults in
// one place and validates, naming the key, the value and what would be valid
// in every error.
package zones

import (
	"time"

	"github.com/regiondns/regiondns/policy"
)

// RegionRole says whether a region is the main region or the standby region.
type RegionRole string

// The two region roles.
const (
	RoleMain    RegionRole = "main"
	RoleStandby RegionRole = "standby"
)

// The labels of a cluster's names, below "<cluster label>.<zone>":
// rw.orders.<zone> and so on. They are the policy's (policy.NameLabels),
// which keeps SRV targets off them.
const (
	LabelRW        = policy.LabelRW
	LabelRO        = policy.LabelRO
	LabelPassiveRW = policy.LabelPassiveRW
	LabelPassiveRO = policy.LabelPassiveRO
	LabelSync      = policy.LabelSync
)

// Config is a parsed, defaulted and validated zone file.
type Config struct {
	// Zone is the authoritative zone, lower case, fully qualified.
	Zone string
	// SOA is the zone's SOA record data.
	SOA SOA
	// NS are the zone's name servers.
	NS []NameServer
	// TTL are the TTLs of each kind of answer.
	TTL TTL
	// WarningIsPassing counts Consul's warning state as passing.
	WarningIsPassing bool
	// Regions are the two regions; Main and Standby return each.
	Regions []Region
	// Clusters are the configured clusters, in file order.
	Clusters []Cluster
	// ControlPrefix is the Consul KV prefix of the operator's pins and
	// drains, without leading or trailing "/" (default "regiondns").
	ControlPrefix string
}

// SOA holds the fields of the zone's SOA record. Times are in seconds.
type SOA struct {
	MName   string // fully qualified, lower case
	RName   string // fully qualified, lower case
	Refresh uint32
	Retry   uint32
	Expire  uint32
	Minimum uint32
}

// NameServer is one NS record of the zone, with glue addresses when the name
// server's name is inside the zone.
type NameServer struct {
	Name      string   // fully qualified, lower case
	Addresses []string // IPv4 or IPv6 literals
}

// TTL holds the TTL, in seconds, of each kind of answer.
type TTL struct {
	RW       uint32 // rw names
	RO       uint32 // ro names
	Passive  uint32 // passive-rw and passive-ro names
	Negative uint32 // NODATA and NXDOMAIN (also caps the SOA MINIMUM use)
	TXT      uint32 // TXT decision records
	SOA      uint32 // SOA record at the apex
	NS       uint32 // NS records at the apex and their glue
}

// Region is one region: its Consul datacenter and how to reach it.
type Region struct {
	// Name is a DNS label naming the region (used in SRV target names).
	Name string
	// Role is main or standby.
	Role RegionRole
	// Datacenter is the Consul datacenter name.
	Datacenter string
	// ConsulHTTP are the region's Consul agent HTTP addresses
	// ("http://host:port", "https://host:port" or "host:port").
	ConsulHTTP []string
	// ConsulDNS are the region's Consul DNS addresses ("host:port").
	ConsulDNS []string
	// TokenFile is the path of the ACL token file; empty uses the Consul
	// environment (CONSUL_HTTP_TOKEN, CONSUL_HTTP_TOKEN_FILE).
	TokenFile string
}

// Cluster is one Patroni cluster present in both regions.
type Cluster struct {
	// Label is the DNS label of the cluster under the zone.
	Label string
	// Scopes maps a region name to the cluster's Patroni scope there.
	Scopes map[string]string
	// Namespace is Patroni's KV namespace (default "service").
	Namespace string
	// Layout says what an endpoint is.
	Layout policy.Layout
	// PgBouncer names the PgBouncer services the layout needs.
	PgBouncer PgBouncer
	// Tags are the role tags (default Patroni's).
	Tags policy.RoleTags
	// ROFallback is what ro answers without passing replicas.
	ROFallback policy.ROFallback
	// ROMaxLag is the most, in bytes, a replica may trail its leader and
	// still serve reads; 0: no limit.
	ROMaxLag int64
	// RORequireStreaming leaves out of reads the replicas that are not
	// streaming.
	RORequireStreaming bool
	// ROLagSettle is how long a replica left out for lag stays out once
	// back under the limit (unless under half of it).
	ROLagSettle time.Duration
}

// PgBouncer names the PgBouncer services of a cluster.
type PgBouncer struct {
	// Service is the bouncer-per-node service name (default "pgbouncer").
	Service string
	// RWService and ROService are the pool-fleet services.
	RWService, ROService string
	// RWTag and ROTag, when set, select pool instances by tag.
	RWTag, ROTag string
}

// Main returns the main region.
func (c *Config) Main() *Region { return c.region(RoleMain) }

// Standby returns the standby region.
func (c *Config) Standby() *Region { return c.region(RoleStandby) }

func (c *Config) region(role RegionRole) *Region {
	for i := range c.Regions {
		if c.Regions[i].Role == role {
			return &c.Regions[i]
		}
	}
	return nil
}

// Other returns the region that is not r.
func (c *Config) Other(r *Region) *Region {
	if r.Role == RoleMain {
		return c.Standby()
	}
	return c.Main()
}

// Options returns the policy options of cluster cl.
func (c *Config) Options(cl *Cluster) policy.Options {
	return policy.Options{
		Layout: cl.Layout, ROFallback: cl.ROFallback, WarningIsPassing: c.WarningIsPassing,
		ROMaxLag: cl.ROMaxLag, RORequireStreaming: cl.RORequireStreaming, ROLagSettle: cl.ROLagSettle,
	}
}

// DefaultControlPrefix is the control_prefix of a zone file that sets none.
const DefaultControlPrefix = "regiondns"

// ControlKeyPrefix returns the KV prefix of the operator's pins and drains:
// ControlPrefix, or DefaultControlPrefix for a Config built without one.
func (c *Config) ControlKeyPrefix() string {
	if c.ControlPrefix == "" {
		return DefaultControlPrefix
	}
	return c.ControlPrefix
}
