package history

import (
	"context"
	"fmt"
	"hash/maphash"
	"slices"
)

// DefaultStripes is the number of stripes NewLocks uses for n <= 0.
const DefaultStripes = 1024

// Locks serializes decisions per view key so that no two concurrent
// decisions on one key can both pass a limit that each checks alone: the
// decision path holds the keys of its request (Views.Keys) from before
// evaluation until its record is observed. Keys hash onto a fixed table of
// stripes, so the table is bounded however many keys there are; two keys
// sharing a stripe only wait for each other. It is safe for concurrent use
// and outlives an Index, so a bundle activation that rebuilds the Index
// does not drop a held lock.
type Locks struct {
	seed maphash.Seed
	// stripes are one-slot channels rather than mutexes so that a wait can
	// end with the caller's deadline (LockContext).
	stripes []chan struct{}
}

// NewLocks returns Locks with n stripes (DefaultStripes if n <= 0).
func NewLocks(n int) *Locks {
	if n <= 0 {
		n = DefaultStripes
	}
	l := &Locks{seed: maphash.MakeSeed(), stripes: make([]chan struct{}, n)}
	for i := range l.stripes {
		l.stripes[i] = make(chan struct{}, 1)
	}
	return l
}

// Lock is LockContext without a deadline.
func (l *Locks) Lock(keys ...string) (unlock func()) {
	unlock, _ = l.LockContext(context.Background(), keys...)
	return unlock
}

// LockContext blocks until it holds every key given (ViewKey.LockKey
// strings) and returns the function that releases them, which must be
// called exactly once. Stripes are taken in ascending order, each once, so
// callers locking overlapping sets in any order cannot deadlock. If ctx ends
// first it releases what it took and returns an error wrapping ctx's: the
// decision was not made and must fail closed. No keys return at once.
func (l *Locks) LockContext(ctx context.Context, keys ...string) (unlock func(), err error) {
	idx := make([]int, 0, len(keys))
	for _, k := range keys {
		idx = append(idx, int(maphash.String(l.seed, k)%uint64(len(l.stripes))))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	release := func(n int) {
		for j := n - 1; j >= 0; j-- {
			<-l.stripes[idx[j]]
		}
	}
	for i, s := range idx {
		select {
		case l.stripes[s] <- struct{}{}:
		default:
			select {
			case l.stripes[s] <- struct{}{}:
			case <-ctx.Done():
				release(i)
				return nil, fmt.Errorf("wait for history key lock: %w", ctx.Err())
			}
		}
	}
	return func() { release(len(idx)) }, nil
}
