package resolver

import (
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// The label values of the query metrics: bounded sets, so that no query can
// add a series. Stats indexes its arrays with them.
var (
	// Protocols are the transports, in Stats.Queries' first index.
	Protocols = [...]string{"udp", "tcp"}
	// QueryTypes are the QTYPEs counted on their own; every other type is
	// "other".
	QueryTypes = [...]string{"A", "AAAA", "SRV", "TXT", "SOA", "NS", "ANY", "other"}
	// Rcodes are the response codes counted on their own; any other is
	// "other".
	Rcodes = [...]string{"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "BADVERS", "other"}
	// Sources are the values of Source, by index.
	Sources = [...]string{"snapshot", "delegated", "error"}
	// RRLActions are what response rate limiting does with a response it
	// holds back, in Stats.RateLimited's index.
	RRLActions = [...]string{"dropped", "slipped"}
	// DurationBuckets are the upper bounds of the query duration histogram.
	DurationBuckets = [...]time.Duration{
		time.Microsecond, 5 * time.Microsecond, 25 * time.Microsecond, 100 * time.Microsecond,
		500 * time.Microsecond, 2500 * time.Microsecond, 10 * time.Millisecond, 50 * time.Millisecond,
		250 * time.Millisecond, time.Second, 5 * time.Second,
	}
)

const (
	protoUDP = iota
	protoTCP
)

// durationSample: one query in durationSample is timed, on every path: two
// clock reads per query would be a large share of the fast path's work.
const durationSample = 64

// Stats are a server's counters since it started.
type Stats struct {
	// Queries counts the queries answered, by protocol, type and rcode
	// (indexes into Protocols, QueryTypes and Rcodes).
	Queries [len(Protocols)][len(QueryTypes)][len(Rcodes)]uint64
	// Answers counts the queries answered, by Source.
	Answers [numSources]uint64
	// Durations are the sampled query durations (one query in 64), by
	// Source: from the moment the query was read to the moment its
	// response was ready (for the fast path, socket I/O aside).
	Durations [numSources]DurationStats
	// Truncated counts responses with TC set.
	Truncated uint64
	// Panics counts the queries whose handling panicked (answered
	// SERVFAIL, or by the slow path when the fast path panicked).
	Panics uint64
	// Dropped counts messages not answered: responses (QR set), messages
	// shorter than a header, UDP queries shed (Shed) and UDP responses
	// dropped by rate limiting (RateLimited).
	Dropped uint64
	// Oversized counts query messages longer than 4 KiB (a UDP datagram
	// larger than the read buffer, a TCP message), answered FORMERR
	// without being read; they count in Queries too.
	Oversized uint64
	// Shed counts the queries the slow path had no room for (its bound on
	// queries in flight, or their source's share of it), by protocol:
	// over UDP dropped, over TCP answered SERVFAIL (and counted in
	// Queries).
	Shed [len(Protocols)]uint64
	// RateLimited counts the UDP responses response rate limiting held
	// back, by RRLActions: dropped (counted in Dropped too), or slipped:
	// sent truncated (counted in Queries and Truncated too).
	RateLimited [len(RRLActions)]uint64
	// TCPEvicted counts the idle TCP connections closed to serve a new
	// client while MaxTCPConns were open (RFC 7766 §6.2.3).
	TCPEvicted uint64
	// TCPConnections is the number of open TCP connections.
	TCPConnections int64
	// SlowInFlight is the number of queries in the slow path now.
	SlowInFlight int64
}

// DurationStats is one histogram of query durations.
type DurationStats struct {
	// Counts counts the sampled queries by the first bucket of
	// DurationBuckets they fit; the last element counts those above all
	// (not cumulative).
	Counts [len(DurationBuckets) + 1]uint64
	// Sum is the total of the sampled durations.
	Sum time.Duration
}

// The counters of a tally and a sink, in one flat array.
const (
	idxQueries   = 0
	idxAnswers   = idxQueries + len(Protocols)*len(QueryTypes)*len(Rcodes)
	idxBuckets   = idxAnswers + int(numSources)
	nBuckets     = len(DurationBuckets) + 1
	idxSums      = idxBuckets + int(numSources)*nBuckets
	idxTruncated = idxSums + int(numSources)
	idxPanics    = idxTruncated + 1
	idxDropped   = idxPanics + 1
	idxOversized = idxDropped + 1
	idxShed      = idxOversized + 1
	idxRRL       = idxShed + len(Protocols)
	numCounters  = idxRRL + len(RRLActions)
)

// The indexes of RRLActions.
const (
	rrlDropped = iota
	rrlSlipped
)

// outcome is what the metrics count of one query.
type outcome struct {
	qtype    uint16
	rcode    int
	source   Source
	tc       bool
	dropped  bool
	panicked bool
}

// sink holds published counters; any goroutine adds to it, the collector
// reads it at scrape time.
type sink [numCounters]atomic.Uint64

// tally counts queries in plain memory, owned by one goroutine (a UDP
// socket's loop, a TCP connection) and published into a sink by flush: per
// query the metrics cost a few increments, no atomic operation, no lock and
// no label lookup.
type tally struct {
	local [numCounters]uint64
	dirty [numCounters]uint16
	nd    int
}

func (t *tally) add(i int, v uint64) {
	if t.local[i] == 0 {
		t.dirty[t.nd] = uint16(i)
		t.nd++
	}
	t.local[i] += v
}

// sample is the start of a query that the duration histogram times; the
// zero sample times nothing.
type sample struct{ start time.Time }

// sampleQuery returns the sample of the query numbered seq: one query in
// durationSample reads the clock, the rest cost nothing.
func sampleQuery(seq uint32) sample {
	if seq%durationSample != 0 {
		return sample{}
	}
	return sample{start: time.Now()}
}

// count records one query, and its duration when s times it.
func (t *tally) count(proto int, o outcome, s sample) {
	if o.panicked {
		t.add(idxPanics, 1)
	}
	if o.dropped {
		t.add(idxDropped, 1)
		return
	}
	t.add(idxQueries+(proto*len(QueryTypes)+typeIndex(o.qtype))*len(Rcodes)+rcodeIndex(o.rcode), 1)
	t.add(idxAnswers+int(o.source), 1)
	if o.tc {
		t.add(idxTruncated, 1)
	}
	if !s.start.IsZero() {
		took := time.Since(s.start)
		b := 0
		for b < len(DurationBuckets) && took > DurationBuckets[b] {
			b++
		}
		t.add(idxBuckets+int(o.source)*nBuckets+b, 1)
		t.add(idxSums+int(o.source), uint64(took))
	}
}

// outcome is what the metrics count of a fast answer.
func (f fastResult) outcome() outcome {
	return outcome{qtype: f.qtype, rcode: int(f.rcode), source: f.source, tc: f.tc}
}

// flush adds the counts to s and starts again from zero.
func (t *tally) flush(s *sink) {
	for _, i := range t.dirty[:t.nd] {
		s[i].Add(t.local[i])
		t.local[i] = 0
	}
	t.nd = 0
}

func typeIndex(qtype uint16) int {
	switch qtype {
	case dns.TypeA:
		return 0
	case dns.TypeAAAA:
		return 1
	case dns.TypeSRV:
		return 2
	case dns.TypeTXT:
		return 3
	case dns.TypeSOA:
		return 4
	case dns.TypeNS:
		return 5
	case dns.TypeANY:
		return 6
	}
	return 7
}

func rcodeIndex(rcode int) int {
	switch {
	case rcode >= dns.RcodeSuccess && rcode <= dns.RcodeRefused:
		return rcode
	case rcode == dns.RcodeBadVers:
		return 6
	}
	return 7
}

// addTo adds the counters of s to st.
func (s *sink) addTo(st *Stats) {
	for p := range st.Queries {
		for q := range st.Queries[p] {
			for r := range st.Queries[p][q] {
				st.Queries[p][q][r] += s[idxQueries+(p*len(QueryTypes)+q)*len(Rcodes)+r].Load()
			}
		}
	}
	for src := range st.Answers {
		st.Answers[src] += s[idxAnswers+src].Load()
		d := &st.Durations[src]
		for b := range d.Counts {
			d.Counts[b] += s[idxBuckets+src*nBuckets+b].Load()
		}
		d.Sum += time.Duration(s[idxSums+src].Load())
	}
	st.Truncated += s[idxTruncated].Load()
	st.Panics += s[idxPanics].Load()
	st.Dropped += s[idxDropped].Load()
	st.Oversized += s[idxOversized].Load()
	for p := range st.Shed {
		st.Shed[p] += s[idxShed+p].Load()
	}
	for a := range st.RateLimited {
		st.RateLimited[a] += s[idxRRL+a].Load()
	}
}
