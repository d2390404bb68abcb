package engine_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/ir"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/policies"
	"github.com/tollgate/tollgate/server/bundles"
	"github.com/tollgate/tollgate/server/engine"
	"github.com/tollgate/tollgate/server/engine/gatecorpus"
	"github.com/tollgate/tollgate/server/engine/irvm"
	"github.com/tollgate/tollgate/server/history"
	"github.com/tollgate/tollgate/server/masterdata"
)

func packBundle(tb testing.TB) *bundle.Bundle {
	tb.Helper()
	b, err := bundles.ReadFS(policies.FS, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

type fixedSnapshot struct{ sn *masterdata.Snapshot }

func (f fixedSnapshot) Snapshot() *masterdata.Snapshot { return f.sn }

func gatedEngine(tb testing.TB, md engine.Snapshotter) *engine.Engine {
	tb.Helper()
	eng, err := engine.New(engine.Config{Gate: gatecorpus.Default}, md, zerolog.Nop())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(eng.Close)
	return eng
}

func waitGate(tb testing.TB, c *engine.Compiled) engine.PathStatus {
	tb.Helper()
	select {
	case <-c.GateDone():
	case <-time.After(5 * time.Minute):
		tb.Fatal("the exactness gate did not finish")
	}
	return c.PathStatus()
}

// packOnIR is the gate corpus, a gated engine over its master data, and the embedded pack compiled by
// it, its gate passed (not activated).
func packOnIR(t *testing.T) (*engine.Gate, *engine.Engine, *engine.Compiled) {
	t.Helper()
	g, err := gatecorpus.Default()
	if err != nil {
		t.Fatal(err)
	}
	eng := gatedEngine(t, fixedSnapshot{g.Snapshot})
	c, err := eng.Compile(context.Background(), packBundle(t))
	if err != nil {
		t.Fatal(err)
	}
	if st := waitGate(t, c); st.Path != engine.PathIR {
		t.Fatalf("path status %+v", st)
	}
	return g, eng, c
}

// TestGatePassesOnThePack is the exactness gate on the embedded pack: every gate request (the perf
// corpus, the decision cases, the demo requests) decided on both paths agrees, so the pack decides on
// the IR path, and live decisions there equal topdown's.
func TestGatePassesOnThePack(t *testing.T) {
	g, err := gatecorpus.Default()
	if err != nil {
		t.Fatal(err)
	}
	eng := gatedEngine(t, fixedSnapshot{g.Snapshot})
	c, err := eng.Compile(context.Background(), packBundle(t))
	if err != nil {
		t.Fatal(err)
	}
	st := waitGate(t, c)
	if st.Path != engine.PathIR || st.Gate != engine.GatePassed || st.Checked != len(g.Requests) {
		t.Fatalf("path status %+v, want ir/passed over %d requests", st, len(g.Requests))
	}
	if len(g.Requests) < 1300 || len(g.Prior) == 0 {
		t.Fatalf("gate corpus has %d requests and %d prior decisions", len(g.Requests), len(g.Prior))
	}
	// A second compile of the same revision shares the verdict instead of running the gate again.
	again, err := eng.Compile(context.Background(), packBundle(t))
	if err != nil {
		t.Fatal(err)
	}
	if st2 := waitGate(t, again); st2 != st {
		t.Fatalf("second compile's status %+v, want the first's %+v", st2, st)
	}
}

// TestGateFailsClosedToTopdown breaks the IR path of one compiled bundle (its data document says a
// different PO approval tier) and checks that the gate notices, names a request, and keeps the bundle
// on topdown, whose decisions are the pack's.
func TestGateFailsClosedToTopdown(t *testing.T) {
	g, err := gatecorpus.Default()
	if err != nil {
		t.Fatal(err)
	}
	c, err := engine.Compile(context.Background(), packBundle(t))
	if err != nil {
		t.Fatal(err)
	}
	engine.TamperIRData(t, c)
	st := c.RunGate(context.Background(), g)
	if st.Path != engine.PathTopdown || st.Gate != engine.GateFailed || !strings.Contains(st.Reason, "gate request") {
		t.Fatalf("path status %+v, want topdown/failed naming a request", st)
	}
	eng, err := engine.New(engine.Config{}, fixedSnapshot{g.Snapshot}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	eng.Activate(c)
	hist := history.New(c.HistoryViews())
	for i, r := range g.Requests[:200] {
		if d := c.Compare(context.Background(), r, g.Snapshot, g.At, hist); d == "" {
			continue
		}
		// The IR path differs here; the live decision must be topdown's.
		want := engine.DecideOnTopdown(t, c, r, g.Snapshot, g.At, hist)
		got := eng.Decide(engine.WithHistory(context.Background(), hist), r)
		if got.Effect != want.Effect || got.Reasons[0] != want.Reasons[0] {
			t.Fatalf("request %d decided %s %v, want topdown's %s %v", i, got.Effect, got.Reasons[0], want.Effect, want.Reasons[0])
		}
		return
	}
	t.Fatal("no request tells the tampered IR path from topdown")
}

// TestGateOffWithoutCorpus: an engine without a gate keeps every bundle on topdown, and says so.
func TestGateOffWithoutCorpus(t *testing.T) {
	s, err := masterdata.New(masterdata.Config{Prepare: engine.PrepareRecord})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Config{}, s, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	c, err := eng.Compile(context.Background(), packBundle(t))
	if err != nil {
		t.Fatal(err)
	}
	if st := waitGate(t, c); st.Path != engine.PathTopdown || st.Gate != engine.GateOff {
		t.Fatalf("path status %+v, want topdown/off", st)
	}
}

// FuzzPaths is the differential fuzz target of the exactness gate: any request the API would accept,
// decided over the demo data on both paths, must give the same effect, reasons, approvers, failure and
// facts. Each input is checked twice: as a request in the policy-pack JSON form (seeded with the perf
// corpus's, so mutations reach every family), and as the request the corpus generator draws from a
// fuzzed seed (so every draw is a request the generator could make, malformed values included).
func FuzzPaths(f *testing.F) {
	g, err := gatecorpus.Default()
	if err != nil {
		f.Fatal(err)
	}
	// One seed per request family: enough for the mutator to reach every family, few enough that a
	// short fuzzing run (FUZZTIME=5s in CI) gets past the seeds to new inputs.
	corpus, err := gatecorpus.Corpus(gatecorpus.GateSeed, len(gatecorpus.Families()), 0)
	if err != nil {
		f.Fatal(err)
	}
	for _, r := range corpus {
		raw, err := json.Marshal(r.Input)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw, uint64(len(raw)), uint8(len(raw)))
	}
	c, err := engine.Compile(context.Background(), packBundle(f))
	if err != nil {
		f.Fatal(err)
	}
	hist := history.New(c.HistoryViews())
	for _, r := range g.Prior {
		hist.Observe(r)
	}
	families := len(gatecorpus.Families())
	f.Fuzz(func(t *testing.T, raw []byte, seed uint64, pick uint8) {
		drawn, err := gatecorpus.Corpus(seed, int(pick)%families+1, 0)
		if err != nil {
			t.Fatal(err)
		}
		r := drawn[len(drawn)-1]
		if d := c.Compare(context.Background(), r.Engine, g.Snapshot, g.At, hist); d != "" {
			t.Fatalf("paths differ on the generator's request %v: %s", r.Input, d)
		}
		var in map[string]any
		if json.Unmarshal(raw, &in) != nil {
			return
		}
		fromJSON, err := gatecorpus.NewRequest("fuzz", in)
		if err != nil {
			return
		}
		if d := c.Compare(context.Background(), fromJSON.Engine, g.Snapshot, g.At, hist); d != "" {
			t.Fatalf("paths differ on %s: %s", raw, d)
		}
	})
}

// BenchmarkPaths decides the gate corpus through the engine on topdown and on the IR path, and, for the
// record, evaluates it on the pack partially evaluated with its data known (the first route issue 17
// asked to measure; it is not a path the engine takes: it buys nothing on this pack).
//
//	go test -run '^$' -bench BenchmarkPaths -benchmem ./server/engine/
func BenchmarkPaths(b *testing.B) {
	g, err := gatecorpus.Default()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("partial-eval", func(b *testing.B) {
		pq, err := engine.PreparePartial(context.Background(), packBundle(b))
		if err != nil {
			b.Fatal(err)
		}
		c, err := engine.Compile(context.Background(), packBundle(b))
		if err != nil {
			b.Fatal(err)
		}
		hist := history.New(c.HistoryViews())
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := engine.EvalPrepared(context.Background(), pq, g.Requests[i%len(g.Requests)], g.Snapshot, g.At, hist); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	for _, path := range []string{engine.PathTopdown, engine.PathIR} {
		b.Run(path, func(b *testing.B) {
			c, err := engine.Compile(context.Background(), packBundle(b))
			if err != nil {
				b.Fatal(err)
			}
			if path == engine.PathIR {
				if st := c.RunGate(context.Background(), g); st.Path != engine.PathIR {
					b.Fatalf("gate: %+v", st)
				}
			}
			eng, err := engine.New(engine.Config{}, fixedSnapshot{g.Snapshot}, zerolog.Nop())
			if err != nil {
				b.Fatal(err)
			}
			defer eng.Close()
			eng.Activate(c)
			hctx := engine.WithHistory(context.Background(), history.New(c.HistoryViews()))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				eng.Decide(hctx, g.Requests[i%len(g.Requests)])
				i++
			}
		})
	}
}

// TestReplayOnTheIRPath: a live decision on the IR path, replayed from its recorded facts and instant
// (as the audit log keeps them), gives the same decision on the IR path and on topdown: replay and
// impact analysis take the path of the compiled bundle they are given, and both agree.
func TestReplayOnTheIRPath(t *testing.T) {
	g, eng, c := packOnIR(t)
	ctx := context.Background()
	eng.Activate(c)
	topdownOnly, err := engine.Compile(ctx, packBundle(t)) // no gate: stays on topdown
	if err != nil {
		t.Fatal(err)
	}
	hist := history.New(c.HistoryViews())
	for _, r := range g.Prior {
		hist.Observe(r)
	}
	effects := map[engine.Effect]int{}
	for i, r := range g.Requests {
		if i%7 != 0 {
			continue
		}
		live := eng.Decide(engine.WithHistory(ctx, hist), r)
		raw, err := engine.EncodeFacts(live.Facts)
		if err != nil {
			t.Fatal(err)
		}
		for _, replayed := range []*engine.Compiled{c, topdownOnly} {
			facts, err := engine.DecodeFacts(raw)
			if err != nil {
				t.Fatal(err)
			}
			got := eng.EvaluateRecorded(ctx, replayed, r, live.EvaluatedAt, facts)
			if got.Effect != live.Effect || !slices.Equal(got.Reasons, live.Reasons) || !slices.Equal(got.Approvers, live.Approvers) {
				t.Fatalf("request %d replayed on %s: %s %v %v, live %s %v %v", i, replayed.PathStatus().Path,
					got.Effect, got.Reasons, got.Approvers, live.Effect, live.Reasons, live.Approvers)
			}
		}
		effects[live.Effect]++
	}
	if len(effects) != 3 {
		t.Fatalf("replayed effects %v, want all three", effects)
	}
}

// TestIRInternalErrorFallsBackToTopdown: a decision whose IR evaluation breaks one of irvm's own
// invariants is answered by topdown, with the facts topdown recorded, and counted.
func TestIRInternalErrorFallsBackToTopdown(t *testing.T) {
	g, eng, c := packOnIR(t)
	ctx := context.Background()
	// A plan that appends to a null: what a planner or irvm bug would do.
	broken, err := irvm.New(&ir.Policy{Static: &ir.Static{}, Plans: &ir.Plans{Plans: []*ir.Plan{{Name: "broken", Blocks: []*ir.Block{{Stmts: []ir.Stmt{
		&ir.MakeNullStmt{Target: 2},
		&ir.ArrayAppendStmt{Array: 2, Value: ir.Operand{Value: ir.Local(2)}},
	}}}}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	engine.ReplaceIRProgram(c, broken)
	eng.Activate(c)
	hist := history.New(c.HistoryViews())
	r := g.Requests[len(g.Requests)-1]
	got := eng.Decide(engine.WithHistory(ctx, hist), r)
	want := engine.DecideOnTopdown(t, c, r, g.Snapshot, got.EvaluatedAt, hist)
	if got.Failure != "" || got.Effect != want.Effect || !slices.Equal(got.Reasons, want.Reasons) {
		t.Fatalf("decided %s %v (failure %q), want topdown's %s %v", got.Effect, got.Reasons, got.Failure, want.Effect, want.Reasons)
	}
	gotFacts, _ := engine.EncodeFacts(got.Facts)
	wantFacts, _ := engine.EncodeFacts(want.Facts)
	if string(gotFacts) != string(wantFacts) {
		t.Fatalf("facts %s, want topdown's %s", gotFacts, wantFacts)
	}
	if st := c.PathStatus(); st.Fallbacks != 1 {
		t.Fatalf("fallbacks %d, want 1", st.Fallbacks)
	}
}

// TestLiveShadowCheck: live decisions on the IR path are sampled and decided again on topdown. On the
// pack they agree and the bundle stays on the IR path; once the IR path is made to differ (after its
// gate passed), a sample catches it, the bundle is demoted to topdown with the reason, and the
// decisions after that are topdown's.
func TestLiveShadowCheck(t *testing.T) {
	g, eng, c := packOnIR(t)
	ctx := context.Background()
	eng.Activate(c)
	hist := history.New(c.HistoryViews())
	hctx := engine.WithHistory(ctx, hist)
	decideUntil := func(done func(engine.PathStatus) bool) engine.PathStatus {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for i := 0; ; i++ {
			eng.Decide(hctx, g.Requests[i%len(g.Requests)])
			if st := c.PathStatus(); done(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("after %d decisions: %+v", i, c.PathStatus())
			}
		}
	}
	st := decideUntil(func(st engine.PathStatus) bool { return st.ShadowChecks >= 3 })
	if st.Path != engine.PathIR || st.Gate != engine.GatePassed {
		t.Fatalf("after %d agreeing shadow checks: %+v, want still ir/passed", st.ShadowChecks, st)
	}

	engine.TamperIRData(t, c)
	t.Cleanup(engine.ForgetDemotions) // the pack's revision is demoted for this process from here on
	st = decideUntil(func(st engine.PathStatus) bool { return st.Gate == engine.GateFailed })
	if st.Path != engine.PathTopdown || !strings.Contains(st.Reason, "live shadow check") {
		t.Fatalf("after the IR path was broken: %+v, want topdown, failed by the live shadow check", st)
	}
	for _, r := range g.Requests[:100] {
		got := eng.Decide(hctx, r)
		want := engine.DecideOnTopdown(t, c, r, g.Snapshot, got.EvaluatedAt, hist)
		if got.Effect != want.Effect || !slices.Equal(got.Reasons, want.Reasons) {
			t.Fatalf("after the demotion: %s %v, want topdown's %s %v", got.Effect, got.Reasons, want.Effect, want.Reasons)
		}
	}
	// A later compile of the same revision (replay, impact analysis) stays on topdown too.
	again, err := eng.Compile(ctx, packBundle(t))
	if err != nil {
		t.Fatal(err)
	}
	if st := waitGate(t, again); st.Path != engine.PathTopdown {
		t.Fatalf("a later compile of the demoted revision: %+v, want topdown", st)
	}
}
