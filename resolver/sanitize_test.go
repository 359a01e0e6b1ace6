package resolver

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/internal/dnswire"
)

// wire returns a 12-byte header with the given counts followed by body.
func wire(qd, an, ns, ar uint16, body ...[]byte) []byte {
	m := []byte{0xbe, 0xef, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0}
	for i, c := range []uint16{qd, an, ns, ar} {
		binary.BigEndian.PutUint16(m[4+2*i:], c)
	}
	return slices.Concat(append([][]byte{m}, body...)...)
}

func TestWellFormed(t *testing.T) {
	name := []byte{2, 'r', 'w', 6, 'o', 'r', 'd', 'e', 'r', 's', 0}
	typeClass := []byte{0, 1, 0, 1}
	opt := []byte{0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0}
	tests := []struct {
		name string
		msg  []byte
		want bool
	}{
		{"header only, no counts", wire(0, 0, 0, 0), true},
		{"one question", wire(1, 0, 0, 0, name, typeClass), true},
		{"question and OPT", wire(1, 0, 0, 1, name, typeClass, opt), true},
		{"question with a compression pointer", wire(1, 0, 0, 0, []byte{1, 'x', 0xc0, 12}, typeClass), true},
		{"two questions", wire(2, 0, 0, 0, name, typeClass, []byte{0xc0, 12}, typeClass), true},
		{"octets after the last record", wire(1, 0, 0, 0, name, typeClass, []byte{1, 2, 3}), true},
		{"header only, QDCOUNT 1", wire(1, 0, 0, 0), false},
		{"question without QTYPE and QCLASS", wire(1, 0, 0, 0, name), false},
		{"question without QCLASS", wire(1, 0, 0, 0, name, typeClass[:2]), false},
		{"question cut in a label", wire(1, 0, 0, 0, name[:5]), false},
		{"name without its root label", wire(1, 0, 0, 0, name[:len(name)-1]), false},
		{"pointer cut in half", wire(1, 0, 0, 0, []byte{0xc0}), false},
		{"extended label type", wire(1, 0, 0, 0, []byte{0x41, 'a', 0}, typeClass), false},
		{"QDCOUNT 2, one question", wire(2, 0, 0, 0, name, typeClass), false},
		{"ANCOUNT 1, no record", wire(1, 1, 0, 0, name, typeClass), false},
		{"ARCOUNT 2, one OPT", wire(1, 0, 0, 2, name, typeClass, opt), false},
		{"OPT cut in its fixed fields", wire(1, 0, 0, 1, name, typeClass, opt[:8]), false},
		{"RDLENGTH past the end", wire(1, 0, 0, 1, name, typeClass, []byte{0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 9, 1, 2}), false},
		{"every count at its maximum", wire(0xffff, 0xffff, 0xffff, 0xffff, name, typeClass), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := wellFormed(tt.msg); got != tt.want {
				t.Errorf("wellFormed(% x) = %v, want %v", tt.msg, got, tt.want)
			}
			// What miekg/dns would answer: a well-formed message is kept
			// as it is, a malformed one becomes its bare header.
			in := slices.Clone(tt.msg)
			out := sanitize(in)
			if tt.want && !slices.Equal(out, tt.msg) {
				t.Errorf("sanitize changed a well-formed message: % x", out)
			}
			if !tt.want && (len(out) != dnswire.HeaderLen || !slices.Equal(out[:4], tt.msg[:4]) || binary.BigEndian.Uint64(out[4:]) != 0) {
				t.Errorf("sanitize(% x) = % x, want the ID and flags with zero counts", tt.msg, out)
			}
		})
	}
	if n := testing.AllocsPerRun(100, func() { wellFormed(tests[2].msg) }); n != 0 {
		t.Errorf("wellFormed allocates %v times", n)
	}
}

