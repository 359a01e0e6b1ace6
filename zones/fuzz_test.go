package zones

import (
	"errors"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// FuzzParse checks that Parse never panics, that it returns either a config
// or an ErrInvalid error, and that a config it returns is valid: written back
// as a zone file, it parses to itself.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*.yml")
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		f.Add(readTestdata(f, filepath.Base(file)))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			if cfg != nil {
				t.Fatalf("Parse returned a config and an error: %v", err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse error %v is not ErrInvalid", err)
			}
			return
		}
		again, err := Parse(marshal(t, cfg))
		if err != nil {
			t.Fatalf("Parse accepted a config that does not re-validate: %v", err)
		}
		if !reflect.DeepEqual(again, cfg) {
			t.Fatalf("config changed when written back:\n was %+v\n now %+v", cfg, again)
		}
	})
}

func TestRoundTrip(t *testing.T) {
	for _, want := range []*Config{minimalConfig(), fullConfig(), anchorsConfig()} {
		got, err := Parse(marshal(t, want))
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
		}
	}
}

// marshal writes cfg as a zone file.
func marshal(t *testing.T, cfg *Config) []byte {
	t.Helper()
	data, err := yaml.Marshal(toFile(cfg))
	if err != nil {
		t.Fatalf("yaml.Marshal: %v", err)
	}
	return data
}

// toFile is the inverse of fileConfig.config, for round trips.
func toFile(cfg *Config) *fileConfig {
	i := func(v uint32) *int64 { n := int64(v); return &n }
	fc := &fileConfig{
		Zone: cfg.Zone,
		SOA: fileSOA{
			MName: cfg.SOA.MName, RName: cfg.SOA.RName,
			Refresh: i(cfg.SOA.Refresh), Retry: i(cfg.SOA.Retry),
			Expire: i(cfg.SOA.Expire), Minimum: i(cfg.SOA.Minimum),
		},
		TTL: fileTTL{
			RW: i(cfg.TTL.RW), RO: i(cfg.TTL.RO), Passive: i(cfg.TTL.Passive),
			Negative: i(cfg.TTL.Negative), TXT: i(cfg.TTL.TXT),
			SOA: i(cfg.TTL.SOA), NS: i(cfg.TTL.NS),
		},
		WarningIsPassing: cfg.WarningIsPassing,
		ControlPrefix:    &cfg.ControlPrefix,
	}
	for _, ns := range cfg.NS {
		fc.NS = append(fc.NS, fileNS(ns))
	}
	for _, r := range cfg.Regions {
		fr := fileRegion{
			Name: r.Name, Role: string(r.Role), Datacenter: r.Datacenter,
			ConsulHTTP: r.ConsulHTTP, ConsulDNS: r.ConsulDNS,
		}
		if r.TokenFile != "" {
			fr.TokenFile = &r.TokenFile
		}
		fc.Regions = append(fc.Regions, fr)
	}
	for _, c := range cfg.Clusters {
		var maxLag *fileBytes
		var settle *int64
		if c.ROMaxLag > 0 {
			s, n := fileBytes(strconv.FormatInt(c.ROMaxLag, 10)), int64(c.ROLagSettle/time.Second)
			maxLag, settle = &s, &n
		}
		fc.Clusters = append(fc.Clusters, fileCluster{
			Label:     c.Label,
			Scopes:    c.Scopes,
			Namespace: &c.Namespace,
			Layout:    string(c.Layout),
			PgBouncer: filePgBouncer{
				Service: c.PgBouncer.Service, RWService: c.PgBouncer.RWService,
				ROService: c.PgBouncer.ROService, RWTag: c.PgBouncer.RWTag, ROTag: c.PgBouncer.ROTag,
			},
			Tags:               fileTags{Leader: c.Tags.Leader, Replica: c.Tags.Replica, StandbyLeader: c.Tags.StandbyLeader},
			ROFallback:         string(c.ROFallback),
			ROMaxLag:           maxLag,
			RORequireStreaming: c.RORequireStreaming,
			ROLagSettle:        settle,
		})
	}
	return fc
}
