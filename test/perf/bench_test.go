package perf_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"

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
		i := 0
		for b.Loop() {
			if _, err := pq.Eval(ctx, rego.EvalParsedInput(inputs[i%len(inputs)])); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("tollgate-engine", func(b *testing.B) {
		eng := newEngine(b, store)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if res := eng.Decide(ctx, corpus[i%len(corpus)].Engine); res.Failure != "" {
				b.Fatalf("decision failed closed: %v", res.Reasons)
			}
			i++
		}
	})
}

// scaleEvents is the master data of the scale benchmark: n customers and n items (and the inventory rows
// of the first benchVolume items, which the corpus asks for).
func scaleEvents(n int) []masterdata.Event {
	events := make([]masterdata.Event, 0, 2*n+benchVolume)
	for i := range n {
		events = append(events, perf.CustomerEvent(i), perf.ItemEvent(i))
	}
	for i := range benchVolume {
		events = append(events, perf.InventoryEvent(i))
	}
	return events
}

// BenchmarkScale is the engine path over 10,000 and over 1,000,000 customers and items, with the same
// requests (the corpus of BenchmarkFloor): the cost of a decision must not grow with the tables, since
// every read is an index lookup. It logs the heap bytes per record.
func BenchmarkScale(b *testing.B) {
	perfEnabled(b)
	corpus, err := perf.Corpus(corpusSeed, 1200, benchVolume)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			events := scaleEvents(n)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			store := newStore(b, events)
			runtime.GC()
			runtime.ReadMemStats(&after)
			b.Logf("PERF scale_records=%d heap_bytes_per_record=%.0f", len(events), float64(after.HeapAlloc-before.HeapAlloc)/float64(len(events)))
			eng := newEngine(b, store)
			b.ReportAllocs()
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

// TestLoadMillion loads 1,000,000 master-data records from NDJSON change-event files with LoadDir (decode,
// validate, prepare the OPA value, one memdb transaction), as `tollgate serve --masterdata` does, and
// reports the time and the heap bytes per record. The target is at most 10 s.
func TestLoadMillion(t *testing.T) {
	perfEnabled(t)
	const n = 1_000_000
	dir := t.TempDir()
	// 400,000 customers, 400,000 items and their 200,000 first inventory rows.
	events := make([]masterdata.Event, 0, n)
	for i := range 400_000 {
		events = append(events, perf.CustomerEvent(i), perf.ItemEvent(i))
	}
	for i := range 200_000 {
		events = append(events, perf.InventoryEvent(i))
	}
	if err := perf.WriteEventsNDJSON(filepath.Join(dir, "events.ndjson"), events); err != nil {
		t.Fatal(err)
	}
	events = nil
	s, err := masterdata.New(masterdata.Config{Prepare: engine.PrepareRecord})
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	report, err := s.LoadDir(os.DirFS(dir))
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if report.Applied != n {
		t.Fatalf("applied %d of %d events", report.Applied, n)
	}
	if _, ok := s.Snapshot().Get(masterdata.KindCustomer, perf.VolumeCustomer(399_999)); !ok {
		t.Fatal("last customer not readable after load")
	}
	t.Logf("PERF load_records=%d load_seconds=%.2f load_heap_bytes_per_record=%.0f", n, elapsed.Seconds(), float64(after.HeapAlloc-before.HeapAlloc)/n)
	if elapsed > 10*time.Second {
		t.Errorf("loading %d records took %s, target 10s", n, elapsed)
	}
	runtime.KeepAlive(s)
}
