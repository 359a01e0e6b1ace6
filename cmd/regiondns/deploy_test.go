package main

import (
	"bufio"
	"bytes"
	"cmp"
	"debug/elf"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/regiondns/regiondns/cache"
	"github.com/regiondns/regiondns/engine"
	"github.com/regiondns/regiondns/zones"
)

// envNames returns the REGIONDNS_* variables the binary reads.
func envNames() map[string]bool {
	names := map[string]bool{}
	st := reflect.TypeFor[settings]()
	for i := range st.NumField() {
		names[envPrefix+st.Field(i).Tag.Get("env")] = true
	}
	return names
}

func readYAML(t *testing.T, name string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("../../deploy/kubernetes", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

type k8sPort struct {
	Name          string `yaml:"name"`
	ContainerPort int    `yaml:"containerPort"`
	Port          int    `yaml:"port"`
	TargetPort    string `yaml:"targetPort"`
	Protocol      string `yaml:"protocol"`
}

type k8sProbe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

type deployment struct {
	Metadata struct {
		Namespace string `yaml:"namespace"`
	} `yaml:"metadata"`
	Spec struct {
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				Containers []struct {
					Args []string `yaml:"args"`
					Env  []struct {
						Name  string `yaml:"name"`
						Value string `yaml:"value"`
					} `yaml:"env"`
					Ports          []k8sPort `yaml:"ports"`
					ReadinessProbe k8sProbe  `yaml:"readinessProbe"`
					LivenessProbe  k8sProbe  `yaml:"livenessProbe"`
					VolumeMounts   []struct {
						Name      string `yaml:"name"`
						MountPath string `yaml:"mountPath"`
					} `yaml:"volumeMounts"`
				} `yaml:"containers"`
				Volumes []struct {
					Name      string `yaml:"name"`
					ConfigMap struct {
						Name string `yaml:"name"`
					} `yaml:"configMap"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return port
}

func TestKubernetesManifests(t *testing.T) {
	var dep deployment
	readYAML(t, "deployment.yaml", &dep)
	if len(dep.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(dep.Spec.Template.Spec.Containers))
	}
	c := dep.Spec.Template.Spec.Containers[0]
	if !slices.Equal(c.Args, []string{"serve"}) {
		t.Errorf("args = %v, want [serve]", c.Args)
	}
	env := map[string]string{}
	known := envNames()
	for _, e := range c.Env {
		env[e.Name] = e.Value
		if strings.HasPrefix(e.Name, envPrefix) && !known[e.Name] {
			t.Errorf("deployment sets %s, which regiondns does not read", e.Name)
		}
	}
	ports := map[string]k8sPort{}
	for _, p := range c.Ports {
		ports[p.Name] = p
	}
	dnsPort, httpPort := portOf(t, env["REGIONDNS_DNS_ADDR"]), portOf(t, env["REGIONDNS_HTTP_ADDR"])
	for name, want := range map[string]struct{ port, proto string }{
		"dns-udp": {dnsPort, "UDP"}, "dns-tcp": {dnsPort, "TCP"}, "http": {httpPort, "TCP"},
	} {
		p, ok := ports[name]
		if !ok || p.Protocol != want.proto || itoa(p.ContainerPort) != want.port {
			t.Errorf("container port %s = %+v, want %s/%s", name, p, want.port, want.proto)
		}
	}

	// The probes hit endpoints the binary serves, on its HTTP port.
	h := newHTTPHandler(engine.New(&zones.Config{}, testMetricsWatcher(t), &cache.Store{}, engine.Options{}), testMetrics(t))
	for name, probe := range map[string]k8sProbe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if probe.HTTPGet.Port != "http" {
			t.Errorf("%s probe port = %q, want http", name, probe.HTTPGet.Port)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, probe.HTTPGet.Path, nil))
		if rec.Code == http.StatusNotFound || rec.Code == http.StatusMethodNotAllowed {
			t.Errorf("%s probe path %q: regiondns answers %d", name, probe.HTTPGet.Path, rec.Code)
		}
	}
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("probes = %q/%q, want /readyz and /healthz", c.ReadinessProbe.HTTPGet.Path, c.LivenessProbe.HTTPGet.Path)
	}

	// The zone file is mounted where REGIONDNS_CONFIG points, from the
	// ConfigMap's key of the same name, and is a valid zone file.
	var cm struct {
		Metadata struct{ Name string } `yaml:"metadata"`
		Data     map[string]string     `yaml:"data"`
	}
	readYAML(t, "configmap.yaml", &cm)
	cfgPath := env["REGIONDNS_CONFIG"]
	var mounted bool
	for _, m := range c.VolumeMounts {
		for _, v := range dep.Spec.Template.Spec.Volumes {
			mounted = mounted || (v.Name == m.Name && v.ConfigMap.Name == cm.Metadata.Name && m.MountPath == path.Dir(cfgPath))
		}
	}
	if !mounted {
		t.Errorf("no volume mounts ConfigMap %q at %s", cm.Metadata.Name, path.Dir(cfgPath))
	}
	zoneYAML, ok := cm.Data[path.Base(cfgPath)]
	if !ok {
		t.Fatalf("ConfigMap has no key %q", path.Base(cfgPath))
	}
	zone, err := zones.Parse([]byte(zoneYAML))
	if err != nil {
		t.Fatalf("ConfigMap zone file: %v", err)
	}

	// The Service maps 53 to the named container ports.
	var svc struct {
		Spec struct {
			ClusterIP string    `yaml:"clusterIP"`
			Ports     []k8sPort `yaml:"ports"`
		} `yaml:"spec"`
	}
	readYAML(t, "service.yaml", &svc)
	for _, p := range svc.Spec.Ports {
		cp, ok := ports[p.TargetPort]
		if !ok || cp.Protocol != p.Protocol {
			t.Errorf("service port %+v targets no container port of its protocol", p)
		}
		if strings.HasPrefix(p.Name, "dns") && p.Port != 53 {
			t.Errorf("service port %s = %d, want 53", p.Name, p.Port)
		}
	}

	// CoreDNS and kube-dns send the zone to the Service's address.
	corefile, err := os.ReadFile("../../deploy/kubernetes/coredns-stanza.conf")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(corefile), strings.TrimSuffix(zone.Zone, ".")+":53 {") ||
		!strings.Contains(string(corefile), "forward . "+svc.Spec.ClusterIP) {
		t.Errorf("coredns-stanza.conf does not forward %s to %s", zone.Zone, svc.Spec.ClusterIP)
	}
	var stub struct {
		Data map[string]string `yaml:"data"`
	}
	readYAML(t, "kube-dns-stubdomains.yaml", &stub)
	var domains map[string][]string
	if err := yaml.Unmarshal([]byte(stub.Data["stubDomains"]), &domains); err != nil {
		t.Fatal(err)
	}
	if got := domains[strings.TrimSuffix(zone.Zone, ".")]; !slices.Equal(got, []string{svc.Spec.ClusterIP}) {
		t.Errorf("stubDomains[%s] = %v, want [%s]", zone.Zone, got, svc.Spec.ClusterIP)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

// npPort is a port of a NetworkPolicy rule: a number or a container
// port's name.
type npPort struct {
	Port     string `yaml:"port"`
	Protocol string `yaml:"protocol"`
	EndPort  int    `yaml:"endPort"`
}

// networkPolicy is the part of a networking.k8s.io/v1 NetworkPolicy that
// regiondns's manifest may use; it is decoded with unknown fields refused,
// so that a misspelt key cannot pass for an open rule.
type networkPolicy struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string `yaml:"name"`
		Namespace string `yaml:"namespace"`
	} `yaml:"metadata"`
	Spec struct {
		PodSelector labelSelector `yaml:"podSelector"`
		PolicyTypes []string      `yaml:"policyTypes"`
		Ingress     []struct {
			From []struct {
				NamespaceSelector *labelSelector `yaml:"namespaceSelector"`
				PodSelector       *labelSelector `yaml:"podSelector"`
				IPBlock           *struct {
					CIDR   string   `yaml:"cidr"`
					Except []string `yaml:"except"`
				} `yaml:"ipBlock"`
			} `yaml:"from"`
			Ports []npPort `yaml:"ports"`
		} `yaml:"ingress"`
	} `yaml:"spec"`
}

// The NetworkPolicy selects the Deployment's pods, lets DNS in from
// anywhere, and lets only selected pods reach the HTTP port (/debug/state
// maps the fleet): every rule that opens the HTTP port names its peers by
// label, none by address block, and an empty selector does not count.
func TestKubernetesNetworkPolicy(t *testing.T) {
	var dep deployment
	readYAML(t, "deployment.yaml", &dep)
	data, err := os.ReadFile("../../deploy/kubernetes/networkpolicy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var np networkPolicy
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&np); err != nil {
		t.Fatalf("networkpolicy.yaml: %v", err)
	}
	if np.APIVersion != "networking.k8s.io/v1" || np.Kind != "NetworkPolicy" {
		t.Errorf("networkpolicy.yaml is %s %s, want networking.k8s.io/v1 NetworkPolicy", np.APIVersion, np.Kind)
	}
	if np.Metadata.Namespace != dep.Metadata.Namespace {
		t.Errorf("NetworkPolicy namespace %q, want the Deployment's, %q", np.Metadata.Namespace, dep.Metadata.Namespace)
	}
	sel := np.Spec.PodSelector.MatchLabels
	if len(sel) == 0 {
		t.Error("NetworkPolicy selects every pod of the namespace, want the Deployment's")
	}
	for k, v := range sel {
		if dep.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("NetworkPolicy selects %s=%s, which the Deployment's pods do not carry", k, v)
		}
	}
	if !slices.Contains(np.Spec.PolicyTypes, "Ingress") {
		t.Errorf("policyTypes = %v, want Ingress", np.Spec.PolicyTypes)
	}

	// Container ports by name.
	c := dep.Spec.Template.Spec.Containers[0]
	byName := map[string]k8sPort{}
	for _, p := range c.Ports {
		byName[p.Name] = p
	}
	// opens reports whether a rule's ports admit the container port p.
	opens := func(ports []npPort, p k8sPort) bool {
		if len(ports) == 0 {
			return true
		}
		for _, rp := range ports {
			proto := cmp.Or(rp.Protocol, "TCP")
			if proto != p.Protocol {
				continue
			}
			if rp.Port == "" || rp.Port == p.Name {
				return true
			}
			if n, err := strconv.Atoi(rp.Port); err == nil && n <= p.ContainerPort && p.ContainerPort <= max(n, rp.EndPort) {
				return true
			}
		}
		return false
	}
	var httpOpen bool
	dnsOpen := map[string]bool{}
	for i, rule := range np.Spec.Ingress {
		for _, name := range []string{"dns-udp", "dns-tcp"} {
			if opens(rule.Ports, byName[name]) && len(rule.From) == 0 {
				dnsOpen[name] = true
			}
		}
		if !opens(rule.Ports, byName["http"]) {
			continue
		}
		httpOpen = true
		if len(rule.From) == 0 {
			t.Errorf("ingress rule %d opens the HTTP port to everyone", i)
		}
		for j, peer := range rule.From {
			named := (peer.PodSelector != nil && len(peer.PodSelector.MatchLabels) > 0) ||
				(peer.NamespaceSelector != nil && len(peer.NamespaceSelector.MatchLabels) > 0)
			if peer.IPBlock != nil || !named {
				t.Errorf("ingress rule %d, peer %d opens the HTTP port to an address block or an empty selector", i, j)
			}
		}
	}
	if !httpOpen {
		t.Error("no ingress rule lets Prometheus reach the HTTP port")
	}
	for _, name := range []string{"dns-udp", "dns-tcp"} {
		if !dnsOpen[name] {
			t.Errorf("no ingress rule lets everyone reach %s", name)
		}
	}
}

func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(data)
	for _, want := range []string{"CGO_ENABLED=0", "USER nonroot", `ENTRYPOINT ["/usr/local/bin/regiondns"]`, `CMD ["serve"]`} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if n := strings.Count(df, "\nFROM "); n < 2 {
		t.Errorf("Dockerfile has %d stages, want a multi-stage build", n)
	}
	known := envNames()
	env := map[string]string{}
	for _, m := range regexp.MustCompile(`(REGIONDNS_[A-Z_]+)=(\S+)`).FindAllStringSubmatch(df, -1) {
		env[m[1]] = m[2]
		if !known[m[1]] {
			t.Errorf("Dockerfile sets %s, which regiondns does not read", m[1])
		}
	}
	dnsPort := portOf(t, env["REGIONDNS_DNS_ADDR"])
	for _, want := range []string{dnsPort + "/udp", dnsPort + "/tcp", portOf(t, env["REGIONDNS_HTTP_ADDR"]) + "/tcp"} {
		if !regexp.MustCompile(`EXPOSE .*\b` + regexp.QuoteMeta(want)).MatchString(df) {
			t.Errorf("Dockerfile does not EXPOSE %s", want)
		}
	}
	if env["REGIONDNS_CONFIG"] != "/etc/regiondns/zone.yml" {
		t.Errorf("REGIONDNS_CONFIG = %q, want the documented /etc/regiondns/zone.yml", env["REGIONDNS_CONFIG"])
	}
}

func TestSystemdUnit(t *testing.T) {
	f, err := os.Open("../../deploy/systemd/regiondns.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	known := envNames()
	directives := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			directives[k] = append(directives[k], v)
		}
	}
	for _, e := range directives["Environment"] {
		name, _, _ := strings.Cut(e, "=")
		if !known[name] {
			t.Errorf("unit sets %s, which regiondns does not read", name)
		}
	}
	for k, want := range map[string]string{
		"DynamicUser": "yes", "AmbientCapabilities": "CAP_NET_BIND_SERVICE", "NoNewPrivileges": "yes",
		"ProtectSystem": "strict", "ReadOnlyPaths": "/etc/regiondns", "ExecReload": "/bin/kill -HUP $MAINPID",
	} {
		if !slices.Contains(directives[k], want) {
			t.Errorf("%s = %v, want %q", k, directives[k], want)
		}
	}
}

// TestStaticBuild builds the binary the way the Dockerfile does and checks
// that it needs no dynamic loader: the final image has no libc.
func TestStaticBuild(t *testing.T) {
	out := filepath.Join(t.TempDir(), "regiondns")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("static build: %v\n%s", err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("binary has program header %v: not static", p.Type)
		}
	}
}

// TestPgBouncerExample keeps the PgBouncer example what docs/operations.md
// says: the zone check on every second, dns_max_ttl at its default,
// server_login_retry and dns_nxdomain_ttl of a second at most, regiondns as
// the resolver, and a backend name right under a cluster zone (the zone
// PgBouncer checks is everything after its first dot).
func TestPgBouncerExample(t *testing.T) {
	data, err := os.ReadFile("../../deploy/pgbouncer/pgbouncer.ini")
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	var hosts []string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, ";") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("pgbouncer.ini: %q is not key = value", line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		settings[k] = v
		for _, f := range strings.Fields(v) {
			if h, ok := strings.CutPrefix(f, "host="); ok {
				hosts = append(hosts, h)
			}
		}
	}
	if got := settings["dns_zone_check_period"]; got != "1" {
		t.Errorf("dns_zone_check_period = %q, want 1", got)
	}
	if got, ok := settings["dns_max_ttl"]; ok {
		t.Errorf("dns_max_ttl = %q, want it left at its default", got)
	}
	if v, err := strconv.ParseFloat(settings["server_login_retry"], 64); err != nil || v > 1 {
		t.Errorf("server_login_retry = %q, want a second or less (15 s by default)", settings["server_login_retry"])
	}
	if v, err := strconv.ParseFloat(settings["dns_nxdomain_ttl"], 64); err != nil || v > 1 {
		t.Errorf("dns_nxdomain_ttl = %q, want a second or less (15 s by default: a pool would keep rw's empty answer of a leader change)", settings["dns_nxdomain_ttl"])
	}
	if settings["resolv_conf"] == "" {
		t.Error("no resolv_conf: PgBouncer would not ask regiondns")
	}
	if len(hosts) == 0 {
		t.Fatal("no database host in pgbouncer.ini")
	}
	for _, h := range hosts {
		labels := strings.Split(strings.TrimSuffix(h, "."), ".")
		if len(labels) < 3 || (labels[0] != "rw" && labels[0] != "ro") {
			t.Errorf("database host %q: want rw or ro right under a cluster zone, <name>.<cluster>.<zone>", h)
		}
	}
	resolv, err := os.ReadFile("../../deploy/pgbouncer/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(resolv), "\nnameserver ") {
		t.Error("resolv.conf names no nameserver")
	}
}
