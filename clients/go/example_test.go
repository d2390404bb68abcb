package tollgate_test

import (
	"context"
	"fmt"
	"log"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// An orchestration engine asks before it moves a purchase order to
// "approved", and acts on the effect. The examples that need a server
// compile but do not run.
func ExampleClient_Decide() {
	ctx := context.Background()
	client, err := tollgate.Dial(ctx, "127.0.0.1:7070")
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	attrs, err := structpb.NewStruct(map[string]any{
		"amount": "18250.00", "currency": "USD", "category": "MRO",
		"site_id": "DC1", "supplier_id": "S1", "created_by": "u_buyer1",
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := client.Decide(ctx, &tollgatev1.DecideRequest{
		Actor:    &tollgatev1.Actor{Id: "u_pm1", Type: tollgatev1.ActorType_ACTOR_TYPE_HUMAN},
		Action:   "PO.APPROVE",
		Resource: &tollgatev1.Resource{Type: "purchase_order", Id: "PO-1001", Attributes: attrs},
		Context:  map[string]string{"workflow_id": "wf-77", "step": "approve"},
		// The workflow's own step id: a retried step gets the same decision back.
		IdempotencyKey: "wf-77/approve/1",
	})
	if err != nil {
		// No decision (server unreachable, malformed request): the step must
		// not proceed. Retry with the same idempotency key.
		log.Fatal(err)
	}

	primary := resp.GetReasons()[0]
	switch resp.GetEffect() {
	case tollgatev1.Effect_EFFECT_ALLOW:
		fmt.Println("approve PO-1001:", primary.GetCode())
	case tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL:
		fmt.Println("open an approval task for", strings.Join(resp.GetApprovers(), ", "), "because", primary.GetCode())
	default: // DENY, and anything this client does not know yet
		fmt.Println("reject PO-1001:", primary.GetCode(), primary.GetMessage())
	}
	fmt.Println("decision", resp.GetDecisionId(), "under bundle", resp.GetBundleRevision())
}

// An AI service asks whether it may execute a backorder allocation on its own
// or must hand it over to a human with its recommendation.
func ExampleClient_Decide_aiAgent() {
	ctx := context.Background()
	client, err := tollgate.Dial(ctx, "tollgate.internal:7070",
		tollgate.WithTLSFiles("/etc/tollgate/ca.pem", "/etc/tollgate/alloc-agent.pem", "/etc/tollgate/alloc-agent-key.pem"))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	attrs, err := structpb.NewStruct(map[string]any{
		"customer_id": "C1", "item_id": "I1", "site_id": "DC1", "qty": 40,
		"affected_customers": []any{
			map[string]any{"customer_id": "C1", "qty_delta": 40},
			map[string]any{"customer_id": "C2", "qty_delta": -40},
		},
		"value": "3120.00", "currency": "USD",
	})
	if err != nil {
		log.Fatal(err)
	}
	resp, err := client.Decide(ctx, &tollgatev1.DecideRequest{
		Actor:    &tollgatev1.Actor{Id: "agent_alloc", Type: tollgatev1.ActorType_ACTOR_TYPE_AI_AGENT},
		Action:   "ALLOCATION.CREATE",
		Resource: &tollgatev1.Resource{Type: "allocation", Id: "BO-5531", Attributes: attrs},
		Ai: &tollgatev1.AI{
			UseCase:      "backorder_allocation",
			Mode:         tollgatev1.AIMode_AI_MODE_EXECUTE,
			Confidence:   0.94,
			Explanation:  "C1 backorder is 9 days old; C2 delivery is not due for 12 days",
			ModelVersion: "alloc-2026.11",
		},
	})
	if err != nil {
		log.Fatal(err) // no answer is not a yes: do not execute
	}
	switch resp.GetEffect() {
	case tollgatev1.Effect_EFFECT_ALLOW:
		fmt.Println("executing allocation BO-5531")
	case tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL:
		fmt.Println("handing BO-5531 to", strings.Join(resp.GetApprovers(), ", "), "as a recommendation:", resp.GetReasons()[0].GetCode())
	default:
		fmt.Println("dropping BO-5531:", resp.GetReasons()[0].GetCode())
	}
}

// ERP middleware pushes master-data changes and checks every outcome: an
// INVALID event changed nothing and must be fixed at the source.
func ExampleClient_ApplyMasterData() {
	ctx := context.Background()
	client, err := tollgate.Dial(ctx, "127.0.0.1:7070", tollgate.WithBearerToken("dev-admin-token"))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	events, err := tollgate.ParseChangeEventsNDJSON(strings.NewReader(
		`{"event_id": "erp-88121", "kind": "supplier", "key": "S1", "version": 12, "op": "UPSERT",` +
			` "record": {"id": "S1", "status": "APPROVED", "purchasing_block": false, "payment_block": true}}`))
	if err != nil {
		log.Fatal(err)
	}
	resp, err := client.ApplyMasterData(ctx, events)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range resp.GetResults() {
		if r.GetOutcome() == tollgatev1.EventOutcome_EVENT_OUTCOME_INVALID {
			fmt.Println("rejected", r.GetEventId(), r.GetError())
		}
	}
	fmt.Println("master data at revision", resp.GetRevision())
}

// A caller that holds the request as JSON (a workflow definition, a message
// from another system) parses it with the short enum names of the spec.
func ExampleParseDecideRequestJSON() {
	req, err := tollgate.ParseDecideRequestJSON([]byte(`{
		"actor": {"id": "agent_cs", "type": "AI_AGENT"},
		"action": "CASE.ROUTE",
		"resource": {"type": "case", "id": "CS-311", "attributes": {"customer_id": "C1", "case_tags": ["DAMAGE"]}},
		"ai": {"use_case": "case_routing", "mode": "EXECUTE", "confidence": 0.91,
		       "explanation": "damage claim, standard tier", "model_version": "cs-2026.11"}
	}`))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(req.GetActor().GetType(), req.GetAi().GetMode(), req.GetAction())

	_, err = tollgate.ParseDecideRequestJSON([]byte(`{"actor": {"id": "u1", "type": "ROBOT"}}`))
	fmt.Println(err)
	// Output:
	// ACTOR_TYPE_AI_AGENT AI_MODE_EXECUTE CASE.ROUTE
	// actor.type: invalid value "ROBOT" (want HUMAN, SERVICE or AI_AGENT)
}

func ExampleFormatDecideResponseJSON() {
	out, err := tollgate.FormatDecideResponseJSON(&tollgatev1.DecideResponse{
		DecisionId: "01JQ2B3C4D5E6F7G8H9J0KMNPQ",
		Effect:     tollgatev1.Effect_EFFECT_DENY,
		Reasons: []*tollgatev1.Reason{
			{Code: "CUSTOMER_CREDIT_BLOCKED", Message: "customer C2 is credit BLOCKED"},
		},
		BundleRevision:     "default-2026.03.1",
		MasterdataRevision: 42,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(out))
	// Output:
	// {
	//   "decision_id": "01JQ2B3C4D5E6F7G8H9J0KMNPQ",
	//   "effect": "DENY",
	//   "reasons": [
	//     {
	//       "code": "CUSTOMER_CREDIT_BLOCKED",
	//       "message": "customer C2 is credit BLOCKED"
	//     }
	//   ],
	//   "approvers": [],
	//   "bundle_revision": "default-2026.03.1",
	//   "masterdata_revision": "42",
	//   "evaluated_at": null,
	//   "replay": false
	// }
}

// An auditor walks every DENY of one workflow, newest first, page by page,
// then replays the newest to check the policy still explains it.
func ExampleClient_DecisionPages() {
	ctx := context.Background()
	client, err := tollgate.Dial(ctx, "127.0.0.1:7070")
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	req := &tollgatev1.ListDecisionsRequest{
		WorkflowId: "wf-77",
		Effect:     tollgatev1.Effect_EFFECT_DENY,
		From:       timestamppb.New(time.Now().Add(-24 * time.Hour)),
		PageSize:   200,
	}
	var newest string
	for page, err := range client.DecisionPages(ctx, req) {
		if err != nil {
			log.Fatal(err)
		}
		for _, rec := range page.GetRecords() {
			if newest == "" {
				newest = rec.GetDecisionId()
			}
			line, err := tollgate.FormatJSONLine(rec) // short enum names, one line
			if err != nil {
				log.Fatal(err)
			}
			fmt.Println(string(line))
		}
	}
	if newest == "" {
		return
	}
	rep, err := client.ReplayDecision(ctx, newest)
	if err != nil {
		log.Fatal(err) // NotFound, or its bundle revision is no longer stored
	}
	if !rep.GetIdentical() {
		fmt.Println("replay differs:", strings.Join(rep.GetDifferences(), "; "))
	}
}
