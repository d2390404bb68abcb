package history_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
	"github.com/tollgate/tollgate/server/audit/sqlite"
	"github.com/tollgate/tollgate/server/history"
)

func openStore(tb testing.TB) *sqlite.Store {
	tb.Helper()
	s, err := sqlite.Open(context.Background(), tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// appendChain seals recs as one chain and appends them in batches.
func appendChain(tb testing.TB, s audit.Store, chain string, recs []*audit.Record) {
	tb.Helper()
	head := audit.Head{ChainID: chain}
	for len(recs) > 0 {
		n := min(len(recs), 500)
		sealed, next := audittest.Sealed(tb, head, recs[:n]...)
		if err := s.Append(context.Background(), head, audittest.Entries(tb, sealed...)); err != nil {
			tb.Fatal(err)
		}
		head, recs = next, recs[n:]
	}
}

// history40Days returns decisions of every §6 view spread over 40 days
// before now, with replays, denials and other actions mixed in.
func history40Days(tb testing.TB, now time.Time) []*audit.Record {
	tb.Helper()
	var recs []*audit.Record
	for i := range 960 { // one an hour for 40 days
		at := now.Add(-time.Duration(960-i)*time.Hour + 17*time.Minute)
		id := fmt.Sprintf("d%04d", i)
		effect := []tollgatev1.Effect{allow, approval, deny}[i%3]
		var r *tollgatev1.DecideRequest
		switch i % 5 {
		case 0:
			r = po(tb, fmt.Sprintf("u%d", i%2), "4000.00", "USD")
		case 1:
			r = req(tb, "ar", "CREDIT_MEMO.ISSUE", map[string]any{"customer_id": fmt.Sprintf("C%d", i%3), "amount": "10.00", "currency": "EUR"})
		case 2:
			r = req(tb, "clerk", "INVOICE.POST", map[string]any{"supplier_id": "S1", "invoice_ref": fmt.Sprintf("inv-%03d", i%7), "amount": "5.00", "currency": "USD"})
		case 3:
			r = aiReq(tb, "agent1", "INVOICE.RESOLVE_DISCREPANCY", tollgatev1.AIMode_AI_MODE_EXECUTE, map[string]any{"variance_amount": "-2.25", "currency": "USD"})
		default:
			r = req(tb, "u1", "SO.CREATE", map[string]any{"customer_id": "C1", "amount": "1.00", "currency": "USD"})
		}
		recs = append(recs, rec(id, at, effect, r))
		if i%11 == 0 {
			m := rec(id+"-replay", at.Add(time.Second), effect, r)
			m.Kind, m.ReplayOf = tollgatev1.RecordKind_RECORD_KIND_REPLAY, id
			recs = append(recs, m)
		}
	}
	return recs
}

// TestRebuildMatchesLiveIndex writes 40 days of decisions to a real SQLite
// store on two chains, rebuilds, and compares every key's result with an
// index that observed the same records live, at several times.
func TestRebuildMatchesLiveIndex(t *testing.T) {
	vs := packViews(t)
	now := t0
	recs := history40Days(t, now)
	store := openStore(t)
	appendChain(t, store, "replica-a", recs[:len(recs)/2])
	appendChain(t, store, "replica-b", recs[len(recs)/2:])

	live := history.New(vs)
	keys := map[history.ViewKey]bool{}
	for _, r := range recs {
		live.Observe(r)
		for _, vk := range vs.Keys(r.GetRequest()) {
			keys[vk] = true
		}
	}
	live.Evict(now)

	rebuilt, err := history.Rebuild(context.Background(), store, vs, now)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(live.Stats(), rebuilt.Stats()); diff != "" {
		t.Fatalf("Stats (-live +rebuilt):\n%s", diff)
	}
	counted := 0
	for vk := range keys {
		for _, at := range []time.Time{now, now.Add(-3 * time.Hour), now.Add(time.Hour)} {
			want, got := mustQuery(t, live, vk.View, vk.Key, at), mustQuery(t, rebuilt, vk.View, vk.Key, at)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s %s at %v (-live +rebuilt):\n%s", vk.View, vk.Key, at, diff)
			}
			counted += got.Count
		}
	}
	if counted == 0 {
		t.Fatal("no view counted anything: the fixture tests nothing")
	}
	// 720h of invoice postings reach back 30 days; nothing older is held.
	if s := rebuilt.Stats(); s.Decisions == 0 || s.Decisions >= len(recs)/2 {
		t.Fatalf("rebuilt holds %d decisions of %d over 40 days", s.Decisions, len(recs))
	}
}

func TestRebuildFailsWithStore(t *testing.T) {
	vs := packViews(t)
	store := openStore(t)
	appendChain(t, store, "c", history40Days(t, t0)[:50])
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := history.Rebuild(ctx, store, vs, t0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Rebuild with a cancelled context = %v, want context.Canceled", err)
	}
	store.Close()
	if _, err := history.Rebuild(context.Background(), store, vs, t0); !errors.Is(err, audit.ErrClosed) {
		t.Fatalf("Rebuild on a closed store = %v, want audit.ErrClosed", err)
	}
}

func TestRebuildWithoutViews(t *testing.T) {
	store := openStore(t)
	ix, err := history.Rebuild(context.Background(), store, history.Views{}, t0)
	if err != nil || ix.Stats() != (history.Stats{}) {
		t.Fatalf("Rebuild without views = %+v, %v", ix.Stats(), err)
	}
}
