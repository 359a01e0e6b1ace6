package watch

import (
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/watch/consultest"
)

func TestConvertControl(t *testing.T) {
	at := time.Date(2030, 1, 2, 15, 0, 0, 0, time.UTC)
	pairs := api.KVPairs{
		{Key: "ops/rd/pin/orders", Value: []byte(`{"active":"main","reason":"drill","expires":"2030-01-02T16:00:00Z"}`)},
		{Key: "ops/rd/drain/orders/pg-3", Value: []byte(`{"reason":"rebuild"}`)},
		{Key: "ops/rd/drain/orders/pg-2", Value: nil},
		{Key: "ops/rd/drain/billing/b-2", Value: []byte("kernel")},
		{Key: "ops/rd/pin/", Value: nil},           // a folder, as Consul's UI makes it
		{Key: "ops/rd/drain/orders/", Value: nil},  // a folder
		{Key: "ops/rd/pin/orders/x", Value: nil},   // not a pin key
		{Key: "ops/rd/drain/orders", Value: nil},   // no member
		{Key: "ops/rd/lock", Value: []byte("x")},   // neither
		{Key: "service/orders/leader", Value: nil}, // outside the prefix
		nil,
	}
	st := convertControl("ops/rd/", pairs, at)
	want := map[string]policy.Control{
		"orders": {
			Pin:    &policy.Pin{Active: "main", Reason: "drill", Expires: at.Add(time.Hour)},
			Drains: []policy.Drain{{Member: "pg-2"}, {Member: "pg-3", Reason: "rebuild"}},
		},
		"billing": {Drains: []policy.Drain{{Member: "b-2", Reason: "kernel"}}},
	}
	if !reflect.DeepEqual(st.clusters, want) {
		t.Errorf("clusters = %+v\nwant %+v", st.clusters, want)
	}
	if wantBad := []string{"ops/rd/pin/orders/x", "ops/rd/drain/orders", "ops/rd/lock"}; !slices.Equal(st.badKeys, wantBad) {
		t.Errorf("bad keys = %q, want %q", st.badKeys, wantBad)
	}
	if !st.readAt.Equal(at) {
		t.Errorf("readAt = %v, want %v", st.readAt, at)
	}
}

// Two reads decide alike unless their keys differ or a valid pin expired
// between them.
func TestControlStateSame(t *testing.T) {
	at := time.Date(2030, 1, 2, 15, 0, 0, 0, time.UTC)
	pin := `{"active":"main","expires":"2030-01-02T16:00:00Z"}`
	read := func(after time.Duration, value string) controlState {
		return convertControl("rd/", api.KVPairs{{Key: "rd/pin/orders", Value: []byte(value)}}, at.Add(after))
	}
	tests := []struct {
		name     string
		a, b     controlState
		wantSame bool
	}{
		{name: "same keys, later read", a: read(0, pin), b: read(30*time.Minute, pin), wantSame: true},
		{name: "new value", a: read(0, pin), b: read(time.Minute, `{"active":"standby","expires":"2030-01-02T16:00:00Z"}`)},
		{name: "expiry between the reads", a: read(0, pin), b: read(time.Hour, pin)},
		{name: "both after the expiry", a: read(time.Hour, pin), b: read(2*time.Hour, pin), wantSame: true},
		{name: "an invalid pin has no expiry", a: read(0, `{"active":"main"}`), b: read(2*time.Hour, `{"active":"main"}`), wantSame: true},
	}
	for _, tt := range tests {
		if got := tt.a.same(tt.b); got != tt.wantSame {
			t.Errorf("%s: same = %t, want %t", tt.name, got, tt.wantSame)
		}
	}
}

func setPin(f *consultest.Fake, value string) {
	f.Index++
	f.KV = slices.DeleteFunc(f.KV, func(p *api.KVPair) bool { return p.Key == "regiondns/pin/orders" })
	if value != "" {
		f.KV = append(f.KV, &api.KVPair{Key: "regiondns/pin/orders", Value: []byte(value)})
	}
}

