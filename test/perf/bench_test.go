package perf_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/tollgate/tollgate/bundles/demo"
	"github.com/tollgate/tollgate/server/engine"
	"github.com/tollgate/tollgate/server/masterdata"
	"github.com/tollgate/tollgate/test/perf"
)

// benchVolume is the generated customers and items beside the demo data in the floor benchmark and the
// side-by-side run.
const benchVolume = 10_000

// BenchmarkFloor is the in-process floor: stock OPA's PreparedEvalQuery on the pack with master data in
// data.json (EvalParsedInput, input values built outside the loop) next to Tollgate's engine path
// (engine.Decide: input built from the request, go-memdb snapshot builtins, fact recording, result
// parsing), over the same corpus, one decision per op, cycling through the corpus.
func BenchmarkFloor(b *testing.B) {
	perfEnabled(b)
	corpus, err := perf.Corpus(corpusSeed, 1200, benchVolume)
	if err != nil {
		b.Fatal(err)
	}
	store := newStore(b, perf.VolumeEvents(benchVolume))
	ctx := context.Background()
	b.Run("opa-prepared", func(b *testing.B) {
		pq := opaQuery(b, store)
		inputs := inputValues(b, corpus)
		b.ReportAllocs()
		defer reportCPU(b, perf.SelfCPU())
		i := 0
		for b.Loop() {
			if _, err := pq.Eval(ctx, rego.EvalParsedInput(inputs[i%len(inputs)])); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("tollgate-engine-topdown", func(b *testing.B) {
		eng := newEngine(b, store, engine.PathTopdown)
		b.ReportAllocs()
		defer reportCPU(b, perf.SelfCPU())
		i := 0
		for b.Loop() {
			if res := eng.Decide(ctx, corpus[i%len(corpus)].Engine); res.Failure != "" {
				b.Fatalf("decision failed closed: %v", res.Reasons)
			}
			i++
		}
	})
	b.Run("tollgate-engine", func(b *testing.B) {
		eng := newEngine(b, store)
		b.ReportAllocs()
		defer reportCPU(b, perf.SelfCPU())
		i := 0
		for b.Loop() {
			if res := eng.Decide(ctx, corpus[i%len(corpus)].Engine); res.Failure != "" {
				b.Fatalf("decision failed closed: %v", res.Reasons)
			}
			i++
		}
	})
}

// scaleVolume is the generated ids the scale corpus refers to; both table sizes hold all of them, so the
// requests and their decisions are the same at both sizes.
const scaleVolume = 5_000

// scaleEvents is the master data of the scale benchmark: n records, half customers and half items, plus
// the inventory rows of the first scaleVolume items, which the corpus asks for.
func scaleEvents(n int) []masterdata.Event {
	events := make([]masterdata.Event, 0, n+scaleVolume)
	for i := range n / 2 {
		events = append(events, perf.CustomerEvent(i), perf.ItemEvent(i))
	}
	for i := range scaleVolume {
		events = append(events, perf.InventoryEvent(i))
	}
	return events
}

// loadStore writes events as an NDJSON change-event file and loads it with LoadDir (decode, validate,
// prepare the OPA value of each record, one memdb transaction), as `tollgate serve --masterdata` does at
// start. It logs the wall and CPU time of LoadDir and the heap bytes per record.
func loadStore(tb testing.TB, events []masterdata.Event) *masterdata.Store {
	tb.Helper()
	dir := tb.TempDir()
	if err := perf.WriteEventsNDJSON(filepath.Join(dir, "90-scale.ndjson"), events); err != nil {
		tb.Fatal(err)
	}
	n := len(events)
	s, err := masterdata.New(masterdata.Config{Prepare: engine.PrepareRecord})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := s.LoadDir(demo.FS); err != nil {
		tb.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	cpu0, start := perf.SelfCPU(), time.Now()
	report, err := s.LoadDir(os.DirFS(dir))
	elapsed, cpu := time.Since(start), perf.SelfCPU()-cpu0
	if err != nil {
		tb.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if report.Applied != n {
		tb.Fatalf("applied %d of %d events", report.Applied, n)
	}
	tb.Logf("PERF load_records=%d load_seconds=%.2f load_cpu_seconds=%.2f heap_bytes_per_record=%.0f",
		n, elapsed.Seconds(), cpu.Seconds(), float64(after.HeapAlloc-before.HeapAlloc)/float64(n))
	return s
}

// BenchmarkScale is the engine path with 10,000 and with 1,000,000 customer and item records (half each),
// loaded from NDJSON with LoadDir, over the same requests: the cost of a decision must not grow with the
// tables, since every read is an index lookup. Each size logs its load time (target for 1,000,000: at
// most 10 s) and heap bytes per record. TOLLGATE_PERF_LOAD=N replaces 1,000,000 by N, to profile a load.
func BenchmarkScale(b *testing.B) {
	perfEnabled(b)
	corpus, err := perf.Corpus(corpusSeed, 1200, scaleVolume)
	if err != nil {
		b.Fatal(err)
	}
	large := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("TOLLGATE_PERF_LOAD")); err == nil && v > 0 {
		large = v
	}
	ctx := context.Background()
	for _, n := range []int{10_000, large} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			store := loadStore(b, scaleEvents(n))
			eng := newEngine(b, store)
			// With the collector running as usual: over 1,000,000 records the live heap is large and
			// collections are rare, so a decision there pays less collector CPU than over 10,000.
			// Pausing the collector does not isolate the decision's own work either (every allocation
			// then lands on fresh memory, and page faults dominate), so B/op and allocs/op are the
			// evidence that the work is the same.
			b.ReportAllocs()
			defer reportCPU(b, perf.SelfCPU())
			i := 0
			for b.Loop() {
				if res := eng.Decide(ctx, corpus[i%len(corpus)].Engine); res.Failure != "" {
					b.Fatalf("decision failed closed: %v", res.Reasons)
				}
				i++
			}
			runtime.KeepAlive(store)
		})
	}
}

// reportCPU reports the process CPU time per op since cpu0 ("cpu-ns/op"): unlike ns/op (wall time), it
// does not grow when other work competes for the machine's CPUs. Garbage collection is included.
func reportCPU(b *testing.B, cpu0 time.Duration) {
	if b.N > 0 {
		b.ReportMetric(float64(perf.SelfCPU()-cpu0)/float64(b.N), "cpu-ns/op")
	}
}
