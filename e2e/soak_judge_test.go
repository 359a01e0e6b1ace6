package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestJudgeSoak checks the soak's judge on made-up samples: flat figures
// under the ceilings and answered windows pass; a figure that keeps
// growing, one past its ceiling, an unread figure, and a well-behaved
// class answered below the rate after the warm-up each fail their own
// check; a low rate during the warm-up and a low rate of a hostile class
// do not.
func TestJudgeSoak(t *testing.T) {
	classes := []*soakClass{{Name: "zone"}, {Name: "flood", Hostile: true}}
	const mib = 1 << 20
	// flat returns n samples of a calm process, every query answered.
	flat := func(n int) []soakSample {
		var out []soakSample
		for i := range n {
			out = append(out, soakSample{
				At: time.Duration(i+1) * soakInterval, RSS: 50 * mib, Goroutines: 300, FDs: 100,
				Counts: []soakCount{{Sent: 1000, OK: 1000}, {Sent: 1000, OK: 10, Failed: 990}},
			})
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		change func([]soakSample)
		fail   []string // the checks that must fail, by a prefix of their name; none else may
	}{
		{name: "calm", change: func([]soakSample) {}},
		{name: "RSS grows every window", fail: []string{"RSS bounded"}, change: func(s []soakSample) {
			for i := range s {
				s[i].RSS = int64(50+15*i) * mib
			}
		}},
		{name: "goroutines pass the ceiling once", fail: []string{"goroutines <"}, change: func(s []soakSample) {
			s[1].Goroutines = 6000
		}},
		{name: "fds double in the last third", fail: []string{"open fds bounded"}, change: func(s []soakSample) {
			for i := 2 * len(s) / 3; i < len(s); i++ {
				s[i].FDs = 200
			}
		}},
		{name: "RSS unread", fail: []string{"every figure read"}, change: func(s []soakSample) {
			s[3].RSS, s[3].Errs = -1, []string{"rss: no such process"}
		}},
		{name: "zone answered 98.9% after warm-up", fail: []string{"zone answered"}, change: func(s []soakSample) {
			s[4].Counts[0] = soakCount{Sent: 1000, OK: 989, Failed: 11}
		}},
		{name: "zone with no query ended", fail: []string{"zone answered"}, change: func(s []soakSample) {
			s[2].Counts[0] = soakCount{Sent: 1000}
		}},
		{name: "zone answered 50% in the warm-up", change: func(s []soakSample) {
			s[0].Counts[0] = soakCount{Sent: 1000, OK: 500, Failed: 500}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			samples := flat(9)
			tc.change(samples)
			for _, c := range judgeSoak(samples, classes, soakLimitsIssue12) {
				want := true
				for _, f := range tc.fail {
					if strings.HasPrefix(c.Name, f) {
						want = false
					}
				}
				if c.OK != want {
					t.Errorf("check %q ok = %t, want %t (%s)", c.Name, c.OK, want, c.Detail)
				}
			}
		})
	}
}
