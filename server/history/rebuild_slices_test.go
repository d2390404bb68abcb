package history_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/history"
)

// TestRebuildReadersMeetExactly: Rebuild cuts each action's window into
// time slices read in parallel (4 per reader). Postings at every slice
// boundary for one reader and for two, a nanosecond either side of each, at
// the window's start and at now and after now, each under its own key, must
// be held exactly as by an index that observed them live, whatever the
// number of readers: none lost between two slices, none counted twice.
func TestRebuildReadersMeetExactly(t *testing.T) {
	vs := packViews(t)
	now := t0
	window := vs.Retention() // ERP-6's 720h, the longest
	from := now.Add(-window)
	var ats []time.Time
	for i := range 9 { // eighths of the window: the boundaries of 4 and of 8 slices
		at := from.Add(time.Duration(i) * window / 8)
		ats = append(ats, at.Add(-time.Nanosecond), at, at.Add(time.Nanosecond))
	}
	ats = append(ats, now.Add(time.Hour))
	var recs []*audit.Record
	for i, at := range ats {
		r := posting(t, i, len(ats), now)
		r.EvaluatedAt = nil
		recs = append(recs, rec(fmt.Sprintf("01JD%022d", i), at, allow, r.Request))
	}
	store := openStore(t)
	appendChain(t, store, "replica-a", recs)

	live := history.New(vs)
	for _, r := range recs {
		live.Observe(r)
	}
	live.Evict(now)
	if got := live.Stats().Decisions; got != len(recs)-2 { // from−1ns and from itself are out of (now − 720h, now]
		t.Fatalf("live index holds %d of %d postings; the fixture is not what the test means", got, len(recs))
	}
	for _, readers := range []int{1, 2, 3} {
		rebuilt, err := history.RebuildWithReaders(context.Background(), store, vs, now, readers)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(live.Stats(), rebuilt.Stats()); diff != "" {
			t.Errorf("%d readers: Stats (-live +rebuilt):\n%s", readers, diff)
		}
		for _, r := range recs {
			k := mustKey(t, vs, "invoice_posted", r.GetRequest())
			for _, at := range []time.Time{now, now.Add(2 * time.Hour)} {
				if diff := cmp.Diff(mustQuery(t, live, "invoice_posted", k, at), mustQuery(t, rebuilt, "invoice_posted", k, at)); diff != "" {
					t.Errorf("%d readers: %s at %v (-live +rebuilt):\n%s", readers, k, at, diff)
				}
			}
		}
	}
}
