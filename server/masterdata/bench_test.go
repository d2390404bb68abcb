package masterdata_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/tollgate/tollgate/server/masterdata"
)

// customerKey is the fixed-width key of the i-th benchmark customer.
func customerKey(i int) string { return fmt.Sprintf("C%07d", i) }

// storeWithCustomers returns a store holding n valid customers keyed customerKey(0..n-1).
func storeWithCustomers(tb testing.TB, n int) *masterdata.Store {
	tb.Helper()
	s := newStore(tb, masterdata.Config{})
	const batchSize = 10_000
	for start := 0; start < n; start += batchSize {
		events := make([]masterdata.Event, 0, batchSize)
		for i := start; i < min(start+batchSize, n); i++ {
			_, rec := validRecord(masterdata.KindCustomer)
			events = append(events, upsert(fmt.Sprintf("e%d", i), masterdata.KindCustomer, customerKey(i), 1, rec))
		}
		mustApply(tb, s, events...)
	}
	return s
}

// BenchmarkGet shows that a Get costs the same whatever the table size: it walks the key index (a radix
// tree: cost bounded by the key length, here a fixed 8 characters), never the table. "hot" reads 64 keys
// over and over (a decision touches a few records); "spread" reads 4,096 keys spread over the whole table,
// so at 1M records most reads miss the CPU caches.
func BenchmarkGet(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			s := storeWithCustomers(b, n)
			runtime.GC()
			runtime.ReadMemStats(&after)
			b.Logf("%d customers: %.0f heap bytes per record", n, float64(after.HeapAlloc-before.HeapAlloc)/float64(n))
			sn := s.Snapshot()
			for _, keyCount := range []int{64, 4096} {
				name := map[int]string{64: "hot", 4096: "spread"}[keyCount]
				b.Run("keys="+name, func(b *testing.B) {
					keys := make([]string, keyCount)
					for i := range keys {
						keys[i] = customerKey((i * 7919) % n)
					}
					b.ReportAllocs()
					i := 0
					for b.Loop() {
						if _, ok := sn.Get(masterdata.KindCustomer, keys[i%len(keys)]); !ok {
							b.Fatal("not found")
						}
						i++
					}
				})
			}
		})
	}
}

// BenchmarkLookupPair is the delegation lookup of DR-4 by the pair index.
func BenchmarkLookupPair(b *testing.B) {
	s := newStore(b, masterdata.Config{})
	events := make([]masterdata.Event, 0, 10_000)
	for i := range 10_000 {
		_, rec := validRecord(masterdata.KindDelegation)
		rec["delegator_id"], rec["delegate_id"] = fmt.Sprintf("u%d", i), fmt.Sprintf("u%d", i+1)
		events = append(events, upsert(fmt.Sprintf("e%d", i), masterdata.KindDelegation, fmt.Sprintf("D%d", i), 1, rec))
	}
	mustApply(b, s, events...)
	sn := s.Snapshot()
	b.ReportAllocs()
	for b.Loop() {
		if got := sn.Lookup(masterdata.KindDelegation, masterdata.IndexPair, "u500/u501"); len(got) != 1 {
			b.Fatalf("got %d records", len(got))
		}
	}
}

// BenchmarkApply measures change-event throughput: one Apply of 1,000 customer upserts (validation,
// normalization, memdb insert, commit) per iteration.
func BenchmarkApply(b *testing.B) {
	s := newStore(b, masterdata.Config{})
	version := uint64(0)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		version++
		events := make([]masterdata.Event, 1000)
		for i := range events {
			_, rec := validRecord(masterdata.KindCustomer)
			events[i] = upsert(fmt.Sprintf("e%d-%d", version, i), masterdata.KindCustomer, fmt.Sprintf("C%d", i), version, rec)
		}
		b.StartTimer()
		res := s.Apply(events)
		if res.Results[999].Outcome != masterdata.OutcomeApplied {
			b.Fatal(res.Results[999].Err)
		}
	}
}

// BenchmarkLoadDir measures a startup load: LoadDir of one NDJSON file of n records, half customers and
// half items (decode, check, memdb inserts, one commit; no Prepare). Besides time and allocations per load
// it reports them per record, and the heap the loaded store keeps per record. test/perf's BenchmarkScale
// does the same at 1,000,000 records with the engine's Prepare.
func BenchmarkLoadDir(b *testing.B) {
	const n = 100_000
	dir := b.TempDir()
	var buf bytes.Buffer
	for i := range n / 2 {
		for _, kind := range []masterdata.Kind{masterdata.KindCustomer, masterdata.KindItem} {
			key, rec := validRecord(kind)
			key = fmt.Sprintf("%s%07d", key, i)
			if kind == masterdata.KindCustomer {
				rec["open_ar"] = fmt.Sprintf("%d.%02d", i%90_000, i%100) // not all records alike
			}
			buf.Write(eventLine(b, upsert("e-"+key, kind, key, 1, rec)))
			buf.WriteByte('\n')
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "records.ndjson"), buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	fsys := os.DirFS(dir)
	var before, after runtime.MemStats
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&before)
		s := newStore(b, masterdata.Config{})
		b.StartTimer()
		rep, err := s.LoadDir(fsys)
		if err != nil || rep.Applied != n {
			b.Fatalf("applied %d of %d: %v", rep.Applied, n, err)
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(s)
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-B/record")
}
