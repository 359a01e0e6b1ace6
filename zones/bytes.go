package zones

import (
	"math"
	"regexp"
	"strconv"
	"strings"
)

// The number patterns of Patroni's strtol and strtod (patroni/utils.py),
// which copy PostgreSQL's parsing of configuration values.
var (
	hexRE = regexp.MustCompile(`^[-+]?0x[0-9a-fA-F]+`)
	octRE = regexp.MustCompile(`^[-+]?0[0-7]*`)
	decRE = regexp.MustCompile(`^[-+]?(0|[1-9][0-9]*)`)
	dblRE = regexp.MustCompile(`^[-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?`)
)

// byteUnits are Patroni's size units (case-sensitive), in bytes.
var byteUnits = map[string]float64{"B": 1, "kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}

// roundedTo is the unit Patroni rounds a value in each unit to before it
// converts it to bytes: a tenth of a kB is no byte count it keeps.
var roundedTo = map[string]float64{"kB": 1, "MB": 1 << 10, "GB": 1 << 20, "TB": 1 << 30}

// parseBytes reads a size as Patroni's parse_int(value, 'B') does, which is
// how Patroni reads the lag parameter of /replica?lag=: a whole number of
// bytes (hexadecimal with 0x, octal with a leading 0, as strtol(3) reads
// them) or a number with one of the units B, kB, MB, GB or TB (powers of
// 1024), such as 16MB or 1.5GB, rounded half to even. It reports false for
// anything else, and for sizes beyond an int64.
func parseBytes(value string) (int64, bool) {
	value = strings.TrimSpace(value)
	n, rest, isInt := strtol(value)
	f := float64(n)
	if (!isInt && strings.HasPrefix(rest, ".")) || (rest != "" && strings.ContainsRune(".eE", rune(rest[0]))) {
		m := dblRE.FindString(value)
		v, err := strconv.ParseFloat(m, 64)
		if err != nil {
			return 0, false
		}
		f, rest, isInt = v, value[len(m):], false
	} else if !isInt {
		return 0, false
	}
	unit := strings.TrimSpace(rest)
	if unit == "" {
		if isInt {
			return n, true
		}
		return roundInt(f)
	}
	size, known := byteUnits[unit]
	if !known {
		return 0, false
	}
	f *= size
	if r, ok := roundedTo[unit]; ok {
		f = math.RoundToEven(f/r) * r
	}
	return roundInt(f)
}

// strtol reads a whole number at the start of s (already trimmed) as
// Patroni's strtol does: hexadecimal, else octal, else decimal. It returns
// the rest of s, and false (with all of s) when no number starts it.
func strtol(s string) (int64, string, bool) {
	for _, p := range []struct {
		re   *regexp.Regexp
		base int
	}{{hexRE, 16}, {octRE, 8}, {decRE, 10}} {
		m := p.re.FindString(s)
		if m == "" {
			continue
		}
		digits := m
		if p.base == 16 {
			sign := ""
			if digits[0] == '-' || digits[0] == '+' {
				sign, digits = digits[:1], digits[1:]
			}
			digits = sign + digits[2:]
		}
		n, err := strconv.ParseInt(digits, p.base, 64)
		if err != nil {
			return 0, s, false
		}
		return n, s[len(m):], true
	}
	return 0, s, false
}

// roundInt rounds f half to even, as Python's round does, and reports
// false when the result does not fit an int64.
func roundInt(f float64) (int64, bool) {
	r := math.RoundToEven(f)
	if math.IsNaN(r) || r >= math.MaxInt64 || r < math.MinInt64 {
		return 0, false
	}
	return int64(r), true
}
