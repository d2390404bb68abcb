package history_test

import (
	"os"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/history"
)

// packViews parses testdata/pack_views.json: the views of policy-pack §6's
// four rules (TH-7 po_split, TH-8 credit_memo_velocity, ERP-6
// invoice_posted, AI-10 ai_daily_value).
func packViews(tb testing.TB) history.Views {
	tb.Helper()
	data, err := os.ReadFile("testdata/pack_views.json")
	if err != nil {
		tb.Fatal(err)
	}
	vs, err := history.Parse(data)
	if err != nil {
		tb.Fatal(err)
	}
	return vs
}

// req builds a request of a human actor with the given attributes.
func req(tb testing.TB, actor, action string, attrs map[string]any) *tollgatev1.DecideRequest {
	tb.Helper()
	st, err := structpb.NewStruct(attrs)
	if err != nil {
		tb.Fatal(err)
	}
	return &tollgatev1.DecideRequest{
		Actor:    &tollgatev1.Actor{Id: actor, Type: tollgatev1.ActorType_ACTOR_TYPE_HUMAN},
		Action:   action,
		Resource: &tollgatev1.Resource{Type: "x", Id: "r", Attributes: st},
	}
}

// aiReq builds an AI agent's request in mode.
func aiReq(tb testing.TB, agent, action string, mode tollgatev1.AIMode, attrs map[string]any) *tollgatev1.DecideRequest {
	tb.Helper()
	r := req(tb, agent, action, attrs)
	r.Actor.Type = tollgatev1.ActorType_ACTOR_TYPE_AI_AGENT
	r.Ai = &tollgatev1.AI{UseCase: "backorder_allocation", Mode: mode}
	return r
}

func po(tb testing.TB, actor, amount, currency string) *tollgatev1.DecideRequest {
	tb.Helper()
	return req(tb, actor, "PO.SUBMIT", map[string]any{
		"amount": amount, "currency": currency, "category": "MRO", "site_id": "DC1", "supplier_id": "S1",
	})
}

// rec builds a committed decision record.
func rec(id string, at time.Time, effect tollgatev1.Effect, r *tollgatev1.DecideRequest) *audit.Record {
	return &audit.Record{
		DecisionId:  id,
		EvaluatedAt: timestamppb.New(at),
		Request:     r,
		Effect:      effect,
		Kind:        tollgatev1.RecordKind_RECORD_KIND_DECISION,
	}
}

const (
	allow    = tollgatev1.Effect_EFFECT_ALLOW
	deny     = tollgatev1.Effect_EFFECT_DENY
	approval = tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL
)

// t0 is an evaluation time in the middle of a UTC day.
var t0 = time.Date(2026, 11, 20, 15, 30, 0, 0, time.UTC)

func mustKey(tb testing.TB, vs history.Views, view string, r *tollgatev1.DecideRequest) string {
	tb.Helper()
	k, ok := vs.KeyOf(view, r)
	if !ok {
		tb.Fatalf("KeyOf(%s): no key", view)
	}
	return k
}

func mustQuery(tb testing.TB, ix *history.Index, view, key string, t time.Time) history.Result {
	tb.Helper()
	res, err := ix.Query(view, key, t)
	if err != nil {
		tb.Fatal(err)
	}
	return res
}
