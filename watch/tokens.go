package watch

import (
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/regiondns/regiondns/zones"
)

// learnTokens adds to the Watcher's Redactor every token the Consul clients
// of cfg may send (see LearnTokens).
func (w *Watcher) learnTokens(cfg *zones.Config) { LearnTokens(w.opts.Redactor, cfg) }

// LearnTokens adds to red every token the Consul clients of cfg may send,
// as consul/api finds them: CONSUL_HTTP_TOKEN, the contents of
// CONSUL_HTTP_TOKEN_FILE, the password of CONSUL_HTTP_AUTH, and each
// region's token_file. A file it cannot read is left for consul/api to
// report.
func LearnTokens(red *Redactor, cfg *zones.Config) {
	red.Add(os.Getenv(api.HTTPTokenEnvName))
	if auth := os.Getenv(api.HTTPAuthEnvName); auth != "" {
		_, password, _ := strings.Cut(auth, ":")
		red.Add(auth, password)
	}
	if path := os.Getenv(api.HTTPTokenFileEnvName); path != "" {
		if b, err := os.ReadFile(path); err == nil {
			red.Add(string(b))
		}
	}
	for _, r := range cfg.Regions {
		if r.TokenFile == "" {
			continue
		}
		if b, err := os.ReadFile(r.TokenFile); err == nil {
			red.Add(string(b))
		}
	}
}

// checkTokenFiles returns, by region name, what is unsafe about the token
// files of cfg's regions (see tokenFileWarning), and logs it.
func (w *Watcher) checkTokenFiles(cfg *zones.Config) map[string]string {
	warnings := map[string]string{}
	for _, r := range cfg.Regions {
		if r.TokenFile == "" {
			continue
		}
		if warn := tokenFileWarning(r.TokenFile); warn != "" {
			warnings[r.Name] = warn
			w.logger.Warn("consul token file is readable by others", "region", r.Name, "warning", warn)
		}
	}
	return warnings
}

// tokenFileWarning returns why the token file at path is unsafe, or "": a
// token readable or writable by group or others is as good as theirs, and
// ssh refuses a key file so exposed. regiondns warns and goes on, since the
// token is already exposed and refusing would stop DNS.
func tokenFileWarning(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Sprintf("token file %s has mode %04o: readable or writable by group or others; want 0600 or 0400", path, perm)
	}
	return ""
}
