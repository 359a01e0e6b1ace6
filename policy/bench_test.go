package policy_test

import (
	"testing"

	"github.com/regiondns/regiondns/policy"
)

func BenchmarkDecide(b *testing.B) {
	cases := []struct {
		name          string
		main, standby fix
	}{
		{name: "steady", main: fixPrimary, standby: fixStandby},
		{name: "split brain", main: fixPrimary, standby: fixPrimary},
		{name: "no leader", main: fixNone, standby: fixStandby},
	}
	for _, c := range cases {
		for _, layout := range policy.Layouts {
			in := policy.Input{
				Options: policy.Options{Layout: layout, ROFallback: policy.FallbackLeader},
				Main:    mainSite.build(c.main).region,
				Standby: standbySite.build(c.standby).region,
			}
			b.Run(c.name+"/"+string(layout), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					_ = policy.Decide(in)
				}
			})
		}
	}
}
