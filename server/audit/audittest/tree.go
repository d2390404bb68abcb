package audittest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/transparency"
)

// MemoryTree returns chainID's tree rebuilt in memory from recs, a chain's
// records in seq order, and its size: leaf seq-1 is each record's hash, a
// seq with no record ZeroLeaf (audit.Store.Append's rule).
func MemoryTree(tb testing.TB, chainID string, recs []*audit.Record) (*transparency.MemoryHashStore, int64) {
	tb.Helper()
	var leaves []tlog.Hash
	for _, r := range recs {
		for int64(len(leaves)) < int64(r.GetSeq())-1 {
			leaves = append(leaves, audit.ZeroLeaf)
		}
		h, err := transparency.HashFromBytes(r.GetHash())
		if err != nil {
			tb.Fatal(err)
		}
		leaves = append(leaves, h)
	}
	m := transparency.NewMemoryHashStore()
	size, err := transparency.Append(context.Background(), m, chainID, leaves)
	if err != nil {
		tb.Fatal(err)
	}
	return m, size
}

// runTree runs the conformance cases of the Merkle tree and the checkpoints.
func runTree(t *testing.T, newStore func(t *testing.T) audit.Store) {
	ctx := context.Background()
	t.Run("TreeFollowsAppends", func(t *testing.T) {
		s := newStore(t)
		if n, err := s.TreeSize(ctx, "c"); err != nil || n != 0 {
			t.Fatalf("TreeSize of an empty chain = %d, %v; want 0", n, err)
		}
		head := audit.Head{ChainID: "c"}
		var all []*audit.Record
		var sizes []int64
		n := 0
		for _, batch := range []int{1, 1, 3, 7, 16, 5, 31, 1} {
			var recs []*audit.Record
			for range batch {
				n++
				recs = append(recs, Decision(n))
			}
			var next audit.Head
			recs, next = Sealed(t, head, recs...)
			mustAppend(t, s, head, recs)
			head, all = next, append(all, recs...)
			sizes = append(sizes, int64(head.Seq))

			size, err := s.TreeSize(ctx, "c")
			if err != nil || size != int64(head.Seq) {
				t.Fatalf("TreeSize after %d records = %d, %v; want the head's seq", head.Seq, size, err)
			}
			mem, memSize := MemoryTree(t, "c", all)
			want, err := transparency.TreeRoot(ctx, mem, "c", memSize)
			if err != nil {
				t.Fatal(err)
			}
			got, err := transparency.TreeRoot(ctx, audit.Hashes(s), "c", size)
			if err != nil {
				t.Fatalf("stored tree root at %d: %v", size, err)
			}
			if got != want {
				t.Fatalf("stored tree root at %d = %v, rebuilt from the records %v", size, got, want)
			}
		}
		hs := audit.Hashes(s)
		size := int64(head.Seq)
		root, err := transparency.TreeRoot(ctx, hs, "c", size)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range all {
			i := int64(r.GetSeq()) - 1
			p, err := transparency.InclusionProof(ctx, hs, "c", i, size)
			if err != nil {
				t.Fatalf("inclusion proof of leaf %d: %v", i, err)
			}
			leaf, _ := transparency.HashFromBytes(r.GetHash())
			if err := transparency.VerifyInclusion(p, size, root, i, leaf); err != nil {
				t.Errorf("inclusion of %s: %v", r.GetDecisionId(), err)
			}
		}
		for _, old := range sizes {
			oldRoot, err := transparency.TreeRoot(ctx, hs, "c", old)
			if err != nil {
				t.Fatal(err)
			}
			var p tlog.TreeProof
			if old < size {
				if p, err = transparency.ConsistencyProof(ctx, hs, "c", old, size); err != nil {
					t.Fatalf("consistency proof %d to %d: %v", old, size, err)
				}
			}
			if err := transparency.VerifyConsistency(p, old, oldRoot, size, root); err != nil {
				t.Errorf("consistency %d to %d: %v", old, size, err)
			}
		}
		if _, err := s.ReadHashes(ctx, "c", []int64{tlog.StoredHashCount(size)}); !errors.Is(err, audit.ErrNotFound) || !errors.Is(err, transparency.ErrNotFound) {
			t.Errorf("ReadHashes past the tree: err = %v, want audit and transparency ErrNotFound", err)
		}
		if err := hs.AppendHashes(ctx, "c", size, size+1, nil); !errors.Is(err, audit.ErrTreeReadOnly) {
			t.Errorf("AppendHashes: err = %v, want ErrTreeReadOnly", err)
		}
	})

	t.Run("TreeOfRejectedAppendUnchanged", func(t *testing.T) {
		s := newStore(t)
		recs, head := Sealed(t, audit.Head{ChainID: "c"}, Decision(1), Decision(2))
		mustAppend(t, s, audit.Head{ChainID: "c"}, recs)
		dup, _ := Sealed(t, head, Decision(3), Decision(1)) // d001 again: a duplicate decision_id
		if err := s.Append(ctx, head, Entries(t, dup...)); !errors.Is(err, audit.ErrDuplicate) {
			t.Fatalf("Append of a duplicate: err = %v, want ErrDuplicate", err)
		}
		if n, err := s.TreeSize(ctx, "c"); err != nil || n != 2 {
			t.Errorf("TreeSize after a rejected append = %d, %v; want 2", n, err)
		}
		more, _ := Sealed(t, head, Decision(3))
		mustAppend(t, s, head, more)
		mem, size := MemoryTree(t, "c", append(recs, more...))
		want, _ := transparency.TreeRoot(ctx, mem, "c", size)
		if got, err := transparency.TreeRoot(ctx, audit.Hashes(s), "c", 3); err != nil || got != want {
			t.Errorf("tree root after a rejected and a good append = %v, %v; want %v", got, err, want)
		}
	})

	t.Run("TreeAcrossChainBreak", func(t *testing.T) {
		s := newStore(t)
		recs, head := Sealed(t, audit.Head{ChainID: "c"}, Decision(1), Decision(2), Decision(3))
		mustAppend(t, s, audit.Head{ChainID: "c"}, recs)
		// A break record that jumps to seq 6 (past rows a damaged store
		// held beyond the head): seqs 4 and 5 get ZeroLeaf.
		brk := &audit.Record{DecisionId: "chain-break-c-6", ChainId: "c", Kind: tollgatev1.RecordKind_RECORD_KIND_CHAIN_BREAK,
			EvaluatedAt: Decision(9).EvaluatedAt, ChainBreak: &tollgatev1.ChainBreak{Problem: "test", AcceptedBy: "t"}}
		if err := audit.Seal(brk, 6, head.Hash); err != nil {
			t.Fatal(err)
		}
		if err := s.Append(ctx, head, Entries(t, brk)); err != nil {
			t.Fatalf("Append of a jumping chain-break record: %v", err)
		}
		after, _ := Sealed(t, audit.Head{ChainID: "c", Seq: 6, Hash: brk.Hash}, Decision(7))
		mustAppend(t, s, audit.Head{ChainID: "c", Seq: 6, Hash: brk.Hash}, after)
		all := append(append(recs, brk), after...)
		mem, size := MemoryTree(t, "c", all)
		if size != 7 {
			t.Fatalf("rebuilt tree size %d, want 7", size)
		}
		want, _ := transparency.TreeRoot(ctx, mem, "c", size)
		if got, err := transparency.TreeRoot(ctx, audit.Hashes(s), "c", 7); err != nil || got != want {
			t.Errorf("tree root across a break = %v, %v; want %v (ZeroLeaf for seqs 4-5)", got, err, want)
		}
	})

	t.Run("ViewIsOneSnapshot", func(t *testing.T) {
		s := newStore(t)
		recs, head := Sealed(t, audit.Head{ChainID: "c"}, Decision(1), Decision(2))
		mustAppend(t, s, audit.Head{ChainID: "c"}, recs)
		err := s.View(ctx, func(v audit.Snapshot) error {
			h, err := v.Head(ctx, "c")
			if err != nil || h.Seq != 2 {
				return fmt.Errorf("Head in view = %+v, %v; want seq 2", h, err)
			}
			// A commit after the view's first read stays out of it.
			more, _ := Sealed(t, head, Decision(3))
			mustAppend(t, s, head, more)
			if h, err := v.Head(ctx, "c"); err != nil || h.Seq != 2 {
				return fmt.Errorf("Head in view after a commit = %+v, %v; want seq 2", h, err)
			}
			if n, err := v.TreeSize(ctx, "c"); err != nil || n != 2 {
				return fmt.Errorf("TreeSize in view after a commit = %d, %v; want 2", n, err)
			}
			n := 0
			if err := v.Chain(ctx, "c", 1, func(*audit.Record) error { n++; return nil }); err != nil || n != 2 {
				return fmt.Errorf("Chain in view after a commit: %d records, %v; want 2", n, err)
			}
			root, err := transparency.TreeRoot(ctx, audit.Hashes(v), "c", 2)
			mem, _ := MemoryTree(t, "c", recs)
			want, _ := transparency.TreeRoot(ctx, mem, "c", 2)
			if err != nil || root != want {
				return fmt.Errorf("tree root in view = %v, %v; want %v", root, err, want)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if h, err := s.Head(ctx, "c"); err != nil || h.Seq != 3 {
			t.Errorf("Head after the view = %+v, %v; want seq 3", h, err)
		}
		stop := errors.New("stop")
		if err := s.View(ctx, func(audit.Snapshot) error { return stop }); !errors.Is(err, stop) {
			t.Errorf("View returns %v, want fn's error", err)
		}
	})

	t.Run("Checkpoints", func(t *testing.T) {
		s := newStore(t)
		signer, _, err := transparency.EphemeralSigner("test")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.LatestCheckpoint(ctx, "c"); !errors.Is(err, audit.ErrNotFound) || !errors.Is(err, transparency.ErrNotFound) {
			t.Fatalf("LatestCheckpoint of none: err = %v, want audit and transparency ErrNotFound", err)
		}
		sign := func(size int64, root byte) transparency.Checkpoint {
			cp, err := transparency.SignCheckpoint(signer, transparency.Origin("", "c"), size, tlog.Hash{root}, Base().Add(time.Duration(size)*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			return cp
		}
		var put []transparency.Checkpoint
		for size := int64(1); size <= 7; size++ {
			cp := sign(size*10, byte(size))
			if err := s.PutCheckpoint(ctx, "c", cp); err != nil {
				t.Fatalf("PutCheckpoint at %d: %v", cp.Size, err)
			}
			put = append(put, cp)
		}
		if err := s.PutCheckpoint(ctx, "other", sign(5, 9)); err != nil {
			t.Fatal(err)
		}
		if err := s.PutCheckpoint(ctx, "c", put[6]); err != nil {
			t.Errorf("PutCheckpoint of the newest again: %v, want a no-op", err)
		}
		if err := s.PutCheckpoint(ctx, "c", sign(70, 99)); !errors.Is(err, audit.ErrInvalidArgument) {
			t.Errorf("PutCheckpoint of another root at a stored size: err = %v, want ErrInvalidArgument", err)
		}
		if err := s.PutCheckpoint(ctx, "c", sign(35, 3)); !errors.Is(err, audit.ErrInvalidArgument) {
			t.Errorf("PutCheckpoint below the newest: err = %v, want ErrInvalidArgument", err)
		}
		latest, err := s.LatestCheckpoint(ctx, "c")
		if err != nil || latest.Size != 70 || latest.Root != put[6].Root || string(latest.Note) != string(put[6].Note) ||
			latest.Origin != put[6].Origin || !latest.SignedAt.Equal(put[6].SignedAt) {
			t.Errorf("LatestCheckpoint = %+v, %v; want %+v", latest, err, put[6])
		}
		var got []int64
		q := audit.CheckpointQuery{ChainID: "c", PageSize: 3}
		for pages := 0; ; pages++ {
			if pages > 5 {
				t.Fatal("ListCheckpoints does not end")
			}
			page, err := s.ListCheckpoints(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			for _, cp := range page.Checkpoints {
				got = append(got, cp.Size)
			}
			if page.NextPageToken == "" {
				break
			}
			q.PageToken = page.NextPageToken
		}
		if fmt.Sprint(got) != "[70 60 50 40 30 20 10]" {
			t.Errorf("ListCheckpoints sizes = %v, want newest first [70 60 50 40 30 20 10]", got)
		}
		if _, err := s.ListCheckpoints(ctx, audit.CheckpointQuery{ChainID: "c", PageToken: "!"}); !errors.Is(err, audit.ErrInvalidArgument) {
			t.Errorf("ListCheckpoints with a bad token: err = %v, want ErrInvalidArgument", err)
		}
		err = s.View(ctx, func(v audit.Snapshot) error {
			cps, err := v.Checkpoints(ctx, "c")
			if err != nil {
				return err
			}
			var sizes []int64
			for _, cp := range cps {
				sizes = append(sizes, cp.Size)
			}
			if fmt.Sprint(sizes) != "[10 20 30 40 50 60 70]" {
				return fmt.Errorf("Checkpoints in view = %v, want oldest first", sizes)
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	})
}
