package engine_test

import (
	"context"
	"testing"

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
