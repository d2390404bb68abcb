package transparency

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Errors returned by this package. Test with errors.Is.
var (
	// ErrNotFound: no such chain, hash or checkpoint.
	ErrNotFound = errors.New("not found")
	// ErrSizeMismatch: an append does not continue the stored tree.
	ErrSizeMismatch = errors.New("tree size mismatch")
	// ErrInvalidArgument: a size, index, hash or origin out of range or malformed.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrProof: an inclusion or consistency proof does not verify.
	ErrProof = errors.New("proof does not verify")
	// ErrInconsistent: a tree does not extend an earlier checkpoint.
	ErrInconsistent = errors.New("tree does not extend the checkpoint")
	// ErrMalformed: a checkpoint, receipt or witness file does not parse.
	ErrMalformed = errors.New("malformed")
	// ErrBadSignature: a checkpoint carries no valid signature by the key.
	ErrBadSignature = errors.New("no valid signature by the key")
	// ErrOriginMismatch: a checkpoint is for another log.
	ErrOriginMismatch = errors.New("checkpoint origin mismatch")
	// ErrRecordMismatch: a record does not match the receipt's leaf.
	ErrRecordMismatch = errors.New("record does not match the receipt")
	// ErrClosed: the Checkpointer or witness is closed.
	ErrClosed = errors.New("checkpointer or witness closed")
)

// HashStore keeps the stored tree hashes of every chain (see the package doc
// for their layout). Implementations are safe for concurrent use. Stored
// hashes never change, so a reader holding a size it read earlier may read
// proofs for it while appends continue.
type HashStore interface {
	// Chains lists the chains that have a tree, sorted.
	Chains(ctx context.Context) ([]string, error)
	// TreeSize returns the number of leaves of chainID's tree: 0 for a
	// chain with none.
	TreeSize(ctx context.Context, chainID string) (int64, error)
	// ReadHashes returns chainID's stored hashes at the given storage
	// indexes (tlog.StoredHashIndex), one per index, in order. An index not
	// stored is ErrNotFound.
	ReadHashes(ctx context.Context, chainID string, indexes []int64) ([]tlog.Hash, error)
	// AppendHashes grows chainID's tree from oldSize to newSize leaves,
	// storing hashes, which StoredHashes computed for those leaves, at the
	// storage indexes from tlog.StoredHashCount(oldSize) on, atomically. It
	// returns ErrSizeMismatch if the tree's size is not oldSize and
	// ErrInvalidArgument if len(hashes) does not fit the sizes.
	AppendHashes(ctx context.Context, chainID string, oldSize, newSize int64, hashes []tlog.Hash) error
}

// HashFromBytes returns b, a record hash, as a tlog.Hash; b must be 32
// bytes, else ErrInvalidArgument.
func HashFromBytes(b []byte) (tlog.Hash, error) {
	var h tlog.Hash
	if len(b) != sha256.Size {
		return h, fmt.Errorf("%w: hash of %d bytes, want %d", ErrInvalidArgument, len(b), sha256.Size)
	}
	copy(h[:], b)
	return h, nil
}

// LeafHash is the RFC 6962 tree hash of a leaf whose data is recordHash:
// SHA-256(0x00 || recordHash).
func LeafHash(recordHash tlog.Hash) tlog.Hash { return tlog.RecordHash(recordHash[:]) }

// Reader adapts chainID of s to a tlog.HashReader bound to ctx.
func Reader(ctx context.Context, s HashStore, chainID string) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		return s.ReadHashes(ctx, chainID, indexes)
	})
}

// StoredHashes returns the hashes to store when leaves (record hashes, in seq
// order) are appended to a tree of oldSize leaves, in storage order from
// tlog.StoredHashCount(oldSize) on. r reads the tree's earlier stored hashes;
// a store calls it inside the transaction that appends the records, with r
// reading that transaction.
func StoredHashes(r tlog.HashReader, oldSize int64, leaves []tlog.Hash) ([]tlog.Hash, error) {
	if oldSize < 0 {
		return nil, fmt.Errorf("%w: tree size %d", ErrInvalidArgument, oldSize)
	}
	base := tlog.StoredHashCount(oldSize)
	out := make([]tlog.Hash, 0, 2*len(leaves)+1)
	// Hashes of leaves earlier in this batch are not stored yet: read them
	// from out, everything older from r.
	overlay := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		hs := make([]tlog.Hash, len(indexes))
		var old []int64
		for _, i := range indexes {
			if i < base {
				old = append(old, i)
			}
		}
		var got []tlog.Hash
		if len(old) > 0 {
			var err error
			if got, err = r.ReadHashes(old); err != nil {
				return nil, err
			}
			if len(got) != len(old) {
				return nil, fmt.Errorf("read %d stored hashes: got %d", len(old), len(got))
			}
		}
		for k, i := range indexes {
			switch {
			case i < base:
				hs[k], got = got[0], got[1:]
			case i-base < int64(len(out)):
				hs[k] = out[i-base]
			default:
				return nil, fmt.Errorf("%w: stored hash %d", ErrNotFound, i)
			}
		}
		return hs, nil
	})
	for k, leaf := range leaves {
		hs, err := tlog.StoredHashesForRecordHash(oldSize+int64(k), LeafHash(leaf), overlay)
		if err != nil {
			return nil, fmt.Errorf("tree hashes of leaf %d: %w", oldSize+int64(k), err)
		}
		out = append(out, hs...)
	}
	return out, nil
}

