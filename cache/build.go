package cache

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/zones"
)

// maxRotations caps the precomputed orders of an A or AAAA RRset: beyond a
// handful, more variants only cost memory.
const maxRotations = 16

// namesPerCluster is about how many names a cluster has: its seven, itself,
// two regions and a handful of SRV targets. It only sizes the builder's map.
const namesPerCluster = 15

// Build computes every answer of the zone from the configuration and the
// policy decision of each cluster, keyed by cluster label. A configured
// cluster missing from decisions still gets its four names, answering NODATA
// (and a TXT record saying so): a configured name never answers NXDOMAIN.
// Decisions for clusters that are not configured are ignored.
//
// gen is the snapshot's generation; it is also the SOA serial.
func Build(cfg *zones.Config, decisions map[string]policy.Decision, gen uint64) *Snapshot {
	return Rebuild(nil, cfg, decisions, gen)
}

// Rebuild is Build after prev, which may be nil. Under the same
// configuration (the same *zones.Config), each cluster whose decision is the
// one prev was built from (reflect.DeepEqual) keeps prev's answers, shared
// rather than built again: a change to one cluster of a large fleet builds
// that cluster, the apex (whose SOA serial is gen) and the index of names.
//
// The snapshot keeps the decisions it was built from: the caller must not
// modify their slices afterwards.
func Rebuild(prev *Snapshot, cfg *zones.Config, decisions map[string]policy.Decision, gen uint64) *Snapshot {
	b := &builder{
		zone:    canonical(cfg.Zone),
		ttl:     cfg.TTL,
		regions: cfg.Regions,
		nodes:   make(map[string]*pending, namesPerCluster),
		ttls:    make(map[targetKey]uint32),
		targets: make(map[targetKey]dns.RR),
	}
	s := &Snapshot{zone: b.zone, gen: gen, cfg: cfg, parts: make([]*part, 0, len(cfg.Clusters)+1)}
	b.apex(cfg, gen)
	s.negative = []dns.RR{b.negative}
	s.negativeWire = b.wb.negative(b.zone, b.negative)
	s.parts = append(s.parts, b.finish())
	s.parts[0].negative, s.parts[0].negativeWire = s.negative, s.negativeWire
	reuse := prev != nil && prev.cfg == cfg && len(prev.parts) == len(cfg.Clusters)+1
	if prev != nil && prev.cfg == cfg {
		b.glue = prev.glue // the cluster zones' glue: one set per configuration
	}
	s.glue = b.glue
	before := prev.partsByLabel(reuse)
	names := len(s.parts[0].names)
	// One decision read at a time, at one address: what reflect compares
	// lives on the heap, and a variable per cluster would be a copy there
	// per cluster and rebuild.
	d := new(policy.Decision)
	var known bool
	for i := range cfg.Clusters {
		label := cfg.Clusters[i].Label
		*d, known = decisions[label]
		if reuse && prev.parts[i+1].builtFrom(label, d, known) {
			s.parts = append(s.parts, prev.parts[i+1])
			names += len(prev.parts[i+1].names)
			continue
		}
		var last *part // the cluster's part before, for its zone's serial
		if reuse {
			last = prev.parts[i+1]
		} else {
			last = before[label]
		}
		b.cluster(strings.ToLower(label), d, known)
		z := b.clusterZone(strings.ToLower(label)+"."+b.zone, last.serialOr0())
		p := b.finish()
		p.label, p.decision, p.known = label, *d, known
		b.zoneSerial(p, last, d, known, z)
		s.parts = append(s.parts, p)
		names += len(p.names)
	}
	s.names = make(map[string]node, names)
	for i, p := range s.parts {
		for _, nn := range p.names {
			// Validated configurations give every part names of its own;
			// otherwise a name with records wins over an empty
			// non-terminal, and the first part over a later one.
			if have, dup := s.names[nn.name]; dup && (have.slots != emptySlots || nn.node.slots == emptySlots) {
				continue
			}
			n := nn.node
			n.part = uint32(i)
			s.names[nn.name] = n
		}
	}
	return s
}

