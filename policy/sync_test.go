package policy_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/regiondns/regiondns/policy"
)

// syncRegion is readsRegion in synchronous mode, its sync key naming
// standbys for leader pg-1.
func syncRegion(standbys ...string) policy.Region {
	r := readsRegion("eu", policy.RoleLeader)
	r.Config, r.SyncMode = policy.ConfigPrimary, true
	r.Sync = policy.SyncKey{Leader: "pg-1", Standbys: standbys}
	return r
}

func TestSyncName(t *testing.T) {
	tests := []struct {
		name       string
		main       policy.Region
		opts       policy.Options
		control    policy.Control
		edit       func(r *policy.Region)
		want       []string
		wantReason string
	}{
		{name: "the sync standby", main: syncRegion("pg-2"), want: []string{"pg-2"}, wantReason: "synchronous standby pg-2"},
		{name: "several, as Patroni lists them", main: syncRegion("pg-2", "pg-3"), want: []string{"pg-2", "pg-3"},
			wantReason: "synchronous standbys pg-2, pg-3"},
		{name: "names compare without case", main: syncRegion("PG-3"), want: []string{"pg-3"}},
		{name: "a sync standby not passing is left out", main: syncRegion("pg-2", "pg-3"),
			edit: func(r *policy.Region) {
				r.Members = slices.Clone(r.Members)
				r.Members[1].Health = policy.HealthCritical
			},
			want: []string{"pg-3"}, wantReason: "synchronous standby pg-3; left out pg-2 critical"},
		{name: "no sync standby passing: the leader", main: syncRegion("pg-2"),
			edit: func(r *policy.Region) {
				r.Members = slices.Clone(r.Members)
				r.Members[1].Health = policy.HealthCritical
			},
			want: []string{"pg-1"}, wantReason: "leader: no passing synchronous standby (pg-2 critical)"},
		{name: "a sync standby with noloadbalance: the leader", main: syncRegion("pg-2"),
			edit: func(r *policy.Region) { setKey(r, "pg-2", func(k *policy.MemberKey) { k.NoLoadBalance = true }) },
			want: []string{"pg-1"}, wantReason: "leader: no passing synchronous standby (pg-2 noloadbalance)"},
		{name: "a name that is no registered replica: the leader", main: syncRegion("pg-9"),
			want: []string{"pg-1"}, wantReason: "leader: no passing synchronous standby (pg-9 not a registered replica)"},
		{name: "not in synchronous mode: the leader", main: syncRegion("pg-2"),
			edit: func(r *policy.Region) { r.SyncMode = false },
			want: []string{"pg-1"}, wantReason: "leader: not in synchronous mode"},
		{name: "no sync key: the leader", main: syncRegion(),
			edit: func(r *policy.Region) { r.Sync = policy.SyncKey{} },
			want: []string{"pg-1"}, wantReason: "leader: no sync key"},
		{name: "no standby in the sync key: the leader", main: syncRegion(),
			want: []string{"pg-1"}, wantReason: "leader: no synchronous standby"},
		{name: "a sync key of another leader: the leader", main: syncRegion("pg-3"),
			edit: func(r *policy.Region) { r.Sync.Leader = "pg-2" },
			want: []string{"pg-1"}, wantReason: "leader: the sync key names leader pg-2"},
		{name: "quorum commit with a quorum: the leader", main: syncRegion("pg-2", "pg-3"),
			edit: func(r *policy.Region) { r.Sync.Quorum = 1 },
			want: []string{"pg-1"}, wantReason: "leader: quorum commit (quorum 1): no single standby holds every commit"},
		{name: "quorum commit, every standby voting: the standbys", main: syncRegion("pg-2", "pg-3"),
			edit: func(r *policy.Region) { r.Sync.Quorum = 0 },
			want: []string{"pg-2", "pg-3"}},
		{name: "no leader: nothing", main: syncRegion("pg-2"),
			edit: func(r *policy.Region) {
				r.Members = slices.Clone(r.Members)
				r.Members[0].Health = policy.HealthCritical
			},
			want: nil, wantReason: "no read-write leader"},
		{name: "a drained sync standby is left out", main: syncRegion("pg-2", "pg-3"),
			control: policy.Control{Drains: []policy.Drain{{Member: "pg-2"}}},
			want:    []string{"pg-3"}, wantReason: "synchronous standby pg-3; left out pg-2 drained"},
		{name: "the only sync standby drained: the leader", main: syncRegion("pg-2"),
			control: policy.Control{Drains: []policy.Drain{{Member: "pg-2"}}},
			want:    []string{"pg-1"}, wantReason: "leader: no passing synchronous standby (pg-2 drained)"},
		{name: "lag does not remove a sync standby", main: syncRegion("pg-2"), opts: lagOptions(mb),
			edit: func(r *policy.Region) {
				setKey(r, "pg-2", func(k *policy.MemberKey) { k.XLogLocation = leaderPos - 2*mb })
			},
			want: []string{"pg-2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			main := tt.main
			if tt.edit != nil {
				tt.edit(&main)
			}
			d := policy.Decide(policy.Input{Options: tt.opts, Main: main, Standby: readsRegion("us", policy.RoleStandbyLeader), Now: t0, Control: tt.control})
			if got := members(d.Sync); !slices.Equal(got, tt.want) {
				t.Errorf("sync = %v, want %v (%s)", got, tt.want, d.SyncReason)
			}
			if tt.wantReason != "" && d.SyncReason != tt.wantReason {
				t.Errorf("sync reason = %q, want %q", d.SyncReason, tt.wantReason)
			}
			for _, e := range d.Sync {
				if e.Region != d.Active {
					t.Errorf("sync endpoint %+v is not from the active region %s", e, d.Active)
				}
			}
		})
	}
}

