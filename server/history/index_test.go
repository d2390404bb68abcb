package history_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/history"
)

func TestQueryTrailingWindowEdges(t *testing.T) {
	vs := packViews(t)
	ix := history.New(vs)
	r := po(t, "u1", "4000.00", "USD")
	key := mustKey(t, vs, "po_split", r)
	ix.Observe(rec("exactly-24h", t0.Add(-24*time.Hour), allow, r))
	ix.Observe(rec("just-inside", t0.Add(-24*time.Hour+time.Nanosecond), approval, r))
	ix.Observe(rec("at-t", t0, allow, r))
	ix.Observe(rec("after-t", t0.Add(time.Nanosecond), allow, r))

	got := mustQuery(t, ix, "po_split", key, t0)
	want := history.Result{Count: 2, Sums: map[string]string{"USD": "8000.00"}, DecisionIDs: []string{"at-t", "just-inside"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Query (-want +got):\n%s", diff)
	}
	// One nanosecond later the oldest counted entry is exactly one window ago.
	got = mustQuery(t, ix, "po_split", key, t0.Add(time.Nanosecond))
	if diff := cmp.Diff([]string{"after-t", "at-t"}, got.DecisionIDs); diff != "" {
		t.Fatalf("Query at t0+1ns (-want +got):\n%s", diff)
	}
	if got := mustQuery(t, ix, "po_split", `["other","S1","DC1"]`, t0); got.Count != 0 || len(got.Sums) != 0 || got.DecisionIDs == nil {
		t.Fatalf("another key: %+v, want empty (non-nil) result", got)
	}
}

func TestQueryUTCDay(t *testing.T) {
	vs := packViews(t)
	ix := history.New(vs)
	day := time.Date(t0.Year(), t0.Month(), t0.Day(), 0, 0, 0, 0, time.UTC)
	alloc := func(value string) *tollgatev1.DecideRequest {
		return aiReq(t, "agent1", "ALLOCATION.CREATE", tollgatev1.AIMode_AI_MODE_EXECUTE, map[string]any{"value": value, "currency": "USD"})
	}
	resolve := aiReq(t, "agent1", "INVOICE.RESOLVE_DISCREPANCY", tollgatev1.AIMode_AI_MODE_EXECUTE, map[string]any{"variance_amount": "-12.50", "currency": "USD"})
	ix.Observe(rec("yesterday-last-ns", day.Add(-time.Nanosecond), allow, alloc("100.00")))
	ix.Observe(rec("midnight", day, allow, alloc("1.00")))
	ix.Observe(rec("resolve", day.Add(time.Hour), allow, resolve))
	ix.Observe(rec("denied", day.Add(2*time.Hour), deny, alloc("500.00")))
	ix.Observe(rec("approval", day.Add(2*time.Hour), approval, alloc("500.00")))
	ix.Observe(rec("recommend", day.Add(2*time.Hour), allow,
		aiReq(t, "agent1", "ALLOCATION.CREATE", tollgatev1.AIMode_AI_MODE_RECOMMEND, map[string]any{"value": "700.00", "currency": "USD"})))

	got := mustQuery(t, ix, "ai_daily_value", `["agent1"]`, t0)
	want := history.Result{Count: 2, Sums: map[string]string{"USD": "13.50"}, DecisionIDs: []string{"midnight", "resolve"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Query (-want +got):\n%s", diff)
	}
	// At midnight itself only the midnight decision is of the day.
	got = mustQuery(t, ix, "ai_daily_value", `["agent1"]`, day)
	if diff := cmp.Diff([]string{"midnight"}, got.DecisionIDs); diff != "" {
		t.Fatalf("Query at midnight (-want +got):\n%s", diff)
	}
}

func TestQuerySumsExactPerCurrency(t *testing.T) {
	vs := packViews(t)
	ix := history.New(vs)
	memo := func(amount, currency string) *tollgatev1.DecideRequest {
		return req(t, "ar", "CREDIT_MEMO.ISSUE", map[string]any{"customer_id": "C1", "amount": amount, "currency": currency})
	}
	for i, m := range []struct{ amount, currency string }{
		{"0.10", "USD"}, {"0.20", "USD"}, {"999999999999.99", "USD"},
		{"1200", "JPY"}, {"1.005", "KWD"}, {"0.001", "KWD"}, {"3", "EUR"}, {"-1.50", "EUR"},
	} {
		ix.Observe(rec(fmt.Sprintf("m%d", i), t0.Add(-time.Duration(i+1)*time.Minute), allow, memo(m.amount, m.currency)))
	}
	got := mustQuery(t, ix, "credit_memo_velocity", `["C1"]`, t0)
	want := map[string]string{"USD": "1000000000000.29", "JPY": "1200", "KWD": "1.006", "EUR": "1.50"}
	if diff := cmp.Diff(want, got.Sums); diff != "" {
		t.Fatalf("Sums (-want +got):\n%s", diff)
	}
	if got.Count != 8 || len(got.Unvalued) != 0 {
		t.Fatalf("Count %d, Unvalued %v", got.Count, got.Unvalued)
	}
}

func TestQuerySumBeyondInt64(t *testing.T) {
	vs := packViews(t)
	ix := history.New(vs)
	r := req(t, "ar", "CREDIT_MEMO.ISSUE", map[string]any{"customer_id": "C1", "amount": "999999999999.999", "currency": "KWD"})
	for i := range 10000 {
		ix.Observe(rec(fmt.Sprintf("m%05d", i), t0.Add(-time.Duration(i+1)*time.Second), allow, r))
	}
	// 10000 × (10^15 − 1) minor units exceeds 2^63.
	got := mustQuery(t, ix, "credit_memo_velocity", `["C1"]`, t0)
	if got.Sums["KWD"] != "9999999999999990.000" || got.Count != 10000 {
		t.Fatalf("Count %d, KWD sum %s; want 10000, 9999999999999990.000", got.Count, got.Sums["KWD"])
	}
}

func TestObserveCounts(t *testing.T) {
	vs := packViews(t)
	ix := history.New(vs)
	r := po(t, "u1", "100.00", "USD")
	key := mustKey(t, vs, "po_split", r)
	at := t0.Add(-time.Hour)

	if n := ix.Observe(rec("allow", at, allow, r)); n != 1 {
		t.Fatalf("Observe(allow) = %d views, want 1", n)
	}
	if n := ix.Observe(rec("allow", at.Add(time.Minute), allow, r)); n != 0 {
		t.Error("a decision observed twice was added again")
	}
	if n := ix.Observe(rec("deny", at, deny, r)); n != 0 {
		t.Error("a DENY was counted by po_split")
	}
	replay := rec("replay", at, allow, r)
	replay.Kind, replay.ReplayOf = tollgatev1.RecordKind_RECORD_KIND_REPLAY, "allow"
	if n := ix.Observe(replay); n != 0 {
		t.Error("a replay marker was counted")
	}
	brk := rec("break", at, allow, r)
	brk.Kind = tollgatev1.RecordKind_RECORD_KIND_CHAIN_BREAK
	if n := ix.Observe(brk); n != 0 {
		t.Error("a chain break was counted")
	}
	if n := ix.Observe(rec("", at, allow, r)); n != 0 {
		t.Error("a record without decision id was counted")
	}
	noTime := rec("no-time", at, allow, r)
	noTime.EvaluatedAt = nil
	if n := ix.Observe(noTime); n != 0 {
		t.Error("a record without evaluated_at was counted")
	}
	// Malformed amounts are counted but not summed as zero.
	for id, amount := range map[string]any{"bad-text": "12abc", "exponent": "1e3", "precision": "1.001", "number": 5.0, "too-big": "1000000000000.00"} {
		bad := req(t, "u1", "PO.SUBMIT", map[string]any{"amount": amount, "currency": "USD", "site_id": "DC1", "supplier_id": "S1"})
		ix.Observe(rec(id, at, approval, bad))
	}
	ix.Observe(rec("bad-currency", at, approval, po(t, "u1", "1.00", "XXX")))

	got := mustQuery(t, ix, "po_split", key, t0)
	want := history.Result{
		Count:       7,
		Sums:        map[string]string{"USD": "100.00"},
		DecisionIDs: []string{"allow", "bad-currency", "bad-text", "exponent", "number", "precision", "too-big"},
		Unvalued:    []string{"bad-currency", "bad-text", "exponent", "number", "precision", "too-big"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Query (-want +got):\n%s", diff)
	}
}

func TestObserveOutOfOrder(t *testing.T) {
	vs := packViews(t)
	ix := history.New(vs)
	r := po(t, "u1", "1.00", "USD")
	key := mustKey(t, vs, "po_split", r)
	// Another chain's records arrive late and out of order.
	for _, m := range []int{5, 1, 3, 30, 2} {
		ix.Observe(rec(fmt.Sprintf("m%02d", m), t0.Add(-time.Duration(m)*time.Hour), allow, r))
	}
	got := mustQuery(t, ix, "po_split", key, t0.Add(-2*time.Hour))
	if diff := cmp.Diff([]string{"m02", "m03", "m05"}, got.DecisionIDs); diff != "" {
		t.Fatalf("Query (-want +got):\n%s", diff)
	}
}

func TestQueryUnknownView(t *testing.T) {
	ix := history.New(packViews(t))
	if _, err := ix.Query("nope", `["x"]`, t0); !errors.Is(err, history.ErrUnknownView) {
		t.Fatalf("Query(nope) = %v, want ErrUnknownView", err)
	}
}

func TestEvict(t *testing.T) {
	vs := packViews(t)
	ix := history.New(vs)
	p := po(t, "u1", "1.00", "USD")
	inv := req(t, "clerk", "INVOICE.POST", map[string]any{"supplier_id": "S1", "invoice_ref": "INV-1", "amount": "1.00", "currency": "USD"})
	ix.Observe(rec("po-old", t0.Add(-25*time.Hour), allow, p))
	ix.Observe(rec("po-new", t0.Add(-23*time.Hour), allow, p))
	ix.Observe(rec("inv-old", t0.Add(-721*time.Hour), allow, inv))
	ix.Observe(rec("inv-new", t0.Add(-25*time.Hour), allow, inv))
	if diff := cmp.Diff(history.Stats{Decisions: 4, Entries: 4, Keys: 2}, ix.Stats()); diff != "" {
		t.Fatalf("Stats before (-want +got):\n%s", diff)
	}
	before := map[string]history.Result{}
	for _, v := range []string{"po_split", "invoice_posted"} {
		k := mustKey(t, vs, v, map[string]*tollgatev1.DecideRequest{"po_split": p, "invoice_posted": inv}[v])
		before[v] = mustQuery(t, ix, v, k, t0)
	}

	if n := ix.Evict(t0); n != 2 {
		t.Fatalf("Evict = %d, want 2 (po-old, inv-old)", n)
	}
	// po-old left po_split but its id stays known while invoice_posted's
	// 720h reach could still hold it; inv-old is forgotten.
	if diff := cmp.Diff(history.Stats{Decisions: 3, Entries: 2, Keys: 2}, ix.Stats()); diff != "" {
		t.Fatalf("Stats after (-want +got):\n%s", diff)
	}
	for v, want := range before {
		k := mustKey(t, vs, v, map[string]*tollgatev1.DecideRequest{"po_split": p, "invoice_posted": inv}[v])
		if diff := cmp.Diff(want, mustQuery(t, ix, v, k, t0), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: eviction changed a query at now (-want +got):\n%s", v, diff)
		}
	}
	// A record older than what was evicted is not taken back in.
	if n := ix.Observe(rec("po-older", t0.Add(-26*time.Hour), allow, p)); n != 0 {
		t.Errorf("Observe of an evicted-age record = %d views, want 0", n)
	}
	if n := ix.Evict(t0.Add(721 * time.Hour)); n != 2 {
		t.Fatalf("Evict far ahead = %d, want 2", n)
	}
	if diff := cmp.Diff(history.Stats{}, ix.Stats()); diff != "" {
		t.Fatalf("Stats at the end (-want +got):\n%s", diff)
	}
}