// builtFrom reports whether p holds the answers of cluster label for
// decision d (known: the decision exists).
func (p *part) builtFrom(label string, d *policy.Decision, known bool) bool {
	return p.label == label && p.known == known && (!known || reflect.DeepEqual(&p.decision, d))
}

// builder accumulates the records of each name of one part before finish
// freezes them.
type builder struct {
	zone string
	ttl  zones.TTL
	// regions name the region-pinned read names, ro.<region>.<cluster>.
	regions []zones.Region
	nodes   map[string]*pending
	// soa, ns and glue are the apex's SOA, NS records and their glue,
	// which every cluster zone's apex repeats (see clusterZone).
	soa  *dns.SOA
	ns   []*dns.NS
	glue []dns.RR
	// order holds the nodes in the order they were added, from pendings.
	order    []*pending
	pendings slab[pending]
	// lists holds the records of the pending nodes (see push).
	lists    slab[dns.RR]
	negative dns.RR
	// mem allocates the records of the part being built.
	mem records
	// wb packs the wire templates.
	wb wireBuilder

	// The scratch of cluster, kept from one cluster to the next.
	ttls    map[targetKey]uint32
	targets map[targetKey]dns.RR
	// keys are the targets of each kind's endpoints, in order (zero for an
	// endpoint that cannot be answered); seen lists each target once, in
	// the order first seen.
	keys, seen []targetKey
	text       []byte
}

// pending is a node under construction: Build copies its records into the
// snapshot, A and AAAA in rotation order, once every name is known.
type pending struct {
	name                                 string
	a, aaaa, srv, srvExtra, txt, soa, ns []dns.RR
	// srvExtra are the A/AAAA records of the SRV targets, nsExtra the glue
	// of the in-zone name servers.
	nsExtra []dns.RR
	// anyType is the type ANY answers with, when not the default (see
	// finish).
	anyType uint16
}

func (b *builder) node(name string) *pending {
	p, ok := b.nodes[name]
	if !ok {
		p = b.pendings.new()
		p.name = name
		b.nodes[name] = p
		b.order = append(b.order, p)
	}
	return p
}

// apex adds the SOA and NS records, and the A/AAAA records of the name
// servers whose names are inside the zone (which must resolve from here).
func (b *builder) apex(cfg *zones.Config, gen uint64) {
	p := b.node(b.zone)
	mname, rname := canonical(cfg.SOA.MName), canonical(cfg.SOA.RName)
	if cfg.SOA.MName == "" {
		mname = b.zone
		if len(cfg.NS) > 0 {
			mname = canonical(cfg.NS[0].Name)
		}
	}
	if cfg.SOA.RName == "" {
		rname = "hostmaster." + b.zone
	}
	soa := &dns.SOA{
		Hdr:     header(b.zone, dns.TypeSOA, b.ttl.SOA),
		Ns:      mname,
		Mbox:    rname,
		Serial:  uint32(gen),
		Refresh: cfg.SOA.Refresh,
		Retry:   cfg.SOA.Retry,
		Expire:  cfg.SOA.Expire,
		Minttl:  cfg.SOA.Minimum,
	}
	b.push(&p.soa, soa)
	p.anyType = dns.TypeSOA
	b.soa = soa

	// RFC 2308 §5: a negative answer is cached for the SOA's TTL, which must
	// not exceed its MINIMUM; the configured negative TTL caps both.
	neg := dns.Copy(soa).(*dns.SOA)
	neg.Hdr.Ttl = min(b.ttl.SOA, cfg.SOA.Minimum, b.ttl.Negative)
	b.negative = neg

	for _, ns := range cfg.NS {
		name := canonical(ns.Name)
		nsRR := &dns.NS{Hdr: header(b.zone, dns.TypeNS, b.ttl.NS), Ns: name}
		b.push(&p.ns, nsRR)
		b.ns = append(b.ns, nsRR)
		if !inZone(name, b.zone) {
			continue
		}
		host := b.node(name)
		for _, s := range ns.Addresses {
			addr, err := netip.ParseAddr(s)
			if err != nil {
				continue // zones validates addresses; never answer garbage
			}
			rr := b.mem.address(name, addr.Unmap(), b.ttl.NS)
			b.addAddress(host, rr)
			b.push(&p.nsExtra, rr)
			b.glue = append(b.glue, rr)
		}
	}
}

