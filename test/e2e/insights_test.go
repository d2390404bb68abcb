package e2e_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/app"
)

// TestInsights: decisions made through the real service show in every InsightsService figure over
// gRPC, exactly: volume by effect and by action, exceptions and their reasons, the approval rate, AI
// autonomy, an idempotent replay and a conflict, the delay of a PO.SUBMIT approved by a later
// PO.APPROVE on the same purchase order, an approval still open, and the startup bundle's activation.
func TestInsights(t *testing.T) {
	ctx := context.Background()
	s := startServer(t, app.Config{})
	c := s.Client
	start := time.Now()

	effects := map[tollgatev1.Effect]int64{}
	decide := func(req *tollgatev1.DecideRequest, want tollgatev1.Effect) *tollgatev1.DecideResponse {
		t.Helper()
		resp, err := c.Decide(ctx, req)
		if err != nil {
			t.Fatalf("decide %s: %v", req.GetAction(), err)
		}
		if resp.GetEffect() != want {
			t.Fatalf("decide %s on %s: %s %v, want %s", req.GetAction(), req.GetResource().GetId(), resp.GetEffect(), resp.GetReasons(), want)
		}
		if !resp.GetReplay() {
			effects[want]++
		}
		return resp
	}
	po := func(actor, id, amount string) *tollgatev1.DecideRequest {
		r := poSubmit(actor, amount)
		r.Resource.Id = id
		return r
	}
	// PO-A needs approval and gets it; PO-B needs approval and waits.
	decide(po("u_buyer1", "PO-A", "12000.00"), tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL)
	decide(po("u_buyer1", "PO-B", "13000.00"), tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL)
	time.Sleep(1200 * time.Millisecond) // a delay of more than a second: histogram bin above 0
	approve, err := structpb.NewStruct(map[string]any{"amount": "12000.00", "currency": "USD", "category": "MRO",
		"site_id": "DC1", "supplier_id": "S1", "created_by": "u_buyer1"})
	if err != nil {
		t.Fatal(err)
	}
	decide(&tollgatev1.DecideRequest{Actor: &tollgatev1.Actor{Id: "u_pm1", Type: tollgatev1.ActorType_ACTOR_TYPE_HUMAN},
		Action: "PO.APPROVE", Resource: &tollgatev1.Resource{Type: "purchase_order", Id: "PO-A", Attributes: approve}},
		tollgatev1.Effect_EFFECT_ALLOW)
	// A retry of a keyed decision is a replay; the key with another payload a conflict.
	// PO-C is u_pm1's: after u_buyer1's two POs it would be a suspected split purchase (TH-7).
	keyed := po("u_pm1", "PO-C", "100.00")
	keyed.IdempotencyKey = "insights-k1"
	decide(keyed, tollgatev1.Effect_EFFECT_ALLOW)
	if resp := decide(keyed, tollgatev1.Effect_EFFECT_ALLOW); !resp.GetReplay() {
		t.Fatal("retry not answered as a replay")
	}
	conflicting := po("u_pm1", "PO-C", "200.00")
	conflicting.IdempotencyKey = "insights-k1"
	if _, err := c.Decide(ctx, conflicting); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("conflicting retry: %v, want AlreadyExists", err)
	}
	decide(poSubmit("u_nobody", "100.00"), tollgatev1.Effect_EFFECT_DENY)
	// An AI agent acting on its own, and one handing over to a human.
	alloc, _ := structpb.NewStruct(map[string]any{"customer_id": "C1", "item_id": "I1", "site_id": "DC1", "qty": 10, "value": "125.00", "currency": "USD"})
	decide(&tollgatev1.DecideRequest{Actor: &tollgatev1.Actor{Id: "agent_alloc", Type: tollgatev1.ActorType_ACTOR_TYPE_AI_AGENT},
		Action: "ALLOCATION.CREATE", Resource: &tollgatev1.Resource{Type: "allocation", Id: "AL-1", Attributes: alloc},
		Ai: &tollgatev1.AI{UseCase: "backorder_allocation", Mode: tollgatev1.AIMode_AI_MODE_EXECUTE, Confidence: 0.95,
			Explanation: "oldest backorder", ModelVersion: "alloc-2026.11"}}, tollgatev1.Effect_EFFECT_ALLOW)
	inv, _ := structpb.NewStruct(map[string]any{"supplier_id": "S1", "discrepancy_class": "PRICE", "variance_amount": "120.00", "currency": "USD"})
	decide(&tollgatev1.DecideRequest{Actor: &tollgatev1.Actor{Id: "agent_ap", Type: tollgatev1.ActorType_ACTOR_TYPE_AI_AGENT},
		Action: "INVOICE.RESOLVE_DISCREPANCY", Resource: &tollgatev1.Resource{Type: "supplier_invoice", Id: "INV-1", Attributes: inv},
		Ai: &tollgatev1.AI{UseCase: "invoice_discrepancy", Mode: tollgatev1.AIMode_AI_MODE_EXECUTE, Confidence: 0.97,
			Explanation: "price list changed", ModelVersion: "ap-2026.11"}}, tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL)

	ins := tollgatev1.NewInsightsServiceClient(c.Conn())
	q := &tollgatev1.InsightsQuery{From: timestamppb.New(start.Add(-time.Hour)), To: timestamppb.New(time.Now().Add(time.Hour))}

	vol, err := ins.GetVolume(ctx, &tollgatev1.GetVolumeRequest{Query: q})
	if err != nil {
		t.Fatal(err)
	}
	var got [3]int64
	for _, p := range vol.GetPoints() {
		got[0] += p.GetCounts().GetAllow()
		got[1] += p.GetCounts().GetDeny()
		got[2] += p.GetCounts().GetRequireApproval()
	}
	want := [3]int64{effects[tollgatev1.Effect_EFFECT_ALLOW], effects[tollgatev1.Effect_EFFECT_DENY], effects[tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL]}
	if got != want {
		t.Errorf("volume allow/deny/require_approval %v, want %v", got, want)
	}

	byAction := &tollgatev1.InsightsQuery{From: q.From, To: q.To, GroupBy: tollgatev1.InsightsGroup_INSIGHTS_GROUP_ACTION, Granularity: tollgatev1.Granularity_GRANULARITY_HOUR}
	rates, err := ins.GetApprovals(ctx, &tollgatev1.GetApprovalsRequest{Query: byAction})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rates.GetRates() {
		if r.GetAction() == "PO.SUBMIT" && (r.GetDecisions() != 4 || r.GetRequireApproval() != 2 || r.GetRate() != 0.5) {
			t.Errorf("PO.SUBMIT approval rate %+v, want 2 of 4 (the replay is not a decision)", r)
		}
	}

	exc, err := ins.GetExceptions(ctx, &tollgatev1.GetExceptionsRequest{Query: q})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]int64{}
	for _, r := range exc.GetTopReasons() {
		reasons[r.GetCode()] = r.GetCount()
	}
	if reasons["PO_TIER_2_APPROVAL"] != 2 || reasons["AI_HUMAN_APPROVAL_REQUIRED"] != 1 {
		t.Errorf("top reasons %v, want PO_TIER_2_APPROVAL 2 and AI_HUMAN_APPROVAL_REQUIRED 1", reasons)
	}

	auto, err := ins.GetAutonomy(ctx, &tollgatev1.GetAutonomyRequest{Query: q})
	if err != nil {
		t.Fatal(err)
	}
	if len(auto.GetAgents()) != 2 {
		t.Fatalf("autonomy %v, want two agents", auto.GetAgents())
	}
	if a := auto.GetAgents()[0]; a.GetAgentId() != "agent_alloc" || a.GetExecuteRequests() != 1 || a.GetAllowed() != 1 || a.GetAllowedShare() != 1 {
		t.Errorf("agent_alloc %+v, want 1 EXECUTE allowed", a)
	}
	if a := auto.GetAgents()[1]; a.GetAgentId() != "agent_ap" || a.GetHandedToHuman() != 1 || a.GetHandedToHumanShare() != 1 {
		t.Errorf("agent_ap %+v, want 1 EXECUTE handed to a human", a)
	}

	retries, err := ins.GetRetries(ctx, &tollgatev1.GetRetriesRequest{Query: q})
	if err != nil {
		t.Fatal(err)
	}
	if retries.GetReplays() != 1 || retries.GetConflicts() != 1 {
		t.Errorf("retries: %d replays, %d conflicts; want 1 and 1", retries.GetReplays(), retries.GetConflicts())
	}

	delays, err := ins.GetApprovalDelays(ctx, &tollgatev1.GetApprovalDelaysRequest{Query: q})
	if err != nil {
		t.Fatal(err)
	}
	if len(delays.GetDelays()) != 1 {
		t.Fatalf("approval delays %v, want PO.SUBMIT at DC1", delays.GetDelays())
	}
	d := delays.GetDelays()[0]
	p50 := d.GetP50().AsDuration()
	if d.GetAction() != "PO.SUBMIT" || d.GetApprovalAction() != "PO.APPROVE" || d.GetSiteId() != "DC1" || d.GetApproved() != 1 || d.GetOpen() != 1 ||
		p50 < time.Second || p50 > time.Since(start)*11/10 {
		t.Errorf("approval delay %+v, want 1 approved after 1.2s to %s, 1 open", d, time.Since(start))
	}

	breaches, err := ins.ListSLABreaches(ctx, &tollgatev1.ListSLABreachesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if breaches.GetTotal() != 0 || breaches.GetSla().AsDuration() != 24*time.Hour {
		t.Errorf("SLA breaches %v, want none under the pack's 24h", breaches)
	}

	changes, err := ins.ListPolicyChanges(ctx, &tollgatev1.ListPolicyChangesRequest{Query: q})
	if err != nil {
		t.Fatal(err)
	}
	active, _ := s.App.Engine().Active()
	if n := len(changes.GetChanges()); n != 1 || changes.GetChanges()[0].GetRevision() != active.Revision() {
		t.Errorf("policy changes %v, want the startup activation of %s", changes.GetChanges(), active.Revision())
	}

	bad := &tollgatev1.InsightsQuery{From: q.To, To: q.From}
	if _, err := ins.GetVolume(ctx, &tollgatev1.GetVolumeRequest{Query: bad}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("from after to: %v, want InvalidArgument", err)
	}
}
