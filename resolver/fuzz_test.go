package resolver

import (
	"bytes"
	"testing"

	"github.com/miekg/dns"
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
			resp := h.HandleRequest(&req, tcp)
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
			if !tcp && len(wire) > DefaultUDPSize {
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
