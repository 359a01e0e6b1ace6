package zones

import (
	"slices"

	"github.com/regiondns/regiondns/policy"
)

// Defaults. TTLs are short so that a failover reaches clients quickly; the
// apex records change only with the zone file.
const (
	defaultNamespace      = "service"
	defaultBouncerService = "pgbouncer"

	defaultTTLAnswer = 1  // rw, ro, passive, negative, txt
	defaultTTLApex   = 60 // soa, ns

	defaultRefresh = 3600
	defaultRetry   = 600
	defaultExpire  = 86400
	defaultMinimum = 1

	// defaultLagSettle is how long, in seconds, a replica left out for lag
	// stays out once back under ro_max_lag: a few of Patroni's loop_wait.
	defaultLagSettle = 10
)

// setDefaults fills every key the file left out. It is the only place that
// knows a default. Names derived from the zone are only derived from a valid
// zone, so that a bad zone is reported once, under zone.
func (fc *fileConfig) setDefaults() {
	if validZone(fc.Zone) {
		zone := canonicalName(fc.Zone)
		if fc.NS == nil {
			fc.NS = []fileNS{{Name: "ns." + zone}}
		}
		if fc.SOA.MName == "" {
			// An invalid first NS name is reported under ns; do not
			// report it again under soa.mname.
			fc.SOA.MName = "ns." + zone
			if len(fc.NS) > 0 && validName(fc.NS[0].Name) {
				fc.SOA.MName = fc.NS[0].Name
			}
		}
		if fc.SOA.RName == "" {
			fc.SOA.RName = "hostmaster." + zone
		}
	}
	setInt(&fc.SOA.Refresh, defaultRefresh)
	setInt(&fc.SOA.Retry, defaultRetry)
	setInt(&fc.SOA.Expire, defaultExpire)
	setInt(&fc.SOA.Minimum, defaultMinimum)

	for _, p := range []**int64{&fc.TTL.RW, &fc.TTL.RO, &fc.TTL.Passive, &fc.TTL.Negative, &fc.TTL.TXT} {
		setInt(p, defaultTTLAnswer)
	}
	setInt(&fc.TTL.SOA, defaultTTLApex)
	setInt(&fc.TTL.NS, defaultTTLApex)

	for i := range fc.Clusters {
		fc.Clusters[i].setDefaults()
	}
	if fc.ControlPrefix == nil {
		p := DefaultControlPrefix
		fc.ControlPrefix = &p
	}
}

func (c *fileCluster) setDefaults() {
	if c.Namespace == nil {
		ns := defaultNamespace
		c.Namespace = &ns
	}
	if c.Layout == "" {
		c.Layout = string(policy.LayoutDirect)
	}
	if c.Layout == string(policy.LayoutBouncerPerNode) && c.PgBouncer.Service == "" {
		c.PgBouncer.Service = defaultBouncerService
	}
	if c.ROFallback == "" {
		c.ROFallback = string(policy.FallbackLeader)
	}
	// Without a limit there is nothing to settle: an ro_lag_settle left
	// in stays for validation to report.
	if c.ROMaxLag != nil {
		setInt(&c.ROLagSettle, defaultLagSettle)
	}
	def := policy.DefaultRoleTags()
	setTags(&c.Tags.Leader, def.Leader)
	setTags(&c.Tags.Replica, def.Replica)
	setTags(&c.Tags.StandbyLeader, def.StandbyLeader)
}

func setInt(p **int64, v int64) {
	if *p == nil {
		*p = &v
	}
}

// setTags sets an absent tag list; an empty one ([]) stays empty and is
// reported by validation.
func setTags(p *[]string, def []string) {
	if *p == nil {
		*p = slices.Clone(def)
	}
}
