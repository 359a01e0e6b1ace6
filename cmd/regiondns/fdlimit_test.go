package main

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"syscall"
	"testing"
)

// The open-file limit is checked against what the settings and the watched
// resources may hold: a warning that names both below it, nothing at or
// above it, nothing when the limit cannot be read.
func TestCheckFDLimit(t *testing.T) {
	s := defaultSettings(t)
	const resources = 8000 // 1,000 clusters in two regions
	need := fdNeed(s, resources)
	if need < resources+s.TCPMaxConns+s.MaxInflight+s.HTTPMaxConns {
		t.Fatalf("need %d leaves out a bound", need)
	}
	limit := func(cur uint64, err error) func(int, *syscall.Rlimit) error {
		return func(res int, lim *syscall.Rlimit) error {
			if res != syscall.RLIMIT_NOFILE {
				t.Errorf("limit %d read, want RLIMIT_NOFILE", res)
			}
			lim.Cur, lim.Max = cur, cur
			return err
		}
	}
	for _, tt := range []struct {
		name string
		get  func(int, *syscall.Rlimit) error
		warn bool
	}{
		{"systemd's default soft limit", limit(1024, nil), true},
		{"one short", limit(uint64(need-1), nil), true},
		{"enough", limit(uint64(need), nil), false},
		{"unreadable", limit(0, errors.New("EPERM")), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			checkFDLimit(s, resources, slog.New(slog.NewTextHandler(&buf, nil)), tt.get)
			got := buf.String()
			if warned := strings.Contains(got, "open-file limit below"); warned != tt.warn {
				t.Fatalf("warned %t, want %t: %q", warned, tt.warn, got)
			}
			if tt.warn && !strings.Contains(got, "consul_resources=8000") {
				t.Errorf("warning without the resources counted: %q", got)
			}
		})
	}
}