// kind is one of a cluster's names and what it answers. Its TXT line
// names the replicas the view's region left out of reads when excluded is
// set, and says why when why is not empty.
type kind struct {
	label    string
	ttl      uint32
	eps      []policy.Endpoint
	view     *policy.RegionView
	excluded bool
	why      string
}

// maxKinds bounds the names of a cluster: the four, sync, and ro.<region>
// of each of the two regions.
const maxKinds = 7

// targetKey identifies one address record of an SRV target name.
type targetKey struct {
	name string
	addr netip.Addr
}

// cluster adds the four names of a cluster, its SRV target names and their
// records.
func (b *builder) cluster(label string, d *policy.Decision, known bool) {
	base := label + "." + b.zone
	active, passive := regionView(d, d.Active), regionView(d, d.Passive)
	var buf [maxKinds]kind
	kinds := append(buf[:0],
		kind{label: zones.LabelRW, ttl: b.ttl.RW, eps: d.RW, view: active},
		kind{label: zones.LabelRO, ttl: b.ttl.RO, eps: d.RO, view: active, excluded: true},
		kind{label: zones.LabelPassiveRW, ttl: b.ttl.Passive, eps: d.PassiveRW, view: passive},
		kind{label: zones.LabelPassiveRO, ttl: b.ttl.Passive, eps: d.PassiveRO, view: passive, excluded: true},
		kind{label: zones.LabelSync, ttl: b.ttl.RO, eps: d.Sync, view: active, why: d.SyncReason},
	)
	for i := range b.regions {
		if len(kinds) == maxKinds {
			break // zones validates two regions
		}
		name := b.regions[i].Name
		v := regionView(d, name)
		var eps []policy.Endpoint
		if v.Name == name {
			eps = v.RO
		}
		kinds = append(kinds, kind{label: zones.LabelRO + "." + name, ttl: b.ttl.RO, eps: eps, view: v, excluded: true})
	}

	// A target's records answer both its own name and the additional
	// section of every SRV that points to it: one TTL, the shortest of the
	// names it came from.
	clear(b.ttls)
	b.keys, b.seen = b.keys[:0], b.seen[:0]
	for _, k := range kinds {
		for _, ep := range k.eps {
			key, ok := b.target(ep, base)
			b.keys = append(b.keys, key)
			if !ok {
				continue
			}
			if ttl, seen := b.ttls[key]; !seen {
				b.seen = append(b.seen, key)
				b.ttls[key] = k.ttl
			} else {
				b.ttls[key] = min(ttl, k.ttl)
			}
		}
	}
	// The records of the part, at their number: a cluster's part is kept
	// for as long as its decision holds, so it keeps nothing spare.
	var n4, n6, nsrv int
	for _, key := range b.seen {
		if key.addr.Is4() {
			n4++
		} else {
			n6++
		}
	}
	for _, key := range b.keys {
		if key.name == "" {
			continue
		}
		nsrv++ // and at most one record of the name itself
		if key.addr.Is4() {
			n4++
		} else {
			n6++
		}
	}
	b.mem.reserve(n4, n6, nsrv, len(kinds))
	clear(b.targets)
	for _, key := range b.seen {
		rr := b.mem.address(key.name, key.addr, b.ttls[key])
		b.targets[key] = rr
		b.addAddress(b.node(key.name), rr)
	}

	keys := b.keys
	for _, k := range kinds {
		name := k.label + "." + base
		p := b.node(name)
		for i, key := range keys[:len(k.eps)] {
			if key.name == "" {
				continue
			}
			if !p.hasAddress(key.addr) {
				b.addAddress(p, b.mem.address(name, key.addr, k.ttl))
			}
			// The target's own record: its name is the one string every
			// record of the target shares.
			rr := b.targets[key]
			b.push(&p.srv, b.mem.service(name, k.ttl, k.eps[i].Port, rr.Header().Name))
			if !slices.Contains(p.srvExtra, rr) {
				b.push(&p.srvExtra, rr)
			}
		}
		keys = keys[len(k.eps):]

		b.text = b.text[:0]
		if known {
			b.text = appendDecisionText(b.text, &k, d)
		} else {
			b.text = appendUnknownText(b.text, k.label)
		}
		p.txt = p.txt[:0] // a later cluster of the same name replaces it
		b.push(&p.txt, b.mem.text(name, b.ttl.TXT, b.text))
	}
}

