package e2e_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
	"github.com/tollgate/tollgate/server/audit/sqlite"
	"github.com/tollgate/tollgate/test/testserver"
)

// seedLog appends n sealed decision records (audittest.Decision's shape: a request with attributes,
// reasons, facts) to chain "seed" of the audit log in dataDir, in batches, straight through the store:
// a log of realistic size in seconds rather than the minutes n decisions take.
func seedLog(tb testing.TB, dataDir string, n int) {
	tb.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, dataDir)
	if err != nil {
		tb.Fatal(err)
	}
	defer store.Close()
	head := audit.Head{ChainID: "seed"}
	const batch = 1000
	for start := 0; start < n; start += batch {
		recs := make([]*audit.Record, 0, batch)
		for i := start; i < min(start+batch, n); i++ {
			r := audittest.Decision(i)
			r.DecisionId = fmt.Sprintf("seed-%07d", i)
			recs = append(recs, r)
		}
		sealed, next := audittest.Sealed(tb, head, recs...)
		if err := store.Append(ctx, head, audittest.Entries(tb, sealed...)); err != nil {
			tb.Fatal(err)
		}
		head = next
	}
}

// TestExportUnderLoad pages ExportDecisions with small pages while deciders append to the log
// continuously: every record up to the last one exported appears exactly once, in seq order, with no
// gap, and the export saw records committed while it ran. Paging ListDecisions by time instead can skip
// a record committed after a later-evaluated one was listed.
func TestExportUnderLoad(t *testing.T) {
	start := time.Now()
	srv := startServer(t, app.Config{}) // sync: an answered decision is committed
	ctx := context.Background()
	reqs := benchRequests()

	stop := make(chan struct{})
	var deciders sync.WaitGroup
	var decided atomic.Int64
	for w := range 8 {
		deciders.Go(func() {
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := srv.Client.Decide(ctx, reqs[i%len(reqs)]); err != nil {
					t.Error(err)
					return
				}
				decided.Add(1)
			}
		})
	}
	stopDeciders := sync.OnceFunc(func() {
		close(stop)
		deciders.Wait()
	})
	defer stopDeciders()
	for decided.Load() < 500 {
		time.Sleep(10 * time.Millisecond)
	}
	before := decided.Load()

	var seqs []uint64
	pages := 0
	for page, err := range srv.Client.ExportPages(ctx, &tollgatev1.ExportDecisionsRequest{From: timestamppb.New(start), PageSize: 5}) {
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, r := range page.GetRecords() {
			if r.GetChainId() != "default" {
				t.Fatalf("record %s of chain %q", r.GetDecisionId(), r.GetChainId())
			}
			seqs = append(seqs, r.GetSeq())
		}
		if pages == 300 {
			// Deciders faster than the export would keep it going forever; from here it reads to the
			// end of a chain that no longer grows.
			stopDeciders()
		}
	}
	stopDeciders()

	for i, s := range seqs {
		if s != uint64(i)+1 {
			t.Fatalf("exported seq %d at position %d, want %d: a record was skipped or repeated (around: %v)", s, i, i+1, seqs[max(0, i-3):min(len(seqs), i+3)])
		}
	}
	if int64(len(seqs)) <= before {
		t.Errorf("exported %d records, no more than the %d decided before the export began: it saw none committed while it ran", len(seqs), before)
	}
	v, err := srv.Client.VerifyLog(ctx, "default")
	if err != nil || !v.GetOk() || v.GetRecordsChecked() < uint64(len(seqs)) {
		t.Errorf("verify = %v, %v; want ok with at least the %d exported records", v, err, len(seqs))
	}
	t.Logf("%d records in %d pages; %d decided before the export, %d in all", len(seqs), pages, before, decided.Load())
}

