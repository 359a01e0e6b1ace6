package cache

import (
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/zones"
)

// maxRotations caps the precomputed orders of an A or AAAA RRset: beyond a
// handful, more variants only cost memory.
const maxRotations = 16

// The labels of a cluster's four names, below "<cluster>.<zone>".
const (
	LabelRW        = "rw"
	LabelRO        = "ro"
	LabelPassiveRW = "passive-rw"
	LabelPassiveRO = "passive-ro"
)

// Build computes every answer of the zone from the configuration and the
// policy decision of each cluster, keyed by cluster label. A configured
// cluster missing from decisions still gets its four names, answering NODATA
// (and a TXT record saying so): a configured name never answers NXDOMAIN.
// Decisions for clusters that are not configured are ignored.
//
// gen is the snapshot's generation; it is also the SOA serial.
func Build(cfg *zones.Config, decisions map[string]policy.Decision, gen uint64) *Snapshot {
	b := &builder{
		zone:  canonical(cfg.Zone),
		ttl:   cfg.TTL,
		nodes: make(map[string]*pending),
	}
	b.apex(cfg, gen)
	for i := range cfg.Clusters {
		label := cfg.Clusters[i].Label
		d, ok := decisions[label]
		b.cluster(strings.ToLower(label), &d, ok)
	}
	return b.finish(gen)
}

// builder accumulates the records of each name before Build freezes them.
type builder struct {
	zone     string
	ttl      zones.TTL
	nodes    map[string]*pending
	negative dns.RR
}

// pending is a node under construction: its A and AAAA records are rotated
// when the snapshot is frozen.
type pending struct {
	node
	a, aaaa []dns.RR
}

