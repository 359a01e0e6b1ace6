package resolver

import (
	"sync/atomic"
	"time"
)

// Response rate limiting (RRL) for UDP, as NSD and Knot do it: a source
// (the client's /24 or /56) gets at most RRLOptions.ResponsesPerSecond
// responses per second, and up to a second's worth at once. Over UDP the
// source address is not proven: a flood of queries with a victim's address
// turns the server into an amplifier aimed at the victim. A limited
// response is dropped, but every Slip-th one is sent truncated (TC set, no
// records), so that a real client behind that address retries over TCP,
// which proves its address and is never limited.
//
// The state is a fixed table of buckets, indexed by the hash of the
// source (sourceKeys), allocated once: a flood of distinct sources cannot
// grow it. Sources that share a bucket share its rate.

// RRLOptions turn on response rate limiting for UDP (ServerOptions.RRL).
type RRLOptions struct {
	// ResponsesPerSecond is the rate each source may get; it must be
	// positive.
	ResponsesPerSecond int
	// Slip sends every Slip-th limited response truncated (TC set) instead
	// of dropping it: 1 truncates all, 2 (NSD's and Knot's default) every
	// other, 0 drops all.
	Slip int
}

// rrlSlots is the size of the bucket table (one bucket is 16 octets).
const rrlSlots = 1 << 16

// rrl is the bucket table. A bucket keeps the theoretical arrival time of
// the source's next response (GCRA, the token bucket as one number): a
// response is allowed while that time is at most window ahead of now, and
// each allowed response moves it interval further.
type rrl struct {
	interval, window int64
	slip             uint32
	epoch            time.Time
	buckets          []rrlBucket
}

type rrlBucket struct {
	// tat is the theoretical arrival time, in nanoseconds since epoch.
	tat atomic.Int64
	// limited counts the limited responses, to pick those slipped.
	limited atomic.Uint32
}

func newRRL(o RRLOptions) *rrl {
	interval := int64(time.Second) / int64(o.ResponsesPerSecond)
	interval = max(interval, 1)
	return &rrl{
		interval: interval,
		// A second's worth of responses at once: the first is allowed at
		// tat == now, the last at tat == now + window.
		window:  int64(o.ResponsesPerSecond-1) * interval,
		slip:    uint32(max(o.Slip, 0)),
		epoch:   time.Now(),
		buckets: make([]rrlBucket, rrlSlots),
	}
}

// now returns the clock allow reads: nanoseconds since the table was made,
// monotonic.
func (r *rrl) now() int64 { return int64(time.Since(r.epoch)) }

// bucket returns the bucket of the source key; its bits are not those that
// pick the slot of slowGate.
func (r *rrl) bucket(key uint64) *rrlBucket {
	return &r.buckets[(key>>32)%rrlSlots]
}

// allow reports whether the source key may get a response at now, and
// takes it from its rate if so. It does not allocate or lock.
func (r *rrl) allow(key uint64, now int64) bool {
	b := r.bucket(key)
	for {
		old := b.tat.Load()
		tat := max(old, now)
		if tat-now > r.window {
			return false
		}
		if b.tat.CompareAndSwap(old, tat+r.interval) {
			return true
		}
	}
}

// slipped reports whether the limited response just counted for the
// source key is sent truncated rather than dropped.
func (r *rrl) slipped(key uint64) bool {
	if r.slip == 0 {
		return false
	}
	return r.bucket(key).limited.Add(1)%r.slip == 0
}
