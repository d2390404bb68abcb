package transparency_test

import (
	"context"
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
	"github.com/tollgate/tollgate/server/audit/transparency"
)

// BenchmarkAppend measures growing a tree in memory, one op per record, in
// batches as the Writer commits them: computing the stored hashes
// (StoredHashes, reading earlier ones) and appending them. It reports the
// hashes stored per record (about 2); a SQL store adds writing those rows in
// the records' transaction. Compare ns/op with BenchmarkSealRecord, the
// chain's own per-record hashing.
func BenchmarkAppend(b *testing.B) {
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			ctx := context.Background()
			hs := transparency.NewMemoryHashStore()
			ls := make([]tlog.Hash, batch)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				k := min(batch, b.N-i)
				for j := range k {
					ls[j] = leaf("b", i+j)
				}
				if _, err := transparency.Append(ctx, hs, "b", ls[:k]); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(tlog.StoredHashCount(int64(b.N)))/float64(b.N), "hashes/record")
		})
	}
}

// BenchmarkSealRecord is the baseline: canonical encoding and SHA-256 of one
// typical decision record, which every record already costs.
func BenchmarkSealRecord(b *testing.B) {
	rec := audittest.Decision(7)
	prev := audit.GenesisHash()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := audit.Seal(rec, uint64(i+1), prev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckpoint measures one checkpoint of a chain of 1e6 leaves: root,
// consistency check with the previous checkpoint and Ed25519 signing, what
// the Checkpointer does per grown chain per interval.
func BenchmarkCheckpoint(b *testing.B) {
	ctx := context.Background()
	hs := transparency.NewMemoryHashStore()
	const size = 1 << 20
	ls := make([]tlog.Hash, 0, 4096)
	for i := 0; i < size; i++ {
		ls = append(ls, leaf("b", i))
		if len(ls) == cap(ls) {
			appendLeaves(b, hs, "b", ls)
			ls = ls[:0]
		}
	}
	signer := testSigner(b)
	prev := sign(b, signer, "tollgate/b", size-1000, root(b, hs, "b", size-1000))
	b.ReportAllocs()
	for b.Loop() {
		r, err := transparency.CheckExtends(ctx, hs, "b", size, prev)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := transparency.SignCheckpoint(signer, "tollgate/b", size, r, testTime); err != nil {
			b.Fatal(err)
		}
	}
}