func (b *builder) node(name string) *pending {
	p, ok := b.nodes[name]
	if !ok {
		p = &pending{}
		b.nodes[name] = p
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
	p.soa = []dns.RR{soa}
	p.anyType = dns.TypeSOA

	// RFC 2308 §5: a negative answer is cached for the SOA's TTL, which must
	// not exceed its MINIMUM; the configured negative TTL caps both.
	neg := dns.Copy(soa).(*dns.SOA)
	neg.Hdr.Ttl = min(b.ttl.SOA, cfg.SOA.Minimum, b.ttl.Negative)
	b.negative = neg

	for _, ns := range cfg.NS {
		name := canonical(ns.Name)
		p.ns = append(p.ns, &dns.NS{Hdr: header(b.zone, dns.TypeNS, b.ttl.NS), Ns: name})
		if !inZone(name, b.zone) {
			continue
		}
		host := b.node(name)
		for _, s := range ns.Addresses {
			addr, err := netip.ParseAddr(s)
			if err != nil {
				continue // zones validates addresses; never answer garbage
			}
			rr := addressRR(name, addr.Unmap(), b.ttl.NS)
			host.addAddress(rr)
			p.nsExtra = append(p.nsExtra, rr)
		}
	}
}

// kind is one of a cluster's four names and what it answers.
type kind struct {
	label string
	ttl   uint32
	eps   []policy.Endpoint
	view  *policy.RegionView
}

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
	kinds := []kind{
		{LabelRW, b.ttl.RW, d.RW, active},
		{LabelRO, b.ttl.RO, d.RO, active},
		{LabelPassiveRW, b.ttl.Passive, d.PassiveRW, passive},
		{LabelPassiveRO, b.ttl.Passive, d.PassiveRO, passive},
	}

	// A target's records answer both its own name and the additional
	// section of every SRV that points to it: one TTL, the shortest of the
	// names it came from.
	ttls := make(map[targetKey]uint32)
	var order []targetKey
	for _, k := range kinds {
		for _, ep := range k.eps {
			key, ok := b.target(ep, base)
			if !ok {
				continue
			}
			if ttl, seen := ttls[key]; !seen {
				order = append(order, key)
				ttls[key] = k.ttl
			} else {
				ttls[key] = min(ttl, k.ttl)
			}
		}
	}
	targets := make(map[targetKey]dns.RR, len(order))
	for _, key := range order {
		rr := addressRR(key.name, key.addr, ttls[key])
		targets[key] = rr
		b.node(key.name).addAddress(rr)
	}

	for _, k := range kinds {
		name := k.label + "." + base
		p := b.node(name)
		for _, ep := range k.eps {
			key, ok := b.target(ep, base)
			if !ok {
				continue
			}
			p.addAddress(addressRR(name, key.addr, k.ttl))
			p.srv = append(p.srv, &dns.SRV{
				Hdr:      header(name, dns.TypeSRV, k.ttl),
				Priority: 0,
				Weight:   1,
				Port:     ep.Port,
				Target:   key.name,
			})
			if rr := targets[key]; !slices.Contains(p.srvExtra, rr) {
				p.srvExtra = append(p.srvExtra, rr)
			}
		}
		text := unknownText(k.label)
		if known {
			text = decisionText(k.label, d, k.view, k.eps)
		}
		p.txt = []dns.RR{&dns.TXT{Hdr: header(name, dns.TypeTXT, b.ttl.TXT), Txt: splitTXT(text)}}
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

// addAddress adds an A or AAAA record, once per address.
func (p *pending) addAddress(rr dns.RR) {
	list := &p.a
	if rr.Header().Rrtype == dns.TypeAAAA {
		list = &p.aaaa
	}
	for _, have := range *list {
		if sameAddress(have, rr) {
			return
		}
	}
	*list = append(*list, rr)
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

// finish freezes the nodes into a snapshot: it rotates the A and AAAA
// RRsets, adds the empty non-terminals and picks what ANY answers.
func (b *builder) finish(gen uint64) *Snapshot {
	// Empty non-terminals ("<cluster>.<zone>", "<region>.<cluster>.<zone>")
	// exist: they answer NODATA, not NXDOMAIN (RFC 8020).
	for _, name := range slices.Collect(maps.Keys(b.nodes)) {
		for name != b.zone {
			_, parent, ok := strings.Cut(name, ".")
			if !ok || !inZone(parent, b.zone) {
				break
			}
			b.node(parent)
			name = parent
		}
	}

	s := &Snapshot{
		zone:     b.zone,
		gen:      gen,
		names:    make(map[string]*node, len(b.nodes)),
		negative: []dns.RR{b.negative},
	}
	var wb wireBuilder
	s.negativeWire = wb.negative(b.zone, b.negative)
	for name, p := range b.nodes {
		n := p.node
		n.a, n.aaaa = rotate(p.a), rotate(p.aaaa)
		if n.anyType == 0 {
			// RFC 8482 §4.2: one RRset is enough; the addresses are what a
			// client asking ANY most likely wants, the TXT explains an
			// empty name.
			switch {
			case len(p.a) > 0:
				n.anyType = dns.TypeA
			case len(p.aaaa) > 0:
				n.anyType = dns.TypeAAAA
			case len(n.txt) > 0:
				n.anyType = dns.TypeTXT
			}
		}
		// Clipped so that a caller's append copies instead of writing into
		// the shared backing array.
		n.srv, n.srvExtra = slices.Clip(n.srv), slices.Clip(n.srvExtra)
		n.ns, n.nsExtra = slices.Clip(n.ns), slices.Clip(n.nsExtra)
		n.wire = wb.node(name, &n)
		s.names[name] = &n
	}
	return s
}

// rotate returns up to maxRotations orders of rrs, each starting at a
// different record, spread evenly over the RRset.
func rotate(rrs []dns.RR) rotations {
	n := len(rrs)
	if n == 0 {
		return nil
	}
	k := min(n, maxRotations)
	out := make(rotations, k)
	for i := range k {
		shift := i * n / k
		r := make([]dns.RR, 0, n)
		r = append(r, rrs[shift:]...)
		r = append(r, rrs[:shift]...)
		out[i] = r
	}
	return out
}

func header(name string, rrtype uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: rrtype, Class: dns.ClassINET, Ttl: ttl}
}

// addressRR returns the A record of an IPv4 address or the AAAA record of
// an IPv6 one.
func addressRR(name string, addr netip.Addr, ttl uint32) dns.RR {
	if addr.Is4() {
		a := addr.As4()
		return &dns.A{Hdr: header(name, dns.TypeA, ttl), A: a[:]}
	}
	a := addr.As16()
	return &dns.AAAA{Hdr: header(name, dns.TypeAAAA, ttl), AAAA: a[:]}
}

// canonical returns name lower case and fully qualified.
func canonical(name string) string {
	return strings.ToLower(dns.Fqdn(name))
}
