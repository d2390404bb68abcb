package policies_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/rs/zerolog"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate/tollgate/server/engine"
)

// benchCases names one representative decision case per family.
var benchCases = []struct{ family, cas string }{
	{"VAL", "amount_precision"},
	{"DR", "delegation_valid"},
	{"ERP", "duplicate_invoice_normalized"},
	{"TH", "match_mixed_lines"},
	{"AI", "ai_tier1_taken"},
}

// engineRequest converts a case request (policy-pack §2 JSON) to the
// engine's request.
func engineRequest(tb testing.TB, raw json.RawMessage) *engine.Request {
	tb.Helper()
	var r struct {
		Actor    struct{ ID, Type, OnBehalfOf string }
		Action   string
		Resource struct {
			Type, ID   string
			Attributes map[string]any
		}
		AI *struct {
			UseCase      string  `json:"use_case"`
			Mode         string  `json:"mode"`
			Confidence   float64 `json:"confidence"`
			Explanation  string  `json:"explanation"`
			ModelVersion string  `json:"model_version"`
		}
		Context map[string]string
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		tb.Fatalf("decode request: %v", err)
	}
	var onBehalf struct {
		Actor struct {
			OnBehalfOf string `json:"on_behalf_of"`
		} `json:"actor"`
	}
	if err := json.Unmarshal(raw, &onBehalf); err != nil {
		tb.Fatalf("decode request: %v", err)
	}
	attrs, err := structpb.NewStruct(r.Resource.Attributes)
	if err != nil {
		tb.Fatalf("attributes: %v", err)
	}
	req := &engine.Request{
		Actor:    engine.Actor{ID: r.Actor.ID, Type: r.Actor.Type, OnBehalfOf: onBehalf.Actor.OnBehalfOf},
		Action:   r.Action,
		Resource: engine.Resource{Type: r.Resource.Type, ID: r.Resource.ID, Attributes: attrs},
		Context:  r.Context,
	}
	if r.AI != nil {
		req.AI = &engine.AI{UseCase: r.AI.UseCase, Mode: r.AI.Mode, Confidence: r.AI.Confidence,
			Explanation: r.AI.Explanation, ModelVersion: r.AI.ModelVersion}
	}
	return req
}

// BenchmarkPack measures one decision per action family through the real
// engine (prepared query, go-memdb snapshot builtins, ND-builtin fact
// recording) and, for comparison, a bare prepared evaluation of the pack.
func BenchmarkPack(b *testing.B) {
	ctx := context.Background()
	bundle := loadPack(b)
	store := newStore(b, nil)
	eng, err := engine.New(engine.Config{}, store, zerolog.Nop())
	if err != nil {
		b.Fatalf("new engine: %v", err)
	}
	compiled, err := engine.Compile(ctx, bundle)
	if err != nil {
		b.Fatalf("compile pack: %v", err)
	}
	eng.Activate(compiled)
	pq := prepare(b, bundle, store.Snapshot())
	byName := map[string]decisionCase{}
	for _, c := range loadCases(b) {
		byName[c.Name] = c
	}
	for _, bc := range benchCases {
		c, ok := byName[bc.cas]
		if !ok {
			b.Fatalf("no case %q", bc.cas)
		}
		req := engineRequest(b, c.Request)
		b.Run("engine/"+bc.family, func(b *testing.B) {
			if res := eng.Decide(ctx, req); res.Failure != "" {
				b.Fatalf("decide %s: %s %v", bc.cas, res.Failure, res.Reasons)
			}
			b.ReportAllocs()
			for b.Loop() {
				eng.Decide(ctx, req)
			}
		})
		input := inputOf(b, c.Request)
		b.Run("prepared/"+bc.family, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				decide(b, pq, input, c.Now)
			}
		})
	}
}
