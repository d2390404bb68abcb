package transparency_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/tollgate/tollgate/server/audit/transparency"
)

// mth is RFC 6962's Merkle Tree Hash by its recursive definition (section
// 2.1), an oracle independent of tlog's stored-hash layout.
func mth(ls []tlog.Hash) tlog.Hash {
	switch len(ls) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return sha256.Sum256(append([]byte{0}, ls[0][:]...))
	}
	k := 1
	for k*2 < len(ls) {
		k *= 2
	}
	l, r := mth(ls[:k]), mth(ls[k:])
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}

// TestTreeRootIsRFC6962 holds the incrementally stored tree to the RFC's
// definition at every size, appending in batches of varying length as the
// store would (one transaction per batch of records).
func TestTreeRootIsRFC6962(t *testing.T) {
	ctx := context.Background()
	all := leaves("c", 0, 300)
	s := transparency.NewMemoryHashStore()
	for size, batch := 0, 1; size < len(all); batch = batch%7 + 1 {
		end := min(size+batch, len(all))
		n := appendLeaves(t, s, "c", all[size:end])
		if n != int64(end) {
			t.Fatalf("Append returned size %d, want %d", n, end)
		}
		size = end
	}
	if got, _ := s.TreeSize(ctx, "c"); got != 300 {
		t.Fatalf("TreeSize = %d, want 300", got)
	}
	for n := 0; n <= len(all); n++ {
		if got, want := root(t, s, "c", int64(n)), mth(all[:n]); got != want {
			t.Fatalf("root at size %d = %v, want %v", n, got, want)
		}
	}
}

// TestBatchAppendStoresSameHashes: hashes computed for a batch equal those
// computed one leaf at a time, so stores may append per transaction.
func TestBatchAppendStoresSameHashes(t *testing.T) {
	ctx := context.Background()
	one := transparency.NewMemoryHashStore()
	for _, h := range leaves("c", 0, 100) {
		appendLeaves(t, one, "c", []tlog.Hash{h})
	}
	batch := storeWith(t, "c", leaves("c", 0, 100))
	count := tlog.StoredHashCount(100)
	idx := make([]int64, count)
	for i := range idx {
		idx[i] = int64(i)
	}
	a, err := one.ReadHashes(ctx, "c", idx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := batch.ReadHashes(ctx, "c", idx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("stored hash %d differs: one by one %v, batch %v", i, a[i], b[i])
		}
	}
}

func TestInclusionProofs(t *testing.T) {
	ctx := context.Background()
	all := leaves("c", 0, 70)
	s := storeWith(t, "c", all)
	for n := int64(1); n <= 70; n++ {
		r := root(t, s, "c", n)
		for i := int64(0); i < n; i++ {
			p, err := transparency.InclusionProof(ctx, s, "c", i, n)
			if err != nil {
				t.Fatal(err)
			}
			if err := transparency.VerifyInclusion(p, n, r, i, all[i]); err != nil {
				t.Fatalf("leaf %d at size %d: %v", i, n, err)
			}
			if err := transparency.VerifyInclusion(p, n, r, i, leaf("x", int(i))); !errors.Is(err, transparency.ErrProof) {
				t.Fatalf("another leaf %d at size %d: err = %v, want ErrProof", i, n, err)
			}
			if n > 1 {
				if err := transparency.VerifyInclusion(p, n, r, (i+1)%n, all[i]); !errors.Is(err, transparency.ErrProof) {
					t.Fatalf("leaf %d claimed at %d, size %d: err = %v, want ErrProof", i, (i+1)%n, n, err)
				}
			}
		}
	}
	for _, c := range []struct{ i, n int64 }{{-1, 5}, {5, 5}, {0, 0}} {
		if _, err := transparency.InclusionProof(ctx, s, "c", c.i, c.n); !errors.Is(err, transparency.ErrInvalidArgument) {
			t.Errorf("InclusionProof(%d, %d): err = %v, want ErrInvalidArgument", c.i, c.n, err)
		}
	}
	if _, err := transparency.InclusionProof(ctx, s, "c", 0, 71); err == nil {
		t.Error("InclusionProof beyond the stored tree: no error")
	}
}

