package main

import (
	"bufio"
	"io"
	"log/slog"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/regiondns/regiondns/forward"
	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/resolver"
	"github.com/regiondns/regiondns/watch"
	"github.com/regiondns/regiondns/zones"
)

// operationsDoc is the document that lists every setting and metric.
const operationsDoc = "../../docs/operations.md"

// docSection returns the lines of the section of the Markdown file at path
// with the heading, up to the next heading of any level.
func docSection(t *testing.T, path, heading string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			in = strings.TrimLeft(line, "# ") == heading
			continue
		}
		if in {
			lines = append(lines, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(lines) == 0 {
		t.Fatalf("%s has no section %q", path, heading)
	}
	return lines
}

var tableRow = regexp.MustCompile("^\\| `([^`]+)` \\| `?([^|`]*)`? \\|")

// TestDocEnvironmentTable keeps the environment table of docs/operations.md
// equal to the settings struct: every variable, with its default.
func TestDocEnvironmentTable(t *testing.T) {
	documented := map[string]string{}
	for _, line := range docSection(t, operationsDoc, "Environment") {
		if m := tableRow.FindStringSubmatch(line); m != nil {
			documented[m[1]] = strings.TrimSpace(m[2])
		}
	}
	actual := map[string]string{}
	st := reflect.TypeFor[settings]()
	for i := range st.NumField() {
		f := st.Field(i)
		actual[envPrefix+f.Tag.Get("env")] = f.Tag.Get("envDefault")
	}
	if !reflect.DeepEqual(documented, actual) {
		t.Errorf("%s environment table = %v\nsettings struct = %v", operationsDoc, documented, actual)
	}
}

func testMetricsWatcher(t *testing.T) *watch.Watcher {
	t.Helper()
	cfg := &zones.Config{Regions: []zones.Region{
		{Name: "main", Role: zones.RoleMain, Datacenter: "dc1", ConsulHTTP: []string{"http://127.0.0.1:1"}},
		{Name: "standby", Role: zones.RoleStandby, Datacenter: "dc2", ConsulHTTP: []string{"http://127.0.0.1:1"}},
	}}
	w, err := watch.New(cfg, watch.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func testMetrics(t *testing.T) *metrics {
	t.Helper()
	m := newMetrics(testMetricsWatcher(t))
	fwd := forward.New(forward.Options{Groups: [][]string{{"127.0.0.1:8600"}}}, forward.NewLRU(forward.LRUOptions{}), nil)
	m.registry.MustRegister(forward.NewCollector(fwd))
	m.registry.MustRegister(newDNSCollector(func() resolver.Stats { return resolver.Stats{} }))
	// A cluster's series show up once it was decided; the pin's only
	// while one applies or is ignored.
	cfg := &zones.Config{Regions: []zones.Region{{Name: "main"}, {Name: "standby"}}}
	m.Decided(cfg, "c", policy.Decision{Main: policy.RegionView{Name: "main"}, Pin: &policy.PinState{Applied: true}})
	m.Decided(cfg, "d", policy.Decision{Pin: &policy.PinState{Ignored: policy.PinUnsafe}})
	return m
}

// TestDocMetricsTable keeps the metrics table of docs/operations.md equal to
// the registry: every regiondns_ metric, and no other.
func TestDocMetricsTable(t *testing.T) {
	var documented []string
	for _, line := range docSection(t, operationsDoc, "Metrics") {
		if m := tableRow.FindStringSubmatch(line); m != nil && strings.HasPrefix(m[1], "regiondns_") {
			documented = append(documented, m[1])
		}
	}
	families, err := testMetrics(t).registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var registered []string
	for _, mf := range families {
		if strings.HasPrefix(mf.GetName(), "regiondns_") {
			registered = append(registered, mf.GetName())
		}
	}
	slices.Sort(documented)
	slices.Sort(registered)
	if !slices.Equal(documented, registered) {
		t.Errorf("%s metrics = %v\nregistered = %v", operationsDoc, documented, registered)
	}
}

func TestMetricsLint(t *testing.T) {
	problems, err := testutil.GatherAndLint(testMetrics(t).registry)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// The region collector counts each region's watched resources (one cluster:
// its Patroni service and KV prefix; and the control prefix) and those
// followed with a blocking query (none before the watcher runs).
func TestRegionResourceMetrics(t *testing.T) {
	cfg := &zones.Config{
		Zone: "pg.example.internal.",
		Regions: []zones.Region{
			{Name: "main", Role: zones.RoleMain, Datacenter: "dc1", ConsulHTTP: []string{"http://127.0.0.1:1"}},
			{Name: "standby", Role: zones.RoleStandby, Datacenter: "dc2", ConsulHTTP: []string{"http://127.0.0.1:1"}},
		},
		Clusters: []zones.Cluster{{
			Label: "orders", Scopes: map[string]string{"main": "orders", "standby": "orders"},
			Namespace: "service", Layout: policy.LayoutDirect, Tags: policy.DefaultRoleTags(),
		}},
	}
	w, err := watch.New(cfg, watch.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	m := newMetrics(w)
	want := `
# HELP regiondns_region_consul_resources Consul resources watched in a region: services, Patroni KV prefixes, leader keys and sync keys, and the control prefix.
# TYPE regiondns_region_consul_resources gauge
regiondns_region_consul_resources{region="main"} 4
regiondns_region_consul_resources{region="standby"} 4
`
	if err := testutil.GatherAndCompare(m.registry, strings.NewReader(want), "regiondns_region_consul_resources"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(newRegionCollector(w), "regiondns_region_consul_following"); n != 2 {
		t.Errorf("%d following samples, want one per region", n)
	}
	for _, st := range w.Status() {
		if st.Following != 0 {
			t.Errorf("region %s: %d followed before Run, want 0", st.Name, st.Following)
		}
	}
}
