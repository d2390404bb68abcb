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
)

func userEvent(id, eventID string, version uint64, status string) *tollgatev1.ChangeEvent {
	rec, err := structpb.NewStruct(map[string]any{
		"status": status, "roles": []any{"BUYER"}, "sites": []any{"DC1"},
		"approval_limits": map[string]any{"PO": map[string]any{"amount": "5000.00", "currency": "USD"}},
	})
	if err != nil {
		panic(err)
	}
	return &tollgatev1.ChangeEvent{EventId: eventID, Kind: "user", Key: id, Version: version, Op: tollgatev1.ChangeOp_CHANGE_OP_UPSERT, Record: rec}
}

func TestMasterDataApplyOverGRPC(t *testing.T) {
	srv := startServer(t, app.Config{})
	ctx := context.Background()

	before, err := srv.Client.Decide(ctx, poSubmit("u_new", "100.00"))
	if err != nil {
		t.Fatal(err)
	}
	if before.GetReasons()[0].GetCode() != "UNKNOWN_USER" {
		t.Fatalf("before apply: %v, want UNKNOWN_USER", before.GetReasons())
	}

	bad := userEvent("u_bad", "ev-bad", 1, "ACTIVE")
	bad.Record.Fields["status"] = structpb.NewStringValue("SLEEPING")
	resp, err := srv.Client.ApplyMasterData(ctx, []*tollgatev1.ChangeEvent{
		userEvent("u_new", "ev-1", 2, "ACTIVE"),
		userEvent("u_new", "ev-1", 2, "ACTIVE"),   // same event id again
		userEvent("u_new", "ev-2", 1, "INACTIVE"), // older version
		bad,
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range resp.GetResults() {
		got = append(got, r.GetOutcome().String())
	}
	want := "EVENT_OUTCOME_APPLIED EVENT_OUTCOME_DUPLICATE EVENT_OUTCOME_STALE EVENT_OUTCOME_INVALID"
	if strings.Join(got, " ") != want {
		t.Fatalf("outcomes = %v, want %s", got, want)
	}
	if msg := resp.GetResults()[3].GetError(); !strings.Contains(msg, "status") {
		t.Errorf("invalid event error %q does not name the field", msg)
	}
	if resp.GetRevision() != before.GetMasterdataRevision()+1 {
		t.Errorf("revision after apply = %d, want %d", resp.GetRevision(), before.GetMasterdataRevision()+1)
	}

	after, err := srv.Client.Decide(ctx, poSubmit("u_new", "100.00"))
	if err != nil {
		t.Fatal(err)
	}
	if after.GetReasons()[0].GetCode() == "UNKNOWN_USER" || after.GetMasterdataRevision() != resp.GetRevision() {
		t.Errorf("after apply: %v at revision %d, want the new user known at revision %d", after.GetReasons(), after.GetMasterdataRevision(), resp.GetRevision())
	}

	rec, err := srv.Client.GetMasterData(ctx, "user", "u_new")
	if err != nil {
		t.Fatal(err)
	}
	if rec.GetVersion() != 2 || rec.GetEventId() != "ev-1" || rec.GetRecord().GetFields()["status"].GetStringValue() != "ACTIVE" {
		t.Errorf("get = %v", rec)
	}
	if _, err := srv.Client.GetMasterData(ctx, "user", "u_bad"); status.Code(err) != codes.NotFound {
		t.Errorf("get of a rejected record: %v, want NotFound", err)
	}
	_, err = srv.Client.GetMasterData(ctx, "planet", "earth")
	assertFieldViolation(t, err, "kind")

	st, err := srv.Client.MasterDataStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.GetRevision() != resp.GetRevision() || st.GetLastEventId() != "ev-1" {
		t.Errorf("status = %v", st)
	}
	counts := map[string]uint64{}
	for _, c := range st.GetCounts() {
		counts[c.GetKind()] = c.GetCount()
	}
	if len(counts) != 12 || counts["user"] == 0 || counts["ai_control"] != 1 {
		t.Errorf("counts = %v, want all 12 kinds with demo data", counts)
	}
}
