package history_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/history"
)

func newTracker(tb testing.TB, store audit.Store, now time.Time) *history.Tracker {
	tb.Helper()
	tr, err := history.NewTracker(history.TrackerConfig{Store: store, Clock: func() time.Time { return now },
		Registry: prometheus.NewRegistry(), Log: zerolog.Nop()})
	if err != nil {
		tb.Fatal(err)
	}
	return tr
}

func parseViews(tb testing.TB, js string) history.Views {
	tb.Helper()
	vs, err := history.Parse([]byte(js))
	if err != nil {
		tb.Fatal(err)
	}
	return vs
}

// TestTrackerPrepareRebuildsFromStore: the startup activation finds the decisions already in the
// store; preparing the same views again rebuilds nothing (the index is the same object).
func TestTrackerPrepareRebuildsFromStore(t *testing.T) {
	store := openStore(t)
	now := t0
	appendChain(t, store, "a", []*audit.Record{
		rec("p1", now.Add(-2*time.Hour), allow, po(t, "u1", "4000.00", "USD")),
		rec("p2", now.Add(-25*time.Hour), allow, po(t, "u1", "4000.00", "USD")), // outside 24h
	})
	tr := newTracker(t, store, now)
	if tr.Views().Covers(packViews(t)) {
		t.Fatal("an empty tracker claims to cover the pack's views")
	}
	if err := tr.Prepare(context.Background(), packViews(t)); err != nil {
		t.Fatal(err)
	}
	ix := tr.Index()
	got := mustQuery(t, ix, "po_split", mustKey(t, packViews(t), "po_split", po(t, "u1", "1", "USD")), now)
	if got.Count != 1 || got.DecisionIDs[0] != "p1" || got.Sums["USD"] != "4000.00" {
		t.Fatalf("after the startup rebuild: %+v, want p1 alone, 4000.00", got)
	}
	if err := tr.Prepare(context.Background(), packViews(t)); err != nil {
		t.Fatal(err)
	}
	if tr.Index() != ix {
		t.Error("preparing views the index already maintains rebuilt it")
	}
}

// TestTrackerPrepareKeepsOldViews: a bundle adding a view gets an index over both bundles' views, so a
// decision still evaluating on the old bundle keeps reading its view; a changed declaration rebuilds.
func TestTrackerPrepareKeepsOldViews(t *testing.T) {
	store := openStore(t)
	tr := newTracker(t, store, t0)
	ctx := context.Background()
	if err := tr.Prepare(ctx, packViews(t)); err != nil {
		t.Fatal(err)
	}
	extra := parseViews(t, `{"params":{"history":{"views":{"refunds":{"actions":[{"action":"REFUND.ISSUE"}],"key":[{"path":"actor.id"}],"effects":["ALLOW"],"window":"1h"}}}}}`)
	if err := tr.Prepare(ctx, extra); err != nil {
		t.Fatal(err)
	}
	names := fmt.Sprint(tr.Views().Names())
	if want := "[ai_daily_value credit_memo_velocity invoice_posted po_split refunds]"; names != want {
		t.Fatalf("views after adding one: %s, want %s", names, want)
	}
	before := tr.Index()
	changed := parseViews(t, `{"params":{"history":{"views":{"refunds":{"actions":[{"action":"REFUND.ISSUE"}],"key":[{"path":"actor.id"}],"effects":["ALLOW"],"window":"2h"}}}}}`)
	if err := tr.Prepare(ctx, changed); err != nil {
		t.Fatal(err)
	}
	if tr.Index() == before {
		t.Fatal("a changed window did not rebuild the index")
	}
	if v, _ := tr.Views().View("refunds"); v.Window().Duration != 2*time.Hour {
		t.Fatalf("refunds window %s after the change, want 2h", v.Window())
	}
}

