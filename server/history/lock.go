package history

import (
	"hash/maphash"
	"slices"
	"sync"
)

// DefaultStripes is the number of mutexes NewLocks uses for n <= 0.
const DefaultStripes = 1024

// Locks serializes decisions per view key so that no two concurrent
// decisions on one key can both pass a limit that each checks alone: the
// decision path holds the keys of its request (Views.Keys) from before
// evaluation until its record is observed. Keys hash onto a fixed table of
// mutexes (stripes), so the table is bounded however many keys there are;
// two keys sharing a stripe only wait for each other. It is safe for
// concurrent use and outlives an Index, so a bundle activation that rebuilds
// the Index does not drop a held lock.
type Locks struct {
	seed    maphash.Seed
	stripes []sync.Mutex
}

// NewLocks returns Locks with n stripes (DefaultStripes if n <= 0).
func NewLocks(n int) *Locks {
	if n <= 0 {
		n = DefaultStripes
	}
	return &Locks{seed: maphash.MakeSeed(), stripes: make([]sync.Mutex, n)}
}

// Lock blocks until it holds every key given (ViewKey.LockKey strings) and
// returns the function that releases them, which must be called exactly
// once. Stripes are taken in ascending order, each once, so callers locking
// overlapping sets in any order cannot deadlock. Lock with no keys returns
// at once.
func (l *Locks) Lock(keys ...string) (unlock func()) {
	idx := make([]int, 0, len(keys))
	for _, k := range keys {
		idx = append(idx, int(maphash.String(l.seed, k)%uint64(len(l.stripes))))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		l.stripes[i].Lock()
	}
	return func() {
		for j := len(idx) - 1; j >= 0; j-- {
			l.stripes[idx[j]].Unlock()
		}
	}
}
