package cache

import "sync/atomic"

// Store holds the current snapshot. Readers Load it without a lock on every
// query; the builder Swaps in a new one when a decision changes. The zero
// value is an empty store, ready to use.
type Store struct {
	current atomic.Pointer[Snapshot]
}

// NewStore returns a store holding s (which may be nil).
func NewStore(s *Snapshot) *Store {
	st := &Store{}
	st.current.Store(s)
	return st
}

// Load returns the current snapshot, or nil before the first Swap.
func (st *Store) Load() *Snapshot { return st.current.Load() }

// Swap makes s the current snapshot and returns the previous one (nil if
// there was none). Queries that already loaded the previous snapshot finish
// with it.
func (st *Store) Swap(s *Snapshot) *Snapshot { return st.current.Swap(s) }