func TestConsistencyProofs(t *testing.T) {
	ctx := context.Background()
	s := storeWith(t, "c", leaves("c", 0, 40))
	for n := int64(1); n <= 40; n++ {
		rn := root(t, s, "c", n)
		for m := int64(1); m <= n; m++ {
			rm := root(t, s, "c", m)
			p, err := transparency.ConsistencyProof(ctx, s, "c", m, n)
			if err != nil {
				t.Fatal(err)
			}
			if err := transparency.VerifyConsistency(p, m, rm, n, rn); err != nil {
				t.Fatalf("%d to %d: %v", m, n, err)
			}
			if m < n {
				if err := transparency.VerifyConsistency(p, m, leaf("x", 0), n, rn); !errors.Is(err, transparency.ErrProof) {
					t.Fatalf("%d to %d with a wrong old root: err = %v, want ErrProof", m, n, err)
				}
			}
		}
	}
	if err := transparency.VerifyConsistency(nil, 5, leaf("a", 0), 5, leaf("b", 0)); !errors.Is(err, transparency.ErrProof) {
		t.Errorf("two roots at one size: err = %v, want ErrProof", err)
	}
	if err := transparency.VerifyConsistency(nil, 6, leaf("a", 0), 5, leaf("a", 0)); !errors.Is(err, transparency.ErrProof) {
		t.Errorf("shrinking tree: err = %v, want ErrProof", err)
	}
	if _, err := transparency.ConsistencyProof(ctx, s, "c", 0, 5); !errors.Is(err, transparency.ErrInvalidArgument) {
		t.Errorf("ConsistencyProof from 0: err = %v, want ErrInvalidArgument", err)
	}
}

func TestAppendHashesChecksSize(t *testing.T) {
	ctx := context.Background()
	s := storeWith(t, "c", leaves("c", 0, 3))
	hs, err := transparency.StoredHashes(transparency.Reader(ctx, s, "c"), 3, leaves("c", 3, 4))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AppendHashes(ctx, "c", 2, 3, hs); !errors.Is(err, transparency.ErrSizeMismatch) {
		t.Errorf("append at a stale size: err = %v, want ErrSizeMismatch", err)
	}
	if err := s.AppendHashes(ctx, "c", 3, 5, hs); !errors.Is(err, transparency.ErrInvalidArgument) {
		t.Errorf("append with too few hashes: err = %v, want ErrInvalidArgument", err)
	}
	if err := s.AppendHashes(ctx, "c", 3, 4, hs); err != nil {
		t.Fatal(err)
	}
	chains, _ := s.Chains(ctx)
	if len(chains) != 1 || chains[0] != "c" {
		t.Errorf("Chains = %v, want [c]", chains)
	}
}

func TestHashFromBytes(t *testing.T) {
	if _, err := transparency.HashFromBytes(make([]byte, 31)); !errors.Is(err, transparency.ErrInvalidArgument) {
		t.Errorf("31 bytes: err = %v, want ErrInvalidArgument", err)
	}
	want := leaf("c", 1)
	if got, err := transparency.HashFromBytes(want[:]); err != nil || got != want {
		t.Errorf("HashFromBytes = %v, %v; want %v", got, err, want)
	}
}

// TestCheckExtends: the current tree extends an earlier checkpoint; a
// rebuilt tree with one leaf changed, or a shorter one, does not.
func TestCheckExtends(t *testing.T) {
	ctx := context.Background()
	all := leaves("c", 0, 50)
	s := storeWith(t, "c", all)
	old := sign(t, testSigner(t), "tollgate/c", 30, root(t, s, "c", 30))
	for _, size := range []int64{30, 31, 50} {
		if _, err := transparency.CheckExtends(ctx, s, "c", size, old); err != nil {
			t.Errorf("size %d: %v", size, err)
		}
	}
	forged := append([]tlog.Hash{}, all...)
	forged[12] = leaf("forged", 12)
	if _, err := transparency.CheckExtends(ctx, storeWith(t, "c", forged), "c", 50, old); !errors.Is(err, transparency.ErrInconsistent) {
		t.Errorf("rewritten leaf: err = %v, want ErrInconsistent", err)
	}
	if _, err := transparency.CheckExtends(ctx, storeWith(t, "c", all[:29]), "c", 29, old); !errors.Is(err, transparency.ErrInconsistent) {
		t.Errorf("truncated tree: err = %v, want ErrInconsistent", err)
	}
}