// The main region's keys apply while its control prefix can be read; the
// standby region's while it cannot; the last known, marked stale, while
// neither can. A change of the keys marks every cluster for Changes.
func TestWatcherControlSource(t *testing.T) {
	main, standby := consultest.New(t, "dc1"), consultest.New(t, "dc2")
	main.Set(func(f *consultest.Fake) {
		setPin(f, `{"active":"main","reason":"from dc1","expires":"2099-01-01T00:00:00Z"}`)
		f.KV = append(f.KV, &api.KVPair{Key: "regiondns/drain/orders/pg-2", Value: []byte("from dc1")})
	})
	standby.Set(func(f *consultest.Fake) {
		setPin(f, `{"active":"main","reason":"from dc2","expires":"2099-01-01T00:00:00Z"}`)
	})
	w := startWatcher(t, testConfig(main.URL(), standby.URL()))
	waitFor(t, "ready", w.Ready)
	c := w.Inputs()["orders"].Control
	if c.Source != "main" || c.Stale || c.Pin == nil || c.Pin.Reason != "from dc1" ||
		!slices.Equal(c.Drains, []policy.Drain{{Member: "pg-2", Reason: "from dc1"}}) || c.ReadAt.IsZero() {
		t.Fatalf("control = %+v, want the main region's pin and drain", c)
	}
	w.Changes()

	main.Set(func(f *consultest.Fake) {
		setPin(f, `{"active":"standby","reason":"from dc1","expires":"2099-01-01T00:00:00Z"}`)
	})
	waitFor(t, "the new pin", func() bool { return w.Inputs()["orders"].Control.Pin.Active == "standby" })
	if in, _ := w.Changes(); len(in) != 1 {
		t.Errorf("changes after a pin edit: %d clusters, want orders", len(in))
	}

	main.Set(func(f *consultest.Fake) { f.Status = http.StatusInternalServerError })
	waitFor(t, "the standby region's keys", func() bool {
		c := w.Inputs()["orders"].Control
		return c.Source == "standby" && !c.Stale && c.Pin.Reason == "from dc2" && len(c.Drains) == 0
	})

	standby.Set(func(f *consultest.Fake) { f.Status = http.StatusInternalServerError })
	waitFor(t, "the last known keys, stale", func() bool {
		c := w.Inputs()["orders"].Control
		return c.Stale && c.Source == "main" && c.Pin.Active == "standby"
	})
	if st := w.ControlStatus(); !st.Stale || st.Source != "main" || st.Prefix != "regiondns" {
		t.Errorf("control status = %+v, want stale from main under regiondns", st)
	}

	main.Set(func(f *consultest.Fake) { f.Status = 0 })
	waitFor(t, "the main region's keys again", func() bool {
		c := w.Inputs()["orders"].Control
		return c.Source == "main" && !c.Stale
	})
}

// A pin stops applying at its expiry without any change in Consul: the
// blocking query on the control prefix waits no longer than until then,
// and the read that answers after it is announced.
func TestWatcherControlPinExpires(t *testing.T) {
	main, standby := consultest.New(t, "dc1"), consultest.New(t, "dc2")
	// RFC 3339 allows a fraction of a second.
	expires := time.Now().Add(1500 * time.Millisecond).UTC()
	main.Set(func(f *consultest.Fake) {
		setPin(f, fmt.Sprintf(`{"active":"main","expires":%q}`, expires.Format(time.RFC3339Nano)))
	})
	opts := fastOptions
	opts.WaitTime = time.Minute
	w := startWatcherWith(t, testConfig(main.URL(), standby.URL()), opts)
	waitFor(t, "ready", w.Ready)
	if c := w.Inputs()["orders"].Control; !c.ReadAt.Before(expires) {
		t.Fatalf("the first read came after the pin's expiry (%v >= %v)", c.ReadAt, expires)
	}
	w.Changes()
	for len(w.Updates()) > 0 {
		<-w.Updates()
	}
	select {
	case <-w.Updates():
	case <-time.After(5 * time.Second):
		t.Fatal("no update at the pin's expiry")
	}
	in, _ := w.Changes()
	c, ok := in["orders"]
	if !ok || c.Control.ReadAt.Before(expires) {
		t.Fatalf("after the expiry: changes %v, read at %v; want orders read at or after %v", ok, c.Control.ReadAt, expires)
	}
	if d := policy.Decide(c); d.Pin == nil || d.Pin.Ignored != policy.PinExpired {
		t.Errorf("pin after its expiry: %+v, want expired", d.Pin)
	}
	if lag := c.Control.ReadAt.Sub(expires); lag > 2*time.Second {
		t.Errorf("read %s after the expiry, want within a blocking round trip", lag)
	}
}

// Keys that apply to no configured cluster are counted and listed.
func TestWatcherControlUnknownKeys(t *testing.T) {
	main, standby := consultest.New(t, "dc1"), consultest.New(t, "dc2")
	main.Set(func(f *consultest.Fake) {
		f.KV = api.KVPairs{
			{Key: "regiondns/pin/orders", Value: []byte(`{"active":"main","expires":"2099-01-01T00:00:00Z"}`)},
			{Key: "regiondns/pin/ordres", Value: []byte(`{"active":"main","expires":"2099-01-01T00:00:00Z"}`)},
			{Key: "regiondns/drain/ordres/pg-2"},
			{Key: "regiondns/pinn/orders"},
		}
	})
	w := startWatcher(t, testConfig(main.URL(), standby.URL()))
	waitFor(t, "ready", w.Ready)
	st := w.ControlStatus()
	want := []string{"regiondns/drain/ordres/pg-2", "regiondns/pin/ordres", "regiondns/pinn/orders"}
	if st.Unknown != 3 || !slices.Equal(st.UnknownKeys, want) || st.Source != "main" || st.Stale {
		t.Errorf("control status = %+v, want unknown keys %q from main", st, want)
	}
}

