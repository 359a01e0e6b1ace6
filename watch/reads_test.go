package watch

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/watch/consultest"
)

func TestConvertKVReads(t *testing.T) {
	pairs := api.KVPairs{
		{Key: "service/orders/leader", Value: []byte("pg-1")},
		{Key: "service/orders/status", Value: []byte(`{"optime":503316480,"slots":{"pg_2":503316480}}`)},
		{Key: "service/orders/optime/leader", Value: []byte("1")},
		{Key: "service/orders/config", Value: []byte(`{"synchronous_mode":true}`)},
		{Key: "service/orders/sync", Value: []byte(`{"leader":"pg-1","sync_standby":"pg-2, PG-3,"}`)},
		{Key: "service/orders/members/pg-1", Value: []byte(`{"role":"master","xlog_location":503316480,"timeline":2}`)},
		{Key: "service/orders/members/pg-2", Value: []byte(`{"role":"replica","xlog_location":503316000,"replication_state":"streaming","tags":{"nofailover":true}}`)},
		{Key: "service/orders/members/pg-3", Value: []byte(`{"role":"replica","xlog_location":7,"replay_lsn":5,"receive_lsn":7,"replication_state":"in archive recovery","tags":{"noloadbalance":true}}`)},
	}
	wantReads := map[string]policy.MemberKey{
		"pg-1": {XLogLocation: 503316480},
		"pg-2": {XLogLocation: 503316000, ReplicationState: "streaming"},
		"pg-3": {XLogLocation: 7, ReplayLSN: 5, ReceiveLSN: 7, ReplicationState: "in archive recovery", NoLoadBalance: true},
	}
	got := convertKV("service/orders/", pairs, true)
	if !reflect.DeepEqual(got.memberData, wantReads) {
		t.Errorf("member data with reads = %+v, want %+v", got.memberData, wantReads)
	}
	if got.optime != 503316480 {
		t.Errorf("optime = %d, want the status key's 503316480 (optime/leader is read only without it)", got.optime)
	}
	if !got.syncMode {
		t.Error("synchronous_mode true not read")
	}
	if want := (policy.SyncKey{Leader: "pg-1", Standbys: []string{"pg-2", "PG-3"}}); !reflect.DeepEqual(got.sync, want) {
		t.Errorf("sync = %+v, want %+v", got.sync, want)
	}

	// Without reads only the tags are kept: Patroni rewrites the rest every
	// loop_wait, and nothing else of this cluster's decision reads it.
	got = convertKV("service/orders/", pairs, false)
	if want := map[string]policy.MemberKey{"pg-3": {NoLoadBalance: true}}; !reflect.DeepEqual(got.memberData, want) {
		t.Errorf("member data without reads = %+v, want %+v", got.memberData, want)
	}
	if got.optime != 0 {
		t.Errorf("optime without reads = %d, want 0", got.optime)
	}

	// Patroni before 2.1 (and a cluster still holding such members) writes
	// optime/leader, read only without a status key.
	legacy := api.KVPairs{{Key: "service/orders/optime/leader", Value: []byte("4096")}}
	if got := convertKV("service/orders/", legacy, true).optime; got != 4096 {
		t.Errorf("legacy optime = %d, want 4096", got)
	}
}

// TestReadSync follows Patroni's SyncState.from_node.
func TestReadSync(t *testing.T) {
	tests := []struct {
		value string
		want  policy.SyncKey
	}{
		{`{"leader":"pg-1","sync_standby":"pg-2"}`, policy.SyncKey{Leader: "pg-1", Standbys: []string{"pg-2"}}},
		{`{"leader":"pg-1","sync_standby":"pg-2,pg-3"}`, policy.SyncKey{Leader: "pg-1", Standbys: []string{"pg-2", "pg-3"}}},
		{`{"leader":"pg-1","sync_standby":null}`, policy.SyncKey{Leader: "pg-1"}},
		{`{"leader":"pg-1","quorum":1,"sync_standby":"pg-2,pg-3"}`, policy.SyncKey{Leader: "pg-1", Standbys: []string{"pg-2", "pg-3"}, Quorum: 1}},
		{`{"leader":"pg-1","quorum":0,"sync_standby":"pg-2"}`, policy.SyncKey{Leader: "pg-1", Standbys: []string{"pg-2"}}},
		{`{"leader":"","quorum":2,"sync_standby":"pg-2"}`, policy.SyncKey{Standbys: []string{"pg-2"}}},
		{`{"sync_standby":"pg-2"}`, policy.SyncKey{}},
		{`[]`, policy.SyncKey{}},
		{`{`, policy.SyncKey{}},
	}
	for _, tt := range tests {
		if got := readSync([]byte(tt.value)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("readSync(%s) = %+v, want %+v", tt.value, got, tt.want)
		}
	}
}

