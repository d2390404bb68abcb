package sqlite

import (
	"context"
	"database/sql"
	"testing"

	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
	"github.com/tollgate/tollgate/server/audit/transparency"
)

// TestBackfillTreesOfOlderLog writes two chains, turns the file back into a schema-3 file (no
// tree, no checkpoints) and reopens it: Open must build each chain's tree from its records, in
// batches, so the tree's root is the one rebuilt in memory and appends continue it.
func TestBackfillTreesOfOlderLog(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	chains := map[string][]*audit.Record{}
	heads := map[string]audit.Head{}
	for chain, n := range map[string]int{"a": 300, "b": 5} {
		head := audit.Head{ChainID: chain}
		for i := 0; i < n; i += 50 {
			var recs []*audit.Record
			for k := i; k < min(n, i+50); k++ {
				r := audittest.Decision(k)
				r.DecisionId = chain + r.DecisionId
				recs = append(recs, r)
			}
			var next audit.Head
			recs, next = audittest.Sealed(t, head, recs...)
			if err := s.Append(ctx, head, audittest.Entries(t, recs...)); err != nil {
				t.Fatal(err)
			}
			head, chains[chain] = next, append(chains[chain], recs...)
		}
		heads[chain] = head
	}
	s.Close()

	db, err := sql.Open("sqlite", dir+"/"+FileName)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"DROP TABLE tree_hashes",
		"DROP TABLE checkpoints",
		"ALTER TABLE chain_heads DROP COLUMN tree_size",
		"PRAGMA user_version = 3",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	defer func(n int64) { backfillBatch = n }(backfillBatch)
	backfillBatch = 64 // several transactions for chain a
	s, err = Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for chain, recs := range chains {
		size, err := s.TreeSize(ctx, chain)
		if err != nil || size != int64(len(recs)) {
			t.Fatalf("TreeSize(%s) after the upgrade = %d, %v; want %d", chain, size, err, len(recs))
		}
		mem, memSize := audittest.MemoryTree(t, chain, recs)
		want, _ := transparency.TreeRoot(ctx, mem, chain, memSize)
		if got, err := transparency.TreeRoot(ctx, s, chain, size); err != nil || got != want {
			t.Errorf("tree root of %s after the upgrade = %v, %v; want %v", chain, got, err, want)
		}
	}
	// Appends continue the backfilled tree.
	more, _ := audittest.Sealed(t, heads["a"], audittest.Decision(900))
	if err := s.Append(ctx, heads["a"], audittest.Entries(t, more...)); err != nil {
		t.Fatal(err)
	}
	mem, size := audittest.MemoryTree(t, "a", append(chains["a"], more...))
	want, _ := transparency.TreeRoot(ctx, mem, "a", size)
	if got, err := transparency.TreeRoot(ctx, s, "a", size); err != nil || got != want {
		t.Errorf("tree root after an append to the backfilled tree = %v, %v; want %v", got, err, want)
	}
}
