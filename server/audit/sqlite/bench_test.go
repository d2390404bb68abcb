package sqlite

import (
	"context"
	"fmt"
	"testing"

	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
)

// BenchmarkAppend measures group-commit appends straight to the store
// (records already sealed), per batch size, with the driver this package
// uses. mattn_bench_test.go runs the same with the cgo driver under
// -tags mattn; the comparison is in the package doc.
func BenchmarkAppend(b *testing.B) {
	benchAppend(b, moderncDriver())
}

func benchAppend(b *testing.B, d driver) {
	for _, batch := range []int{1, 16, 128, 512} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			ctx := context.Background()
			s, err := open(ctx, b.TempDir(), d)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			// Seal outside the timer: the store's cost is what is compared.
			total := b.N * batch
			recs := make([]*audit.Record, total)
			for i := range recs {
				recs[i] = audittest.Decision(i % 1000)
				recs[i].DecisionId = fmt.Sprintf("b%09d", i)
			}
			head := audit.Head{ChainID: "bench"}
			recs, _ = audittest.Sealed(b, head, recs...)
			entries := audittest.Entries(b, recs...)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				chunk := entries[i*batch : (i+1)*batch]
				if err := s.Append(ctx, head, chunk); err != nil {
					b.Fatal(err)
				}
				last := chunk[len(chunk)-1].Record
				head = audit.Head{ChainID: "bench", Seq: last.Seq, Hash: last.Hash}
			}
			b.StopTimer()
			b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