// Append appends leaves (record hashes, in seq order) to chainID's tree in s
// and returns the new size. It reads the size, computes the hashes and
// stores them; a concurrent append makes it return ErrSizeMismatch.
func Append(ctx context.Context, s HashStore, chainID string, leaves []tlog.Hash) (int64, error) {
	size, err := s.TreeSize(ctx, chainID)
	if err != nil {
		return 0, fmt.Errorf("read tree size of chain %s: %w", chainID, err)
	}
	if len(leaves) == 0 {
		return size, nil
	}
	hs, err := StoredHashes(Reader(ctx, s, chainID), size, leaves)
	if err != nil {
		return 0, err
	}
	newSize := size + int64(len(leaves))
	if err := s.AppendHashes(ctx, chainID, size, newSize, hs); err != nil {
		return 0, fmt.Errorf("store tree hashes of chain %s: %w", chainID, err)
	}
	return newSize, nil
}

// TreeRoot returns the root hash of chainID's tree at size leaves (the
// SHA-256 of the empty string for size 0). size must not exceed the stored
// tree.
func TreeRoot(ctx context.Context, s HashStore, chainID string, size int64) (tlog.Hash, error) {
	if size < 0 {
		return tlog.Hash{}, fmt.Errorf("%w: tree size %d", ErrInvalidArgument, size)
	}
	h, err := tlog.TreeHash(size, Reader(ctx, s, chainID))
	if err != nil {
		return tlog.Hash{}, fmt.Errorf("root of chain %s at size %d: %w", chainID, size, err)
	}
	return h, nil
}

// InclusionProof returns the proof that leaf index (seq-1) is in chainID's
// tree at size: 0 ≤ index < size, else ErrInvalidArgument.
func InclusionProof(ctx context.Context, s HashStore, chainID string, index, size int64) (tlog.RecordProof, error) {
	if index < 0 || index >= size {
		return nil, fmt.Errorf("%w: leaf %d of a tree of size %d", ErrInvalidArgument, index, size)
	}
	p, err := tlog.ProveRecord(size, index, Reader(ctx, s, chainID))
	if err != nil {
		return nil, fmt.Errorf("prove leaf %d of chain %s at size %d: %w", index, chainID, size, err)
	}
	return p, nil
}

// ConsistencyProof returns the proof that chainID's tree at newSize extends
// the tree at oldSize: 1 ≤ oldSize ≤ newSize, else ErrInvalidArgument.
func ConsistencyProof(ctx context.Context, s HashStore, chainID string, oldSize, newSize int64) (tlog.TreeProof, error) {
	if oldSize < 1 || oldSize > newSize {
		return nil, fmt.Errorf("%w: consistency from size %d to %d", ErrInvalidArgument, oldSize, newSize)
	}
	p, err := tlog.ProveTree(newSize, oldSize, Reader(ctx, s, chainID))
	if err != nil {
		return nil, fmt.Errorf("prove chain %s from size %d to %d: %w", chainID, oldSize, newSize, err)
	}
	return p, nil
}

// VerifyInclusion checks that proof shows a tree of size leaves with root
// holds recordHash as leaf index. It returns an error wrapping ErrProof if
// not.
func VerifyInclusion(proof tlog.RecordProof, size int64, root tlog.Hash, index int64, recordHash tlog.Hash) error {
	if err := tlog.CheckRecord(proof, size, root, index, LeafHash(recordHash)); err != nil {
		return fmt.Errorf("%w: leaf %d in tree of size %d: %v", ErrProof, index, size, err)
	}
	return nil
}

// VerifyConsistency checks that proof shows the tree of newSize leaves with
// newRoot extends the tree of oldSize leaves with oldRoot. Equal sizes need
// equal roots and an empty proof; an empty old tree is extended by any. It
// returns an error wrapping ErrProof if not.
func VerifyConsistency(proof tlog.TreeProof, oldSize int64, oldRoot tlog.Hash, newSize int64, newRoot tlog.Hash) error {
	switch {
	case oldSize < 0 || oldSize > newSize:
		return fmt.Errorf("%w: consistency from size %d to %d", ErrProof, oldSize, newSize)
	case oldSize == 0:
		return nil
	case oldSize == newSize:
		if len(proof) != 0 || oldRoot != newRoot {
			return fmt.Errorf("%w: two roots for size %d", ErrProof, oldSize)
		}
		return nil
	}
	if err := tlog.CheckTree(proof, newSize, newRoot, oldSize, oldRoot); err != nil {
		return fmt.Errorf("%w: size %d to %d: %v", ErrProof, oldSize, newSize, err)
	}
	return nil
}

