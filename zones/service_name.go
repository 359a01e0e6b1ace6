package zones

import (
	"strconv"
	"unicode"
)

// maxServiceName is where Patroni cuts a service name: the 253 octets of a
// domain name less "replica." and ".service.consul".
const maxServiceName = 230

// ServiceName returns the Consul service name Patroni registers for scope,
// derived as Patroni's service_name_from_scope_name (patroni/dcs/consul.py)
// derives it, in this order: scope is lower-cased as Python's str.lower
// does it (İ becomes "i" and U+0307, a capital sigma ending a word ς); then
// '.', '_' and ' ' become '-', and every other character outside [a-z0-9-]
// becomes 'u' and its code point in decimal, at least four digits (ü is
// "u0252", U+1F600 "u128512"); the result is cut at 230 characters, inside
// a replacement if the cut falls there. Bytes that are not UTF-8, which no
// zone file holds, count as U+FFFD.
//
// A scope that is already a service name costs no allocation.
func ServiceName(scope string) string {
	if isServiceName(scope) {
		return scope
	}
	runes := []rune(scope)
	b := make([]byte, 0, maxServiceName+len("u1114111"))
	for i, r := range runes {
		switch r {
		case 'İ':
			// Python lowers it to two code points (SpecialCasing.txt).
			b = appendServiceRune(appendServiceRune(b, 'i'), '\u0307')
		case 'Σ':
			b = appendServiceRune(b, lowerSigma(runes, i))
		default:
			b = appendServiceRune(b, unicode.ToLower(r))
		}
		if len(b) >= maxServiceName {
			break
		}
	}
	return string(b[:min(len(b), maxServiceName)])
}

// isServiceName reports whether s is its own service name: [a-z0-9-] only,
// at most 230 octets.
func isServiceName(s string) bool {
	if len(s) > maxServiceName {
		return false
	}
	for i := range len(s) {
		if !isServiceByte(s[i]) {
			return false
		}
	}
	return true
}

func isServiceByte(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-'
}

// appendServiceRune appends what the lower-case r becomes in a service name.
func appendServiceRune(b []byte, r rune) []byte {
	switch {
	case r < 0x80 && isServiceByte(byte(r)):
		return append(b, byte(r))
	case r == '.', r == '_', r == ' ':
		return append(b, '-')
	}
	b = append(b, 'u')
	for n := int32(1000); n > 1 && r < n; n /= 10 {
		b = append(b, '0')
	}
	return strconv.AppendInt(b, int64(r), 10)
}

// lowerSigma returns what Python's str.lower makes of the capital sigma at
// runes[i]: the final form ς when a cased letter comes before it and none
// after it, case-ignorable characters skipped both ways (Unicode's
// Final_Sigma condition), σ otherwise.
func lowerSigma(runes []rune, i int) rune {
	j := i - 1
	for j >= 0 && caseIgnorable(runes[j]) {
		j--
	}
	if j < 0 || !cased(runes[j]) {
		return 'σ'
	}
	for j = i + 1; j < len(runes) && caseIgnorable(runes[j]); j++ {
	}
	if j < len(runes) && cased(runes[j]) {
		return 'σ'
	}
	return 'ς'
}

// cased is Unicode's Cased property: upper case, lower case or title case
// letters, and the other characters those properties take in.
func cased(r rune) bool {
	return unicode.In(r, unicode.Lu, unicode.Ll, unicode.Lt, unicode.Other_Uppercase, unicode.Other_Lowercase)
}

// caseIgnorable is Unicode's Case_Ignorable property: marks, format
// characters, modifiers, and the apostrophes and word-internal punctuation
// of Word_Break MidLetter, MidNumLet and Single_Quote.
func caseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', '\u00b7', '\u0387', '\u055f', '\u05f4', '\u2018', '\u2019', '\u2024',
		'\u2027', '\ufe13', '\ufe52', '\ufe55', '\uff07', '\uff0e', '\uff1a':
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}
