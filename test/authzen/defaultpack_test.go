package authzen_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/authzen"
)

// poSubmit is the README's AuthZEN example: the tour's purchase order.
const poSubmit = `{
  "subject":  {"type": "user", "id": "u_buyer1"},
  "action":   {"name": "PO.SUBMIT"},
  "resource": {"type": "purchase_order", "id": "PO-1001",
               "properties": {"amount": "8000.00", "currency": "USD", "category": "MRO",
                              "site_id": "DC1", "supplier_id": "S1"}},
  "context":  {"workflow_id": "wf-77", "step": "approve"}
}`

// TestDefaultPackPOSubmit: the default pack answers the README's request as over gRPC, REQUIRE_APPROVAL
// mapped to the Access Request & Approval profile's requestable denial, and the audit record holds the
// request as Tollgate's mapping made it.
func TestDefaultPackPOSubmit(t *testing.T) {
	srv := start(t, app.Config{})
	c := newClient(srv, "")
	d := c.evaluate(t, poSubmit)
	if d.Decision || d.Context.Reason != authzen.ApprovalRequired || d.Context.Effect != "REQUIRE_APPROVAL" ||
		!slices.Equal(d.Context.Approvers, []string{"PROCUREMENT_MANAGER"}) || d.Context.Reasons[0].Code != "PO_TIER_2_APPROVAL" {
		t.Fatalf("answer %+v, want false, approval_required by PROCUREMENT_MANAGER for PO_TIER_2_APPROVAL", d.Context)
	}
	rec, err := srv.Client.GetDecision(context.Background(), d.Context.DecisionID)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"actor":{"id":"u_buyer1","type":"HUMAN"},"action":"PO.SUBMIT","resource":{"type":"purchase_order","id":"PO-1001",` +
		`"attributes":{"amount":"8000.00","category":"MRO","currency":"USD","site_id":"DC1","supplier_id":"S1"}},"context":{"step":"approve","workflow_id":"wf-77"}}`
	if got := canonicalJSON(t, rec.GetRequest()); got != canonicalJSON(t, mustRequest(t, want)) {
		t.Fatalf("audit record's request\n got %s\nwant %s", got, want)
	}

	for amount, want := range map[string]struct {
		decision bool
		reason   string
	}{"100.00": {true, ""}, "12abc": {false, "INVALID_AMOUNT_FORMAT"}} {
		// To another supplier: the pack's split-purchase rule (TH-7) would sum a second PO to S1 with the first.
		d := c.evaluate(t, strings.Replace(strings.Replace(poSubmit, "8000.00", amount, 1), `"S1"`, `"S3"`, 1))
		if d.Decision != want.decision || d.Context.Reason != want.reason {
			t.Errorf("amount %s: decision %v reason %q, want %v %q", amount, d.Decision, d.Context.Reason, want.decision, want.reason)
		}
	}
}

// TestDefaultPackDemoRequests: every demo request (bundles/demo/requests), written the AuthZEN way,
// gets the answer gRPC Decide gives it: the same effect and reasons, approvers beside approval_required.
// Each path has a service of its own, so neither sees the other's decisions through the history rules
// (the demo's POs are one buyer's, to one supplier and site).
func TestDefaultPackDemoRequests(t *testing.T) {
	srv, grpcSrv := start(t, app.Config{}), start(t, app.Config{})
	c := newClient(srv, "")
	files, err := filepath.Glob("../../bundles/demo/requests/0*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("demo requests: %v %v", files, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		req := mustRequest(t, string(data))
		viaGRPC, err := grpcSrv.Client.Decide(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		d := c.evaluate(t, asEvaluation(t, req))
		gotReasons := make([]string, len(d.Context.Reasons))
		for i, r := range d.Context.Reasons {
			gotReasons[i] = r.Code + ": " + r.Message
		}
		var wantReasons []string
		for _, r := range viaGRPC.GetReasons() {
			wantReasons = append(wantReasons, r.GetCode()+": "+r.GetMessage())
		}
		effect := strings.TrimPrefix(viaGRPC.GetEffect().String(), "EFFECT_")
		if d.Context.Effect != effect || d.Decision != (effect == "ALLOW") || !slices.Equal(gotReasons, wantReasons) ||
			!slices.Equal(d.Context.Approvers, viaGRPC.GetApprovers()) {
			t.Errorf("%s: AuthZEN answered %v %+v, gRPC %s %v %v", filepath.Base(f), d.Decision, d.Context, effect, wantReasons, viaGRPC.GetApprovers())
		}
	}
}

// TestIdempotencyKey: context.idempotency_key is the request's idempotency key: a retry gets the
// original decision, the key with another payload is refused 409 naming it.
func TestIdempotencyKey(t *testing.T) {
	srv := start(t, app.Config{})
	c := newClient(srv, "")
	keyed := strings.Replace(poSubmit, `"step": "approve"`, `"step": "approve", "idempotency_key": "evt-authzen-1"`, 1)
	first := c.evaluate(t, keyed)
	retry := c.evaluate(t, keyed)
	if retry.Context.DecisionID != first.Context.DecisionID || !retry.Context.Replay || first.Context.Replay {
		t.Fatalf("retry %+v of %+v: want the same decision_id, replay", retry.Context, first.Context)
	}
	r := c.post(t, authzen.EvaluationPath, strings.Replace(keyed, "8000.00", "8000.01", 1))
	if r.status != http.StatusConflict || !strings.Contains(string(r.body), first.Context.DecisionID) {
		t.Fatalf("another payload with the key: %d %s, want 409 naming %s", r.status, r.body, first.Context.DecisionID)
	}
}

func mustRequest(t testing.TB, data string) *tollgatev1.DecideRequest {
	t.Helper()
	req, err := tollgate.ParseDecideRequestJSON([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func canonicalJSON(t testing.TB, req *tollgatev1.DecideRequest) string {
	t.Helper()
	data, err := protojson.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(v) // map keys sorted
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// subjectTypes is the README's mapping table read backwards.
var subjectTypes = map[tollgatev1.ActorType]string{
	tollgatev1.ActorType_ACTOR_TYPE_HUMAN:    "user",
	tollgatev1.ActorType_ACTOR_TYPE_SERVICE:  "service",
	tollgatev1.ActorType_ACTOR_TYPE_AI_AGENT: "agent",
}

// asEvaluation writes a gRPC decision request as an AuthZEN evaluation, per the mapping.
func asEvaluation(t testing.TB, req *tollgatev1.DecideRequest) map[string]any {
	t.Helper()
	subject := map[string]any{"type": subjectTypes[req.GetActor().GetType()], "id": req.GetActor().GetId()}
	if obo := req.GetActor().GetOnBehalfOf(); obo != "" {
		subject["properties"] = map[string]any{"on_behalf_of": obo}
	}
	ctx := map[string]any{}
	for k, v := range req.GetContext() {
		ctx[k] = v
	}
	if ai := req.GetAi(); ai != nil {
		ctx["ai"] = map[string]any{
			"use_case": ai.GetUseCase(), "mode": strings.TrimPrefix(ai.GetMode().String(), "AI_MODE_"),
			"confidence": ai.GetConfidence(), "explanation": ai.GetExplanation(), "model_version": ai.GetModelVersion(),
		}
	}
	return map[string]any{
		"subject":  subject,
		"action":   map[string]any{"name": req.GetAction()},
		"resource": map[string]any{"type": req.GetResource().GetType(), "id": req.GetResource().GetId(), "properties": req.GetResource().GetAttributes().AsMap()},
		"context":  ctx,
	}
}