// target returns the SRV target name and address of an endpoint, and false
// when the endpoint cannot be answered (no address, or a name DNS cannot
// carry).
func (b *builder) target(ep policy.Endpoint, base string) (targetKey, bool) {
	addr := ep.Address.Unmap()
	if !addr.IsValid() || ep.Target == "" || ep.Region == "" {
		return targetKey{}, false
	}
	name := strings.ToLower(ep.Target + "." + ep.Region + "." + base)
	if _, ok := dns.IsDomainName(name); !ok {
		return targetKey{}, false
	}
	return targetKey{name: name, addr: addr}, true
}

// regionView returns the reading of the named region in d.
func regionView(d *policy.Decision, name string) *policy.RegionView {
	if d.Standby.Name == name && name != "" {
		return &d.Standby
	}
	return &d.Main
}

// push appends rr to the list of a pending node. The lists are short, and
// there are tens of thousands: they grow in the builder's slab, dropped with
// the builder, rather than an allocation each.
func (b *builder) push(list *[]dns.RR, rr dns.RR) {
	if len(*list) == cap(*list) {
		grown := b.lists.take(max(2*len(*list), 1))
		*list = grown[:copy(grown, *list)]
	}
	*list = append(*list, rr)
}

// addAddress adds an A or AAAA record to p, once per address.
func (b *builder) addAddress(p *pending, rr dns.RR) {
	list := &p.a
	if rr.Header().Rrtype == dns.TypeAAAA {
		list = &p.aaaa
	}
	for _, have := range *list {
		if sameAddress(have, rr) {
			return
		}
	}
	b.push(list, rr)
}

// hasAddress reports whether p has the A or AAAA record of addr, which
// addAddress would not add again.
func (p *pending) hasAddress(addr netip.Addr) bool {
	if addr.Is4() {
		want := addr.As4()
		return slices.ContainsFunc(p.a, func(rr dns.RR) bool {
			a, ok := rr.(*dns.A)
			return ok && a.A.Equal(want[:])
		})
	}
	want := addr.As16()
	return slices.ContainsFunc(p.aaaa, func(rr dns.RR) bool {
		a, ok := rr.(*dns.AAAA)
		return ok && a.AAAA.Equal(want[:])
	})
}

func sameAddress(x, y dns.RR) bool {
	switch x := x.(type) {
	case *dns.A:
		y, ok := y.(*dns.A)
		return ok && x.A.Equal(y.A)
	case *dns.AAAA:
		y, ok := y.(*dns.AAAA)
		return ok && x.AAAA.Equal(y.AAAA)
	}
	return false
}

// pendingSet is one RRset of a pending node, with its additional records.
type pendingSet struct {
	rrtype     uint16
	rrs, extra []dns.RR
}

// sets returns the RRsets of p, empty ones included, in the order the
// snapshot keeps them.
func (p *pending) sets() [6]pendingSet {
	return [...]pendingSet{
		{dns.TypeA, p.a, nil},
		{dns.TypeAAAA, p.aaaa, nil},
		{dns.TypeSRV, p.srv, p.srvExtra},
		{dns.TypeTXT, p.txt, nil},
		{dns.TypeSOA, p.soa, nil},
		{dns.TypeNS, p.ns, p.nsExtra},
	}
}

