package e2e_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/audit"
)

// TestEveryDecisionIsRecordedAndReplays decides, then finds each decision in the log with what an
// auditor needs, verifies the chain and replays a decision exactly.
func TestEveryDecisionIsRecordedAndReplays(t *testing.T) {
	srv := startServer(t, app.Config{})
	ctx := context.Background()
	audits := tollgatev1.NewAuditServiceClient(srv.Client.Conn())

	var ids []string
	for _, amount := range []string{"100.00", "8000.00", "12abc"} {
		resp, err := srv.Client.Decide(ctx, poSubmit("u_buyer1", amount))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, resp.GetDecisionId())
	}

	list, err := audits.ListDecisions(ctx, &tollgatev1.ListDecisionsRequest{ActorId: "u_buyer1", WorkflowId: "wf-77"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range list.GetRecords() {
		got = append(got, r.GetDecisionId())
	}
	if want := []string{ids[2], ids[1], ids[0]}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("listed %v, want newest first %v", got, want)
	}

	denied, err := audits.ListDecisions(ctx, &tollgatev1.ListDecisionsRequest{Effect: tollgatev1.Effect_EFFECT_DENY, ReasonCode: "INVALID_AMOUNT_FORMAT"})
	if err != nil {
		t.Fatal(err)
	}
	if len(denied.GetRecords()) != 1 || denied.GetRecords()[0].GetDecisionId() != ids[2] {
		t.Errorf("filter by effect and reason found %d records", len(denied.GetRecords()))
	}

	rec, err := audits.GetDecision(ctx, &tollgatev1.GetDecisionRequest{DecisionId: ids[1]})
	if err != nil {
		t.Fatal(err)
	}
	r := rec.GetRecord()
	if r.GetSeq() == 0 || len(r.GetHash()) != 32 || len(r.GetPrevHash()) != 32 || r.GetCaller() == "" ||
		r.GetRequest().GetResource().GetAttributes().GetFields()["amount"].GetStringValue() != "8000.00" ||
		r.GetEffect() != tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL || r.GetBundleRevision() == "" ||
		!strings.Contains(r.GetFactsJson(), `"md.get"`) || r.GetLatency() == nil {
		t.Errorf("incomplete record: %v", r)
	}

	v, err := audits.VerifyLog(ctx, &tollgatev1.VerifyLogRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !v.GetOk() || v.GetRecordsChecked() != 3 {
		t.Errorf("verify = %v, want ok with 3 records", v)
	}

	for _, id := range ids {
		rep, err := audits.ReplayDecision(ctx, &tollgatev1.ReplayDecisionRequest{DecisionId: id})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.GetIdentical() {
			t.Errorf("replay of %s differs: %v", id, rep.GetDifferences())
		}
	}
	if _, err := audits.GetDecision(ctx, &tollgatev1.GetDecisionRequest{DecisionId: "01NOPE"}); status.Code(err) != codes.NotFound {
		t.Errorf("get of an unknown id: %v, want NotFound", err)
	}
}

// TestReplayAfterMasterDataChanged replays a decision whose facts have since changed: the replay uses
// the recorded facts and stays identical, while a fresh decision differs.
func TestReplayAfterMasterDataChanged(t *testing.T) {
	srv := startServer(t, app.Config{})
	ctx := context.Background()
	audits := tollgatev1.NewAuditServiceClient(srv.Client.Conn())
	first, err := srv.Client.Decide(ctx, poSubmit("u_buyer1", "100.00"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Client.ApplyMasterData(ctx, []*tollgatev1.ChangeEvent{userEvent("u_buyer1", "ev-term", 99, "TERMINATED")}); err != nil {
		t.Fatal(err)
	}
	now, err := srv.Client.Decide(ctx, poSubmit("u_buyer1", "100.00"))
	if err != nil {
		t.Fatal(err)
	}
	if now.GetEffect() != tollgatev1.Effect_EFFECT_DENY {
		t.Fatalf("decision for a terminated buyer = %v", now)
	}
	rep, err := audits.ReplayDecision(ctx, &tollgatev1.ReplayDecisionRequest{DecisionId: first.GetDecisionId()})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.GetIdentical() || rep.GetReplayed().GetEffect() != tollgatev1.Effect_EFFECT_ALLOW {
		t.Errorf("replay = %v", rep)
	}
}

func TestIdempotencyKeys(t *testing.T) {
	dataDir := t.TempDir()
	srv := startServer(t, app.Config{DataDir: dataDir})
	ctx := context.Background()
	req := poSubmit("u_buyer1", "8000.00")
	req.IdempotencyKey = "evt-0001"

	first, err := srv.Client.Decide(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := srv.Client.Decide(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if again.GetDecisionId() != first.GetDecisionId() || !again.GetReplay() || first.GetReplay() {
		t.Errorf("retry answered %s replay=%v, want the original %s marked as a replay", again.GetDecisionId(), again.GetReplay(), first.GetDecisionId())
	}

	changed := poSubmit("u_buyer1", "9000.00")
	changed.IdempotencyKey = "evt-0001"
	_, err = srv.Client.Decide(ctx, changed)
	if status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), "evt-0001") || !strings.Contains(err.Error(), first.GetDecisionId()) {
		t.Errorf("same key, other payload: %v; want AlreadyExists naming the key and %s", err, first.GetDecisionId())
	}

	// Keys survive a restart.
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	srv2 := startServer(t, app.Config{DataDir: dataDir})
	after, err := srv2.Client.Decide(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if after.GetDecisionId() != first.GetDecisionId() || !after.GetReplay() {
		t.Errorf("retry after restart answered %s, want %s", after.GetDecisionId(), first.GetDecisionId())
	}
	v, err := tollgatev1.NewAuditServiceClient(srv2.Client.Conn()).VerifyLog(ctx, &tollgatev1.VerifyLogRequest{})
	if err != nil || !v.GetOk() {
		t.Errorf("verify after restart = %v, %v", v, err)
	}
}

// TestMaskedFieldsNeverReachTheLog configures a sensitive path and checks the stored request.
func TestMaskedFieldsNeverReachTheLog(t *testing.T) {
	srv := startServer(t, app.Config{Audit: audit.Config{MaskPaths: []string{"resource.attributes.bank_account"}}})
	ctx := context.Background()
	req := poSubmit("u_buyer1", "100.00")
	req.Resource.Attributes.Fields["bank_account"] = structpb.NewStringValue("DE89370400440532013000")
	resp, err := srv.Client.Decide(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := tollgatev1.NewAuditServiceClient(srv.Client.Conn()).GetDecision(ctx, &tollgatev1.GetDecisionRequest{DecisionId: resp.GetDecisionId()})
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.GetRecord().GetRequest().GetResource().GetAttributes().GetFields()["bank_account"].GetStringValue(); strings.Contains(got, "0532013000") {
		t.Errorf("bank account stored as %q", got)
	}
}