// TestDecideWhileVerifiesRun: with a log of 10,000 records and 8 VerifyLog calls in flight, a
// decision that reads the log for its idempotency key is answered before any of the verifies ends.
// Before the decision path had connections of its own, four verifies held every read connection and
// the decision waited for one of them to finish.
func TestDecideWhileVerifiesRun(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds a 10,000-record log")
	}
	dir := t.TempDir()
	seedLog(t, dir, 10_000)
	srv := startServer(t, app.Config{DataDir: dir})
	ctx := context.Background()

	verifyCtx, stopVerifies := context.WithCancel(ctx)
	defer stopVerifies()
	verified := make(chan error, 8)
	var firstVerifyEnded atomic.Int64 // unix nanos
	for range 8 {
		go func() {
			v, err := srv.Client.VerifyLog(verifyCtx, "")
			firstVerifyEnded.CompareAndSwap(0, time.Now().UnixNano())
			if err == nil && (!v.GetOk() || v.GetRecordsChecked() < 10_000) {
				err = fmt.Errorf("verify = %v", v)
			}
			verified <- err
		}()
	}
	time.Sleep(100 * time.Millisecond) // let the verifies reach the server and start walking

	req := poSubmit("u_buyer1", "100.00")
	req.IdempotencyKey = "while-verifying"
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second) // generous: the order below is the test
	defer cancel()
	resp, err := srv.Client.Decide(dctx, req)
	decided := time.Now().UnixNano()
	if err != nil {
		t.Fatalf("Decide while 8 verifies run: %v", err)
	}
	if resp.GetEffect() != tollgatev1.Effect_EFFECT_ALLOW {
		t.Errorf("effect = %v, want ALLOW", resp.GetEffect())
	}
	if ended := firstVerifyEnded.Load(); ended != 0 && ended < decided {
		t.Errorf("the decision was answered %v after the first verify ended: it waited for the verifies", time.Duration(decided-ended))
	}
	// The verifies have made their point; the ones still running or waiting are cancelled.
	stopVerifies()
	for range 8 {
		if err := <-verified; err != nil && status.Code(err) != codes.Canceled {
			t.Error(err)
		}
	}
}

// BenchmarkDecideBesideAuditReads measures sync-mode decisions over gRPC on a 30,000-record log, first
// alone and then with 8 callers running VerifyLog over the whole log in a loop and one paging
// ExportDecisions through it in a loop, b.N decisions in each phase, two ways:
//
//   - closed-loop: benchCallers callers decide back to back. The machine is saturated by decisions
//     alone, so this measures how much of the CPU the readers take from them.
//   - half-load: decisions arrive at a fixed rate, half the closed-loop throughput measured first; a
//     service with headroom should answer about as fast beside the readers as without them. Latency
//     runs from each decision's scheduled start, so a late send counts against it.
//
// The two phases alternate in four rounds each, so other load on the machine weighs on both alike.
// Metrics: p50 and p99 latency of one decision alone and beside the reads (µs), p99-ratio (beside /
// alone), how many verifies and exported records the readers completed beside, and how long one
// verify of the seeded log takes with nothing else running (verify-alone-s).
//
// Run: go test -run '^$' -bench BenchmarkDecideBesideAuditReads -benchtime 4000x ./test/e2e/
func BenchmarkDecideBesideAuditReads(b *testing.B) {
	dir := b.TempDir()
	seedLog(b, dir, 30_000)
	srv := startServer(b, app.Config{DataDir: dir})
	reqs := benchRequests()
	b.Logf("long reads at once: %d", app.Config{}.Limits.EffectiveMaxLongAuditReads())
	t0 := time.Now()
	if v, err := srv.Client.VerifyLog(context.Background(), ""); err != nil || !v.GetOk() {
		b.Fatalf("verify = %v, %v", v, err)
	}
	verifyAlone := time.Since(t0)

	b.Run("closed-loop", func(b *testing.B) {
		compareBesideAuditReads(b, srv, func(n int) []time.Duration { return decideLatencies(b, srv, reqs, n, 0) })
		b.ReportMetric(verifyAlone.Seconds(), "verify-alone-s")
	})
	b.Run("half-load", func(b *testing.B) {
		calibrate := max(b.N/2, 200)
		t0 := time.Now()
		decideLatencies(b, srv, reqs, calibrate, 0)
		rate := float64(calibrate) / time.Since(t0).Seconds() / 2
		compareBesideAuditReads(b, srv, func(n int) []time.Duration { return decideLatencies(b, srv, reqs, n, rate) })
		b.ReportMetric(rate, "decisions/s")
	})
}

