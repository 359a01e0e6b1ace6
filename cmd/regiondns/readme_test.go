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

// readmeSection returns the lines of the README section with the heading.
func readmeSection(t *testing.T, heading string) []string {
	t.Helper()
	f, err := os.Open("../../README.md")
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
	if len(lines) == 0 {
		t.Fatalf("README has no section %q", heading)
	}
	return lines
}

var tableRow = regexp.MustCompile("^\\| `([^`]+)` \\| `?([^|`]*)`? \\|")

func TestREADMEEnvironmentTable(t *testing.T) {
	documented := map[string]string{}
	for _, line := range readmeSection(t, "Environment") {
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
		t.Errorf("README environment table = %v\nsettings struct         = %v", documented, actual)
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
	// Vectors only show up once they have a child.
	m.activeRegion.WithLabelValues("c", "main")
	m.splitBrain.WithLabelValues("c")
	m.decisionChanges.WithLabelValues("c")
	return m
}

func TestREADMEMetricsTable(t *testing.T) {
	var documented []string
	for _, line := range readmeSection(t, "Operations") {
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
		t.Errorf("README metrics = %v\nregistered     = %v", documented, registered)
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
// its Patroni service and KV prefix) and those followed with a blocking
// query (none before the watcher runs).
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
# HELP regiondns_region_consul_resources Consul resources watched in a region: services and Patroni KV prefixes.
# TYPE regiondns_region_consul_resources gauge
regiondns_region_consul_resources{region="main"} 2
regiondns_region_consul_resources{region="standby"} 2
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
