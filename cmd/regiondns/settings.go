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
	"github.com/regiondns/regiondns/watch"
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
	// ConsulMaxResponse bounds the body of one Consul answer, in bytes.
	ConsulMaxResponse int64 `env:"CONSUL_MAX_RESPONSE" envDefault:"8388608"`
	// History is how many decision changes per cluster are kept.
	History int `env:"HISTORY" envDefault:"100"`

	HTTPMaxConns          int           `env:"HTTP_MAX_CONNS" envDefault:"64"`
	HTTPReadHeaderTimeout time.Duration `env:"HTTP_READ_HEADER_TIMEOUT" envDefault:"5s"`
	HTTPReadTimeout       time.Duration `env:"HTTP_READ_TIMEOUT" envDefault:"10s"`
	HTTPWriteTimeout      time.Duration `env:"HTTP_WRITE_TIMEOUT" envDefault:"30s"`
	HTTPIdleTimeout       time.Duration `env:"HTTP_IDLE_TIMEOUT" envDefault:"60s"`
	Pprof                 bool          `env:"PPROF" envDefault:"false"`
	CacheMaxBytes         int64         `env:"CACHE_MAX_BYTES" envDefault:"67108864"`
	// DelegationDomains and DelegationClients are parsed by
	// delegationScope.
	DelegationDomains []string `env:"DELEGATION_DOMAINS" envDefault:"consul." envSeparator:","`
	DelegationClients []string `env:"DELEGATION_CLIENTS" envDefault:"127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,fc00::/7" envSeparator:","`

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
	case s.CacheMaxBytes < minCacheBytes:
		return s, fmt.Errorf("REGIONDNS_CACHE_MAX_BYTES: %d is not valid; want at least %d (1 MiB)", s.CacheMaxBytes, minCacheBytes)
	case s.ShutdownTimeout <= 0:
		return s, fmt.Errorf("REGIONDNS_SHUTDOWN_TIMEOUT: %s is not valid; want a positive duration", s.ShutdownTimeout)
	case s.ConsulMaxResponse < minConsulResponse:
		return s, fmt.Errorf("REGIONDNS_CONSUL_MAX_RESPONSE: %d is not valid; want at least %d (bytes)", s.ConsulMaxResponse, minConsulResponse)
	case s.History < 1 || s.History > maxHistory:
		return s, fmt.Errorf("REGIONDNS_HISTORY: %d is not valid; want 1 to %d (changes per cluster)", s.History, maxHistory)
	}
	if _, _, err := s.delegationScope(); err != nil {
		return s, err
	}
	if err := validateHTTP(s); err != nil {
		return s, err
	}
	return s, checkServerLimits(s)
}

// validateHTTP checks the settings of the HTTP port. Zero is refused: to
// net/http it means no limit.
func validateHTTP(s settings) error {
	if s.HTTPMaxConns < 1 {
		return fmt.Errorf("REGIONDNS_HTTP_MAX_CONNS: %d is not valid; want a positive number", s.HTTPMaxConns)
	}
	for _, t := range []struct {
		name string
		d    time.Duration
	}{
		{"HTTP_READ_HEADER_TIMEOUT", s.HTTPReadHeaderTimeout}, {"HTTP_READ_TIMEOUT", s.HTTPReadTimeout},
		{"HTTP_WRITE_TIMEOUT", s.HTTPWriteTimeout}, {"HTTP_IDLE_TIMEOUT", s.HTTPIdleTimeout},
	} {
		if t.d <= 0 {
			return fmt.Errorf("%s%s: %s is not valid; want a positive duration", envPrefix, t.name, t.d)
		}
	}
	return nil
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

// minConsulResponse is the least REGIONDNS_CONSUL_MAX_RESPONSE: below it, the
// health of an ordinary cluster would not fit.
const minConsulResponse = 64 << 10

// maxHistory bounds REGIONDNS_HISTORY: each kept change holds a few hundred
// bytes, for every cluster of the fleet.
const maxHistory = 10000

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

// newLogger returns the process logger; every attribute it writes is
// redacted by r (nil: none is).
func newLogger(s settings, w io.Writer, r *watch.Redactor) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(s.LogLevel)); err != nil {
		return nil, fmt.Errorf("REGIONDNS_LOG_LEVEL: %q is not valid; want debug, info, warn or error", s.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	if r != nil {
		opts.ReplaceAttr = r.ReplaceAttr
	}
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
