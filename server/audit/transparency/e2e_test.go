package transparency_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
	"github.com/tollgate/tollgate/server/audit/transparency"
)

// TestLogEndToEnd builds the log of a chain of 1,000 real sealed records in
// uneven batches, signing checkpoints at several sizes as it grows. Every
// checkpoint extends the one before by a verified consistency proof and
// receipts verify offline. Then an attacker holding the database, but not
// the key, rewrites one record and reseals the chain after it, or truncates
// the chain, rebuilding the tree each time; the checkpoints kept outside
// expose both.
func TestLogEndToEnd(t *testing.T) {
	ctx := context.Background()
	const chain, n = "e2e", 1000
	origin := transparency.Origin("", chain)
	recs, _ := sealedChain(t, chain, n)
	hs := transparency.NewMemoryHashStore()
	signer, v := testSigner(t), testVerifier(t)

	var cps []transparency.Checkpoint
	sizes := map[int64]bool{1: true, 7: true, 64: true, 100: true, 333: true, 512: true, 999: true, 1000: true}
	for size, batch := 0, 1; size < n; batch = batch*3%61 + 1 {
		end := min(size+batch, n)
		appendLeaves(t, hs, chain, recordLeaves(t, recs[size:end]))
		for s := size + 1; s <= end; s++ {
			if sizes[int64(s)] {
				cp := sign(t, signer, origin, int64(s), root(t, hs, chain, int64(s)))
				// What a witness keeps is the note; take it back from there.
				got, err := transparency.VerifyCheckpoint(cp.Note, v, origin)
				if err != nil {
					t.Fatal(err)
				}
				cps = append(cps, got)
			}
		}
		size = end
	}
	if len(cps) != len(sizes) {
		t.Fatalf("signed %d checkpoints, want %d", len(cps), len(sizes))
	}
	for i := 1; i < len(cps); i++ {
		old, cur := cps[i-1], cps[i]
		p, err := transparency.ConsistencyProof(ctx, hs, chain, old.Size, cur.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := transparency.VerifyConsistency(p, old.Size, old.Root, cur.Size, cur.Root); err != nil {
			t.Errorf("checkpoint at %d does not extend %d: %v", cur.Size, old.Size, err)
		}
	}
	for _, cp := range cps {
		if _, err := transparency.CheckExtends(ctx, hs, chain, n, cp); err != nil {
			t.Errorf("the log does not extend the checkpoint at %d: %v", cp.Size, err)
		}
	}
	var notes [][]byte
	for _, cp := range cps {
		notes = append(notes, cp.Note)
	}
	if err := transparency.VerifyCheckpoints(ctx, hs, chain, n, notes, v, origin); err != nil {
		t.Errorf("VerifyCheckpoints on the honest log: %v", err)
	}
	// Receipts against the checkpoint at 512 for records on both sides of
	// where the attacker will strike.
	cp512 := cps[5]
	for _, seq := range []uint64{1, 250, 500, 512} {
		r := receiptFor(t, hs, recs[seq-1], cp512)
		if _, err := transparency.VerifyReceipt(r, v, ""); err != nil {
			t.Errorf("receipt of seq %d: %v", seq, err)
		}
	}

	// rebuild returns a fresh tree over recs, as an attacker recomputing
	// every table would leave it.
	rebuild := func(recs []*audit.Record) *transparency.MemoryHashStore {
		return storeWith(t, chain, recordLeaves(t, recs))
	}

	t.Run("rewritten record", func(t *testing.T) {
		forged := make([]*audit.Record, n)
		copy(forged, recs[:499])
		for i := 499; i < n; i++ {
			forged[i] = audittest.Decision(i)
		}
		forged[499].Effect = recs[499].Effect + 1 // seq 500 says otherwise now
		_, _ = audittest.Sealed(t, audit.Head{ChainID: chain, Seq: 499, Hash: recs[498].Hash}, forged[499:]...)
		if forged[499].GetHash() == nil || string(forged[499].Hash) == string(recs[499].Hash) {
			t.Fatal("the forged record was not resealed")
		}
		fs := rebuild(forged)
		for _, cp := range cps {
			_, err := transparency.CheckExtends(ctx, fs, chain, n, cp)
			switch {
			case cp.Size < 500 && err != nil:
				t.Errorf("checkpoint at %d, before the rewrite: %v", cp.Size, err)
			case cp.Size >= 500 && !errors.Is(err, transparency.ErrInconsistent):
				t.Errorf("checkpoint at %d, after the rewrite: err = %v, want ErrInconsistent", cp.Size, err)
			}
		}
		err := transparency.VerifyCheckpoints(ctx, fs, chain, n, notes, v, origin)
		if !errors.Is(err, transparency.ErrInconsistent) || !strings.Contains(err.Error(), "checkpoint 6 ") {
			t.Errorf("VerifyCheckpoints on the rewritten log: err = %v, want ErrInconsistent at checkpoint 6 (size 512)", err)
		}
		// The receipt the caller holds for seq 500 no longer matches the log.
		leaf, _ := transparency.HashFromBytes(recs[499].Hash)
		p, err := transparency.InclusionProof(ctx, fs, chain, 499, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := transparency.VerifyInclusion(p, n, root(t, fs, chain, n), 499, leaf); !errors.Is(err, transparency.ErrProof) {
			t.Errorf("original record in the rewritten log: err = %v, want ErrProof", err)
		}
	})

	t.Run("checkpoint by another key", func(t *testing.T) {
		forged := append([][]byte{}, notes...)
		forged[3] = sign(t, otherSigner(t), origin, cps[3].Size, cps[3].Root).Note
		if err := transparency.VerifyCheckpoints(ctx, hs, chain, n, forged, v, origin); !errors.Is(err, transparency.ErrBadSignature) {
			t.Errorf("err = %v, want ErrBadSignature", err)
		}
	})

	t.Run("truncated tail", func(t *testing.T) {
		ts := rebuild(recs[:900])
		for _, cp := range cps {
			_, err := transparency.CheckExtends(ctx, ts, chain, 900, cp)
			if cp.Size > 900 && !errors.Is(err, transparency.ErrInconsistent) {
				t.Errorf("checkpoint at %d against 900 leaves: err = %v, want ErrInconsistent", cp.Size, err)
			}
		}
		if err := transparency.VerifyCheckpoints(ctx, ts, chain, 900, notes, v, origin); !errors.Is(err, transparency.ErrInconsistent) {
			t.Errorf("VerifyCheckpoints on the truncated log: err = %v, want ErrInconsistent", err)
		}
		// Regrowing to the old size with other records does not help.
		more := make([]*audit.Record, 100)
		for i := range more {
			more[i] = audittest.Decision(2000 + i)
		}
		more, _ = audittest.Sealed(t, audit.Head{ChainID: chain, Seq: 900, Hash: recs[899].Hash}, more...)
		appendLeaves(t, ts, chain, recordLeaves(t, more))
		last := cps[len(cps)-1]
		if r := root(t, ts, chain, n); r == last.Root {
			t.Fatal("regrown tree has the original root")
		}
		if _, err := transparency.CheckExtends(ctx, ts, chain, n, last); !errors.Is(err, transparency.ErrInconsistent) {
			t.Errorf("regrown tree against the checkpoint at %d: err = %v, want ErrInconsistent", last.Size, err)
		}
	})
}
