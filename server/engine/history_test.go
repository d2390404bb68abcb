package engine_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/engine"
	"github.com/tollgate/tollgate/server/history"
)

var historyNow = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

// historyIndex is the "orders" view of testdata/history holding two released orders of u1 for
// reference INV-7 (written with other spacing and case: the key is normalized) 10 and 50 minutes ago,
// and one of 70 minutes ago, outside the 1h window.
func historyIndex(t *testing.T, views history.Views) *history.Index {
	t.Helper()
	ix := history.New(views)
	for i, ago := range []time.Duration{10 * time.Minute, 50 * time.Minute, 70 * time.Minute} {
		attrs, err := structpb.NewStruct(map[string]any{"ref": " inv-7", "amount": "12.50", "currency": "USD"})
		if err != nil {
			t.Fatal(err)
		}
		ix.Observe(&audit.Record{
			DecisionId:  []string{"d1", "d2", "d3"}[i],
			EvaluatedAt: timestamppb.New(historyNow.Add(-ago)),
			Effect:      tollgatev1.Effect_EFFECT_ALLOW,
			Kind:        tollgatev1.RecordKind_RECORD_KIND_DECISION,
			Request: &tollgatev1.DecideRequest{Action: "SO.RELEASE", Actor: &tollgatev1.Actor{Id: "u1"},
				Resource: &tollgatev1.Resource{Attributes: attrs}},
		})
	}
	return ix
}

func historyRequest(view string, key []any) *engine.Request {
	r := request("SO.RELEASE", map[string]any{"view": view, "key": key})
	return r
}

// TestHistoryBuiltin: the built-in answers from the index in the context at the evaluation time,
// normalizes the key, records its answer as a fact, and a re-evaluation with those facts and no index
// gives the same decision.
func TestHistoryBuiltin(t *testing.T) {
	eng, _, _ := newEngine(t, "history", engine.Config{Clock: func() time.Time { return historyNow }})
	c, _ := eng.Active()
	ix := historyIndex(t, c.HistoryViews())
	ctx := engine.WithHistory(context.Background(), ix)

	res := eng.Decide(ctx, historyRequest("orders", []any{"u1", "INV-7"}))
	if res.Effect != engine.Allow || res.Reasons[0].Message != "2 25.00 d1,d2 0" {
		t.Fatalf("decision %s %v, want ALLOW \"2 25.00 d1,d2 0\"", res.Effect, res.Reasons)
	}
	facts, err := engine.EncodeFacts(res.Facts)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"builtin":"tollgate.history","args":["orders",["u1","INV-7"]],"result":{"count":2,"decision_ids":["d1","d2"],"sums":{"USD":"25.00"},"unvalued":[]}}`
	if !strings.Contains(string(facts), want) {
		t.Fatalf("facts %s\nlack %s", facts, want)
	}

	// Replay: no index at all, a later instant; the facts answer.
	cache, err := engine.DecodeFacts(facts)
	if err != nil {
		t.Fatal(err)
	}
	again := eng.EvaluateRecorded(context.Background(), c, historyRequest("orders", []any{"u1", "INV-7"}), historyNow, cache)
	if again.Effect != res.Effect || again.Reasons[0] != res.Reasons[0] {
		t.Fatalf("replay from facts: %s %v, want %s %v", again.Effect, again.Reasons, res.Effect, res.Reasons)
	}
	// A read the facts do not hold fails: a replay never consults today's history.
	miss := eng.EvaluateRecorded(context.Background(), c, historyRequest("orders", []any{"u2", "INV-7"}), historyNow, cache)
	if miss.Failure != engine.CodePolicyError {
		t.Fatalf("replay of a read not in the facts: %s %v, want POLICY_ERROR", miss.Effect, miss.Reasons)
	}
}

// TestHistoryBuiltinFailsClosed: every way a history read can go wrong is a DENY with POLICY_ERROR.
func TestHistoryBuiltinFailsClosed(t *testing.T) {
	eng, _, logs := newEngine(t, "history", engine.Config{Clock: func() time.Time { return historyNow }})
	c, _ := eng.Active()
	ctx := engine.WithHistory(context.Background(), historyIndex(t, c.HistoryViews()))
	for name, tc := range map[string]struct {
		ctx  context.Context
		req  *engine.Request
		want string
	}{
		"no index":         {context.Background(), historyRequest("orders", []any{"u1", "INV-7"}), "no decision history"},
		"undeclared view":  {ctx, historyRequest("refunds", []any{"u1"}), "unknown history view"},
		"too few values":   {ctx, historyRequest("orders", []any{"u1"}), "key has 2 fields, got 1"},
		"empty value":      {ctx, historyRequest("orders", []any{"u1", " "}), "empty key value"},
		"non-string value": {ctx, historyRequest("orders", []any{"u1", 7}), "key[1]: want string"},
		"key not an array": {ctx, request("SO.RELEASE", map[string]any{"view": "orders", "key": "u1"}), "want array"},
	} {
		t.Run(name, func(t *testing.T) {
			res := eng.Decide(tc.ctx, tc.req)
			if res.Effect != engine.Deny || res.Failure != engine.CodePolicyError {
				t.Fatalf("%s %v, want DENY POLICY_ERROR", res.Effect, res.Reasons)
			}
			if !strings.Contains(logs.String(), tc.want) {
				t.Fatalf("log lacks %q:\n%s", tc.want, logs.String())
			}
		})
	}
}