// finish freezes the nodes into a part: it adds the empty non-terminals,
// lays out every RRset in the part's arrays, picks what ANY answers and
// packs the wire templates. The builder is then ready for the next part.
func (b *builder) finish() *part {
	// Empty non-terminals ("<cluster>.<zone>", "<region>.<cluster>.<zone>")
	// exist: they answer NODATA, not NXDOMAIN (RFC 8020). The range is over
	// the nodes with records: the new ones are their ancestors. The apex is
	// the apex part's.
	for _, p := range b.order {
		for name := p.name; name != b.zone; {
			_, parent, ok := strings.Cut(name, ".")
			if !ok || parent == b.zone || !inZone(parent, b.zone) {
				break
			}
			b.node(parent)
			name = parent
		}
	}

	// Every array of the part is allocated once, at its size: see part for
	// what they hold. A node has at most six RRsets, one per type with a
	// slot.
	var nsets, nrrs, nwires int
	for _, p := range b.order {
		for _, ps := range p.sets() {
			if n := len(ps.rrs); n > 0 {
				nsets++
				k := rotationsOf(ps.rrtype, n)
				nrrs += n + repeated(k, n) + len(ps.extra)
				if nwires++; k > 1 {
					nwires += k
				}
			}
		}
	}
	pt := &part{
		names: make([]namedNode, 0, len(b.order)),
		sets:  make([]rrset, 0, nsets),
		rrs:   make([]dns.RR, 0, nrrs),
		wires: make([]Wire, nsets, nwires),
	}
	for _, p := range b.order {
		n := node{first: uint32(len(pt.sets)), slots: emptySlots}
		for _, ps := range p.sets() {
			if len(ps.rrs) == 0 {
				continue
			}
			set := rrset{
				rrtype:    ps.rrtype,
				rotations: uint16(rotationsOf(ps.rrtype, len(ps.rrs))),
				rr:        uint32(len(pt.rrs)),
				n:         uint32(len(ps.rrs)),
				extra:     uint32(len(ps.extra)),
			}
			// Rotation i is the window of n records from i*n/rotations:
			// the RRset followed by its first records again, as many as
			// the last rotation starts after.
			pt.rrs = append(pt.rrs, ps.rrs...)
			pt.rrs = append(pt.rrs, ps.rrs[:repeated(int(set.rotations), len(ps.rrs))]...)
			pt.rrs = append(pt.rrs, ps.extra...)
			i := len(pt.sets)
			pt.wires = b.wb.pack(pt.wires, i, pt.rrs, p.name, &set)
			slot := uint32(len(pt.sets)) - n.first
			if set.rotations > 1 {
				slot |= slotRotated
			}
			n = n.withSlot(typeSlot(set.rrtype), slot)
			pt.sets = append(pt.sets, set)
		}
		anyType := p.anyType
		if anyType == 0 {
			// RFC 8482 §4.2: one RRset is enough; the addresses are what a
			// client asking ANY most likely wants, the TXT explains an
			// empty name.
			switch {
			case len(p.a) > 0:
				anyType = dns.TypeA
			case len(p.aaaa) > 0:
				anyType = dns.TypeAAAA
			case len(p.txt) > 0:
				anyType = dns.TypeTXT
			}
		}
		n = n.withSlot(slotANY, n.slot(typeSlot(anyType)))
		pt.names = append(pt.names, namedNode{p.name, n})
	}
	b.wb.keep(pt.wires)
	clear(b.nodes)
	b.order = b.order[:0]
	b.mem = records{}
	return pt
}

// rotationsOf returns how many orders of an RRset of n records the snapshot
// keeps: up to maxRotations for A and AAAA, one for the other types.
func rotationsOf(rrtype uint16, n int) int {
	if rrtype != dns.TypeA && rrtype != dns.TypeAAAA {
		return 1
	}
	return min(n, maxRotations)
}

// repeated returns how many of the first records of an RRset of n records
// follow it again so that each of its k rotations is a window of n records:
// the start of the last one.
func repeated(k, n int) int { return (k - 1) * n / k }

// canonical returns name lower case and fully qualified.
func canonical(name string) string {
	return strings.ToLower(dns.Fqdn(name))
}
