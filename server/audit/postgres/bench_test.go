package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
	"github.com/tollgate/tollgate/server/audit/postgres/pgtest"
)

// BenchmarkAppend measures group-commit appends straight to the store
// (records already sealed), per batch size, as sqlite's BenchmarkAppend
// does, so the two read side by side:
//
//	go test -run '^$' -bench Append -benchtime 2s ./server/audit/postgres/ ./server/audit/sqlite/
func BenchmarkAppend(b *testing.B) {
	url := pgtest.NewDatabase(b)
	for _, batch := range []int{1, 16, 128, 512} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			ctx := context.Background()
			s := openStore(b, url)
			chain := fmt.Sprintf("bench-%d-%d", batch, b.N)
			total := b.N * batch
			recs := make([]*audit.Record, total)
			for i := range recs {
				recs[i] = audittest.Decision(i % 1000)
				recs[i].DecisionId = fmt.Sprintf("%s-%09d", chain, i)
			}
			head := audit.Head{ChainID: chain}
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
				head = audit.Head{ChainID: chain, Seq: last.Seq, Hash: last.Hash}
			}
			b.StopTimer()
			b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
