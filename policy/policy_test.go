package policy_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/regiondns/regiondns/policy"
)

const (
	activeMain    = "main"
	activeStandby = "standby"
)

// matrix is every combination of main × standby fixture state, with the
// active region and split brain written down from SPEC §3:
//   - main is active while it has a read-write leader, unless the standby
//     also has one and wins on timeline;
//   - the standby is active only once it has a read-write leader itself;
//   - with no read-write leader anywhere, main stays active (rw answers
//     nothing, ro still serves main's replicas).
//
// Timelines (see mainSite/standbySite): main primary 4, conflict 6, stale 4;
// standby primary 5, conflict 7, stale 4. Equal timelines go to the standby.
var matrix = []struct {
	main, standby fix
	active        string
	split         bool
}{
	{main: fixPrimary, standby: fixPrimary, active: activeStandby, split: true}, // 4 < 5
	{main: fixPrimary, standby: fixStandby, active: activeMain},
	{main: fixPrimary, standby: fixNone, active: activeMain},
	{main: fixPrimary, standby: fixDown, active: activeMain},
	{main: fixPrimary, standby: fixConflict, active: activeStandby, split: true}, // 4 < 7
	{main: fixPrimary, standby: fixUnresolved, active: activeMain},
	{main: fixPrimary, standby: fixStale, active: activeStandby, split: true}, // 4 = 4
	{main: fixPrimary, standby: fixUnknown, active: activeMain},

	{main: fixStandby, standby: fixPrimary, active: activeStandby},
	{main: fixStandby, standby: fixStandby, active: activeMain},
	{main: fixStandby, standby: fixNone, active: activeMain},
	{main: fixStandby, standby: fixDown, active: activeMain},
	{main: fixStandby, standby: fixConflict, active: activeStandby},
	{main: fixStandby, standby: fixUnresolved, active: activeMain},
	{main: fixStandby, standby: fixStale, active: activeStandby},
	{main: fixStandby, standby: fixUnknown, active: activeMain},

	{main: fixNone, standby: fixPrimary, active: activeStandby},
	{main: fixNone, standby: fixStandby, active: activeMain},
	{main: fixNone, standby: fixNone, active: activeMain},
	{main: fixNone, standby: fixDown, active: activeMain},
	{main: fixNone, standby: fixConflict, active: activeStandby},
	{main: fixNone, standby: fixUnresolved, active: activeMain},
	{main: fixNone, standby: fixStale, active: activeStandby},
	{main: fixNone, standby: fixUnknown, active: activeMain},

	{main: fixDown, standby: fixPrimary, active: activeStandby},
	{main: fixDown, standby: fixStandby, active: activeMain},
	{main: fixDown, standby: fixNone, active: activeMain},
	{main: fixDown, standby: fixDown, active: activeMain},
	{main: fixDown, standby: fixConflict, active: activeStandby},
	{main: fixDown, standby: fixUnresolved, active: activeMain},
	{main: fixDown, standby: fixStale, active: activeStandby},
	{main: fixDown, standby: fixUnknown, active: activeMain},

	{main: fixConflict, standby: fixPrimary, active: activeMain, split: true}, // 6 > 5
	{main: fixConflict, standby: fixStandby, active: activeMain},
	{main: fixConflict, standby: fixNone, active: activeMain},
	{main: fixConflict, standby: fixDown, active: activeMain},
	{main: fixConflict, standby: fixConflict, active: activeStandby, split: true}, // 6 < 7
	{main: fixConflict, standby: fixUnresolved, active: activeMain},
	{main: fixConflict, standby: fixStale, active: activeMain, split: true}, // 6 > 4
	{main: fixConflict, standby: fixUnknown, active: activeMain},

	{main: fixUnresolved, standby: fixPrimary, active: activeStandby},
	{main: fixUnresolved, standby: fixStandby, active: activeMain},
	{main: fixUnresolved, standby: fixNone, active: activeMain},
	{main: fixUnresolved, standby: fixDown, active: activeMain},
	{main: fixUnresolved, standby: fixConflict, active: activeStandby},
	{main: fixUnresolved, standby: fixUnresolved, active: activeMain},
	{main: fixUnresolved, standby: fixStale, active: activeStandby},
	{main: fixUnresolved, standby: fixUnknown, active: activeMain},

	{main: fixStale, standby: fixPrimary, active: activeStandby, split: true}, // 4 < 5
	{main: fixStale, standby: fixStandby, active: activeMain},
	{main: fixStale, standby: fixNone, active: activeMain},
	{main: fixStale, standby: fixDown, active: activeMain},
	{main: fixStale, standby: fixConflict, active: activeStandby, split: true}, // 4 < 7
	{main: fixStale, standby: fixUnresolved, active: activeMain},
	{main: fixStale, standby: fixStale, active: activeStandby, split: true}, // 4 = 4
	{main: fixStale, standby: fixUnknown, active: activeMain},

	{main: fixUnknown, standby: fixPrimary, active: activeStandby},
	{main: fixUnknown, standby: fixStandby, active: activeMain},
	{main: fixUnknown, standby: fixNone, active: activeMain},
	{main: fixUnknown, standby: fixDown, active: activeMain},
	{main: fixUnknown, standby: fixConflict, active: activeStandby},
	{main: fixUnknown, standby: fixUnresolved, active: activeMain},
	{main: fixUnknown, standby: fixStale, active: activeStandby},
	{main: fixUnknown, standby: fixUnknown, active: activeMain},
}

