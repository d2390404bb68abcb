package engine_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate/tollgate/server/bundles"
	"github.com/tollgate/tollgate/server/engine"
	"github.com/tollgate/tollgate/server/masterdata"
)

// newEngine returns an engine over a real memdb store holding one customer on credit hold and one
// delegation, with the test bundle in testdata/<name> active.
func newEngine(t testing.TB, bundleName string, cfg engine.Config) (*engine.Engine, *masterdata.Store, *logBuffer) {
	t.Helper()
	md, err := masterdata.New(masterdata.Config{Prepare: engine.PrepareRecord})
	if err != nil {
		t.Fatal(err)
	}
	res := md.Apply([]masterdata.Event{
		{EventID: "e1", Kind: masterdata.KindCustomer, Key: "C9", Version: 1, Op: masterdata.OpUpsert, Record: map[string]any{
			"id": "C9", "status": "ACTIVE", "tier": 2, "credit_status": "HOLD", "credit_limit": "1000.00",
			"open_ar": "0.00", "open_orders": "0.00", "currency": "USD", "delivery_block": false, "account_owner": "u1",
		}},
		{EventID: "e2", Kind: masterdata.KindDelegation, Key: "D1", Version: 1, Op: masterdata.OpUpsert, Record: map[string]any{
			"id": "D1", "delegator_id": "u_boss", "delegate_id": "u_dep", "actions": []any{"PO.APPROVE"},
			"max_amount": "100.00", "currency": "USD", "valid_from": "2026-01-01T00:00:00Z", "valid_to": "2027-01-01T00:00:00Z", "revoked": false,
		}},
	})
	for _, r := range res.Results {
		if r.Outcome != masterdata.OutcomeApplied {
			t.Fatalf("fixture event %s: %s %v", r.EventID, r.Outcome, r.Err)
		}
	}
	logs := &logBuffer{}
	eng, err := engine.New(cfg, md, zerolog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundles.ReadDir("testdata/"+bundleName, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := engine.Compile(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	eng.Activate(c)
	t.Cleanup(eng.Close)
	return eng, md, logs
}

// logBuffer collects log lines written from several goroutines (the evaluators and the callers).
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func request(action string, attrs map[string]any) *engine.Request {
	s, err := structpb.NewStruct(attrs)
	if err != nil {
		panic(err)
	}
	return &engine.Request{
		Actor:    engine.Actor{ID: "u_dep", Type: engine.ActorHuman, OnBehalfOf: "u_boss"},
		Action:   action,
		Resource: engine.Resource{Type: "sales_order", ID: "SO1", Attributes: s},
	}
}

type outcome struct {
	Effect    engine.Effect
	Reasons   []engine.Reason
	Approvers []string
	Failure   string
}

func outcomeOf(r *engine.Result) outcome {
	return outcome{Effect: r.Effect, Reasons: r.Reasons, Approvers: r.Approvers, Failure: r.Failure}
}

func TestDecideEffects(t *testing.T) {
	eng, md, _ := newEngine(t, "ok", engine.Config{})
	tests := []struct {
		name string
		req  *engine.Request
		want outcome
	}{
		{"deny on unknown customer", request("SO.RELEASE", map[string]any{"customer_id": "NOPE"}),
			outcome{Effect: engine.Deny, Reasons: []engine.Reason{{"UNKNOWN_CUSTOMER", "no such customer"}}}},
		{"approval for customer on hold", request("SO.RELEASE", map[string]any{"customer_id": "C9"}),
			outcome{Effect: engine.RequireApproval, Reasons: []engine.Reason{{"CUSTOMER_CREDIT_HOLD", "on hold"}}, Approvers: []string{"CREDIT_MANAGER"}}},
		{"allow through secondary index lookup", request("PO.APPROVE", nil),
			outcome{Effect: engine.Allow, Reasons: []engine.Reason{{"DELEGATED_AUTHORITY_VALID", "1 delegations"}}}},
		{"default allow", request("ANYTHING.ELSE", nil),
			outcome{Effect: engine.Allow, Reasons: []engine.Reason{{"ALLOWED", "nothing to say"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := eng.Decide(context.Background(), tt.req)
			if diff := cmp.Diff(tt.want, outcomeOf(res)); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
			if !strings.HasPrefix(res.BundleRevision, "ok-1@") || len(res.BundleRevision) != len("ok-1@")+12 {
				t.Errorf("bundle revision = %q, want ok-1@ and 12 hex digits of the digest", res.BundleRevision)
			}
			if want := md.Snapshot().Revision(); res.MasterdataRevision != want {
				t.Errorf("masterdata revision = %d, want %d", res.MasterdataRevision, want)
			}
		})
	}
}

func TestDecideRecordsFacts(t *testing.T) {
	eng, _, _ := newEngine(t, "ok", engine.Config{})
	res := eng.Decide(context.Background(), request("SO.RELEASE", map[string]any{"customer_id": "C9"}))
	raw, err := engine.EncodeFacts(res.Facts)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"builtin":"md.get"`, `"args":["customer","C9"]`, `"credit_status":"HOLD"`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("facts %s do not contain %s", raw, want)
		}
	}
	// An absent record is a fact too (null), so a replay cannot fall through to today's data.
	res = eng.Decide(context.Background(), request("SO.RELEASE", map[string]any{"customer_id": "NOPE"}))
	raw, _ = engine.EncodeFacts(res.Facts)
	if !strings.Contains(string(raw), `"args":["customer","NOPE"],"result":null`) {
		t.Errorf("facts %s do not record the missing customer", raw)
	}
	back, err := engine.DecodeFacts(raw)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := engine.EncodeFacts(back)
	if string(again) != string(raw) {
		t.Errorf("facts do not round-trip:\n%s\n%s", raw, again)
	}
}

func TestDecideUsesFixedClock(t *testing.T) {
	eng, _, _ := newEngine(t, "ok", engine.Config{})
	res := eng.Decide(context.Background(), request("CLOCK.READ", nil))
	if got, want := res.Reasons[0].Message, itoa(res.EvaluatedAt.UnixNano()); got != want {
		t.Errorf("policy saw time %s, result records %s", got, want)
	}
}

func TestFailClosed(t *testing.T) {
	tests := []struct {
		bundle, action string
		cfg            engine.Config
		code, log      string
	}{
		{"undefined", "SOMETHING.ELSE", engine.Config{}, engine.CodePolicyUndefined, "no decision"},
		{"conflict", "PO.SUBMIT", engine.Config{}, engine.CodePolicyError, "policy evaluation failed"},
		{"slow", "PO.SUBMIT", engine.Config{EvalTimeout: 20 * time.Millisecond}, engine.CodeEvaluationTimeout, "did not finish"},
		{"malformed", "X.MAYBE", engine.Config{}, engine.CodePolicyError, "MAYBE"},
		{"malformed", "X.NOREASON", engine.Config{}, engine.CodePolicyError, "reasons is missing or empty"},
		{"malformed", "X.NOAPPROVER", engine.Config{}, engine.CodePolicyError, "names no approvers"},
		{"malformed", "X.STRING", engine.Config{}, engine.CodePolicyError, "want object"},
	}
	for _, tt := range tests {
		t.Run(tt.bundle+"/"+tt.action, func(t *testing.T) {
			eng, _, logs := newEngine(t, tt.bundle, tt.cfg)
			start := time.Now()
			res := eng.Decide(context.Background(), request(tt.action, nil))
			if res.Effect != engine.Deny || res.Failure != tt.code || len(res.Reasons) != 1 || res.Reasons[0].Code != tt.code {
				t.Fatalf("got %+v, want DENY %s", outcomeOf(res), tt.code)
			}
			if !strings.Contains(logs.String(), tt.code) || !strings.Contains(logs.String(), tt.log) {
				t.Errorf("log %q does not mention %s and %q", logs.String(), tt.code, tt.log)
			}
			if tt.cfg.EvalTimeout > 0 && time.Since(start) > 2*time.Second {
				t.Errorf("timed-out evaluation took %s", time.Since(start))
			}
		})
	}
}

func TestNoActiveBundleDenies(t *testing.T) {
	md, err := masterdata.New(masterdata.Config{})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Config{}, md, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	res := eng.Decide(context.Background(), request("PO.SUBMIT", nil))
	if res.Effect != engine.Deny || res.Failure != engine.CodePolicyError {
		t.Fatalf("got %+v, want POLICY_ERROR DENY", outcomeOf(res))
	}
}

func TestBrokenBundleIsRefusedAndRunningOneStays(t *testing.T) {
	eng, _, _ := newEngine(t, "ok", engine.Config{})
	if _, err := bundles.ReadDir("testdata/broken", nil); err == nil {
		t.Fatal("loading a bundle with a syntax error succeeded")
	}
	b, err := bundles.ReadDir("testdata/uncompilable", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Compile(context.Background(), b); err == nil {
		t.Fatal("compiling a bundle that does not compile succeeded")
	}
	if c, _ := eng.Active(); !strings.HasPrefix(c.Revision(), "ok-1@") {
		t.Errorf("active revision = %q after a refused bundle, want ok-1@…", c.Revision())
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestSnapshotConsistentUnderConcurrentApply flips a customer between credit hold and OK while decisions
// run: every decision must match the data of the revision it reports, never a mix of two revisions.
func TestSnapshotConsistentUnderConcurrentApply(t *testing.T) {
	eng, md, _ := newEngine(t, "ok", engine.Config{})
	statusAt := sync.Map{} // revision → credit_status applied at that revision
	statusAt.Store(md.Snapshot().Revision(), "HOLD")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		for v := uint64(2); ctx.Err() == nil && v < 400; v++ {
			status := map[bool]string{true: "HOLD", false: "OK"}[v%2 == 1]
			res := md.Apply([]masterdata.Event{{EventID: fmt.Sprintf("flip-%d", v), Kind: masterdata.KindCustomer, Key: "C9", Version: v, Op: masterdata.OpUpsert, Record: map[string]any{
				"id": "C9", "status": "ACTIVE", "tier": 2, "credit_status": status, "credit_limit": "1000.00",
				"open_ar": "0.00", "open_orders": "0.00", "currency": "USD", "delivery_block": false, "account_owner": "u1",
			}}})
			if res.Results[0].Outcome != masterdata.OutcomeApplied {
				t.Errorf("flip %d: %s %v", v, res.Results[0].Outcome, res.Results[0].Err)
				return
			}
			statusAt.Store(res.Revision, status)
		}
	})
	type seen struct {
		rev    uint64
		effect engine.Effect
	}
	results := make(chan seen, 4000)
	for range 4 {
		wg.Go(func() {
			for range 500 {
				res := eng.Decide(ctx, request("SO.RELEASE", map[string]any{"customer_id": "C9"}))
				results <- seen{res.MasterdataRevision, res.Effect}
			}
		})
	}
	wg.Wait()
	close(results)
	n := 0
	for s := range results {
		n++
		st, ok := statusAt.Load(s.rev)
		if !ok {
			t.Fatalf("decision reports revision %d, which no Apply produced", s.rev)
		}
		want := map[string]engine.Effect{"HOLD": engine.RequireApproval, "OK": engine.Allow}[st.(string)]
		if s.effect != want {
			t.Fatalf("decision at revision %d (%s) = %s, want %s", s.rev, st, s.effect, want)
		}
	}
	if n != 2000 {
		t.Fatalf("checked %d decisions, want 2000", n)
	}
}

// TestDecisionsTakeTurns: with one evaluation at a time, decisions run in arrival order, and one whose
// deadline passes while it waits is a DENY with EVALUATION_TIMEOUT, not an error.
func TestDecisionsTakeTurns(t *testing.T) {
	// Every evaluation of the slow bundle runs until the evaluation timeout.
	const hold = 300 * time.Millisecond
	eng, _, logs := newEngine(t, "slow", engine.Config{EvalTimeout: hold, MaxConcurrent: 1})

	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			eng.Decide(context.Background(), request("PO.SUBMIT", nil))
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
		}()
		time.Sleep(hold / 3) // each arrives while the first still evaluates
	}

	// This one arrives behind the three and gives up long before its turn.
	ctx, cancel := context.WithTimeout(context.Background(), hold/3)
	defer cancel()
	res := eng.Decide(ctx, request("PO.SUBMIT", nil))
	if res.Effect != engine.Deny || res.Failure != engine.CodeEvaluationTimeout || res.BundleRevision == "" {
		t.Errorf("decision that never got its turn: %+v (bundle %q), want DENY %s", outcomeOf(res), res.BundleRevision, engine.CodeEvaluationTimeout)
	}
	if !strings.Contains(logs.String(), "before its evaluation could start") {
		t.Errorf("log %q does not say the evaluation never started", logs.String())
	}

	wg.Wait()
	if fmt.Sprint(order) != "[0 1 2]" {
		t.Errorf("decisions finished in order %v, want arrival order [0 1 2]", order)
	}
	// Run one after the other, the three take three holds; side by side they would end after about 1.7.
	if took := time.Since(start); took < 3*hold-hold/10 {
		t.Errorf("three decisions took %s with one turn: they ran side by side", took)
	}
}

func TestNegativeMaxConcurrentIsRefused(t *testing.T) {
	md, err := masterdata.New(masterdata.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := engine.New(engine.Config{MaxConcurrent: -1}, md, zerolog.Nop()); err == nil {
		t.Error("engine.New accepted MaxConcurrent -1")
	}
}

// TestPanicIsADenyAndTheEvaluatorLives: a panic during a decision (here the clock's) is a POLICY_ERROR
// DENY, and the only evaluator goes on deciding.
func TestPanicIsADenyAndTheEvaluatorLives(t *testing.T) {
	var calls atomic.Int64
	clock := func() time.Time {
		if calls.Add(1) == 1 {
			panic("clock broke")
		}
		return time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	}
	eng, _, logs := newEngine(t, "ok", engine.Config{Clock: clock, MaxConcurrent: 1})
	res := eng.Decide(context.Background(), request("PO.SUBMIT", nil))
	if res.Effect != engine.Deny || res.Failure != engine.CodePolicyError {
		t.Fatalf("decision that panicked: %+v, want DENY %s", outcomeOf(res), engine.CodePolicyError)
	}
	if !strings.Contains(logs.String(), "clock broke") {
		t.Errorf("log %q does not carry the panic", logs.String())
	}
	if res := eng.Decide(context.Background(), request("PO.SUBMIT", nil)); res.Failure != "" {
		t.Errorf("next decision: %+v, want an evaluated one", outcomeOf(res))
	}
}

func TestClosedEngineDenies(t *testing.T) {
	eng, _, _ := newEngine(t, "ok", engine.Config{})
	eng.Close()
	eng.Close() // twice is harmless
	if res := eng.Decide(context.Background(), request("PO.SUBMIT", nil)); res.Effect != engine.Deny || res.Failure != engine.CodePolicyError {
		t.Errorf("decision after Close: %+v, want DENY %s", outcomeOf(res), engine.CodePolicyError)
	}
}
