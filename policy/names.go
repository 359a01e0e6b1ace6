package policy

import "slices"

// The labels of a cluster's names, below "<cluster label>.<zone>":
// rw.orders.<zone> and so on; the region-pinned read names are
// "ro.<region>.<cluster label>.<zone>".
const (
	LabelRW        = "rw"
	LabelRO        = "ro"
	LabelPassiveRW = "passive-rw"
	LabelPassiveRO = "passive-ro"
	LabelSync      = "sync"
)

// NameLabels lists every label that names a cluster's endpoints. A region
// named like one would share its name with a name of the cluster, and an
// SRV target labelled like one ("ro.<region>.<cluster>") would shadow the
// region-pinned read name: Decide never gives a target one of them.
var NameLabels = []string{LabelRW, LabelRO, LabelPassiveRW, LabelPassiveRO, LabelSync}

// isNameLabel reports whether label is one of NameLabels.
func isNameLabel(label string) bool { return slices.Contains(NameLabels, label) }