// CheckExtends checks that chainID's tree in s at size leaves extends old, a
// checkpoint of that chain verified by the caller, and returns the tree's
// root at size. A tree smaller than old, or one whose first old.Size leaves
// are not old's (a rewrite), is an error wrapping ErrInconsistent; a
// failure to read s is returned as is.
func CheckExtends(ctx context.Context, s HashStore, chainID string, size int64, old Checkpoint) (tlog.Hash, error) {
	if size < old.Size {
		return tlog.Hash{}, fmt.Errorf("%w: chain %s has %d leaves, checkpoint %d", ErrInconsistent, chainID, size, old.Size)
	}
	root, err := TreeRoot(ctx, s, chainID, size)
	if err != nil {
		return tlog.Hash{}, err
	}
	var proof tlog.TreeProof
	if old.Size > 0 && old.Size < size {
		if proof, err = ConsistencyProof(ctx, s, chainID, old.Size, size); err != nil {
			return tlog.Hash{}, err
		}
	}
	if err := VerifyConsistency(proof, old.Size, old.Root, size, root); err != nil {
		return tlog.Hash{}, fmt.Errorf("%w: chain %s at size %d: %v", ErrInconsistent, chainID, size, err)
	}
	return root, nil
}

// MemoryHashStore is a HashStore in memory, for tests and tools. The zero
// value is not usable; call NewMemoryHashStore. It is safe for concurrent
// use.
type MemoryHashStore struct {
	mu     sync.RWMutex
	hashes map[string][]tlog.Hash
	sizes  map[string]int64
}

// NewMemoryHashStore returns an empty MemoryHashStore.
func NewMemoryHashStore() *MemoryHashStore {
	return &MemoryHashStore{hashes: map[string][]tlog.Hash{}, sizes: map[string]int64{}}
}

// Chains implements HashStore.
func (m *MemoryHashStore) Chains(context.Context) ([]string, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.sizes))
	for c := range m.sizes {
		out = append(out, c)
	}
	slices.Sort(out)
	return out, nil
}

// TreeSize implements HashStore.
func (m *MemoryHashStore) TreeSize(_ context.Context, chainID string) (int64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.sizes[chainID], nil
}

// ReadHashes implements HashStore.
func (m *MemoryHashStore) ReadHashes(_ context.Context, chainID string, indexes []int64) ([]tlog.Hash, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	stored := m.hashes[chainID]
	out := make([]tlog.Hash, len(indexes))
	for k, i := range indexes {
		if i < 0 || i >= int64(len(stored)) {
			return nil, fmt.Errorf("%w: stored hash %d of chain %s", ErrNotFound, i, chainID)
		}
		out[k] = stored[i]
	}
	return out, nil
}

// AppendHashes implements HashStore.
func (m *MemoryHashStore) AppendHashes(_ context.Context, chainID string, oldSize, newSize int64, hashes []tlog.Hash) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sizes[chainID] != oldSize {
		return fmt.Errorf("%w: chain %s has %d leaves, append expects %d", ErrSizeMismatch, chainID, m.sizes[chainID], oldSize)
	}
	if newSize < oldSize || int64(len(hashes)) != tlog.StoredHashCount(newSize)-tlog.StoredHashCount(oldSize) {
		return fmt.Errorf("%w: %d hashes from size %d to %d", ErrInvalidArgument, len(hashes), oldSize, newSize)
	}
	m.hashes[chainID] = append(m.hashes[chainID], hashes...)
	m.sizes[chainID] = newSize
	return nil
}

// VerifyCheckpoints checks signed checkpoint notes of chainID (as stored or
// kept by witnesses) against its tree in s at size: each must carry v's
// signature for origin and state a prefix of that tree. Checkpoints that
// all extend into one tree are consistent with each other, so this is what
// an audit of the stored checkpoints needs. To judge the stored tree hashes
// too, pass as s the tree recomputed from the records (a MemoryHashStore
// filled by Append while reading them) and compare its root with the stored
// one. It stops at the first failure,
// wrapping ErrMalformed, ErrBadSignature, ErrOriginMismatch or
// ErrInconsistent with the checkpoint's position in notes.
func VerifyCheckpoints(ctx context.Context, s HashStore, chainID string, size int64, notes [][]byte, v note.Verifier, origin string) error {
	root, err := TreeRoot(ctx, s, chainID, size)
	if err != nil {
		return err
	}
	for i, n := range notes {
		cp, err := VerifyCheckpoint(n, v, origin)
		if err != nil {
			return fmt.Errorf("checkpoint %d of chain %s: %w", i+1, chainID, err)
		}
		if cp.Size > size {
			return fmt.Errorf("checkpoint %d of chain %s: %w: it has %d leaves, the log %d", i+1, chainID, ErrInconsistent, cp.Size, size)
		}
		var proof tlog.TreeProof
		if cp.Size > 0 && cp.Size < size {
			if proof, err = ConsistencyProof(ctx, s, chainID, cp.Size, size); err != nil {
				return err
			}
		}
		if err := VerifyConsistency(proof, cp.Size, cp.Root, size, root); err != nil {
			return fmt.Errorf("checkpoint %d of chain %s at size %d: %w: %v", i+1, chainID, cp.Size, ErrInconsistent, err)
		}
	}
	return nil
}
