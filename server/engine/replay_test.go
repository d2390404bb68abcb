package engine_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate/tollgate/server/bundles"
	"github.com/tollgate/tollgate/server/engine"
	"github.com/tollgate/tollgate/server/masterdata"
)

// TestEvaluateRecordedReproducesDecision replays a decision after the master data changed: with the
// recorded facts and time it must give the original answer, not today's.
func TestEvaluateRecordedReproducesDecision(t *testing.T) {
	eng, md, _ := newEngine(t, "ok", engine.Config{})
	ctx := context.Background()
	req := request("SO.RELEASE", map[string]any{"customer_id": "C9"})
	orig := eng.Decide(ctx, req)
	if orig.Effect != engine.RequireApproval {
		t.Fatalf("original = %+v", outcomeOf(orig))
	}
	raw, err := engine.EncodeFacts(orig.Facts)
	if err != nil {
		t.Fatal(err)
	}

	// The customer leaves credit hold: a live decision now allows.
	res := md.Apply([]masterdata.Event{{EventID: "e-ok", Kind: masterdata.KindCustomer, Key: "C9", Version: 2, Op: masterdata.OpUpsert, Record: map[string]any{
		"id": "C9", "status": "ACTIVE", "tier": 2, "credit_status": "OK", "credit_limit": "1000.00",
		"open_ar": "0.00", "open_orders": "0.00", "currency": "USD", "delivery_block": false, "account_owner": "u1",
	}}})
	if res.Results[0].Outcome != masterdata.OutcomeApplied {
		t.Fatal(res.Results[0].Err)
	}
	if live := eng.Decide(ctx, req); live.Effect != engine.Allow {
		t.Fatalf("live decision after the change = %+v, want ALLOW", outcomeOf(live))
	}

	active, _ := eng.Active()
	b, err := bundles.ReadTarball(active.Data(), nil)
	if err != nil {
		t.Fatal(err)
	}
	compiled, err := engine.Compile(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if compiled.Revision() != orig.BundleRevision {
		t.Errorf("round-tripped bundle revision %s, recorded %s", compiled.Revision(), orig.BundleRevision)
	}
	facts, err := engine.DecodeFacts(raw)
	if err != nil {
		t.Fatal(err)
	}
	replayed := eng.EvaluateRecorded(ctx, compiled, req, orig.EvaluatedAt, facts)
	if diff := cmp.Diff(outcomeOf(orig), outcomeOf(replayed)); diff != "" {
		t.Errorf("replay (-original +replayed):\n%s", diff)
	}

	// A read the original decision never made cannot be answered from the record.
	other := request("SO.RELEASE", map[string]any{"customer_id": "C1"})
	facts, _ = engine.DecodeFacts(raw)
	missing := eng.EvaluateRecorded(ctx, compiled, other, orig.EvaluatedAt, facts)
	if missing.Failure != engine.CodePolicyError || !strings.Contains(missing.Reasons[0].Message, "failed") {
		t.Errorf("replay with an unrecorded read = %+v, want POLICY_ERROR", outcomeOf(missing))
	}
}

// TestEvaluateRecordedWaitsInTheQueue: a re-evaluation (replay, impact analysis) takes its turn among
// live decisions instead of running beside them: with one evaluator busy it does not start, and gives
// up with EVALUATION_TIMEOUT when its ctx ends first.
func TestEvaluateRecordedWaitsInTheQueue(t *testing.T) {
	const hold = 300 * time.Millisecond
	eng, _, logs := newEngine(t, "slow", engine.Config{EvalTimeout: hold, MaxConcurrent: 1})
	active, _ := eng.Active()
	busy := make(chan struct{})
	go func() {
		defer close(busy)
		eng.Decide(context.Background(), request("PO.SUBMIT", nil))
	}()
	time.Sleep(hold / 3) // the live decision holds the only evaluator

	ctx, cancel := context.WithTimeout(context.Background(), hold/3)
	defer cancel()
	start := time.Now()
	res := eng.EvaluateRecorded(ctx, active, request("PO.SUBMIT", nil), time.Now(), nil)
	if res.Failure != engine.CodeEvaluationTimeout || !strings.Contains(logs.String(), "before its evaluation could start") {
		t.Fatalf("re-evaluation behind a busy evaluator: %+v, want EVALUATION_TIMEOUT before it started", outcomeOf(res))
	}
	if took := time.Since(start); took > hold/2 {
		t.Errorf("gave up after %s, want about %s", took, hold/3)
	}
	<-busy
}

// TestLiveDecisionsGoBeforeReEvaluations: with the only evaluator busy, a live decision that arrives
// after a waiting re-evaluation is still evaluated first, so an impact analysis cannot put thousands of
// evaluations between a live decision and its turn.
func TestLiveDecisionsGoBeforeReEvaluations(t *testing.T) {
	const hold = 200 * time.Millisecond
	eng, _, _ := newEngine(t, "slow", engine.Config{EvalTimeout: hold, MaxConcurrent: 1})
	active, _ := eng.Active()
	var mu sync.Mutex
	var order []string
	finished := func(name string) {
		mu.Lock()
		order = append(order, name)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		eng.Decide(context.Background(), request("PO.SUBMIT", nil))
		finished("live-1")
	})
	time.Sleep(hold / 4)
	wg.Go(func() {
		eng.EvaluateRecorded(context.Background(), active, request("PO.SUBMIT", nil), time.Now(), nil)
		finished("recorded")
	})
	time.Sleep(hold / 4)
	wg.Go(func() {
		eng.Decide(context.Background(), request("PO.SUBMIT", nil))
		finished("live-2")
	})
	wg.Wait()
	if got := strings.Join(order, " "); got != "live-1 live-2 recorded" {
		t.Fatalf("finished in order %q, want the waiting live decision before the re-evaluation", got)
	}
}
