package zones

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/regiondns/regiondns/policy"
)

// minimalConfig is testdata/valid-minimal.yml with every default filled.
func minimalConfig() *Config {
	return &Config{
		Zone: "pg.example.internal.",
		SOA: SOA{
			MName: "ns.pg.example.internal.", RName: "hostmaster.pg.example.internal.",
			Refresh: 3600, Retry: 600, Expire: 86400, Minimum: 1,
		},
		NS:  []NameServer{{Name: "ns.pg.example.internal."}},
		TTL: TTL{RW: 1, RO: 1, Passive: 1, Negative: 1, TXT: 1, SOA: 60, NS: 60},
		Regions: []Region{
			{Name: "main", Role: RoleMain, Datacenter: "dc1", ConsulHTTP: []string{"127.0.0.1:8500"}},
			{Name: "standby", Role: RoleStandby, Datacenter: "dc2", ConsulHTTP: []string{"127.0.0.1:8510"}},
		},
		Clusters: []Cluster{{
			Label:      "orders",
			Scopes:     map[string]string{"main": "orders", "standby": "orders"},
			Namespace:  "service",
			Layout:     policy.LayoutDirect,
			Tags:       policy.DefaultRoleTags(),
			ROFallback: policy.FallbackLeader,
		}},
		ControlPrefix: "regiondns",
	}
}

// fullConfig is testdata/valid-full.yml.
func fullConfig() *Config {
	return &Config{
		Zone: "pg.example.internal.",
		SOA: SOA{
			MName: "ns1.pg.example.internal.", RName: "hostmaster.pg.example.internal.",
			Refresh: 3600, Retry: 600, Expire: 86400, Minimum: 1,
		},
		NS: []NameServer{
			{Name: "ns1.pg.example.internal.", Addresses: []string{"10.1.0.53"}},
			{Name: "ns2.pg.example.internal.", Addresses: []string{"10.2.0.53", "fd00:2::53"}},
		},
		TTL: TTL{RW: 1, RO: 1, Passive: 1, Negative: 1, TXT: 1, SOA: 60, NS: 60},
		Regions: []Region{
			{
				Name: "main", Role: RoleMain, Datacenter: "dc1",
				ConsulHTTP: []string{"http://10.1.0.10:8500", "http://10.1.0.11:8500"},
				ConsulDNS:  []string{"10.1.0.10:8600", "10.1.0.11:8600"},
				TokenFile:  "/etc/regiondns/main.token",
			},
			{
				Name: "standby", Role: RoleStandby, Datacenter: "dc2",
				ConsulHTTP: []string{"https://consul.dc2.example.internal:8501"},
				ConsulDNS:  []string{"10.2.0.10:8600"},
				TokenFile:  "/etc/regiondns/standby.token",
			},
		},
		Clusters: []Cluster{
			{
				Label:              "orders",
				Scopes:             map[string]string{"main": "orders", "standby": "orders-dr"},
				Namespace:          "service",
				Layout:             policy.LayoutDirect,
				Tags:               policy.DefaultRoleTags(),
				ROFallback:         policy.FallbackLeader,
				ROMaxLag:           16 << 20,
				RORequireStreaming: true,
				ROLagSettle:        10 * time.Second,
			},
			{
				Label:      "billing",
				Scopes:     map[string]string{"main": "billing", "standby": "billing"},
				Namespace:  "patroni",
				Layout:     policy.LayoutBouncerPerNode,
				PgBouncer:  PgBouncer{Service: "pgbouncer-billing"},
				Tags:       policy.DefaultRoleTags(),
				ROFallback: policy.FallbackNone,
			},
			{
				Label:     "events",
				Scopes:    map[string]string{"main": "events", "standby": "events"},
				Namespace: "service",
				Layout:    policy.LayoutPoolFleet,
				PgBouncer: PgBouncer{
					RWService: "events-pool", ROService: "events-pool",
					RWTag: "rw", ROTag: "ro",
				},
				Tags:       policy.DefaultRoleTags(),
				ROFallback: policy.FallbackLeader,
			},
		},
		ControlPrefix: "ops/regiondns",
	}
}

