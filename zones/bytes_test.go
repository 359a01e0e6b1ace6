package zones

import "testing"

// TestParseBytes pins parseBytes to Patroni's parse_int(value, 'B') (the
// reading of /replica?lag=): every row's result is what Patroni's own
// function returns for the value (nil there is false here).
func TestParseBytes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"16777216", 16777216, true},
		{"16MB", 16777216, true},
		{"16 MB", 16777216, true},
		{" 16MB ", 16777216, true},
		{"1.5MB", 1572864, true},
		{"1.5GB", 1610612736, true},
		{"0.5", 0, true}, // rounded half to even
		{"1.5", 2, true},
		{"2.5", 2, true},
		{"010", 8, true}, // octal, as strtol(3) reads it
		{"0x10MB", 16777216, true},
		{"-16MB", -16777216, true},
		{"0", 0, true},
		{"1e3", 1000, true},
		{"1e3kB", 1024000, true},
		{"0.0001MB", 0, true}, // a value in MB is rounded to whole kB
		{".5MB", 524288, true},
		{"16kB", 16384, true},
		{"1TB", 1099511627776, true},
		{"1.23456789kB", 1264, true},
		{"100B", 100, true},
		{"3.7B", 4, true},
		{"0e5", 0, true},
		{"9.99999999e2MB", 1048576000, true},
		{"1.25", 1, true},
		{"+5kB", 5120, true},
		{"7.5e-1kB", 768, true},
		{"16mb", 0, false}, // units are case-sensitive
		{"16 megabytes", 0, false},
		{"1PB", 0, false},
		{"MB", 0, false},
		{"", 0, false},
		{"0x", 0, false},
		{"08", 0, false},
		{"99999999999999999999", 0, false}, // beyond an int64
		{"10000000TB", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseBytes(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseBytes(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
