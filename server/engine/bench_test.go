package engine_test

import (
	"context"
	"testing"

	"github.com/open-policy-agent/opa/v1/topdown/builtins"

	"github.com/tollgate/tollgate/server/engine"
)

// BenchmarkEngineOverhead measures the engine's own cost around evaluation: a tiny policy that reads one
// master-data record, so the figure is input building, snapshot, clock, cache and result parsing.
// Run: go test -run '^$' -bench EngineOverhead -benchmem ./server/engine/
func BenchmarkEngineOverhead(b *testing.B) {
	eng, _, _ := newEngine(b, "ok", engine.Config{})
	req := request("SO.RELEASE", map[string]any{"customer_id": "C9"})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if res := eng.Decide(ctx, req); res.Effect != engine.RequireApproval {
			b.Fatalf("got %v", res.Effect)
		}
	}
}

// BenchmarkEncodeFacts encodes the facts of a typical decision (a user, a customer and an empty
// lookup) directly and through encoding/json, the encoding it must reproduce.
//
//	go test -run '^$' -bench EncodeFacts -benchmem ./server/engine/
func BenchmarkEncodeFacts(b *testing.B) {
	cache, err := engine.DecodeFacts([]byte(`[
		{"builtin":"tollgate.md.get","args":["user","u_buyer1"],"result":{"id":"u_buyer1","status":"ACTIVE","roles":["BUYER","REQUESTER"],"site_id":"S1","manager_id":"u_mgr1","approval_limit":"25000.00","currency":"USD"}},
		{"builtin":"tollgate.md.get","args":["customer","C1001"],"result":{"id":"C1001","status":"ACTIVE","tier":2,"credit_status":"OK","credit_limit":"50000.00","open_ar":"12000.00","open_orders":"3000.00","currency":"USD","delivery_block":false,"account_owner":"u_sales1"}},
		{"builtin":"tollgate.md.lookup","args":["delegation","pair","u1/u2"],"result":[]}]`))
	if err != nil {
		b.Fatal(err)
	}
	for _, enc := range []struct {
		name string
		fn   func(builtins.NDBCache) ([]byte, error)
	}{{"direct", engine.EncodeFacts}, {"encoding-json", engine.EncodeFactsReference}} {
		b.Run(enc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := enc.fn(cache); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
