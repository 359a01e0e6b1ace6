package engine

import (
	"time"

	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/zones"
)

// Observer is told what the engine does, for metrics. Built, Decided,
// Changed and Forgot are called with the engine's lock held, in the order
// things happen: an Observer must return quickly and must not call the
// Engine back.
type Observer interface {
	// Built reports a snapshot swapped into the store: its generation
	// (one more per rebuild) and the time taken to decide the changed
	// clusters and build it.
	Built(gen uint64, took time.Duration)
	// Decided reports a cluster decided again by a rebuild, with its
	// decision and cfg, the configuration it was decided under.
	Decided(cfg *zones.Config, cluster string, d policy.Decision)
	// Changed reports a change of a cluster's answers (active region,
	// endpoints, split brain), once every region was read: a cluster's
	// first decision is not a change.
	Changed(cluster string)
	// Forgot reports a cluster that a reload removed from the
	// configuration: nothing more will be reported about it.
	Forgot(cluster string)
	// Reloaded reports the result of a zone file reload: nil if the new
	// file is in use, else why the running configuration stays.
	Reloaded(err error)
}

// nopObserver is the Observer of an engine given none.
type nopObserver struct{}

func (nopObserver) Built(uint64, time.Duration)                    {}
func (nopObserver) Decided(*zones.Config, string, policy.Decision) {}
func (nopObserver) Changed(string)                                 {}
func (nopObserver) Forgot(string)                                  {}
func (nopObserver) Reloaded(error)                                 {}