// TestReadSynchronousMode follows Patroni's global_config: parse_bool, or
// quorum.
func TestReadSynchronousMode(t *testing.T) {
	for value, want := range map[string]bool{
		`true`: true, `"on"`: true, `"True"`: true, `"yes"`: true, `1`: true, `"quorum"`: true, `"QUORUM"`: true,
		`false`: false, `"off"`: false, `0`: false, `"maybe"`: false, `null`: false,
	} {
		_, got := readConfig([]byte(`{"synchronous_mode":` + value + `}`))
		if got != want {
			t.Errorf("synchronous_mode %s read as %v, want %v", value, got, want)
		}
	}
	if _, got := readConfig([]byte(`{"ttl":30}`)); got {
		t.Error("a config without synchronous_mode read as synchronous")
	}
}

// TestTruthy follows Python's bool(), which Patroni applies to its
// noloadbalance tag.
func TestTruthy(t *testing.T) {
	for value, want := range map[string]bool{
		`true`: true, `1`: true, `"false"`: true, `"x"`: true, `[0]`: true, `{"a":1}`: true, `0.5`: true,
		`false`: false, `0`: false, `""`: false, `null`: false, `[]`: false, `{}`: false, ``: false,
	} {
		if got := truthy(json.RawMessage(value)); got != want {
			t.Errorf("truthy(%s) = %v, want %v", value, got, want)
		}
	}
}

// readsConsul is a settled region (see settledConsul) whose members have
// member keys with WAL positions, pg-2 at lag.
func readsConsul(t *testing.T, dc string, lag int64) *consultest.Fake {
	f := settledConsul(t, dc)
	f.Set(func(f *consultest.Fake) { f.KV = append(f.KV, memberPairs(lag)...) })
	return f
}

func memberPairs(lag int64) api.KVPairs {
	const lead = 1 << 30
	key := func(member string, v map[string]any) *api.KVPair {
		b, _ := json.Marshal(v)
		return &api.KVPair{Key: "service/orders/members/" + member, Value: b}
	}
	return api.KVPairs{
		key("pg-1", map[string]any{"role": "master", "xlog_location": lead}),
		key("pg-2", map[string]any{"role": "replica", "xlog_location": lead - lag, "replication_state": "streaming"}),
	}
}

// setLag rewrites pg-2's member key (and, as Patroni's loop does, moves
// the index).
func setLag(f *consultest.Fake, lag int64) {
	f.Set(func(f *consultest.Fake) {
		f.KV = append(f.KV[:2:2], memberPairs(lag)...)
		f.Index++
	})
}

// A cluster with ro_max_lag has its KV prefix followed all the time, and
// each rewrite of a member key reaches Changes; a cluster without does
// not: its settled prefix is not followed and positions are not read.
// Following counts include each region's leader key and control prefix.
func TestWatcherFollowsReads(t *testing.T) {
	for _, tt := range []struct {
		name   string
		reads  bool
		follow int
	}{
		{name: "ro_max_lag", reads: true, follow: 4},
		{name: "no read options", reads: false, follow: 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			main, standby := readsConsul(t, "dc1", 0), readsConsul(t, "dc2", 0)
			cfg := testConfig(main.URL(), standby.URL())
			if tt.reads {
				cfg.Clusters[0].ROMaxLag = 16 << 20
			}
			opts := fastOptions
			opts.KVRefresh = time.Hour
			w := startWatcherWith(t, cfg, opts)
			waitFor(t, "ready", w.Ready)
			waitFor(t, "following", func() bool {
				st := w.Status()
				return st[0].Following == tt.follow && st[1].Following == tt.follow
			})
			// A running loop may not have sent its blocking query yet.
			if tt.reads {
				waitFor(t, "KV prefix followed with a blocking query", func() bool { return kvBlocking(main, 0) })
			} else if kvBlocking(main, 0) {
				t.Error("KV prefix followed with a blocking query, want it read once")
			}
			w.Changes()
			setLag(main, 48<<20)
			if !tt.reads {
				waitFor(t, "service re-queried", func() bool { return main.Parked("/v1/health/service/orders", 11) })
				if in, _ := w.Changes(); len(in) != 0 {
					t.Errorf("a rewrite of positions no decision reads announced %v", in)
				}
				return
			}
			in := changesUntil(t, w, "pg-2's new position", func(in map[string]policy.Input) bool {
				return in["orders"].Main.MemberData["pg-2"].XLogLocation == 1<<30-48<<20
			})
			if got := in["orders"].Main.Optime; got != 0 {
				t.Errorf("optime = %d, want 0 (no status key)", got)
			}
			if st := w.Status(); st[0].Following != 4 {
				t.Errorf("following %d resources after the change, want 4 (the prefix stays followed)", st[0].Following)
			}
		})
	}
}

