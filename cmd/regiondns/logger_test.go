package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/regiondns/regiondns/watch"
)

// Every line of the process logger goes through the redactor the watcher
// teaches its tokens: a token echoed in any logged error or string, from
// any package, never reaches the log.
func TestLoggerRedactsKnownTokens(t *testing.T) {
	const secret = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			r := watch.NewRedactor()
			var buf bytes.Buffer
			logger, err := newLogger(settings{LogLevel: "debug", LogFormat: format}, &buf, r)
			if err != nil {
				t.Fatal(err)
			}
			r.Add(secret) // learned after the logger was made, as on a reload
			logger.Warn("upstream echoed", "err", errors.New("403: X-Consul-Token: "+secret),
				"body", "token="+strings.ToUpper(secret))
			if out := buf.String(); strings.Contains(strings.ToLower(out), secret) || !strings.Contains(out, watch.Redacted) {
				t.Errorf("log line %q leaks the token or redacts nothing", out)
			}
		})
	}
}