// miekg/dns would answer these as if whole: a question cut after its name
// as QTYPE 0 and QCLASS 0, a count larger than the records as "the rest is
// missing". The server answers FORMERR, with the query's ID, and keeps
// serving.
func TestServerMalformedCountsAreFORMERR(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	name := []byte{2, 'r', 'w', 6, 'o', 'r', 'd', 'e', 'r', 's', 2, 'p', 'g', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 8, 'i', 'n', 't', 'e', 'r', 'n', 'a', 'l', 0}
	for _, tt := range []struct {
		name string
		msg  []byte
	}{
		{"question without QTYPE and QCLASS", wire(1, 0, 0, 0, name)},
		{"question without QCLASS", wire(1, 0, 0, 0, name, []byte{0, 1})},
		{"ANCOUNT 1, no record", wire(1, 1, 0, 0, name, []byte{0, 1, 0, 1})},
		{"ARCOUNT 1, no record", wire(1, 0, 0, 1, name, []byte{0, 1, 0, 1})},
	} {
		for _, network := range []string{"udp", "tcp"} {
			conn, err := net.Dial(network, srv.Addr())
			if err != nil {
				t.Fatal(err)
			}
			conn.SetDeadline(time.Now().Add(deadline))
			msg := tt.msg
			if network == "tcp" {
				msg = append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...)
			}
			if _, err := conn.Write(msg); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 512)
			n, err := conn.Read(buf)
			conn.Close()
			if err != nil {
				t.Fatalf("%s over %s: %v", tt.name, network, err)
			}
			if network == "tcp" {
				buf, n = buf[2:], n-2
			}
			resp := new(dns.Msg)
			if err := resp.Unpack(buf[:n]); err != nil {
				t.Fatalf("%s over %s: %v", tt.name, network, err)
			}
			if resp.Id != 0xbeef || !resp.Response || resp.Rcode != dns.RcodeFormatError || !resp.RecursionDesired {
				t.Errorf("%s over %s: %v, want FORMERR with ID and RD copied", tt.name, network, resp)
			}
		}
	}
	if resp := exchange(t, "udp", srv.Addr(), query("rw.orders."+zone, dns.TypeA, 0)); resp.Rcode != dns.RcodeSuccess {
		t.Fatalf("after malformed queries: %v", resp)
	}
}

// RFC 7766 §6.2.3: a connection that never sends a query is idle too; it
// is closed after IdleTimeout, not after a longer read timeout.
func TestServerClosesSilentTCPConnection(t *testing.T) {
	srv := startServer(t, ServerOptions{IdleTimeout: 50 * time.Millisecond})
	conn, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(deadline))
	if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read on a connection that sent nothing: %v, want EOF", err)
	}
}

// FuzzSanitize checks wellFormed against miekg/dns: a message it keeps
// unpacks (when it does) into exactly the sections its header counts, and
// a message it rejects comes out as its bare header with zero counts.
func FuzzSanitize(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed)
		f.Add(seed[:len(seed)-2])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out := sanitize(slices.Clone(data))
		if len(data) < dnswire.HeaderLen || wellFormed(data) {
			if !slices.Equal(out, data) {
				t.Fatalf("sanitize changed % x into % x", data, out)
			}
		} else if len(out) != dnswire.HeaderLen || !slices.Equal(out[:4], data[:4]) || binary.BigEndian.Uint64(out[4:]) != 0 {
			t.Fatalf("sanitize(% x) = % x, want the bare header", data, out)
		}
		if len(out) < dnswire.HeaderLen {
			return
		}
		var m dns.Msg
		if m.Unpack(out) != nil {
			return
		}
		counts := []int{len(m.Question), len(m.Answer), len(m.Ns), len(m.Extra)}
		for i, n := range counts {
			if want := int(binary.BigEndian.Uint16(out[4+2*i:])); n != want {
				t.Fatalf("% x unpacks into sections of %v records, its header counts %d in section %d", out, counts, want, i)
			}
		}
	})
}

func BenchmarkWellFormed(b *testing.B) {
	wire, err := query("rw.orders."+zone, dns.TypeA, 1232).Pack()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if !wellFormed(wire) {
			b.Fatal("query not well formed")
		}
	}
}