// An empty control prefix's blocking query is answered at every KV write
// in the datacenter, as Consul does (the fake wakes every blocked query
// at each write): after an answer that changed nothing, the next query
// waits ControlQuiet, so that Patroni's writes cost at most one request
// per ControlQuiet; a pin written in the meantime still applies within it.
func TestWatcherControlQuietBoundsWakeups(t *testing.T) {
	const controlPath = "/v1/kv/regiondns/"
	main, standby := consultest.New(t, "dc1"), consultest.New(t, "dc2")
	opts := fastOptions
	opts.WaitTime = time.Minute
	opts.ControlQuiet = 300 * time.Millisecond
	w := startWatcherWith(t, testConfig(main.URL(), standby.URL()), opts)
	waitFor(t, "ready", w.Ready)
	controlQueries := func() int {
		n := 0
		for _, r := range main.Requests() {
			if r.Path == controlPath {
				n++
			}
		}
		return n
	}
	before := controlQueries()
	start := time.Now()
	for i := range 60 {
		// A member key of a cluster regiondns does not watch, rewritten.
		main.Set(func(f *consultest.Fake) {
			f.KV = slices.DeleteFunc(f.KV, func(p *api.KVPair) bool { return p.Key == "service/other/members/m1" })
			f.KV = append(f.KV, &api.KVPair{Key: "service/other/members/m1", Value: fmt.Appendf(nil, `{"xlog_location":%d}`, i)})
			f.Index++
		})
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(start)
	got := controlQueries() - before
	if limit := int(elapsed/opts.ControlQuiet) + 2; got > limit {
		t.Errorf("%d control prefix queries for 60 writes in %v, want at most %d (one per %v)", got, elapsed, limit, opts.ControlQuiet)
	}
	if got == 0 {
		t.Error("no control prefix query woke at all: the fake no longer wakes blocked queries on a write")
	}

	// An unrelated write starts a pause; a pin written during it applies
	// when the pause ends.
	main.Set(func(f *consultest.Fake) { f.Index++ })
	time.Sleep(20 * time.Millisecond)
	main.Set(func(f *consultest.Fake) {
		setPin(f, `{"active":"main","reason":"drill","expires":"2099-01-01T00:00:00Z"}`)
	})
	pinned := time.Now()
	waitFor(t, "the pin", func() bool { return w.Inputs()["orders"].Control.Pin != nil })
	if d := time.Since(pinned); d > opts.ControlQuiet+500*time.Millisecond {
		t.Errorf("the pin applied %v after it was written, want within ControlQuiet (%v) and a margin", d, opts.ControlQuiet)
	}
}

// The cluster's own control keys are data behind its answers: their
// ModifyIndex counts in the region's index (the cluster zone's serial is
// made from it); another cluster's keys do not.
func TestWatcherControlKeysCountInTheIndex(t *testing.T) {
	main, standby := settledConsul(t, "dc1"), settledConsul(t, "dc2")
	w := startWatcher(t, testConfig(main.URL(), standby.URL()))
	waitFor(t, "ready", w.Ready)
	before := w.Inputs()["orders"].Main.Index
	if before == 0 {
		t.Fatal("main region index 0 once every resource was read")
	}
	main.Set(func(f *consultest.Fake) {
		f.Index = before + 50
		f.KV = append(f.KV, &api.KVPair{Key: "regiondns/drain/billing/b-1", Value: []byte("x"), ModifyIndex: before + 50})
	})
	waitFor(t, "the other cluster's drain read", func() bool { return main.Parked("/v1/kv/regiondns/", before+50) })
	if got := w.Inputs()["orders"].Main.Index; got != before {
		t.Errorf("orders' index %d after another cluster's drain, want %d", got, before)
	}
	main.Set(func(f *consultest.Fake) {
		f.Index = before + 60
		f.KV = append(f.KV, &api.KVPair{Key: "regiondns/drain/orders/pg-2", Value: []byte("x"), ModifyIndex: before + 60})
	})
	waitFor(t, "orders' drain counted in its index", func() bool { return w.Inputs()["orders"].Main.Index == before+60 })
	if got := w.Inputs()["orders"].Standby.Index; got >= before+60 {
		t.Errorf("the standby region's index %d took the main region's key", got)
	}
}
