package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
	"github.com/tollgate/tollgate/server/bundles"
	"github.com/tollgate/tollgate/test/testserver"
)

// refundsBundle is a bundle with its own history view ("refunds": an actor's ALLOWed REFUND.ISSUE
// decisions in a 5-second window) and a rule reading it: the third refund within the window needs a
// SUPERVISOR. The service maintains the view with no code of its own for it.
const refundsBundle = "testdata/refunds"

// refundsWindow is the view's window in testdata/refunds/data.json.
const refundsWindow = 5 * time.Second

func refund(actor, amount, key string) *tollgatev1.DecideRequest {
	attrs, err := structpb.NewStruct(map[string]any{"amount": amount, "currency": "USD"})
	if err != nil {
		panic(err)
	}
	return &tollgatev1.DecideRequest{
		Actor:          &tollgatev1.Actor{Id: actor, Type: tollgatev1.ActorType_ACTOR_TYPE_HUMAN},
		Action:         "REFUND.ISSUE",
		Resource:       &tollgatev1.Resource{Type: "refund", Id: "RF-" + key, Attributes: attrs},
		IdempotencyKey: key,
	}
}

func decideOK(t testing.TB, srv *testserver.Server, req *tollgatev1.DecideRequest) *tollgatev1.DecideResponse {
	t.Helper()
	resp, err := srv.Client.Decide(context.Background(), req)
	if err != nil {
		t.Fatalf("decide %s: %v", req.GetIdempotencyKey(), err)
	}
	return resp
}

func wantDecision(t testing.TB, resp *tollgatev1.DecideResponse, effect tollgatev1.Effect, message string) {
	t.Helper()
	if resp.GetEffect() != effect || !strings.Contains(resp.GetReasons()[0].GetMessage(), message) {
		t.Fatalf("decision %s: %s %q, want %s with %q", resp.GetDecisionId(), resp.GetEffect(), resp.GetReasons()[0].GetMessage(), effect, message)
	}
}

