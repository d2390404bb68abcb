package api_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate/tollgate/bundles/demo"
	"github.com/tollgate/tollgate/policies"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/api"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/sqlite"
	"github.com/tollgate/tollgate/server/bundles"
	"github.com/tollgate/tollgate/server/engine"
	"github.com/tollgate/tollgate/server/history"
	"github.com/tollgate/tollgate/server/masterdata"
)

// impactFixture is a real decision service and audit service over one engine and one SQLite log.
type impactFixture struct {
	audit     *api.AuditServer
	decisions *api.DecisionServer
}

// seedDecisions decides n PO submissions (amounts 100.00 to 29,999.99, one in ten by an unknown user)
// through the real decision service over the embedded pack and records them in a real SQLite audit log.
// It returns the audit service over that log, its impact analysis vetted by a real activation gate.
func seedDecisions(tb testing.TB, n int) *api.AuditServer {
	return newImpactFixture(tb, n, api.ImpactConfig{}).audit
}

// newImpactFixture seeds n decisions as seedDecisions does and returns the audit service, configured
// with impact (its Gate is the real bundles.Manager), and a decision service for live decisions.
func newImpactFixture(tb testing.TB, n int, impact api.ImpactConfig) *impactFixture {
	tb.Helper()
	ctx := context.Background()
	log := zerolog.New(io.Discard)
	md, err := masterdata.New(masterdata.Config{Prepare: engine.PrepareRecord})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := md.LoadDir(demo.FS); err != nil {
		tb.Fatal(err)
	}
	// A generous bound: on a loaded machine a 250ms timeout would record EVALUATION_TIMEOUT denials with
	// partial facts, which the candidate then changes or cannot compare.
	eng, err := engine.New(engine.Config{EvalTimeout: time.Minute}, md, log)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(eng.Close)
	store, err := sqlite.Open(ctx, tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	tracker, err := history.NewTracker(history.TrackerConfig{Store: store, Log: log})
	if err != nil {
		tb.Fatal(err)
	}
	gate, err := bundles.New(bundles.Config{PrepareViews: tracker.Prepare}, eng, store, log)
	if err != nil {
		tb.Fatal(err)
	}
	if c := gate.OfferEmbedded(ctx, policies.FS); c.Outcome != bundles.Activated {
		tb.Fatalf("embedded pack: %+v", c)
	}
	newWriter := func() *audit.Writer {
		w, err := audit.NewWriter(audit.Config{Mode: audit.ModeAsync}, store, log)
		if err != nil {
			tb.Fatal(err)
		}
		return w
	}
	writer := newWriter()
	decisions := api.NewDecisionServer(eng, writer, api.Limits{}, prometheusMetrics(tb), log).WithHistory(tracker)

	const workers = 4
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := w; i < n; i += workers {
				actor := "u_buyer1"
				if i%10 == 0 {
					actor = "u_nobody"
				}
				cents := 10000 + rng.IntN(2990000)
				if _, err := decisions.Decide(ctx, poSubmit(actor, fmt.Sprintf("%d.%02d", cents/100, cents%100))); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
	// Closing the writer commits every seeded record before the analysis lists them.
	if err := writer.Close(); err != nil {
		tb.Fatal(err)
	}
	live := newWriter()
	tb.Cleanup(func() { live.Close() })
	impact.Gate = gate
	return &impactFixture{
		audit:     api.NewAuditServer(store, eng, api.Limits{}, log).WithImpact(impact),
		decisions: api.NewDecisionServer(eng, live, api.Limits{}, prometheusMetrics(tb), log).WithHistory(tracker),
	}
}

func prometheusMetrics(tb testing.TB) *api.Metrics {
	tb.Helper()
	m, err := api.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func poSubmit(actor, amount string) *tollgatev1.DecideRequest {
	attrs, err := structpb.NewStruct(map[string]any{
		"amount": amount, "currency": "USD", "category": "MRO", "site_id": "DC1", "supplier_id": "S1",
	})
	if err != nil {
		panic(err)
	}
	return &tollgatev1.DecideRequest{
		Actor:    &tollgatev1.Actor{Id: actor, Type: tollgatev1.ActorType_ACTOR_TYPE_HUMAN},
		Action:   "PO.SUBMIT",
		Resource: &tollgatev1.Resource{Type: "purchase_order", Id: "PO-" + amount, Attributes: attrs},
	}
}

// raisedBuyerLimit is the embedded pack with the TH-1 buyer limit raised from 5000.00 to 6000.00, as a
// bundle tarball.
func raisedBuyerLimit(tb testing.TB) []byte {
	tb.Helper()
	b, err := bundles.ReadFS(policies.FS, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tiers := b.Data["params"].(map[string]any)["th"].(map[string]any)["po"].(map[string]any)["tiers"].([]any)
	tiers[0].(map[string]any)["max"] = "6000.00"
	data, err := engine.Serialize(b)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// BenchmarkImpactAnalysis10k re-evaluates 10,000 recorded decisions under a candidate: listing them from
// SQLite, normalizing, decoding facts and evaluating on GOMAXPROCS workers, plus compiling the candidate.
// It reports decisions/s; the target is 10,000 in under 10 s.
func BenchmarkImpactAnalysis10k(b *testing.B) {
	const n = 10_000
	srv := seedDecisions(b, n)
	req := &tollgatev1.ImpactAnalysisRequest{Bundle: raisedBuyerLimit(b), Last: n}
	ctx := context.Background()
	b.ReportAllocs()
	start, startCPU := time.Now(), processCPU()
	for b.Loop() {
		resp, err := srv.ImpactAnalysis(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		if resp.GetTotal() != n || resp.GetChanged() == 0 || resp.GetNotComparable() != 0 {
			b.Fatalf("total %d changed %d not comparable %d", resp.GetTotal(), resp.GetChanged(), resp.GetNotComparable())
		}
	}
	perOp := time.Since(start) / time.Duration(b.N)
	b.ReportMetric(float64(n)/perOp.Seconds(), "decisions/s")
	// CPU time per decision does not depend on what else the machine runs, unlike wall time: on an idle
	// machine, wall time per 10k is about 10,000 × cpu-ms/decision ÷ cores.
	if cpu := processCPU() - startCPU; cpu > 0 {
		b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N*n), "cpu-ms/decision")
	}
}

// TestImpactAnalysisCountsChangesByAmount checks the summary over 200 seeded decisions against the
// amounts: every changed decision is a known buyer's PO in (5000.00, 6000.00].
func TestImpactAnalysisCountsChangesByAmount(t *testing.T) {
	srv := seedDecisions(t, 200)
	ctx := context.Background()
	resp, err := srv.ImpactAnalysis(ctx, &tollgatev1.ImpactAnalysisRequest{Bundle: raisedBuyerLimit(t), Last: 5000})
	if err != nil {
		t.Fatal(err)
	}
	var want uint64
	for token := ""; ; {
		list, err := srv.ListDecisions(ctx, &tollgatev1.ListDecisionsRequest{ReasonCode: "PO_TIER_2_APPROVAL", PageSize: 1000, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range list.GetRecords() {
			var whole, frac int
			if _, err := fmt.Sscanf(rec.GetRequest().GetResource().GetAttributes().GetFields()["amount"].GetStringValue(), "%d.%d", &whole, &frac); err != nil {
				t.Fatal(err)
			}
			if cents := whole*100 + frac; cents > 500000 && cents <= 600000 {
				want++
			}
		}
		if token = list.GetNextPageToken(); token == "" {
			break
		}
	}
	if resp.GetTotal() != 200 || resp.GetChanged() != want || resp.GetNotComparable() != 0 || want == 0 {
		t.Fatalf("total %d changed %d not comparable %d; want 200, %d (>0), 0", resp.GetTotal(), resp.GetChanged(), resp.GetNotComparable(), want)
	}
}

// TestImpactAnalysisDeadline: a call that outlives ImpactConfig.Timeout ends with DeadlineExceeded.
func TestImpactAnalysisDeadline(t *testing.T) {
	srv := newImpactFixture(t, 50, api.ImpactConfig{Timeout: time.Millisecond}).audit
	_, err := srv.ImpactAnalysis(context.Background(), &tollgatev1.ImpactAnalysisRequest{Bundle: raisedBuyerLimit(t), Last: 50})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("impact analysis past its deadline: %v, want DeadlineExceeded", err)
	}
}

// TestImpactAnalysisRefusesWhatTheGateRefuses: a candidate without the decision rule is InvalidArgument
// on bundle with the gate's reason.
func TestImpactAnalysisRefusesWhatTheGateRefuses(t *testing.T) {
	srv := seedDecisions(t, 10)
	b, err := bundles.ReadFS(policies.FS, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b.Modules {
		if strings.HasSuffix(b.Modules[i].Path, "main.rego") {
			b.Modules[i].Raw = []byte(strings.Replace(string(b.Modules[i].Raw), "decision :=", "verdict :=", -1))
			b.Modules[i].Parsed = nil
		}
	}
	data, err := engine.Serialize(b)
	if err != nil {
		t.Fatal(err)
	}
	_, err = srv.ImpactAnalysis(context.Background(), &tollgatev1.ImpactAnalysisRequest{Bundle: data, Last: 10})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "defines no rule data.tollgate.decision") {
		t.Fatalf("impact of a bundle without the decision rule: %v, want InvalidArgument naming the rule", err)
	}
}

// BenchmarkLiveDecisionsDuringImpact measures live decision latency (the decision service over the
// embedded pack, audit log included) under a paced load, alone and while a 10,000-decision impact
// analysis runs beside it, and reports both p99s and their ratio:
//
//	go test -run XXX -bench BenchmarkLiveDecisionsDuringImpact -benchtime 1x ./server/api/
//
// Impact evaluations share the engine's evaluators with live decisions, which go first,
// ImpactConfig.Workers (half the CPUs) at a time.
func BenchmarkLiveDecisionsDuringImpact(b *testing.B) {
	const n = 10_000
	// The deadline is generous: the point is the live latency, not how long the analysis takes on a
	// shared machine.
	f := newImpactFixture(b, n, api.ImpactConfig{Timeout: 30 * time.Minute})
	req := &tollgatev1.ImpactAnalysisRequest{Bundle: raisedBuyerLimit(b), Last: n}
	ctx := context.Background()

	// live runs a paced load (2 callers, one decision each per 5 ms at most, so about 400/s) until stop
	// is closed or, with a nil stop, for d; it returns the latencies.
	live := func(stop <-chan struct{}, d time.Duration) []time.Duration {
		var mu sync.Mutex
		var lat []time.Duration
		deadline := time.Now().Add(d)
		var wg sync.WaitGroup
		for w := range 2 {
			wg.Go(func() {
				tick := time.NewTicker(5 * time.Millisecond)
				defer tick.Stop()
				for i := 0; ; i++ {
					if stop != nil {
						select {
						case <-stop:
							return
						default:
						}
					} else if time.Now().After(deadline) {
						return
					}
					start := time.Now()
					if _, err := f.decisions.Decide(ctx, poSubmit("u_buyer1", fmt.Sprintf("%d.%02d", 100+w, i%100))); err != nil {
						b.Error(err)
						return
					}
					took := time.Since(start)
					mu.Lock()
					lat = append(lat, took)
					mu.Unlock()
					<-tick.C
				}
			})
		}
		wg.Wait()
		return lat
	}

	var alone, during []time.Duration
	b.ReportAllocs()
	for b.Loop() {
		done := make(chan struct{})
		start := time.Now()
		var impactErr error
		go func() {
			defer close(done)
			_, impactErr = f.audit.ImpactAnalysis(ctx, req)
		}()
		during = append(during, live(done, 0)...)
		if impactErr != nil {
			b.Fatal(impactErr)
		}
		alone = append(alone, live(nil, time.Since(start))...)
	}
	pAlone, pDuring := p99(alone), p99(during)
	b.ReportMetric(float64(pAlone.Microseconds())/1000, "p99-alone-ms")
	b.ReportMetric(float64(pDuring.Microseconds())/1000, "p99-during-impact-ms")
	b.ReportMetric(float64(pDuring)/float64(pAlone), "p99-ratio")
}

func p99(lat []time.Duration) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	slices.Sort(lat)
	return lat[len(lat)*99/100]
}
