package perf_test

import (
	"context"
	"io/fs"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/bundles/demo"
	"github.com/tollgate/tollgate/policies"
	"github.com/tollgate/tollgate/server/bundles"
	"github.com/tollgate/tollgate/server/engine"
	"github.com/tollgate/tollgate/server/engine/gatecorpus"
	"github.com/tollgate/tollgate/server/masterdata"
	"github.com/tollgate/tollgate/test/perf"
)

// corpusSeed is the seed of every in-process corpus; cmd/perfrun uses the same default.
const corpusSeed = 6

// perfEnabled skips tb unless TOLLGATE_PERF=1: the long benchmarks run under `make perf`, not `make test`.
func perfEnabled(tb testing.TB) {
	tb.Helper()
	if os.Getenv("TOLLGATE_PERF") != "1" {
		tb.Skip("set TOLLGATE_PERF=1 (make perf) to run")
	}
}

// newStore returns a store holding the demo data plus extra events, applied with the engine's Prepare
// hook as the service does.
func newStore(tb testing.TB, extra []masterdata.Event) *masterdata.Store {
	tb.Helper()
	s, err := masterdata.New(masterdata.Config{Prepare: engine.PrepareRecord})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := s.LoadDir(demo.FS); err != nil {
		tb.Fatalf("load demo data: %v", err)
	}
	const batch = 50_000
	for start := 0; start < len(extra); start += batch {
		res := s.Apply(extra[start:min(start+batch, len(extra))])
		for _, r := range res.Results {
			if r.Outcome != masterdata.OutcomeApplied {
				tb.Fatalf("apply %s: %s %v", r.EventID, r.Outcome, r.Err)
			}
		}
	}
	return s
}

// packWithoutViews returns the embedded pack with its history views removed
// (perf.WriteWithoutHistoryViews), written to a temporary directory: the policy the in-process
// benchmarks and the twin test evaluate. Stock OPA cannot look history up, and the engine evaluated
// outside the decision path has no history index to read (a look-up there fails closed); the cost of
// history is measured through the real service by cmd/perfrun.
func packWithoutViews(tb testing.TB) fs.FS {
	tb.Helper()
	dir := tb.TempDir()
	if _, err := perf.WriteWithoutHistoryViews(dir, policies.FS); err != nil {
		tb.Fatal(err)
	}
	return os.DirFS(dir)
}

// newEngine returns an engine over s with the embedded pack, without its history views, active, on
// the evaluation path the service takes: the IR evaluator once the exactness gate passed (it fails the
// test if the gate does not pass). path PathTopdown keeps it on OPA's topdown instead.
func newEngine(tb testing.TB, s *masterdata.Store, path ...string) *engine.Engine {
	tb.Helper()
	ctx := context.Background()
	b, err := bundles.ReadFS(packWithoutViews(tb), nil)
	if err != nil {
		tb.Fatal(err)
	}
	cfg := engine.Config{EvalTimeout: 5 * time.Second, Gate: gatecorpus.Default}
	topdown := len(path) > 0 && path[0] == engine.PathTopdown
	if topdown {
		cfg.Gate = nil
	}
	eng, err := engine.New(cfg, s, zerolog.Nop())
	if err != nil {
		tb.Fatal(err)
	}
	c, err := eng.Compile(ctx, b)
	if err != nil {
		tb.Fatal(err)
	}
	<-c.GateDone()
	if st := c.PathStatus(); !topdown && st.Path != engine.PathIR {
		tb.Fatalf("the pack is not on the IR path: %+v", st)
	}
	eng.Activate(c)
	return eng
}

// opaQuery prepares data.tollgate.decision with stock OPA over the stock-OPA bundle of the pack, with
// the master data of s exported to data.json: what `opa run --server` evaluates, in-process.
func opaQuery(tb testing.TB, s *masterdata.Store) rego.PreparedEvalQuery {
	tb.Helper()
	dir := tb.TempDir()
	if err := perf.WriteOPABundle(dir, packWithoutViews(tb), os.DirFS("opa"), perf.ExportMasterdata(s.Snapshot())); err != nil {
		tb.Fatal(err)
	}
	pq, err := rego.New(
		rego.Query(engine.DecisionQuery),
		rego.LoadBundle(dir),
		rego.SetRegoVersion(ast.RegoV1),
	).PrepareForEval(context.Background())
	if err != nil {
		tb.Fatalf("prepare stock opa query: %v", err)
	}
	return pq
}

// inputValues converts the corpus inputs to OPA values once, outside any measured loop.
func inputValues(tb testing.TB, corpus []perf.Request) []ast.Value {
	tb.Helper()
	out := make([]ast.Value, len(corpus))
	for i, r := range corpus {
		v, err := ast.InterfaceToValue(r.Input)
		if err != nil {
			tb.Fatal(err)
		}
		out[i] = v
	}
	return out
}

// opaDecision reads the decision of one stock-OPA evaluation.
func opaDecision(tb testing.TB, rs rego.ResultSet) perf.Decision {
	tb.Helper()
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return perf.Decision{Effect: "DENY", Primary: "POLICY_UNDEFINED"}
	}
	obj, ok := rs[0].Expressions[0].Value.(map[string]any)
	if !ok {
		tb.Fatalf("decision is %T", rs[0].Expressions[0].Value)
	}
	d := perf.Decision{}
	d.Effect, _ = obj["effect"].(string)
	if reasons, _ := obj["reasons"].([]any); len(reasons) > 0 {
		r0, _ := reasons[0].(map[string]any)
		d.Primary, _ = r0["code"].(string)
	}
	approvers, _ := obj["approvers"].([]any)
	for _, a := range approvers {
		s, _ := a.(string)
		d.Approvers = append(d.Approvers, s)
	}
	return d
}

// engineDecision reads the decision of one engine result.
func engineDecision(res *engine.Result) perf.Decision {
	d := perf.Decision{Effect: string(res.Effect), Approvers: res.Approvers}
	if len(res.Reasons) > 0 {
		d.Primary = res.Reasons[0].Code
	}
	return d
}

// perfCounter hands out corpus indexes to parallel workers.
type perfCounter struct{ n atomic.Int64 }

func (c *perfCounter) add() int { return int(c.n.Add(1) - 1) }