// TestHistoryViewOfABundle runs a sequence through the real service: allowed refunds count, the
// third needs approval and names the two before it with their sum, a REQUIRE_APPROVAL decision does
// not count (the view counts ALLOW only), an idempotent retry is the same decision and is not counted
// again, another actor has their own key. Once the window has passed, a new refund counts nothing, and
// the decision that needed approval still replays identically from its recorded history, which
// GetDecision shows.
func TestHistoryViewOfABundle(t *testing.T) {
	srv := startServer(t, app.Config{BundleDir: refundsBundle})
	ctx := context.Background()

	first := decideOK(t, srv, refund("clerk-1", "10.00", "r1"))
	wantDecision(t, first, tollgatev1.Effect_EFFECT_ALLOW, "0 prior refunds")
	retry := decideOK(t, srv, refund("clerk-1", "10.00", "r1"))
	if !retry.GetReplay() || retry.GetDecisionId() != first.GetDecisionId() {
		t.Fatalf("retry of r1: replay %v id %s, want the replay of %s", retry.GetReplay(), retry.GetDecisionId(), first.GetDecisionId())
	}
	second := decideOK(t, srv, refund("clerk-1", "20.50", "r2"))
	wantDecision(t, second, tollgatev1.Effect_EFFECT_ALLOW, "1 prior refunds")
	third := decideOK(t, srv, refund("clerk-1", "5.00", "r3"))
	ids := []string{first.GetDecisionId(), second.GetDecisionId()}
	if ids[0] > ids[1] {
		ids[0], ids[1] = ids[1], ids[0]
	}
	wantDecision(t, third, tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL, fmt.Sprintf("2 prior refunds (%s,%s) totalling 30.50", ids[0], ids[1]))
	fourth := decideOK(t, srv, refund("clerk-1", "5.00", "r4"))
	wantDecision(t, fourth, tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL, "2 prior refunds")
	wantDecision(t, decideOK(t, srv, refund("clerk-2", "99.00", "r5")), tollgatev1.Effect_EFFECT_ALLOW, "0 prior refunds")
	if elapsed := time.Since(first.GetEvaluatedAt().AsTime()); elapsed >= refundsWindow {
		t.Fatalf("the sequence took %s, longer than the view's window: the machine is too slow for this test's window", elapsed)
	}

	// What the third decision read is in its record.
	rec, err := srv.Client.GetDecision(ctx, third.GetDecisionId())
	if err != nil {
		t.Fatal(err)
	}
	facts := rec.GetFactsJson()
	for _, want := range []string{`"builtin":"tollgate.history"`, `"args":["refunds",["clerk-1"]]`, `"count":2`, ids[0], ids[1], `"USD":"30.50"`} {
		if !strings.Contains(facts, want) {
			t.Fatalf("facts of %s lack %s: %s", third.GetDecisionId(), want, facts)
		}
	}

	// Process owners see the findings in the metrics like any other reason.
	metrics := httpGet(t, "http://"+srv.App.HTTPAddr().String()+"/metrics")
	for _, want := range []string{
		`tollgate_decision_reasons_total{action="REFUND.ISSUE",code="REFUND_VELOCITY",effect="REQUIRE_APPROVAL"} 2`,
		`tollgate_decision_reasons_total{action="REFUND.ISSUE",code="ALLOWED",effect="ALLOW"} 4`, // r1, its retry (metrics count answered calls), r2, r5,
		`tollgate_history_tracked{kind="decisions"}`,
		`tollgate_history_rebuild_seconds_count 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// After the window: nothing counts any more, yet the replay reproduces the approval.
	time.Sleep(time.Until(second.GetEvaluatedAt().AsTime().Add(refundsWindow + 100*time.Millisecond)))
	wantDecision(t, decideOK(t, srv, refund("clerk-1", "1.00", "r6")), tollgatev1.Effect_EFFECT_ALLOW, "0 prior refunds")
	rep, err := srv.Client.ReplayDecision(ctx, third.GetDecisionId())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.GetIdentical() {
		t.Fatalf("replay of %s after its window: differences %v", third.GetDecisionId(), rep.GetDifferences())
	}
	wantDecision(t, rep.GetReplayed(), tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL, "2 prior refunds")
	if v, err := srv.Client.VerifyLog(ctx, ""); err != nil || !v.GetOk() {
		t.Fatalf("verify: %v %v", v, err)
	}
}

// TestHistoryNoSlipUnderConcurrency sends 24 refunds of one actor at once over real gRPC: exactly two
// are allowed, because decisions on one view key are serialized from before evaluation until their
// record is observed: after the commit in sync mode, at enqueue in async mode.
func TestHistoryNoSlipUnderConcurrency(t *testing.T) {
	for _, mode := range []audit.Mode{audit.ModeSync, audit.ModeAsync} {
		t.Run(string(mode), func(t *testing.T) { noSlip(t, mode) })
	}
}

func noSlip(t *testing.T, mode audit.Mode) {
	srv := startServer(t, app.Config{BundleDir: refundsBundle, Audit: audit.Config{Mode: mode}})
	var wg sync.WaitGroup
	var mu sync.Mutex
	effects := map[tollgatev1.Effect]int{}
	for i := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := srv.Client.Decide(context.Background(), refund("clerk-9", "1.00", fmt.Sprintf("c%d", i)))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			effects[resp.GetEffect()]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if effects[tollgatev1.Effect_EFFECT_ALLOW] != 2 || effects[tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL] != 22 {
		t.Fatalf("24 concurrent refunds: %v, want 2 ALLOW and 22 REQUIRE_APPROVAL", effects)
	}
}

// TestHistoryRebuiltAtStart: a restart rebuilds the view from the audit log, so the refunds made
// before it still count after it.
func TestHistoryRebuiltAtStart(t *testing.T) {
	dataDir := t.TempDir()
	srv := startServer(t, app.Config{BundleDir: refundsBundle, DataDir: dataDir})
	decideOK(t, srv, refund("clerk-1", "10.00", "a1"))
	decideOK(t, srv, refund("clerk-1", "10.00", "a2"))
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	srv.App.Close()
	again := startServer(t, app.Config{BundleDir: refundsBundle, DataDir: dataDir})
	wantDecision(t, decideOK(t, again, refund("clerk-1", "10.00", "a3")), tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL, "2 prior refunds")
}

// TestHistoryViewsOnActivation: refunds allowed by a bundle without the view count once a bundle
// declaring it is activated, because the activation rebuilds the view from the audit log.
func TestHistoryViewsOnActivation(t *testing.T) {
	srv := startServer(t, app.Config{BundleDir: "testdata/slow", EvalTimeout: 60 * time.Second})
	decideOK(t, srv, refund("clerk-1", "10.00", "s1"))
	decideOK(t, srv, refund("clerk-1", "10.00", "s2"))
	b, err := bundles.ReadFS(os.DirFS(refundsBundle), nil)
	if err != nil {
		t.Fatal(err)
	}
	tarball, err := bundles.Write(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tollgatev1.NewPolicyServiceClient(srv.Client.Conn()).Activate(context.Background(), &tollgatev1.ActivateRequest{Bundle: tarball}); err != nil {
		t.Fatal(err)
	}
	wantDecision(t, decideOK(t, srv, refund("clerk-1", "10.00", "s3")), tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL, "2 prior refunds")
}

// TestHistoryViewOnMaskedPathRefused: a view keyed by a path the audit log masks cannot be rebuilt
// faithfully, so the bundle is refused at start (and would be at any activation).
func TestHistoryViewOnMaskedPathRefused(t *testing.T) {
	err := newApp(t, app.Config{BundleDir: refundsBundle, DataDir: t.TempDir(), Audit: audit.Config{MaskPaths: []string{"actor.id"}}})
	if err == nil || !strings.Contains(err.Error(), "refused_compile") || !strings.Contains(err.Error(), "actor.id") {
		t.Fatalf("start with a view on a masked path: %v, want refused_compile naming actor.id", err)
	}
}

// TestHistoryBuiltinWithoutView: a rule asking for a view its bundle does not declare fails closed.
func TestHistoryBuiltinWithoutView(t *testing.T) {
	srv := startServer(t, app.Config{BundleDir: "testdata/noview"})
	resp := decideOK(t, srv, refund("clerk-1", "1.00", "n1"))
	if resp.GetEffect() != tollgatev1.Effect_EFFECT_DENY || resp.GetReasons()[0].GetCode() != "POLICY_ERROR" {
		t.Fatalf("rule reading an undeclared view: %s %v, want DENY POLICY_ERROR", resp.GetEffect(), resp.GetReasons())
	}
}

// TestHistoryForgetsAFailedCommit: a decision counts for its key as soon as its record is queued, so the
// next decision on the key need not wait for the commit; when the commit then fails, the decision was
// not made (the caller gets Unavailable) and no longer counts.
func TestHistoryForgetsAFailedCommit(t *testing.T) {
	var faults *audittest.FaultStore
	srv := startServer(t, app.Config{BundleDir: refundsBundle, WrapAuditStore: func(s audit.Store) audit.Store {
		faults = audittest.NewFaultStore(s)
		return faults
	}})
	faults.FailAppends(1000, errors.New("disk detached"))
	if _, err := srv.Client.Decide(context.Background(), refund("clerk-1", "10.00", "f1")); status.Code(err) != codes.Unavailable {
		t.Fatalf("refund with the audit store failing: %v, want Unavailable", err)
	}
	faults.Heal()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := srv.Client.Decide(context.Background(), refund("clerk-1", "10.00", fmt.Sprintf("f2-%d", time.Now().UnixNano())))
		if err == nil {
			wantDecision(t, resp, tollgatev1.Effect_EFFECT_ALLOW, "0 prior refunds")
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the service did not recover from the store failure: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestHistoryKeyWaitFailsClosed: a decision that cannot get its history key before its deadline (here
// the test holds the key) is not made: the engine turns it into a DENY with EVALUATION_TIMEOUT, and the
// caller, whose deadline has passed, gets DeadlineExceeded. A decision on another key does not wait, and
// once the key is free the next decision on it counts nothing of the refused one.
func TestHistoryKeyWaitFailsClosed(t *testing.T) {
	srv := startServer(t, app.Config{BundleDir: refundsBundle})
	held, err := srv.App.History().Begin(context.Background(), refund("clerk-1", "1.00", "held"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	// The answer cannot reach the caller after its deadline: DeadlineExceeded, or Unavailable when the
	// server gives up writing the DENY first.
	if _, err := srv.Client.Decide(ctx, refund("clerk-1", "1.00", "w1")); status.Code(err) != codes.DeadlineExceeded && status.Code(err) != codes.Unavailable {
		t.Fatalf("decision waiting for a held key: %v, want DeadlineExceeded or Unavailable", err)
	}
	other, err := srv.Client.Decide(context.Background(), refund("clerk-2", "1.00", "w2"))
	if err != nil || other.GetEffect() != tollgatev1.Effect_EFFECT_ALLOW {
		t.Fatalf("decision on another key: %v %v, want ALLOW", other.GetEffect(), err)
	}
	held.Release()
	wantDecision(t, decideOK(t, srv, refund("clerk-1", "1.00", "w3")), tollgatev1.Effect_EFFECT_ALLOW, "0 prior refunds")
}
