package e2e_test

import (
	"context"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/tollgate/tollgate/policies"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/bundles"
	"github.com/tollgate/tollgate/server/engine"
	"github.com/tollgate/tollgate/server/engine/gatecorpus"
	"github.com/tollgate/tollgate/test/testserver"
)

// waitEvaluation polls the policy status until the active bundle's exactness gate has a verdict.
func waitEvaluation(t testing.TB, srv *testserver.Server) *tollgatev1.EvaluationPath {
	t.Helper()
	policy := tollgatev1.NewPolicyServiceClient(srv.Client.Conn())
	deadline := time.Now().Add(3 * time.Minute)
	for {
		st, err := policy.Status(context.Background(), &tollgatev1.PolicyServiceStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if ev := st.GetEvaluation(); ev.GetGate() != engine.GatePending {
			return ev
		}
		if time.Now().After(deadline) {
			t.Fatal("the exactness gate has no verdict after 3 minutes")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFastPathEndToEnd runs the service as `tollgate serve` does, with the IR path on: the policy status
// says the pack passed its gate and decides on the IR path; every gate request sent over gRPC gets the
// answer a topdown-only server gives; each decision replays identically; and impact analysis of the
// pack itself finds nothing changed.
func TestFastPathEndToEnd(t *testing.T) {
	ctx := context.Background()
	fast := startServer(t, app.Config{FastPath: true})
	reference := startServer(t, app.Config{})
	ev := waitEvaluation(t, fast)
	if ev.GetPath() != engine.PathIR || ev.GetGate() != engine.GatePassed || ev.GetChecked() == 0 || ev.GetFallbacks() != 0 {
		t.Fatalf("fast server's evaluation %v, want ir, gate passed", ev)
	}
	if ev := waitEvaluation(t, reference); ev.GetPath() != engine.PathTopdown || ev.GetGate() != engine.GateOff {
		t.Fatalf("reference server's evaluation %v, want topdown, gate off", ev)
	}

	corpus, err := gatecorpus.Corpus(gatecorpus.GateSeed, 240, 0)
	if err != nil {
		t.Fatal(err)
	}
	audits := tollgatev1.NewAuditServiceClient(fast.Client.Conn())
	effects := map[tollgatev1.Effect]int{}
	for i, r := range corpus {
		got, err := fast.Client.Decide(ctx, r.Proto)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		want, err := reference.Client.Decide(ctx, r.Proto)
		if err != nil {
			t.Fatalf("request %d on the reference: %v", i, err)
		}
		if got.GetEffect() != want.GetEffect() || !sameReasons(got.GetReasons(), want.GetReasons()) || !slices.Equal(got.GetApprovers(), want.GetApprovers()) {
			t.Fatalf("request %d (%s): ir path %s %v %v, topdown %s %v %v", i, r.Family,
				got.GetEffect(), got.GetReasons(), got.GetApprovers(), want.GetEffect(), want.GetReasons(), want.GetApprovers())
		}
		effects[got.GetEffect()]++
		if i%8 == 0 {
			rep, err := audits.ReplayDecision(ctx, &tollgatev1.ReplayDecisionRequest{DecisionId: got.GetDecisionId()})
			if err != nil || !rep.GetIdentical() {
				t.Fatalf("replay of request %d = %v, %v; want identical", i, rep, err)
			}
		}
	}
	if len(effects) != 3 {
		t.Fatalf("effects %v, want all three", effects)
	}

	b, err := bundles.ReadFS(policies.FS, nil)
	if err != nil {
		t.Fatal(err)
	}
	candidate, err := engine.Serialize(b)
	if err != nil {
		t.Fatal(err)
	}
	impact, err := audits.ImpactAnalysis(ctx, &tollgatev1.ImpactAnalysisRequest{Bundle: candidate, Last: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if impact.GetTotal() != uint64(len(corpus)) || impact.GetChanged() != 0 {
		t.Fatalf("impact of the pack on its own decisions: total %d changed %d, want %d, 0", impact.GetTotal(), impact.GetChanged(), len(corpus))
	}
}

// sameReasons compares reasons of two servers' decisions: the same codes and messages, except for the
// ids of earlier decisions a history-aware message names, which each server made itself.
func sameReasons(a, b []*tollgatev1.Reason) bool {
	return slices.EqualFunc(a, b, func(x, y *tollgatev1.Reason) bool {
		return x.GetCode() == y.GetCode() && decisionIDs.ReplaceAllString(x.GetMessage(), "ID") == decisionIDs.ReplaceAllString(y.GetMessage(), "ID")
	})
}

var decisionIDs = regexp.MustCompile(`[0-9A-HJKMNP-TV-Z]{26}`)
