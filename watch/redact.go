package watch

import (
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// Redacted replaces a secret in text that the process keeps or logs.
const Redacted = "[redacted]"

// MaxErrorText bounds the error text kept for the state endpoint and logged:
// an error may quote a body that Consul, or a proxy in front of it, chose.
const MaxErrorText = 512

// Redactor replaces the secrets it knows (Consul tokens) with Redacted in
// text that leaves the process: error text kept for /debug/state, log lines.
// A peer may echo a secret in another form than it was sent, so each secret
// is also matched URL-encoded, JSON- and Go-quoted, inside base64 (a Basic
// Authorization header), and in any ASCII case. Independently of the known
// secrets, the value of an X-Consul-Token or Authorization header, or of a
// token= query parameter, is redacted wherever such a header is quoted.
//
// Secrets are only ever added: after a reload, text may still quote the
// token that was in use before it. Safe for concurrent use.
type Redactor struct {
	mu sync.RWMutex
	// forms are the ASCII-lowercased forms of every secret, longest first,
	// without duplicates; guarded by mu.
	forms []string
}

// NewRedactor returns a Redactor that knows the secrets given.
func NewRedactor(secrets ...string) *Redactor {
	r := &Redactor{}
	r.Add(secrets...)
	return r
}

// minEncodedSecret is the shortest secret whose base64 forms are matched:
// the part of a base64 text that depends on the secret alone is shorter than
// the secret, and for a short one it would match ordinary words.
const minEncodedSecret = 12

// Add makes r redact secrets from now on. Surrounding white space is not part
// of a secret (token files end with a newline); empty secrets are ignored.
func (r *Redactor) Add(secrets ...string) {
	var forms []string
	for _, s := range secrets {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		forms = append(forms, s, url.QueryEscape(s), url.PathEscape(s), strconv.Quote(s)[1:len(strconv.Quote(s))-1])
		if j, err := json.Marshal(s); err == nil {
			forms = append(forms, string(j[1:len(j)-1]))
		}
		if len(s) >= minEncodedSecret {
			forms = append(forms, base64Forms(s)...)
		}
	}
	if len(forms) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range forms {
		f = asciiLower(f)
		if !slices.Contains(r.forms, f) {
			r.forms = append(r.forms, f)
		}
	}
	// Longest first: a form that contains another is replaced whole.
	slices.SortStableFunc(r.forms, func(a, b string) int { return len(b) - len(a) })
}

// base64Forms returns the parts of the base64 encodings (standard and URL
// alphabets) of any text containing s that depend on s alone: one for each
// of the three alignments of s in the encoded bytes.
func base64Forms(s string) []string {
	var out []string
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		for k := range 3 {
			full := enc.EncodeToString(append(make([]byte, k), s...))
			// Characters that cover bits 8k to 8(k+len(s)) only.
			from, to := (8*k+5)/6, (8*(k+len(s)))/6
			out = append(out, full[from:to])
		}
	}
	return out
}

// Redact returns s with every known secret, and every quoted token header
// value, replaced by Redacted.
func (r *Redactor) Redact(s string) string {
	// Known secrets first: a header rule could cut one in two (a secret
	// that contains "token=") and leave a part of it.
	return redactHeaderValues(r.redactKnown(s))
}

// redactKnown replaces every form of every known secret in s.
func (r *Redactor) redactKnown(s string) string {
	r.mu.RLock()
	forms := r.forms
	r.mu.RUnlock()
	if len(forms) == 0 {
		return s
	}
	low := asciiLower(s)
	for _, f := range forms {
		for from := 0; ; {
			i := strings.Index(low[from:], f)
			if i < 0 {
				break
			}
			i += from
			s = s[:i] + Redacted + s[i+len(f):]
			low = low[:i] + Redacted + low[i+len(f):]
			from = i + len(Redacted)
		}
	}
	return s
}

// Error returns the text of err, redacted, and cut to MaxErrorText bytes;
// "" for nil.
func (r *Redactor) Error(err error) string {
	if err == nil {
		return ""
	}
	return Truncate(r.Redact(err.Error()), MaxErrorText)
}

// ReplaceAttr redacts string and error values; it fits
// slog.HandlerOptions.ReplaceAttr, for a logger whose every line is
// redacted.
func (r *Redactor) ReplaceAttr(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindString:
		a.Value = slog.StringValue(r.Redact(a.Value.String()))
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok {
			a.Value = slog.StringValue(r.Error(err))
		}
	}
	return a
}

// Truncate returns s cut to at most n bytes, on a character boundary, with
// "..." at the end when it was cut.
func Truncate(s string, n int) string {
	const more = "..."
	if len(s) <= n {
		return s
	}
	if n <= len(more) {
		return more[:max(n, 0)]
	}
	cut := n - len(more)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + more
}

// tokenHeaders are the names after which a quoted request carries a token:
// Consul's header, the Authorization and Proxy-Authorization headers, and
// Consul's legacy query parameter. Lower case.
var tokenHeaders = []string{"x-consul-token", "authorization", "token="}

// authSchemes are the words that may precede the credentials in an
// Authorization header. Lower case.
var authSchemes = []string{"bearer", "basic", "token", "digest", "negotiate"}

// redactHeaderValues replaces the value that follows any of tokenHeaders, as
// an echoed request line, header dump or JSON map would quote it, with
// Redacted.
func redactHeaderValues(s string) string {
	low := asciiLower(s)
	var b strings.Builder
	last := 0 // s[:last] is written to b or skipped
	for i := 0; i < len(low); {
		name := headerAt(low, i)
		if name == "" {
			i++
			continue
		}
		j := i + len(name)
		// A header, a JSON key or a parameter: a separator follows the
		// name (prose such as "authorization failed" is left alone).
		sep := strings.HasSuffix(name, "=")
		for j < len(low) && strings.IndexByte(" \t:=\"'[\\", low[j]) >= 0 {
			sep = sep || low[j] == ':' || low[j] == '=' || low[j] == '"'
			j++
		}
		if !sep {
			i = j
			continue
		}
		if strings.HasPrefix(low[j:], Redacted) || (low[j-1] == '[' && strings.HasPrefix(low[j:], Redacted[1:])) {
			i = j + len(Redacted) - 1
			continue
		}
		for _, scheme := range authSchemes {
			if rest := low[j:]; strings.HasPrefix(rest, scheme) && len(rest) > len(scheme) && (rest[len(scheme)] == ' ' || rest[len(scheme)] == '\t') {
				j += len(scheme)
				for j < len(low) && (low[j] == ' ' || low[j] == '\t') {
					j++
				}
				break
			}
		}
		end := j
		for end < len(low) && !isValueEnd(low[end]) {
			end++
		}
		if end == j {
			i = j
			continue
		}
		if b.Len() == 0 {
			b.Grow(len(s))
		}
		b.WriteString(s[last:j])
		b.WriteString(Redacted)
		last, i = end, end
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// headerAt returns the name of tokenHeaders that low has at i, or "".
func headerAt(low string, i int) string {
	for _, name := range tokenHeaders {
		if strings.HasPrefix(low[i:], name) {
			return name
		}
	}
	return ""
}

// isValueEnd reports whether c ends a quoted header value.
func isValueEnd(c byte) bool {
	return c <= ' ' || strings.IndexByte("\"',;&\\]}<>)", c) >= 0
}

// asciiLower returns s with ASCII upper-case letters in lower case. Unlike
// strings.ToLower it keeps every byte where it was, so that an index into the
// result is one into s.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