// anchorsConfig is testdata/valid-anchors.yml: the minimal file, written
// with anchors, aliases and merge keys.
func anchorsConfig() *Config {
	cfg := minimalConfig()
	cfg.Regions[1].ConsulHTTP = []string{"127.0.0.1:8500"}
	orders := cfg.Clusters[0]
	orders.Layout = policy.LayoutBouncerPerNode
	orders.PgBouncer.Service = "pgbouncer"
	billing := orders
	billing.Label = "billing"
	billing.Scopes = map[string]string{"main": "orders", "standby": "billing-dr"}
	billing.Tags = policy.DefaultRoleTags()
	cfg.Clusters = []Cluster{orders, billing}
	return cfg
}

func TestParseValid(t *testing.T) {
	tests := []struct {
		file string
		want *Config
	}{
		{file: "valid-minimal.yml", want: minimalConfig()},
		{file: "valid-full.yml", want: fullConfig()},
		{file: "valid-anchors.yml", want: anchorsConfig()},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := Parse(readTestdata(t, tt.file))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		{file: "invalid-empty.yml", want: `the zone file is empty; want a mapping with at least zone, regions and clusters`},
		{file: "invalid-comments-only.yml", want: `the zone file is empty; want a mapping with at least zone, regions and clusters`},
		{file: "invalid-multiple-documents.yml", want: `line 14: a second YAML document is not valid; want one document per zone file`},
		{file: "invalid-syntax.yml", want: `YAML syntax: line 1: did not find expected ',' or '}'`},
		{file: "invalid-top-level-scalar.yml", want: `line 1: top level: "pg.example.internal" is not valid; want a mapping`},
		{file: "invalid-unknown-top-level-key.yml", want: `line 2: unknown key "zones" at the top level; want one of zone, soa, ns, ttl, warning_is_passing, regions, clusters, control_prefix`},
		{file: "invalid-unknown-nested-key.yml", want: `line 10: unknown key "consul_htp" in regions[1]; want one of name, role, datacenter, consul_http, consul_dns, token_file`},
		{file: "invalid-unknown-deep-key.yml", want: `line 16: unknown key "rw_servce" in clusters[0].pgbouncer; want one of service, rw_service, ro_service, rw_tag, ro_tag
line 18: unknown key "replicas" in clusters[0].tags; want one of leader, replica, standby_leader`},
		{file: "invalid-duplicate-key.yml", want: `line 2: duplicate key "zone" at the top level; first set at line 1`},
		{file: "invalid-wrong-kind.yml", want: `line 2: ttl: a list is not valid; want a mapping
line 3: warning_is_passing: "maybe" is not valid; want true or false
line 5: regions: a mapping is not valid; want a list`},
		{file: "invalid-alias.yml", want: `line 9: regions[1].datacenter: a list is not valid; want a string
line 14: a list to merge in clusters[0].tags is not valid; want a mapping or a list of mappings`},
		{file: "invalid-ttl.yml", want: `line 2: ttl.txt: "soon" is not valid; want a whole number`},
		{file: "invalid-missing-zone.yml", want: `zone: missing; want the zone's domain name, such as pg.example.internal.`},
		{file: "invalid-zone-name.yml", want: `zone: "pg..example" is not valid; want a domain name below the root, such as pg.example.internal.`},
		{file: "invalid-soa-names.yml", want: `soa.mname: "ns1 .pg.example.internal" is not valid; want a domain name, such as ns1.pg.example.internal.
soa.rname: "a..b" is not valid; want the administrator's mailbox as a domain name, such as hostmaster.pg.example.internal.`},
		{file: "invalid-ttl-range.yml", want: `soa.refresh: "-5" is not valid; want 0 to 2147483647 seconds
soa.minimum: "4294967296" is not valid; want 0 to 2147483647 seconds
ttl.rw: "-1" is not valid; want 0 to 604800 seconds
ttl.ro: "604801" is not valid; want 0 to 604800 seconds`},
		{file: "invalid-ns-empty.yml", want: `ns: an empty list is not valid; want at least one name server, or leave the key out for ns.<zone>`},
		{file: "invalid-ns-address.yml", want: `ns[0].addresses[0]: "10.0.0.300" is not valid; want an IPv4 or IPv6 address
ns[0].addresses[1]: "fe80::1%eth0" is not valid; want an IPv4 or IPv6 address
ns[1].addresses: want none for "ns.other.example.", which is outside zone "pg.example.internal."; glue is only served for names inside the zone`},
		{file: "invalid-ns-names.yml", want: `ns[1].name: "NS1.pg.example.internal" is not valid; want a name not already used by ns[0]
ns[2].name: "ns 2.pg.example.internal." is not valid; want a domain name, such as ns1.pg.example.internal.
ns[3].name: missing; want the name server's domain name, such as ns1.pg.example.internal.`},
		{file: "invalid-three-regions.yml", want: `regions: a list of 3 is not valid; want exactly two, one with role main and one with role standby
regions[2].role: "standby" is not valid; want main, as regions[1] is standby`},
		{file: "invalid-two-mains.yml", want: `regions[1].role: "main" is not valid; want standby, as regions[0] is main`},
		{file: "invalid-unknown-role.yml", want: `regions[1].role: "replica" is not valid; want one of main, standby`},
		{file: "invalid-region-names.yml", want: `regions[0].name: "Main" is not valid; want a DNS label of a-z, 0-9 and -, such as main
regions[1].name: "rw" is not valid; want a label other than rw, ro, passive-rw, passive-ro, sync, which name endpoints`},
		{file: "invalid-missing-datacenter.yml", want: `regions[1].datacenter: missing; want the region's Consul datacenter, such as dc1`},
		{file: "invalid-datacenter.yml", want: `regions[0].datacenter: "dc.1" is not valid; want letters, digits, - and _, such as dc1`},
		{file: "invalid-consul-http.yml", want: `regions[0].consul_http[0]: "localhost" is not valid; want host:port, http://host:port or https://host:port
regions[0].consul_http[1]: "ftp://10.0.0.1:8500" is not valid; want host:port, http://host:port or https://host:port
regions[0].consul_http[2]: "http://10.0.0.1:99999" is not valid; want host:port, http://host:port or https://host:port
regions[0].consul_http[3]: "http://10.0.0.1:8500/v1" is not valid; want host:port, http://host:port or https://host:port
regions[1].consul_http: missing; want at least one Consul HTTP address, such as http://127.0.0.1:8500`},
		{file: "invalid-consul-dns-token-file.yml", want: `regions[0].consul_dns[0]: "127.0.0.1" is not valid; want host:port, such as 127.0.0.1:8600
regions[0].token_file: "" is not valid; want the path of a file holding the ACL token, or leave the key out`},
		{file: "invalid-control-prefix.yml", want: `control_prefix: "ops/region dns" is not valid; want a Consul KV path of letters, digits, ., _ and -, such as regiondns`},
		{file: "invalid-control-prefix-empty.yml", want: `control_prefix: "/" is not valid; want a Consul KV path of letters, digits, ., _ and -, such as regiondns`},
		{file: "invalid-control-prefix-namespace.yml", want: `control_prefix: "/patroni/" is not valid; want a prefix apart from clusters[1]'s Patroni namespace "patroni/regiondns", such as regiondns`},
		{file: "invalid-missing-clusters.yml", want: `clusters: missing; want at least one cluster`},
		{file: "invalid-duplicate-cluster.yml", want: `clusters[1].label: "orders" is not valid; want a label not already used by clusters[0]`},
		{file: "invalid-label-ns-collision.yml", want: `clusters[0].label: "orders" is not valid; want a label other than orders, which name server orders.pg.example.internal. takes`},
		{file: "invalid-label-default-ns-collision.yml", want: `clusters[0].label: "ns" is not valid; want a label other than ns, which name server ns.pg.example.internal. takes
clusters[1].label: "Orders" is not valid; want a DNS label of a-z, 0-9 and -, such as orders`},
		{file: "invalid-scopes-empty.yml", want: `clusters[0].scopes: missing; want the cluster's Patroni scope in each region: main, standby
clusters[1].scopes: missing; want the cluster's Patroni scope in each region: main, standby`},
		{file: "invalid-scopes-unknown-region.yml", want: `clusters[0].scopes: key "east" is not valid; want a region name, one of main, standby`},
		{file: "invalid-scopes-missing-region.yml", want: `clusters[0].scopes.standby: missing; want the cluster's Patroni scope in region standby
clusters[1].scopes.standby: missing; want the cluster's Patroni scope in region standby
clusters[2].scopes.standby: "service/events" is not valid; want a Patroni scope, which has no /`},
		{file: "invalid-scopes-same-service.yml", want: `clusters[1].scopes.main: "Orders_EU" is not valid; want a scope whose Consul service name is not orders-eu, which Patroni also registers for clusters[0].scopes.main "orders.eu" in namespace service
clusters[2].scopes.standby: "orders" is not valid; want a scope whose Consul service name is not orders, which Patroni also registers for clusters[0].scopes.standby "orders" in namespace service`},
		{file: "invalid-namespace.yml", want: `clusters[0].namespace: "/" is not valid; want Patroni's KV namespace, such as service`},
		{file: "invalid-layout.yml", want: `clusters[0].layout: "blue" is not valid; want one of direct, bouncer-per-node, pool-fleet`},
		{file: "invalid-pool-fleet-services.yml", want: `clusters[0].pgbouncer.rw_service: missing; want the Consul service of the read-write PgBouncer pool, as layout is pool-fleet
clusters[0].pgbouncer.ro_service: missing; want the Consul service of the read-only PgBouncer pool, as layout is pool-fleet`},
		{file: "invalid-pool-fleet-same-service.yml", want: `clusters[0].pgbouncer.ro_service: "pool" is not valid; want a service other than rw_service, or different rw_tag and ro_tag to tell the pools apart`},
		{file: "invalid-pool-key-direct.yml", want: `clusters[0].pgbouncer.rw_service: "pool-rw" is not valid with layout direct; want it only with layout pool-fleet
clusters[0].pgbouncer.ro_tag: "ro" is not valid with layout direct; want it only with layout pool-fleet`},
		{file: "invalid-service-on-pool-fleet.yml", want: `clusters[0].pgbouncer.service: "pgbouncer" is not valid with layout pool-fleet; want it only with layout bouncer-per-node`},
		{file: "invalid-empty-tags.yml", want: `clusters[0].tags.leader: an empty list is not valid; want at least one tag, or leave the key out for Patroni's primary, master
clusters[0].tags.replica[0]: "" is not valid; want a Consul service tag`},
		{file: "invalid-ro-fallback.yml", want: `clusters[0].ro_fallback: "replica" is not valid; want one of leader, none`},
		{file: "invalid-ro-max-lag.yml", want: `clusters[0].ro_max_lag: "16mb" is not valid; want a number of bytes, or a number with one of Patroni's units B, kB, MB, GB, TB, such as 16MB
clusters[1].ro_max_lag: "16 megabytes" is not valid; want a number of bytes, or a number with one of Patroni's units B, kB, MB, GB, TB, such as 16MB
clusters[2].ro_max_lag: "0" is not valid; want more than 0 bytes, or leave the key out for no limit
clusters[3].ro_max_lag: "-1MB" is not valid; want more than 0 bytes, or leave the key out for no limit`},
		{file: "invalid-ro-lag-settle.yml", want: `clusters[0].ro_lag_settle: "-1" is not valid; want 0 to 86400 seconds
clusters[1].ro_lag_settle: "86401" is not valid; want 0 to 86400 seconds
clusters[2].ro_lag_settle: "30" is not valid without ro_max_lag; want it only with ro_max_lag set`},
		{file: "invalid-ro-kinds.yml", want: `line 8: clusters[0].ro_max_lag: a list is not valid; want a number of bytes, such as 16MB
line 9: clusters[0].ro_require_streaming: "streaming" is not valid; want true or false
line 10: clusters[0].ro_lag_settle: "10s" is not valid; want a whole number`},
		{file: "invalid-many.yml", want: `regions[0].datacenter: missing; want the region's Consul datacenter, such as dc1
regions[0].consul_http: missing; want at least one Consul HTTP address, such as http://127.0.0.1:8500
clusters[0].layout: "blue" is not valid; want one of direct, bouncer-per-node, pool-fleet
clusters[0].ro_fallback: "never" is not valid; want one of leader, none`},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			cfg, err := Parse(readTestdata(t, tt.file))
			if err == nil {
				t.Fatalf("Parse: no error, config %+v", cfg)
			}
			if cfg != nil {
				t.Errorf("Parse: config %+v with error", cfg)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("Parse error:\n got %s\nwant %s", got, tt.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
			}
		})
	}
	files, err := filepath.Glob("testdata/invalid-*.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("%s has no expected error in this table", f)
		}
	}
}

