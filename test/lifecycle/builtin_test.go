package lifecycle_test

import (
	"context"
	"testing"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/test/testserver"
)

// TestBuiltinErrorIsPolicyError: over real gRPC, a bundle whose limit check calls to_number on the
// request's amount answers a malformed amount with DENY POLICY_ERROR, not with its default ALLOW, and
// the replay of that decision is identical.
func TestBuiltinErrorIsPolicyError(t *testing.T) {
	files := map[string]string{
		".manifest": `{"revision": "numbers", "roots": ["tollgate"]}`,
		"tollgate/main.rego": `package tollgate

default decision := {"effect": "ALLOW", "reasons": [{"code": "PO_WITHIN_BUYER_LIMIT", "message": "default"}], "approvers": []}

decision := {"effect": "DENY", "reasons": [{"code": "OVER_LIMIT", "message": "over 5000"}], "approvers": []} if {
	to_number(input.resource.attributes.amount) > 5000
}
`,
	}
	srv := startServer(t, app.Config{BundleDir: writeDir(t, t.TempDir(), files)})
	ctx := context.Background()
	resp, err := srv.client.Decide(ctx, testserver.POSubmit("u_buyer1", "12abc"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetEffect() != tollgatev1.Effect_EFFECT_DENY || resp.GetReasons()[0].GetCode() != "POLICY_ERROR" {
		t.Fatalf("decision on a malformed amount: %v, want DENY POLICY_ERROR", resp)
	}
	replay, err := srv.client.ReplayDecision(ctx, resp.GetDecisionId())
	if err != nil {
		t.Fatal(err)
	}
	if !replay.GetIdentical() || replay.GetReplayed().GetReasons()[0].GetCode() != "POLICY_ERROR" {
		t.Fatalf("replay: identical %t, differences %v, replayed %v", replay.GetIdentical(), replay.GetDifferences(), replay.GetReplayed())
	}
	if ok, err := srv.client.Decide(ctx, testserver.POSubmit("u_buyer1", "100.00")); err != nil || ok.GetEffect() != tollgatev1.Effect_EFFECT_ALLOW {
		t.Fatalf("well-formed amount: %v, %v; want ALLOW", ok, err)
	}
}
