package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestLifecycleReload covers SIGHUP: a good zone file adds a cluster without
// disturbing the running one; a bad file keeps the running configuration and
// says why in /debug/state and /metrics. SIGTERM at the end must exit 0 (the
// harness's Stop checks the exit code).
func TestLifecycleReload(t *testing.T) {
	f := StartFederation(t, FederationOptions{})
	RegisterMember(t, f.DC1.Server, MemberSpec{Scope: "orders", Name: "o1", Address: "127.0.0.61", Role: RoleLeader})
	RegisterMember(t, f.DC2.Server, MemberSpec{Scope: "orders", Name: "o2", Address: "127.0.0.62", Role: RoleStandbyLeader})
	RegisterMember(t, f.DC1.Server, MemberSpec{Scope: "billing", Name: "b1", Address: "127.0.0.71", Role: RoleLeader})

	orders := ZoneCluster{Label: "orders", MainScope: "orders"}
	billing := ZoneCluster{Label: "billing", MainScope: "billing"}
	r := StartRegiondns(t, f.ZoneYAML(ZoneOptions{Clusters: []ZoneCluster{orders}}), nil)
	const rwOrders, rwBilling = "rw.orders.pg.example.internal.", "rw.billing.pg.example.internal."
	lcWaitAddr(t, r, rwOrders, "127.0.0.61")
	if m := Query(t, r.DNSAddr(), rwBilling, dns.TypeA, false); m.Rcode != dns.RcodeNameError {
		t.Fatalf("%s before the reload: rcode %s, want NXDOMAIN", rwBilling, dns.RcodeToString[m.Rcode])
	}

	// A good file: billing appears, orders keeps answering throughout.
	r.WriteZone(f.ZoneYAML(ZoneOptions{Clusters: []ZoneCluster{orders, billing}}))
	r.Reload()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if got := AnswerAddrs(Query(t, r.DNSAddr(), rwOrders, dns.TypeA, false)); fmt.Sprint(got) != "[127.0.0.61]" {
			t.Fatalf("%s during the reload = %v, want [127.0.0.61] throughout", rwOrders, got)
		}
		if got := AnswerAddrs(Query(t, r.DNSAddr(), rwBilling, dns.TypeA, false)); fmt.Sprint(got) == "[127.0.0.71]" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered 127.0.0.71 after the reload\n%s", rwBilling, r.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := lcState(t, r); st.Config.LastReloadError != "" {
		t.Errorf("last_reload_error = %q after a good reload", st.Config.LastReloadError)
	}

	// A bad file: the running configuration stays, and every channel says why.
	r.WriteZone(f.ZoneYAML(ZoneOptions{Clusters: []ZoneCluster{orders, billing}}) + "\nbogus_key: 1\n")
	r.Reload()
	WaitFor(t, 10*time.Second, func() (bool, string) {
		st := lcState(t, r)
		return strings.Contains(st.Config.LastReloadError, "bogus_key"), "last_reload_error = " + st.Config.LastReloadError
	})
	_, metrics := r.Get("/metrics")
	if !strings.Contains(string(metrics), "regiondns_config_last_reload_successful 0") ||
		!strings.Contains(string(metrics), `regiondns_config_reloads_total{result="failure"} 1`) {
		t.Errorf("metrics after a bad reload lack the failure:\n%s", lcGrepLines(string(metrics), "regiondns_config_"))
	}
	if !strings.Contains(r.Logs(), "zone file reload failed") {
		t.Error("no log line says the reload failed")
	}
	for name, want := range map[string]string{rwOrders: "127.0.0.61", rwBilling: "127.0.0.71"} {
		if got := AnswerAddrs(Query(t, r.DNSAddr(), name, dns.TypeA, true)); fmt.Sprint(got) != "["+want+"]" {
			t.Errorf("%s after a bad reload = %v, want [%s]", name, got, want)
		}
	}
	r.Stop()
}

func lcWaitAddr(t *testing.T, r *Regiondns, name, addr string) {
	t.Helper()
	WaitFor(t, 15*time.Second, func() (bool, string) {
		m, err := Exchange(r.DNSAddr(), NewQuery(name, dns.TypeA), false)
		if err != nil {
			return false, err.Error()
		}
		got := AnswerAddrs(m)
		return fmt.Sprint(got) == "["+addr+"]", fmt.Sprintf("%s = %v, want [%s]", name, got, addr)
	})
}

type lifecycleState struct {
	Config struct {
		LastReloadError string `json:"last_reload_error"`
	} `json:"config"`
}

func lcState(t *testing.T, r *Regiondns) lifecycleState {
	t.Helper()
	code, body := r.Get("/debug/state")
	var st lifecycleState
	if code != 200 {
		t.Fatalf("/debug/state: HTTP %d", code)
	}
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("/debug/state: %v", err)
	}
	return st
}

func lcGrepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
