package masterdata_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/server/masterdata"
)

// siteEvent is batch n's event: site S<n>, so a snapshot at revision n must see S1..Sn.
func siteEvent(n int) masterdata.Event {
	return upsert(fmt.Sprintf("wait-%d", n), masterdata.KindSite, fmt.Sprintf("S%d", n), 1, site("ACTIVE"))
}

func TestWaitForRevisionAlreadyThere(t *testing.T) {
	s := newStore(t, masterdata.Config{})
	mustApply(t, s, siteEvent(1))
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a store that has the revision answers without waiting, even on a done context
	for _, min := range []uint64{0, 1} {
		sn, err := s.WaitForRevision(ctx, min)
		if err != nil || sn.Revision() != 1 {
			t.Errorf("WaitForRevision(%d) = revision %d, %v; want 1, nil", min, sn.Revision(), err)
		}
	}
}

// TestWaitForRevisionConcurrentApply starts waiters for every revision up to rounds, then applies the
// batches one by one from another goroutine: every waiter returns a snapshot at or past its revision that
// sees the batch of that revision.
func TestWaitForRevisionConcurrentApply(t *testing.T) {
	const rounds = 50
	s := newStore(t, masterdata.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 2*rounds)
	for min := 1; min <= rounds; min++ {
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sn, err := s.WaitForRevision(ctx, uint64(min))
				switch {
				case err != nil:
					errs <- fmt.Errorf("wait for %d: %w", min, err)
				case sn.Revision() < uint64(min):
					errs <- fmt.Errorf("wait for %d: snapshot at revision %d", min, sn.Revision())
				default:
					if _, ok := sn.Get(masterdata.KindSite, fmt.Sprintf("S%d", min)); !ok {
						errs <- fmt.Errorf("wait for %d: snapshot at revision %d does not see S%d", min, sn.Revision(), min)
					}
				}
			}()
		}
	}
	go func() {
		for n := 1; n <= rounds; n++ {
			s.Apply([]masterdata.Event{siteEvent(n)})
			if n%7 == 0 {
				s.Apply([]masterdata.Event{siteEvent(n)}) // a DUPLICATE changes no revision and wakes nothing wrongly
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := s.Snapshot().Revision(); got != rounds {
		t.Errorf("revision %d after %d batches", got, rounds)
	}
}

func TestWaitForRevisionBehind(t *testing.T) {
	s := newStore(t, masterdata.Config{})
	mustApply(t, s, siteEvent(1))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	go func() {
		// One batch arrives while the waiter waits; the one it waits for never does.
		time.Sleep(10 * time.Millisecond)
		s.Apply([]masterdata.Event{siteEvent(2)})
	}()
	start := time.Now()
	sn, err := s.WaitForRevision(ctx, 3)
	var behind *masterdata.BehindError
	if !errors.As(err, &behind) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitForRevision(3) on a store at 2: %v; want a *BehindError wrapping DeadlineExceeded", err)
	}
	if waited := time.Since(start); waited < 190*time.Millisecond {
		t.Errorf("gave up after %s; want the context's 200ms", waited)
	}
	if behind.Revision != 2 || behind.Min != 3 || behind.Behind() != 1 || sn.Revision() != 2 {
		t.Errorf("BehindError %+v (behind %d), snapshot at %d; want revision 2, min 3, behind 1", behind, behind.Behind(), sn.Revision())
	}
}