func TestMatrixCoversEveryCombination(t *testing.T) {
	seen := map[[2]fix]int{}
	for _, row := range matrix {
		seen[[2]fix{row.main, row.standby}]++
	}
	for _, m := range allFixes {
		for _, s := range allFixes {
			if n := seen[[2]fix{m, s}]; n != 1 {
				t.Errorf("main=%s standby=%s appears %d times in the matrix, want 1", m, s, n)
			}
		}
	}
}

func TestDecideMatrix(t *testing.T) {
	fallbacks := []policy.ROFallback{policy.FallbackLeader, policy.FallbackNone}
	for _, row := range matrix {
		for _, layout := range policy.Layouts {
			for _, fb := range fallbacks {
				name := fmt.Sprintf("main=%s/standby=%s/%s/ro-fallback=%s", row.main, row.standby, layout, fb)
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					checkMatrixRow(t, row.main, row.standby, row.active, row.split, layout, fb)
				})
			}
		}
	}
}

func checkMatrixRow(t *testing.T, mainFix, standbyFix fix, activeSide string, split bool, layout policy.Layout, fb policy.ROFallback) {
	t.Helper()
	mfx, sfx := mainSite.build(mainFix), standbySite.build(standbyFix)
	d := policy.Decide(policy.Input{
		Options: policy.Options{Layout: layout, ROFallback: fb},
		Main:    mfx.region, Standby: sfx.region,
	})

	active, passive := mfx, sfx
	if activeSide == activeStandby {
		active, passive = sfx, mfx
	}
	if d.Active != active.site.name || d.Passive != passive.site.name {
		t.Errorf("active/passive = %q/%q, want %q/%q (reason %q)", d.Active, d.Passive, active.site.name, passive.site.name, d.Reason)
	}
	if d.SplitBrain != split {
		t.Errorf("SplitBrain = %v, want %v (reason %q)", d.SplitBrain, split, d.Reason)
	}
	if got := strings.Contains(d.Reason, "split brain"); got != split {
		t.Errorf("reason %q mentions split brain = %v, want %v", d.Reason, got, split)
	}
	if d.Reason == "" {
		t.Error("empty reason")
	}
	wantStale := mainFix == fixStale || standbyFix == fixStale || mainFix == fixUnknown || standbyFix == fixUnknown
	if d.Stale != wantStale {
		t.Errorf("Stale = %v, want %v", d.Stale, wantStale)
	}
	checkView(t, "Main", d.Main, mfx.view())
	checkView(t, "Standby", d.Standby, sfx.view())

	var wantRW []policy.Endpoint
	if active.writable {
		wantRW = active.wantWrite(layout)
	}
	wantRO := active.wantRead(layout, fb == policy.FallbackLeader && active.writable)
	checkEndpoints(t, "RW", d.RW, wantRW)
	checkEndpoints(t, "RO", d.RO, wantRO)
	checkEndpoints(t, "PassiveRW", d.PassiveRW, passive.wantWrite(layout))
	checkEndpoints(t, "PassiveRO", d.PassiveRO, passive.wantRead(layout, true))
	// The region-pinned read names answer their own region, whichever is
	// active, falling back to its leader; sync, outside synchronous mode,
	// the active leader.
	checkEndpoints(t, "ro."+mfx.site.name, d.Main.RO, mfx.wantRead(layout, true))
	checkEndpoints(t, "ro."+sfx.site.name, d.Standby.RO, sfx.wantRead(layout, true))
	checkEndpoints(t, "Sync", d.Sync, wantRW)
	for _, v := range []policy.RegionView{d.Main, d.Standby} {
		for _, e := range v.RO {
			if e.Region != v.Name {
				t.Errorf("ro.%s endpoint %+v is from another region", v.Name, e)
			}
		}
	}

	// Never mix regions: whatever the expectations above say, rw and ro
	// come only from the active region and passive-* only from the other.
	for _, e := range append(d.RW, d.RO...) {
		if e.Region != d.Active {
			t.Errorf("rw/ro endpoint %+v is not from the active region %q", e, d.Active)
		}
	}
	for _, e := range append(d.PassiveRW, d.PassiveRO...) {
		if e.Region != d.Passive {
			t.Errorf("passive endpoint %+v is not from the passive region %q", e, d.Passive)
		}
	}
	if len(d.RW) > 1 && layout != policy.LayoutPoolFleet {
		t.Errorf("rw answers %d endpoints, want at most one leader: %s", len(d.RW), fmtEndpoints(d.RW))
	}
}

func checkView(t *testing.T, name string, got, want policy.RegionView) {
	t.Helper()
	if got.Name != want.Name || got.State != want.State || got.Stale != want.Stale ||
		got.Leader != want.Leader || got.Timeline != want.Timeline ||
		strings.Join(got.Replicas, ",") != strings.Join(want.Replicas, ",") {
		t.Errorf("%s view:\n got %+v\nwant %+v", name, got, want)
	}
}
