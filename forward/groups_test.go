package forward

import (
	"reflect"
	"testing"

	"github.com/regiondns/regiondns/zones"
)

func TestGroups(t *testing.T) {
	cfg := &zones.Config{Regions: []zones.Region{
		{Name: "eu", Role: zones.RoleMain, ConsulDNS: []string{"10.0.1.1:8600", "10.0.1.2:8600"}},
		{Name: "us", Role: zones.RoleStandby, ConsulDNS: []string{"10.0.2.1:8600"}},
	}}
	noDNS := &zones.Config{Regions: []zones.Region{
		{Name: "eu", Role: zones.RoleMain},
		{Name: "us", Role: zones.RoleStandby, ConsulDNS: []string{"10.0.2.1:8600"}},
	}}
	tests := []struct {
		name    string
		cfg     *zones.Config
		local   string
		want    [][]string
		wantErr string
	}{
		{name: "default is the main region first", cfg: cfg,
			want: [][]string{{"10.0.1.1:8600", "10.0.1.2:8600"}, {"10.0.2.1:8600"}}},
		{name: "local standby region first", cfg: cfg, local: "us",
			want: [][]string{{"10.0.2.1:8600"}, {"10.0.1.1:8600", "10.0.1.2:8600"}}},
		{name: "a region without consul_dns is skipped", cfg: noDNS, want: [][]string{{"10.0.2.1:8600"}}},
		{name: "unknown local region", cfg: cfg, local: "ap",
			wantErr: `"ap" is not a region of the zone file; want one of eu, us`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Groups(tt.cfg, tt.local)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Groups = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}
