package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/regiondns/regiondns/resolver"
	"github.com/regiondns/regiondns/zones"
)

// settings are the process settings, read from REGIONDNS_* variables. The
// environment table of docs/operations.md is kept equal to this struct by a
// test.
type settings struct {
	Config          string        `env:"CONFIG" envDefault:"/etc/regiondns/zone.yml"`
	DNSAddr         string        `env:"DNS_ADDR" envDefault:":53"`
	HTTPAddr        string        `env:"HTTP_ADDR" envDefault:":9253"`
	LogLevel        string        `env:"LOG_LEVEL" envDefault:"info"`
	LogFormat       string        `env:"LOG_FORMAT" envDefault:"text"`
	ConsulWait      time.Duration `env:"CONSUL_WAIT" envDefault:"60s"`
	TCPIdleTimeout  time.Duration `env:"TCP_IDLE_TIMEOUT" envDefault:"10s"`
	TCPMaxConns     int           `env:"TCP_MAX_CONNS" envDefault:"1024"`
	UDPSockets      int           `env:"UDP_SOCKETS" envDefault:"0"`
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"10s"`
	Delegation      bool          `env:"DELEGATION" envDefault:"true"`
	LocalRegion     string        `env:"LOCAL_REGION"`
	UpstreamTimeout time.Duration `env:"UPSTREAM_TIMEOUT" envDefault:"2s"`
	CacheSize       int           `env:"CACHE_SIZE" envDefault:"10000"`
	CacheMaxTTL     time.Duration `env:"CACHE_MAX_TTL" envDefault:"1h"`

	// The DNS server's bounds on what clients can make it spend (see
	// resolver.ServerOptions).
	MaxInflight           int `env:"MAX_INFLIGHT" envDefault:"4096"`
	MaxInflightPerSource  int `env:"MAX_INFLIGHT_PER_SOURCE" envDefault:"256"`
	MaxInflightPerConn    int `env:"MAX_INFLIGHT_PER_CONN" envDefault:"16"`
	SourcePrefixV4        int `env:"SOURCE_PREFIX_V4" envDefault:"24"`
	SourcePrefixV6        int `env:"SOURCE_PREFIX_V6" envDefault:"56"`
	RRLResponsesPerSecond int `env:"RRL_RESPONSES_PER_SECOND" envDefault:"0"`
	RRLSlip               int `env:"RRL_SLIP" envDefault:"2"`
}

func loadSettings() (settings, error) {
	var s settings
	if err := env.ParseWithOptions(&s, env.Options{Prefix: envPrefix}); err != nil {
		return s, envError(err)
	}
	switch {
	case s.TCPMaxConns < 1:
		return s, fmt.Errorf("REGIONDNS_TCP_MAX_CONNS: %d is not valid; want a positive number", s.TCPMaxConns)
	case s.UDPSockets < 0:
		return s, fmt.Errorf("REGIONDNS_UDP_SOCKETS: %d is not valid; want 0 (one per CPU, GOMAXPROCS) or a positive number", s.UDPSockets)
	case s.ConsulWait < time.Second || s.ConsulWait > 10*time.Minute:
		return s, fmt.Errorf("REGIONDNS_CONSUL_WAIT: %s is not valid; want between 1s and 10m (Consul's limit)", s.ConsulWait)
	case s.TCPIdleTimeout <= 0:
		return s, fmt.Errorf("REGIONDNS_TCP_IDLE_TIMEOUT: %s is not valid; want a positive duration", s.TCPIdleTimeout)
	case s.UpstreamTimeout <= 0:
		return s, fmt.Errorf("REGIONDNS_UPSTREAM_TIMEOUT: %s is not valid; want a positive duration", s.UpstreamTimeout)
	case s.CacheSize < 1:
		return s, fmt.Errorf("REGIONDNS_CACHE_SIZE: %d is not valid; want a positive number of entries", s.CacheSize)
	case s.CacheMaxTTL <= 0:
		return s, fmt.Errorf("REGIONDNS_CACHE_MAX_TTL: %s is not valid; want a positive duration", s.CacheMaxTTL)
	case s.ShutdownTimeout <= 0:
		return s, fmt.Errorf("REGIONDNS_SHUTDOWN_TIMEOUT: %s is not valid; want a positive duration", s.ShutdownTimeout)
	}
	return s, checkServerLimits(s)
}

// checkServerLimits checks the settings of the DNS server's bounds.
func checkServerLimits(s settings) error {
	switch {
	case s.MaxInflight < 1:
		return fmt.Errorf("REGIONDNS_MAX_INFLIGHT: %d is not valid; want a positive number of queries", s.MaxInflight)
	case s.MaxInflightPerSource < 1 || s.MaxInflightPerSource > s.MaxInflight:
		return fmt.Errorf("REGIONDNS_MAX_INFLIGHT_PER_SOURCE: %d is not valid; want 1 to REGIONDNS_MAX_INFLIGHT (%d)", s.MaxInflightPerSource, s.MaxInflight)
	case s.MaxInflightPerConn < 1:
		return fmt.Errorf("REGIONDNS_MAX_INFLIGHT_PER_CONN: %d is not valid; want a positive number of queries", s.MaxInflightPerConn)
	case s.SourcePrefixV4 < 1 || s.SourcePrefixV4 > 32:
		return fmt.Errorf("REGIONDNS_SOURCE_PREFIX_V4: %d is not valid; want a prefix length from 1 to 32", s.SourcePrefixV4)
	case s.SourcePrefixV6 < 1 || s.SourcePrefixV6 > 128:
		return fmt.Errorf("REGIONDNS_SOURCE_PREFIX_V6: %d is not valid; want a prefix length from 1 to 128", s.SourcePrefixV6)
	case s.RRLResponsesPerSecond < 0:
		return fmt.Errorf("REGIONDNS_RRL_RESPONSES_PER_SECOND: %d is not valid; want 0 (off) or a positive rate", s.RRLResponsesPerSecond)
	case s.RRLSlip < 0 || s.RRLSlip > 100:
		return fmt.Errorf("REGIONDNS_RRL_SLIP: %d is not valid; want 0 (drop every limited response) to 100", s.RRLSlip)
	}
	return nil
}

// serverOptions are the DNS server's options from the settings.
func serverOptions(s settings) resolver.ServerOptions {
	o := resolver.ServerOptions{
		IdleTimeout:          s.TCPIdleTimeout,
		MaxTCPConns:          s.TCPMaxConns,
		UDPSockets:           s.UDPSockets,
		MaxInflight:          s.MaxInflight,
		MaxInflightPerSource: s.MaxInflightPerSource,
		MaxInflightPerConn:   s.MaxInflightPerConn,
		SourcePrefixV4:       s.SourcePrefixV4,
		SourcePrefixV6:       s.SourcePrefixV6,
	}
	if s.RRLResponsesPerSecond > 0 {
		o.RRL = &resolver.RRLOptions{ResponsesPerSecond: s.RRLResponsesPerSecond, Slip: s.RRLSlip}
	}
	return o
}

const envPrefix = "REGIONDNS_"

// envError rewrites env's parse errors to name the variable, not the Go field.
func envError(err error) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return fmt.Errorf("environment: %w", err)
	}
	var errs []error
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			if f, ok := reflect.TypeFor[settings]().FieldByName(pe.Name); ok {
				errs = append(errs, fmt.Errorf("%s%s: %w", envPrefix, f.Tag.Get("env"), pe.Err))
				continue
			}
		}
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

func newLogger(s settings, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(s.LogLevel)); err != nil {
		return nil, fmt.Errorf("REGIONDNS_LOG_LEVEL: %q is not valid; want debug, info, warn or error", s.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(s.LogFormat) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("REGIONDNS_LOG_FORMAT: %q is not valid; want text or json", s.LogFormat)
	}
}

func checkConfig(s settings, stdout, stderr io.Writer) int {
	cfg, err := zones.Load(s.Config)
	if err != nil {
		fmt.Fprintf(stderr, "regiondns: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: zone %s, %d regions, %d clusters: OK\n", s.Config, cfg.Zone, len(cfg.Regions), len(cfg.Clusters))
	return 0
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func versionString() string {
	goVersion, commit := buildVCS()
	return fmt.Sprintf("regiondns %s (commit %s, %s)", version, commit, goVersion)
}

// buildVCS returns the Go version and the VCS revision the binary was built
// from ("unknown" when the build did not record it).
func buildVCS() (goVersion, commit string) {
	goVersion, commit = runtime.Version(), "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, kv := range bi.Settings {
			if kv.Key == "vcs.revision" {
				commit = kv.Value
			}
		}
	}
	return goVersion, commit
}