// In synchronous mode the sync key is followed on its own, and a change of
// it reaches Changes; outside, it is never queried on its own.
func TestWatcherFollowsSyncKey(t *testing.T) {
	const syncPath = "/v1/kv/service/orders/sync"
	syncQueried := func(f *consultest.Fake) bool {
		for _, r := range f.Requests() {
			if r.Path == syncPath {
				return true
			}
		}
		return false
	}
	main, standby := settledConsul(t, "dc1"), settledConsul(t, "dc2")
	main.Set(func(f *consultest.Fake) {
		f.KV[1].Value = []byte(`{"ttl":30,"synchronous_mode":true}`)
		f.KV = append(f.KV, &api.KVPair{Key: "service/orders/sync", Value: []byte(`{"leader":"pg-1","sync_standby":"pg-2"}`)})
	})
	opts := fastOptions
	opts.KVRefresh = time.Hour
	w := startWatcherWith(t, testConfig(main.URL(), standby.URL()), opts)
	waitFor(t, "ready", w.Ready)
	waitFor(t, "sync key parked", func() bool { return main.Parked(syncPath, 10) })
	if syncQueried(standby) {
		t.Error("the standby region's sync key was queried outside synchronous mode")
	}
	if st := w.Status(); st[0].Following != 4 || st[0].Resources != 5 || st[1].Resources != 4 {
		t.Errorf("main follows %d of %d resources, standby has %d; want 4 of 5 (service, leader key, sync key, control prefix), 4", st[0].Following, st[0].Resources, st[1].Resources)
	}
	in := w.Inputs()
	if want := (policy.SyncKey{Leader: "pg-1", Standbys: []string{"pg-2"}}); !in["orders"].Main.SyncMode || !reflect.DeepEqual(in["orders"].Main.Sync, want) {
		t.Fatalf("main sync mode %v, sync %+v; want true, %+v", in["orders"].Main.SyncMode, in["orders"].Main.Sync, want)
	}
	w.Changes()

	// Patroni picks another standby: the key alone changes.
	main.Set(func(f *consultest.Fake) {
		f.KV[2].Value = []byte(`{"leader":"pg-1","sync_standby":"pg-3"}`)
		f.Index++
	})
	changesUntil(t, w, "the new sync standby", func(in map[string]policy.Input) bool {
		s := in["orders"].Main.Sync.Standbys
		return len(s) == 1 && s[0] == "pg-3"
	})
	if kvBlocking(main, 0) {
		t.Error("the KV prefix was followed: in synchronous mode only the sync key is")
	}
}

// Reconfigure restarts a KV prefix whose clusters start or stop following
// reads.
func TestReconfigureReads(t *testing.T) {
	main, standby := readsConsul(t, "dc1", 0), readsConsul(t, "dc2", 0)
	cfg := testConfig(main.URL(), standby.URL())
	opts := fastOptions
	opts.KVRefresh = time.Hour
	w := startWatcherWith(t, cfg, opts)
	waitFor(t, "three loops per region (service, leader key, control prefix)", func() bool { st := w.Status(); return st[0].Following == 3 && st[1].Following == 3 })
	next := testConfig(main.URL(), standby.URL())
	next.Clusters[0].RORequireStreaming = true
	if err := w.Reconfigure(next); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the prefix followed after the reload", func() bool { st := w.Status(); return st[0].Following == 4 && st[1].Following == 4 })
	waitFor(t, "the replication state read after the reload", func() bool {
		return w.Inputs()["orders"].Main.MemberData["pg-2"].ReplicationState == "streaming"
	})
}
