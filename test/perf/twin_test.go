package perf_test

import (
	"context"
	"testing"

	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/tollgate/tollgate/test/perf"
)

// TestOPATwinAgrees is the proof that the stock-OPA bundle is the same policy: over a corpus touching
// every family, stock OPA evaluating the pack with test/perf/opa/md.rego and data.json gives the same
// effect, primary reason and approvers as Tollgate's engine over memdb, request by request.
func TestOPATwinAgrees(t *testing.T) {
	const volume = 1000
	corpus, err := perf.Corpus(corpusSeed, 400, volume)
	if err != nil {
		t.Fatal(err)
	}
	store := newStore(t, perf.VolumeEvents(volume))
	eng := newEngine(t, store)
	pq := opaQuery(t, store)
	inputs := inputValues(t, corpus)
	ctx := context.Background()
	seen := map[string]bool{}
	for i, r := range corpus {
		res := eng.Decide(ctx, r.Engine)
		if res.Failure != "" {
			t.Fatalf("request %d (%s): engine failed closed: %v", i, r.Family, res.Reasons)
		}
		rs, err := pq.Eval(ctx, rego.EvalParsedInput(inputs[i]))
		if err != nil {
			t.Fatalf("request %d: stock opa: %v", i, err)
		}
		got, want := opaDecision(t, rs), engineDecision(res)
		if !got.Equal(want) {
			t.Errorf("request %d (%s) %v: stock opa %s, engine %s", i, r.Family, r.Input, got, want)
		}
		seen[want.Primary] = true
	}
	t.Logf("%d requests, %d distinct primary reasons", len(corpus), len(seen))
	// A corpus that lands on a handful of reasons would prove little.
	if len(seen) < 40 {
		t.Errorf("corpus reached %d distinct primary reasons, want at least 40: %v", len(seen), seen)
	}
}
