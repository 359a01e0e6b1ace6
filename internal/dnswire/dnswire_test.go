package dnswire

import (
	"slices"
	"testing"

	"github.com/miekg/dns"
)

func TestLowerName(t *testing.T) {
	for in, want := range map[string]string{
		"rw.orders.": "rw.orders.", "RW.Orders.": "rw.orders.", "a-Z0.": "a-z0.", "": "", `\065B.`: `\065b.`,
	} {
		if got := LowerName(in); got != want {
			t.Errorf("LowerName(%q) = %q, want %q", in, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { LowerName("rw.orders.pg.example.internal.") }); n != 0 {
		t.Errorf("lower of a lower-case name allocates %v times", n)
	}
}

func TestSkipName(t *testing.T) {
	tests := []struct {
		name string
		msg  []byte
		off  int
		want int
	}{
		{name: "root", msg: []byte{0}, want: 1},
		{name: "labels", msg: []byte{1, 'a', 2, 'b', 'c', 0, 0xff}, want: 6},
		{name: "pointer ends the name", msg: []byte{1, 'a', 0xC0, 0x0C, 0xff}, want: 4},
		{name: "from an offset", msg: []byte{0xff, 0xff, 1, 'a', 0}, off: 2, want: 5},
		{name: "runs past the end", msg: []byte{3, 'a', 'b'}, want: -1},
		{name: "no terminating label", msg: []byte{1, 'a'}, want: -1},
		{name: "pointer cut in half", msg: []byte{1, 'a', 0xC0}, want: -1},
		{name: "extended label type", msg: []byte{0x41, 0}, want: -1},
		{name: "offset at the end", msg: []byte{0}, off: 1, want: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SkipName(tt.msg, tt.off); got != tt.want {
				t.Errorf("SkipName(% x, %d) = %d, want %d", tt.msg, tt.off, got, tt.want)
			}
		})
	}
}

func TestWithoutOPT(t *testing.T) {
	a, _ := dns.NewRR("a.example. 60 IN A 192.0.2.1")
	b, _ := dns.NewRR("b.example. 60 IN A 192.0.2.2")
	opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	tests := []struct {
		name string
		in   []dns.RR
		want []dns.RR
	}{
		{name: "nil", in: nil, want: nil},
		{name: "only an OPT", in: []dns.RR{opt}, want: nil},
		{name: "no OPT", in: []dns.RR{a, b}, want: []dns.RR{a, b}},
		{name: "OPT first", in: []dns.RR{opt, a, b}, want: []dns.RR{a, b}},
		{name: "OPT between", in: []dns.RR{a, opt, b}, want: []dns.RR{a, b}},
		{name: "OPT last", in: []dns.RR{a, b, opt}, want: []dns.RR{a, b}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.in)
			got := WithoutOPT(in)
			if !slices.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
				t.Errorf("WithoutOPT = %v, want %v", got, tt.want)
			}
			if !slices.Equal(in, tt.in) {
				t.Errorf("input changed to %v", in)
			}
			// An append to the result must not write into the input.
			if len(got) > 0 {
				_ = append(got, opt)
				if !slices.Equal(in, tt.in) {
					t.Errorf("append to the result wrote into the input: %v", in)
				}
			}
		})
	}
}
