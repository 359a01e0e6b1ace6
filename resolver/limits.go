package resolver

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"sync/atomic"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/internal/dnswire"
)

// What a client can make the server spend is bounded: the octets of one
// query, the queries in the slow path (all together, per source and per
// TCP connection), and, when response rate limiting is on, the UDP
// responses per source. A source is the client's address cut to a prefix
// (/24 for IPv4, /56 for IPv6, as NSD and Knot count them by default): one
// host, or one network handing out addresses, counts as one client.

// Limits on queries.
const (
	// maxQueryLen is the longest query message read: one question (a name
	// of at most 255 octets) and an OPT with its options fit many times
	// over, so no legal query needs more. A longer one is answered FORMERR
	// without being read.
	maxQueryLen = 4096
	// DefaultMaxInflight bounds the queries in the slow path at once, UDP
	// and TCP together (ServerOptions.MaxInflight).
	DefaultMaxInflight = 4096
	// DefaultMaxInflightPerSource is one source's share of MaxInflight
	// (ServerOptions.MaxInflightPerSource).
	DefaultMaxInflightPerSource = 256
	// DefaultMaxInflightPerConn bounds the queries of one TCP connection in
	// the slow path (ServerOptions.MaxInflightPerConn).
	DefaultMaxInflightPerConn = 16
	// DefaultSourcePrefixV4 and DefaultSourcePrefixV6 are the prefix
	// lengths that make one source.
	DefaultSourcePrefixV4 = 24
	DefaultSourcePrefixV6 = 56
	// gateSlots is the size of the table of per-source counters of the
	// slow path; sources whose keys share a slot share a share.
	gateSlots = 4096
)

// sourceKeys maps a client address to the key of its source: its prefix,
// hashed with a seed of this process, so that a client cannot choose
// addresses that share a slot with another's.
type sourceKeys struct {
	mask4            uint32
	mask6hi, mask6lo uint64
	seed             uint64
}

func newSourceKeys(v4, v6 int) sourceKeys {
	k := sourceKeys{seed: rand.Uint64()}
	k.mask4 = ^uint32(0) << (32 - v4)
	switch {
	case v6 <= 64:
		k.mask6hi = ^uint64(0) << (64 - v6)
	default:
		k.mask6hi, k.mask6lo = ^uint64(0), ^uint64(0)<<(128-v6)
	}
	return k
}

// key returns the key of a's source. It does not allocate.
func (k *sourceKeys) key(a netip.Addr) uint64 {
	a = a.Unmap()
	var x uint64
	if a.Is4() {
		b := a.As4()
		x = 4<<56 | uint64(binary.BigEndian.Uint32(b[:])&k.mask4)
	} else {
		b := a.As16()
		hi, lo := binary.BigEndian.Uint64(b[:8])&k.mask6hi, binary.BigEndian.Uint64(b[8:])&k.mask6lo
		x = hi ^ bits.RotateLeft64(mix64(lo^6), 17)
	}
	return mix64(x ^ k.seed)
}

// mix64 is the finalizer of splitmix64: every bit of x moves every bit of
// the result.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// slowGate bounds the queries in the slow path: all of them, and each
// source's. A query that cannot be taken is shed (UDP: dropped; TCP:
// SERVFAIL): a flood of names that never answer fills its own source's
// share, and the other sources keep theirs.
type slowGate struct {
	max, perSource int32
	total          atomic.Int32
	shares         [gateSlots]atomic.Int32
}

// acquire takes a place for a query of the source key; false: none left.
func (g *slowGate) acquire(key uint64) bool {
	s := &g.shares[key%gateSlots]
	if s.Add(1) > g.perSource {
		s.Add(-1)
		return false
	}
	if g.total.Add(1) > g.max {
		g.total.Add(-1)
		s.Add(-1)
		return false
	}
	return true
}

// release gives back the place acquire took.
func (g *slowGate) release(key uint64) {
	g.shares[key%gateSlots].Add(-1)
	g.total.Add(-1)
}

// shortReplyMax is the room shortReply needs: a header, a question whose
// name is at most 255 octets, and our OPT.
const shortReplyMax = dnswire.HeaderLen + 255 + 4 + optLen

// shortReply writes into out (at least shortReplyMax long) a response to q
// that carries no records, and returns its length and the QTYPE asked
// (0: no question). It reads no more of q than the header and the
// question, and is for answers given without handling the query: FORMERR
// for a query too long to read (q cut to its header), SERVFAIL for one the
// slow path has no room for, a truncated answer (tc) for one that response
// rate limiting slips.
//
// The header: the ID, opcode, RD and CD of q, QR, TC when tc, the rcode.
// The question when q has exactly one, whole and without compression; our
// OPT (our payload size, the client's DO bit) when it is followed by an OPT
// and nothing else. It does not allocate.
func (h *Handler) shortReply(q, out []byte, rcode uint8, tc bool) (n int, qtype uint16) {
	out[0], out[1] = q[0], q[1]
	out[2] = flagQR | q[2]&(flagOpcode|flagRD)
	if tc {
		out[2] |= flagTC
	}
	out[3] = q[3]&flagCD | rcode&0xF
	clear(out[4:dnswire.HeaderLen])
	qEnd := plainQuestion(q)
	if qEnd < 0 {
		return dnswire.HeaderLen, 0
	}
	n = copy(out[dnswire.HeaderLen:], q[dnswire.HeaderLen:qEnd]) + dnswire.HeaderLen
	out[5] = 1
	qtype = binary.BigEndian.Uint16(q[qEnd-4:])
	// Nothing but one OPT after the question: the client speaks EDNS.
	if binary.BigEndian.Uint32(q[6:]) == 0 && binary.BigEndian.Uint16(q[10:]) == 1 &&
		len(q) >= qEnd+optLen && q[qEnd] == 0 && binary.BigEndian.Uint16(q[qEnd+1:]) == dns.TypeOPT {
		o := out[n : n+optLen]
		o[0] = 0
		binary.BigEndian.PutUint16(o[1:], dns.TypeOPT)
		binary.BigEndian.PutUint16(o[3:], h.opts.UDPSize)
		binary.BigEndian.PutUint32(o[5:], 0)
		o[7] = q[qEnd+7] & 0x80
		binary.BigEndian.PutUint16(o[9:], 0)
		out[11] = 1
		n += optLen
	}
	return n, qtype
}

// plainQuestion returns the end of the question of q when q counts exactly
// one, whole, whose name is at most 255 octets and has no compression
// pointer; -1 otherwise.
func plainQuestion(q []byte) int {
	if len(q) < dnswire.HeaderLen || binary.BigEndian.Uint16(q[4:]) != 1 {
		return -1
	}
	off := dnswire.HeaderLen
	for off < len(q) && off-dnswire.HeaderLen < 255 {
		l := int(q[off])
		switch {
		case l == 0:
			if off+5 > len(q) {
				return -1
			}
			return off + 5
		case l > 63:
			return -1
		}
		off += 1 + l
	}
	return -1
}