// TestSyncNameRegions: a standby cluster has no synchronous standbys, its
// sync key notwithstanding; once promoted (and active), its own sync key
// answers.
func TestSyncNameRegions(t *testing.T) {
	standby := readsRegion("us", policy.RoleStandbyLeader)
	standby.Config, standby.SyncMode = policy.ConfigStandby, true
	standby.Sync = policy.SyncKey{Leader: "pg-1", Standbys: []string{"pg-2"}}
	d := policy.Decide(policy.Input{Main: syncRegion("pg-3"), Standby: standby})
	if got := d.Sync; len(got) != 1 || got[0].Region != "eu" || got[0].Member != "pg-3" {
		t.Errorf("sync = %s, want eu's pg-3", fmtEndpoints(got))
	}

	// The main region down, the standby promoted: sync follows.
	main := syncRegion("pg-3")
	main.Members = nil
	promoted := standby
	promoted.Members = slices.Clone(standby.Members)
	promoted.Members[0].Role = policy.RoleLeader
	promoted.Config = policy.ConfigPrimary
	d = policy.Decide(policy.Input{Main: main, Standby: promoted})
	if got := d.Sync; len(got) != 1 || got[0].Region != "us" || got[0].Member != "pg-2" {
		t.Errorf("after the promotion sync = %s, want us's pg-2 (%s)", fmtEndpoints(got), d.SyncReason)
	}

	// A standby cluster that is the active region (nothing is primary):
	// no read-write leader, nothing.
	d = policy.Decide(policy.Input{Main: policy.Region{Name: "eu", Known: true}, Standby: standby})
	if len(d.Sync) != 0 {
		t.Errorf("without a primary sync = %s, want nothing", fmtEndpoints(d.Sync))
	}
}

// TestSyncNameLayouts: bouncer-per-node answers the sync standby's
// PgBouncer; pool-fleet cannot single a standby out and answers the RW pool.
func TestSyncNameLayouts(t *testing.T) {
	fx := mainSite.build(fixPrimary)
	r := fx.region
	r.Config, r.SyncMode = policy.ConfigPrimary, true
	r.Sync = policy.SyncKey{Leader: mainSite.member(1), Standbys: []string{mainSite.member(2)}}
	for _, tt := range []struct {
		layout policy.Layout
		want   []policy.Endpoint
		reason string
	}{
		{policy.LayoutDirect, []policy.Endpoint{mainSite.memberEP(2)}, "synchronous standby " + mainSite.member(2)},
		{policy.LayoutBouncerPerNode, []policy.Endpoint{mainSite.bouncerEP(2)}, "synchronous standby " + mainSite.member(2)},
		{policy.LayoutPoolFleet, fx.wantWrite(policy.LayoutPoolFleet), "leader: a pool cannot reach one standby"},
	} {
		t.Run(string(tt.layout), func(t *testing.T) {
			d := policy.Decide(policy.Input{Options: policy.Options{Layout: tt.layout}, Main: r, Standby: standbySite.build(fixStandby).region})
			checkEndpoints(t, "sync", d.Sync, tt.want)
			if !strings.HasPrefix(d.SyncReason, tt.reason) {
				t.Errorf("sync reason = %q, want %q", d.SyncReason, tt.reason)
			}
		})
	}
}
