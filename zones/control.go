package zones

import (
	"regexp"
	"strings"
)

// controlPath matches a Consul KV path of one or more segments of letters,
// digits, ".", "_" and "-": a prefix that needs no escaping in a URL, and
// that the ctl subcommand and the watcher spell alike.
var controlPath = regexp.MustCompile(`^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$`)

// controlPrefix validates the KV prefix of the operator's pins and drains.
// It must not hold or lie inside a cluster's Patroni namespace: the watcher
// reads the whole prefix with one recursive query, which would then carry
// every Patroni key of the namespace, and a pin could be taken for
// Patroni's data or the other way round.
func (v *validator) controlPrefix(prefix string, clusters []fileCluster) {
	p := strings.Trim(prefix, "/")
	if !controlPath.MatchString(p) || strings.Contains("/"+p+"/", "/../") || strings.Contains("/"+p+"/", "/./") {
		v.addf("control_prefix: %q is not valid; want a Consul KV path of letters, digits, ., _ and -, such as regiondns", prefix)
		return
	}
	for i, c := range clusters {
		ns := strings.Trim(*c.Namespace, "/")
		if ns == "" {
			continue // reported under the cluster
		}
		if p == ns || strings.HasPrefix(ns+"/", p+"/") || strings.HasPrefix(p+"/", ns+"/") {
			v.addf("control_prefix: %q is not valid; want a prefix apart from clusters[%d]'s Patroni namespace %q, such as regiondns", prefix, i, ns)
			return
		}
	}
}