// compareBesideAuditReads runs b.N decisions alone and b.N beside the audit readers, in four
// alternating rounds of each, so that whatever else loads the machine meanwhile weighs on both
// sides alike, and reports both.
func compareBesideAuditReads(b *testing.B, srv *testserver.Server, decide func(n int) []time.Duration) {
	const rounds = 4
	b.StopTimer()
	b.ReportAllocs()
	var alone, beside []time.Duration
	var verifies, exported int64
	for r := range rounds {
		n := b.N / rounds
		if r < b.N%rounds {
			n++
		}
		if n == 0 {
			continue
		}
		alone = append(alone, decide(n)...)
		lat, v, e := besideAuditReads(b, srv, func() []time.Duration { return decide(n) })
		beside = append(beside, lat...)
		verifies += v
		exported += e
	}
	slices.Sort(alone)
	slices.Sort(beside)
	reportBeside(b, alone, beside, verifies, exported)
}

// besideAuditReads runs decide (timed) while 8 callers loop over VerifyLog of every chain and one
// loops over an export of every chain, and returns decide's latencies and what the readers completed.
func besideAuditReads(b *testing.B, srv *testserver.Server, decide func() []time.Duration) (lat []time.Duration, verifies, exported int64) {
	b.Helper()
	ctx, stop := context.WithCancel(context.Background())
	var readers sync.WaitGroup
	var nv, ne atomic.Int64
	for range 8 {
		readers.Go(func() {
			for ctx.Err() == nil {
				if _, err := srv.Client.VerifyLog(ctx, ""); err == nil {
					nv.Add(1)
				}
			}
		})
	}
	readers.Go(func() {
		for ctx.Err() == nil {
			for page, err := range srv.Client.ExportPages(ctx, &tollgatev1.ExportDecisionsRequest{}) {
				if err != nil {
					break
				}
				ne.Add(int64(len(page.GetRecords())))
			}
		}
	})
	time.Sleep(200 * time.Millisecond) // the readers are walking the log
	b.StartTimer()
	lat = decide()
	b.StopTimer()
	stop()
	readers.Wait()
	return lat, nv.Load(), ne.Load()
}

func reportBeside(b *testing.B, alone, beside []time.Duration, verifies, exported int64) {
	p := func(lat []time.Duration, q float64) float64 {
		return float64(lat[int(q*float64(len(lat)-1))].Microseconds())
	}
	b.ReportMetric(p(alone, 0.99), "alone-p99-µs")
	b.ReportMetric(p(beside, 0.99), "beside-p99-µs")
	b.ReportMetric(p(alone, 0.50), "alone-p50-µs")
	b.ReportMetric(p(beside, 0.50), "beside-p50-µs")
	b.ReportMetric(p(beside, 0.99)/p(alone, 0.99), "p99-ratio")
	b.ReportMetric(float64(verifies), "verifies")
	b.ReportMetric(float64(exported), "exported")
}

// decideLatencies makes n decisions and returns their latencies, sorted. With rate 0 benchCallers
// goroutines decide back to back, each latency from the call's start; with a rate, decision i is
// sent at i/rate seconds, each on its own goroutine, and its latency runs from that scheduled time.
func decideLatencies(b *testing.B, srv *testserver.Server, reqs []*tollgatev1.DecideRequest, n int, rate float64) []time.Duration {
	b.Helper()
	lat := make([]time.Duration, n)
	decide := func(i int, from time.Time) {
		if _, err := srv.Client.Decide(context.Background(), reqs[i%len(reqs)]); err != nil {
			b.Error(err)
		}
		lat[i] = time.Since(from)
	}
	var wg sync.WaitGroup
	if rate == 0 {
		var next atomic.Int64
		for range benchCallers {
			wg.Go(func() {
				for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
					decide(i, time.Now())
				}
			})
		}
	} else {
		start := time.Now()
		for i := range n {
			at := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
			time.Sleep(time.Until(at))
			wg.Go(func() { decide(i, at) })
		}
	}
	wg.Wait()
	slices.Sort(lat)
	return lat
}
