package resolver

import (
	"bytes"
	"testing"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/internal/dnswire"
)

// fuzzSeeds are well-formed queries covering each path of HandleRequest;
// testdata/fuzz/FuzzHandle holds more, malformed ones included.
func fuzzSeeds(tb testing.TB) [][]byte {
	reqs := []*dns.Msg{
		query("rw.orders."+zone, dns.TypeA, 0),
		query("RO.orders."+zone, dns.TypeSRV, 1232),
		query("ro.big."+zone, dns.TypeA, 0),
		query("nope."+zone, dns.TypeTXT, 4096),
		query("example.com.", dns.TypeA, 0),
		query(zone, dns.TypeANY, 512),
		withEDNSVersion(query(zone, dns.TypeSOA, 1232), 1),
		withOpcode(query(zone, dns.TypeSOA, 0), dns.OpcodeUpdate),
		withQuestions(query(zone, dns.TypeSOA, 0), 2),
		withSecondOPT(query(zone, dns.TypeSOA, 1232)),
		withClass(query(zone, dns.TypeSOA, 0), dns.ClassCHAOS),
	}
	var out [][]byte
	for _, r := range reqs {
		wire, err := r.Pack()
		if err != nil {
			tb.Fatalf("pack seed %v: %v", r, err)
		}
		out = append(out, wire)
	}
	return out
}

// FuzzHandle feeds HandleRequest every message that unpacks: it must
// answer requests with a response that packs, has QR set and fits the
// transport, ignore responses, and leave the request alone.
func FuzzHandle(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed)
	}
	h := New(testStore(f), Options{}, nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		var req dns.Msg
		if req.Unpack(data) != nil {
			return
		}
		before, errBefore := req.Pack()
		for _, tcp := range []bool{false, true} {
			resp := h.HandleRequest(&req, testClient, tcp)
			if req.Response {
				if resp != nil {
					t.Fatalf("answered a response: %v", resp)
				}
				continue
			}
			if resp == nil {
				t.Fatal("no response to a request")
			}
			wire, err := resp.Pack()
			if err != nil {
				t.Fatalf("response does not pack: %v\n%v", err, resp)
			}
			if !resp.Response || wire[2]&0x80 == 0 {
				t.Fatal("QR not set")
			}
			if !tcp && len(wire) > dnswire.DefaultUDPSize {
				t.Fatalf("UDP response of %d bytes", len(wire))
			}
			var back dns.Msg
			if err := back.Unpack(wire); err != nil {
				t.Fatalf("response does not unpack: %v", err)
			}
		}
		after, errAfter := req.Pack()
		if (errBefore == nil) != (errAfter == nil) || !bytes.Equal(before, after) {
			t.Fatal("HandleRequest modified the request")
		}
	})
}

// FuzzFastPath feeds the fast path every message: when it answers, the
// answer must be HandleRequest's (checkFast: same header, sections, EDNS
// and names, the question echoed byte for byte), over UDP and TCP, and it
// must never write past the room it was given. testdata/fuzz/FuzzFastPath
// holds queries at its edges: EDNS options, escapes, case patterns,
// pointers, trailing octets.
func FuzzFastPath(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed)
	}
	for _, q := range fastQueries {
		wire, err := q.msg.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(wire)
	}
	h := New(testStore(f), Options{}, nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		before := bytes.Clone(data)
		for _, tcp := range []bool{false, true} {
			checkFast(t, "fuzz", h, data, tcp)
			if !bytes.Equal(data, before) {
				t.Fatal("the fast path modified the query")
			}
			// Too little room: no answer, and nothing written past it.
			out := make([]byte, 64)
			if f := h.answerWire(data, testClient, tcp, out[:32], 0); f.ok && f.n > 32 {
				t.Fatalf("answer of %d octets in 32", f.n)
			}
			if !bytes.Equal(out[32:], make([]byte, 32)) {
				t.Fatal("the fast path wrote past its buffer")
			}
		}
	})
}
