package masterdata_test

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tollgate/tollgate/server/masterdata"
)

// TestSnapshotsConsistentUnderConcurrentApply runs two writers, each rewriting its own group of customers
// in every batch (all records of the group carry the writer's round in account_owner), while readers check
// that a snapshot always sees whole batches, that its revision is exactly the number of batches it sees
// (1 + rounds of A + rounds of B), and that it stays fixed while writers go on. Run it with -race.
func TestSnapshotsConsistentUnderConcurrentApply(t *testing.T) {
	const (
		groupSize = 20
		rounds    = 150
		readers   = 4
	)
	groups := []string{"A", "B"}
	batch := func(group string, round int) []masterdata.Event {
		events := make([]masterdata.Event, groupSize)
		for i := range events {
			_, rec := validRecord(masterdata.KindCustomer)
			rec["account_owner"] = fmt.Sprintf("%s-%d", group, round)
			key := fmt.Sprintf("C%s%d", group, i)
			events[i] = upsert(fmt.Sprintf("%s-%d-%d", group, round, i), masterdata.KindCustomer, key, uint64(round+1), rec)
		}
		return events
	}
	s := newStore(t, masterdata.Config{})
	mustApply(t, s, append(batch("A", 0), batch("B", 0)...)...) // revision 1

	// roundOf returns the round every record of group shows in sn, or an error if they disagree.
	roundOf := func(sn *masterdata.Snapshot, group string) (int, error) {
		round := -1
		for i := range groupSize {
			r, ok := sn.Get(masterdata.KindCustomer, fmt.Sprintf("C%s%d", group, i))
			if !ok {
				return 0, fmt.Errorf("C%s%d missing", group, i)
			}
			owner := r.Fields["account_owner"].(string)
			n, err := strconv.Atoi(strings.TrimPrefix(owner, group+"-"))
			if err != nil {
				return 0, fmt.Errorf("C%s%d: owner %q", group, i, owner)
			}
			if round >= 0 && n != round {
				return 0, fmt.Errorf("group %s torn: rounds %d and %d in one snapshot", group, round, n)
			}
			round = n
		}
		return round, nil
	}
	check := func(sn *masterdata.Snapshot) (uint64, error) {
		var sum uint64 = 1
		for _, g := range groups {
			n, err := roundOf(sn, g)
			if err != nil {
				return 0, err
			}
			sum += uint64(n)
		}
		if rev := sn.Revision(); rev != sum {
			return 0, fmt.Errorf("revision %d, but the data is that of %d batches", rev, sum)
		}
		if c := sn.Status().Counts[masterdata.KindCustomer]; c != 2*groupSize {
			return 0, fmt.Errorf("count %d, want %d", c, 2*groupSize)
		}
		return sum, nil
	}

	var wg sync.WaitGroup
	var done atomic.Bool
	var checks atomic.Int64
	errs := make(chan error, readers+len(groups))
	for _, g := range groups {
		wg.Go(func() {
			for round := 1; round <= rounds; round++ {
				res := s.Apply(batch(g, round))
				for _, r := range res.Results {
					if r.Outcome != masterdata.OutcomeApplied {
						errs <- fmt.Errorf("writer %s round %d: %s %v", g, round, r.Outcome, r.Err)
						return
					}
				}
			}
		})
	}
	var rwg sync.WaitGroup
	for range readers {
		rwg.Go(func() {
			var last uint64
			for !done.Load() {
				sn := s.Snapshot()
				first, err := check(sn)
				if err != nil {
					errs <- err
					return
				}
				if first < last {
					errs <- fmt.Errorf("revision went back from %d to %d", last, first)
					return
				}
				last = first
				// The same snapshot, read again after writers moved on, must not change.
				for range 3 {
					again, err := check(sn)
					if err != nil || again != first {
						errs <- fmt.Errorf("snapshot at revision %d changed: now %d, %v", first, again, err)
						return
					}
				}
				checks.Add(1)
			}
		})
	}
	wg.Wait()
	done.Store(true)
	rwg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got, want := s.Status().Revision, uint64(1+2*rounds); got != want {
		t.Errorf("final revision = %d, want %d", got, want)
	}
	if checks.Load() == 0 {
		t.Error("readers made no checks")
	}
	t.Logf("%d snapshot checks during %d batches", checks.Load(), 2*rounds)
}
