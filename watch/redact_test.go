package watch

import (
	"encoding/base64"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestRedactorRedacts(t *testing.T) {
	const secret = "5f2b1c9e-7d4a-4e0b-9a1f-3c6d8e2f4a7b"
	const odd = "s3cr3t/with+odd&chars=\"x\""
	r := NewRedactor(secret+"\n", odd, "")
	for _, tc := range []struct {
		name, in, want string
	}{
		{"plain", "token " + secret + " denied", "token [redacted] denied"},
		{"upper case", "TOKEN " + strings.ToUpper(secret), "TOKEN [redacted]"},
		{"twice", secret + secret, "[redacted][redacted]"},
		{"URL-encoded", "path?x=" + url.QueryEscape(odd), "path?x=[redacted]"},
		{"URL-encoded, lower-case escapes", "x=" + strings.ToLower(url.QueryEscape(odd)), "x=[redacted]"},
		{"JSON-quoted", `{"t":"s3cr3t/with+odd&chars=\"x\""}`, `{"t":"[redacted]"}`},
		{"header line, known token", "X-Consul-Token: " + secret + "\r\nAccept: */*", "X-Consul-Token: [redacted]\r\nAccept: */*"},
		{"header line, unknown token", "x-consul-token: 0000-unknown-1111\nHost: a", "x-consul-token: [redacted]\nHost: a"},
		{"bearer", "Authorization: Bearer abc.def.ghi, next", "Authorization: Bearer [redacted], next"},
		{"Go header map", "map[X-Consul-Token:[abcdef] Accept:[*/*]]", "map[X-Consul-Token:[[redacted]] Accept:[*/*]]"},
		{"JSON header map", `{"X-Consul-Token":["abcdef"]}`, `{"X-Consul-Token":["[redacted]"]}`},
		{"query parameter", "GET /v1/kv/x?token=abcdef&dc=dc1", "GET /v1/kv/x?token=[redacted]&dc=dc1"},
		{"prose stays", "authorization failed: token lacks permission", "authorization failed: token lacks permission"},
		{"nothing to redact", "Unexpected response code: 500 (rpc error)", "Unexpected response code: 500 (rpc error)"},
		{"a known token that holds a header name", "x s3cr3t/with+odd&chars=\"x\" y", "x [redacted] y"},
		{"already redacted", "X-Consul-Token: [redacted]", "X-Consul-Token: [redacted]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := r.Redact(tc.in); got != tc.want {
				t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// A known token inside base64 (a Basic Authorization value echoed without
// its header name) is found in each of its three alignments.
func TestRedactorBase64(t *testing.T) {
	const secret = "5f2b1c9e-7d4a-4e0b-9a1f-3c6d8e2f4a7b"
	r := NewRedactor(secret)
	for _, user := range []string{"a", "ab", "abc"} {
		basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + secret))
		got := r.Redact("echo " + basic + " end")
		if strings.Contains(got, basic[8:40]) || !strings.HasPrefix(got, "echo ") || !strings.Contains(got, Redacted) {
			t.Errorf("user %q: Redact(%q) = %q: the encoded token is still there", user, basic, got)
		}
	}
}

// A token added after a reload is redacted, and the one before it still is.
func TestRedactorKeepsOldSecrets(t *testing.T) {
	r := NewRedactor("old-token-aaaaaaaa")
	r.Add("new-token-bbbbbbbb")
	if got := r.Redact("old-token-aaaaaaaa new-token-bbbbbbbb"); got != Redacted+" "+Redacted {
		t.Errorf("got %q", got)
	}
}

func TestRedactorError(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	r := NewRedactor(secret)
	if got := r.Error(nil); got != "" {
		t.Errorf("Error(nil) = %q", got)
	}
	// The token straddles the cut: redacted before cutting, no part of it
	// is left.
	long := errors.New(strings.Repeat("x", MaxErrorText-10) + secret + strings.Repeat("y", 10000))
	got := r.Error(long)
	if len(got) > MaxErrorText || !strings.HasSuffix(got, "...") {
		t.Errorf("Error of %d bytes = %d bytes %q, want at most %d ending in ...", len(long.Error()), len(got), got[len(got)-20:], MaxErrorText)
	}
	if strings.Contains(got, secret[:8]) {
		t.Errorf("part of the token is left: %q", got[len(got)-40:])
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"a longer text", 10, "a longe..."},
		{"ééééé", 8, "éé..."}, // never half a character
		{"abc", 2, ".."},
	} {
		if got := Truncate(tc.in, tc.n); got != tc.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestRedactorReplaceAttr(t *testing.T) {
	const secret = "fedcba98-7654-3210-fedc-ba9876543210"
	r := NewRedactor(secret)
	var b strings.Builder
	log := slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{ReplaceAttr: r.ReplaceAttr}))
	log.Warn("read failed "+secret, "err", errors.New("echo X-Consul-Token: "+secret), "s", strings.ToUpper(secret))
	if strings.Contains(strings.ToLower(b.String()), secret) {
		t.Errorf("log line holds the token: %s", b.String())
	}
}

// FuzzRedactor: whatever the text, no case of a token-like secret is left
// in it, outside the replacement text itself.
func FuzzRedactor(f *testing.F) {
	f.Add("5f2b1c9e-7d4a-4e0b", "X-Consul-Token: 5F2B1C9E-7D4A-4E0B\r\n")
	f.Add("abcdefghijkl", "Authorization: Basic "+base64.StdEncoding.EncodeToString([]byte("u:abcdefghijkl")))
	f.Add("token-token", "token=token-tokentoken-token")
	f.Fuzz(func(t *testing.T, secret, text string) {
		if len(secret) < 8 || strings.Trim(secret, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != "" {
			return // tokens are UUIDs or similar; other secrets get the same code
		}
		r := NewRedactor(secret)
		out := r.Redact(text)
		if strings.Contains(asciiLower(strings.ReplaceAll(out, Redacted, "\x00")), asciiLower(secret)) {
			t.Errorf("Redact(%q) = %q still holds %q", text, out, secret)
		}
		if got := Truncate(out, MaxErrorText); len(got) > MaxErrorText || (utf8.ValidString(out) && !utf8.ValidString(got)) {
			t.Errorf("Truncate broke the text: %q", got)
		}
	})
}