// TestTrackerObservesDuringRebuild: records observed while a rebuild reads the store reach the new
// index, and a record both in the store and observed is counted once.
func TestTrackerObservesDuringRebuild(t *testing.T) {
	store := openStore(t)
	now := t0
	var recs []*audit.Record
	for i := range 3000 {
		recs = append(recs, rec(fmt.Sprintf("s%05d", i), now.Add(-time.Duration(i)*time.Second), allow, po(t, "u1", "1.00", "USD")))
	}
	appendChain(t, store, "a", recs)
	tr := newTracker(t, store, now)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 200 {
			tr.Observe(rec(fmt.Sprintf("live%03d", i), now.Add(-time.Minute), allow, po(t, "u1", "1.00", "USD")))
			tr.Observe(recs[i]) // also in the store
		}
	}()
	if err := tr.Prepare(context.Background(), packViews(t)); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	got := mustQuery(t, tr.Index(), "po_split", mustKey(t, packViews(t), "po_split", po(t, "u1", "1", "USD")), now)
	// Observations that finished before Prepare registered the new index reached only the old one:
	// count what the new index has of them and check nothing was doubled.
	if got.Count < 3000 || got.Count > 3200 {
		t.Fatalf("count %d, want the 3000 stored plus at most the 200 live ones", got.Count)
	}
	if want := fmt.Sprintf("%d.00", got.Count); got.Sums["USD"] != want {
		t.Fatalf("sum %s for %d decisions of 1.00: a decision was counted twice", got.Sums["USD"], got.Count)
	}
	// After the swap every observation lands in the new index.
	tr.Observe(rec("after", now, allow, po(t, "u1", "1.00", "USD")))
	if again := mustQuery(t, tr.Index(), "po_split", mustKey(t, packViews(t), "po_split", po(t, "u1", "1", "USD")), now); again.Count != got.Count+1 {
		t.Fatalf("count %d after one more observe, want %d", again.Count, got.Count+1)
	}
}

// TestTrackerNoSlipUnderLimit: 64 concurrent decisions through Begin, query, observe, Release on one
// key, each allowed only while the key's sum stays within 10,000.00: exactly 33 pass.
func TestTrackerNoSlipUnderLimit(t *testing.T) {
	tr := newTracker(t, openStore(t), t0)
	if err := tr.Prepare(context.Background(), packViews(t)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := po(t, "u1", "300.00", "USD")
			tk, err := tr.Begin(context.Background(), r)
			if err != nil {
				t.Error(err)
				return
			}
			defer tk.Release()
			if len(tk.Keys()) != 1 {
				t.Errorf("keys %v, want the po_split key alone", tk.Keys())
				return
			}
			res, err := tk.Index().Query("po_split", tk.Keys()[0].Key, t0)
			if err != nil {
				t.Error(err)
				return
			}
			spent := int64(0)
			if s, ok := res.Sums["USD"]; ok {
				spent = minor(t, s)
			}
			if spent+30000 > 1000000 {
				return
			}
			mu.Lock()
			allowed++
			mu.Unlock()
			tk.Observe(rec(fmt.Sprintf("c%02d", i), t0, allow, r))
		}()
	}
	wg.Wait()
	if allowed != 33 {
		t.Fatalf("%d POs of 300.00 allowed under a 10,000.00 limit, want 33", allowed)
	}
}