func TestLoad(t *testing.T) {
	t.Run("valid", func(t *testing.T) {
		got, err := Load("testdata/valid-full.yml")
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if want := fullConfig(); !reflect.DeepEqual(got, want) {
			t.Errorf("Load:\n got %+v\nwant %+v", got, want)
		}
	})
	t.Run("every line names the file", func(t *testing.T) {
		const path = "testdata/invalid-pool-key-direct.yml"
		_, err := Load(path)
		if err == nil {
			t.Fatal("Load: no error")
		}
		lines := strings.Split(err.Error(), "\n")
		if len(lines) != 2 {
			t.Fatalf("Load error has %d lines, want 2:\n%v", len(lines), err)
		}
		for _, l := range lines {
			if !strings.HasPrefix(l, path+": clusters[0].pgbouncer.") {
				t.Errorf("Load error line %q does not start with %q", l, path+": clusters[0].pgbouncer.")
			}
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "absent.yml")
		_, err := Load(path)
		if !errors.Is(err, ErrInvalid) || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Load(%q) = %v, want ErrInvalid and fs.ErrNotExist", path, err)
		}
		if err != nil && !strings.Contains(err.Error(), path) {
			t.Errorf("Load(%q) error %q does not name the path", path, err)
		}
	})
}

func TestConfigRegions(t *testing.T) {
	cfg := fullConfig()
	main, standby := cfg.Main(), cfg.Standby()
	if main == nil || main.Name != "main" || standby == nil || standby.Name != "standby" {
		t.Fatalf("Main() = %+v, Standby() = %+v", main, standby)
	}
	if cfg.Other(main) != standby || cfg.Other(standby) != main {
		t.Errorf("Other does not swap main and standby")
	}
	want := policy.Options{Layout: policy.LayoutBouncerPerNode, ROFallback: policy.FallbackNone}
	if got := cfg.Options(&cfg.Clusters[1]); got != want {
		t.Errorf("Options(billing) = %+v, want %+v", got, want)
	}
	want = policy.Options{Layout: policy.LayoutDirect, ROFallback: policy.FallbackLeader,
		ROMaxLag: 16 << 20, RORequireStreaming: true, ROLagSettle: 10 * time.Second}
	if got := cfg.Options(&cfg.Clusters[0]); got != want {
		t.Errorf("Options(orders) = %+v, want %+v", got, want)
	}
}

// TestLabelFitsRegionPinnedName: ro.<region>.<label>.<zone> is a cluster's
// longest name when the region's name is long; a label that makes it too
// long for a domain name is an error naming that name.
func TestLabelFitsRegionPinnedName(t *testing.T) {
	region := strings.Repeat("r", 63)
	label := strings.Repeat("c", 63)
	zone := strings.Repeat("z", 60) + "." + strings.Repeat("y", 60) + ".example."
	data := fmt.Sprintf(`zone: %s
regions:
  - {name: main, role: main, datacenter: dc1, consul_http: ["127.0.0.1:8500"]}
  - {name: %s, role: standby, datacenter: dc2, consul_http: ["127.0.0.1:8510"]}
clusters:
  - {label: %s, scopes: {main: orders, %s: orders}}
`, zone, region, label, region)
	_, err := Parse([]byte(data))
	want := fmt.Sprintf(`clusters[0].label: %q is not valid; want a shorter label: ro.%s.%s.%s would be longer than a domain name can be`, label, region, label, zone)
	if err == nil || err.Error() != want {
		t.Errorf("Parse error:\n got %v\nwant %s", err, want)
	}
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}