// TestTrackerBeginDeadline: a decision that cannot get its key before its deadline is not made.
func TestTrackerBeginDeadline(t *testing.T) {
	tr := newTracker(t, openStore(t), t0)
	if err := tr.Prepare(context.Background(), packViews(t)); err != nil {
		t.Fatal(err)
	}
	held, err := tr.Begin(context.Background(), po(t, "u1", "1.00", "USD"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := tr.Begin(ctx, po(t, "u1", "2.00", "USD")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Begin on a held key past the deadline: %v, want DeadlineExceeded", err)
	}
	other, err := tr.Begin(ctx, po(t, "u2", "2.00", "USD"))
	if err != nil {
		t.Fatalf("Begin on another buyer's key waited for u1's: %v", err)
	}
	other.Release()
	// An action no view counts takes no lock at all.
	free, err := tr.Begin(ctx, req(t, "u1", "ORDER.RELEASE", map[string]any{}))
	if err != nil || len(free.Keys()) != 0 {
		t.Fatalf("Begin for an uncounted action: keys %v, err %v", free.Keys(), err)
	}
	free.Release()
}

// TestMaskedPaths: a view keyed or conditioned on a masked path, or a path inside a masked one, is
// reported; a masked value path is not (the value is then unreadable, not the key).
func TestMaskedPaths(t *testing.T) {
	vs := packViews(t)
	if got := vs.MaskedPaths([]string{"resource.attributes.bank_account", "context.note", "resource.attributes.amount"}); len(got) != 0 {
		t.Fatalf("unrelated or value mask paths flagged %v", got)
	}
	got := fmt.Sprint(vs.MaskedPaths([]string{"resource.attributes.invoice_ref", "actor"}))
	if want := "[actor.id actor.type resource.attributes.invoice_ref]"; got != want {
		t.Fatalf("masked view paths %s, want %s", got, want)
	}
}

// TestTrackerPrepareFailsWithStore: a store that cannot be read leaves the old index serving.
func TestTrackerPrepareFailsWithStore(t *testing.T) {
	store := openStore(t)
	tr := newTracker(t, store, t0)
	before := tr.Index()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := tr.Prepare(ctx, packViews(t)); err == nil {
		t.Fatal("Prepare with a cancelled context succeeded")
	}
	if tr.Index() != before {
		t.Fatal("a failed Prepare swapped the index")
	}
	if _, err := tr.Index().Query("po_split", "x", t0); !errors.Is(err, history.ErrUnknownView) {
		t.Fatalf("query of a view never prepared: %v, want ErrUnknownView", err)
	}
}

// TestForget: a record taken back leaves the index as if it had never been observed, in every view
// that counted it, and may be observed again.
func TestForget(t *testing.T) {
	tr := newTracker(t, openStore(t), t0)
	if err := tr.Prepare(context.Background(), packViews(t)); err != nil {
		t.Fatal(err)
	}
	key := mustKey(t, packViews(t), "po_split", po(t, "u1", "1", "USD"))
	kept := rec("kept", t0.Add(-time.Hour), allow, po(t, "u1", "100.00", "USD"))
	gone := rec("gone", t0.Add(-time.Minute), allow, po(t, "u1", "900.00", "USD"))
	tr.Observe(kept)
	tr.Observe(gone)
	tr.Forget(gone)
	got := mustQuery(t, tr.Index(), "po_split", key, t0)
	if got.Count != 1 || got.Sums["USD"] != "100.00" || got.DecisionIDs[0] != "kept" {
		t.Fatalf("after Forget: %+v, want kept alone", got)
	}
	if st := tr.Index().Stats(); st.Decisions != 1 || st.Entries != 1 {
		t.Fatalf("stats after Forget %+v, want 1 decision, 1 entry", st)
	}
	tr.Forget(gone) // twice: a no-op
	tr.Observe(gone)
	if got := mustQuery(t, tr.Index(), "po_split", key, t0); got.Count != 2 {
		t.Fatalf("observed again after Forget: count %d, want 2", got.Count)
	}
}

// TestResultIDsBounded: a key holding more decisions than MaxResultIDs answers with the exact count
// and sum but lists only the earliest ids, so the recorded fact does not grow with a busy key.
func TestResultIDsBounded(t *testing.T) {
	ix := history.New(packViews(t))
	for i := range 100 {
		ix.Observe(rec(fmt.Sprintf("d%03d", i), t0.Add(-time.Duration(100-i)*time.Minute), allow, po(t, "u1", "1.50", "USD")))
	}
	got := mustQuery(t, ix, "po_split", mustKey(t, packViews(t), "po_split", po(t, "u1", "1", "USD")), t0)
	if got.Count != 100 || got.Sums["USD"] != "150.00" || len(got.DecisionIDs) != history.MaxResultIDs ||
		got.DecisionIDs[0] != "d000" || got.DecisionIDs[history.MaxResultIDs-1] != fmt.Sprintf("d%03d", history.MaxResultIDs-1) {
		t.Fatalf("count %d sum %s ids %v, want 100, 150.00 and the %d earliest ids", got.Count, got.Sums["USD"], got.DecisionIDs, history.MaxResultIDs)
	}
}
