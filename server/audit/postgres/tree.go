package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/transparency"
)

// querier is what reads need of a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// selectHashes reads stored tree hashes by index: $1 chain, $2 indexes; a
// missing hash is a NULL. One primary-key lookup per index, whatever the
// statistics: the plainer "chain_id = $1 AND idx = ANY($2)", prepared while
// the table was small, kept a generic plan that scanned the whole chain's
// hashes and filtered them (4,760 rows read for 12 at 2,400 records, seen
// with auto_explain in a perfrun), so each append grew slower with the log.
const selectHashes = `SELECT i.idx, (SELECT t.hash FROM tree_hashes t WHERE t.chain_id = $1 AND t.idx = i.idx)
	FROM unnest($2::bigint[]) AS i (idx)`

// readHashes reads chainID's stored tree hashes at indexes through q, in
// one query whatever their number.
func readHashes(ctx context.Context, q querier, chainID string, indexes []int64) ([]tlog.Hash, error) {
	rows, err := q.Query(ctx, selectHashes, chainID, indexes)
	if err != nil {
		return nil, fmt.Errorf("read tree hashes of chain %s: %w", chainID, err)
	}
	got, err := scanHashes(rows)
	if err != nil {
		return nil, fmt.Errorf("read tree hashes of chain %s: %w", chainID, err)
	}
	return pickHashes(got, chainID, indexes)
}

// scanHashes reads the (idx, hash) rows of selectHashes and closes them;
// the indexes with no stored hash are absent from the map.
func scanHashes(rows pgx.Rows) (map[int64][]byte, error) {
	got := map[int64][]byte{}
	for rows.Next() {
		var i int64
		var h []byte
		if err := rows.Scan(&i, &h); err != nil {
			rows.Close()
			return nil, err
		}
		if h != nil { // NULL: not stored
			got[i] = h
		}
	}
	rows.Close()
	return got, rows.Err()
}

// pickHashes returns the hashes at indexes from got, ErrNotFound for one
// that is missing.
func pickHashes(got map[int64][]byte, chainID string, indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for k, i := range indexes {
		h, ok := got[i]
		if !ok {
			return nil, fmt.Errorf("tree hash %d of chain %s: %w: %w", i, chainID, audit.ErrNotFound, transparency.ErrNotFound)
		}
		if len(h) != tlog.HashSize {
			return nil, fmt.Errorf("tree hash %d of chain %s has %d bytes: %w", i, chainID, len(h), audit.ErrCorrupt)
		}
		copy(out[k][:], h)
	}
	return out, nil
}

// treeReads returns the stored hash indexes that growing a tree of oldSize
// leaves by n leaves reads. They depend on the sizes alone (tlog reads the
// roots of the complete subtrees left of each new leaf), so Append can
// fetch them in the round trip that reads the head.
func treeReads(oldSize int64, n int) ([]int64, error) {
	if n == 0 {
		return nil, nil
	}
	seen := map[int64]bool{}
	var idx []int64
	r := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		for _, i := range indexes {
			if !seen[i] {
				seen[i] = true
				idx = append(idx, i)
			}
		}
		return make([]tlog.Hash, len(indexes)), nil
	})
	if _, err := transparency.StoredHashes(r, oldSize, make([]tlog.Hash, n)); err != nil {
		return nil, fmt.Errorf("plan tree growth from %d leaves: %w", oldSize, err)
	}
	return idx, nil
}

// treeLeaves returns the leaves entries add to a tree of treeSize leaves:
// ZeroLeaf for each seq a leading chain-break record skips, then each
// record's hash. It returns ErrCorrupt if the tree does not end where the
// entries begin (see audit.Store.Append).
func treeLeaves(chainID string, prevSeq uint64, treeSize int64, entries []audit.Entry) ([]tlog.Hash, error) {
	first := entries[0].Record
	gap := int64(0)
	switch {
	case first.GetKind() == tollgatev1.RecordKind_RECORD_KIND_CHAIN_BREAK && treeSize <= int64(first.GetSeq())-1:
		gap = int64(first.GetSeq()) - 1 - treeSize
	case treeSize != int64(prevSeq):
		return nil, fmt.Errorf("append to chain %s: its tree has %d leaves, its head seq %d: %w", chainID, treeSize, prevSeq, audit.ErrCorrupt)
	}
	leaves := make([]tlog.Hash, gap, gap+int64(len(entries)))
	for _, e := range entries {
		h, err := transparency.HashFromBytes(e.Record.GetHash())
		if err != nil {
			return nil, fmt.Errorf("record %s: %w: %w", e.Record.GetDecisionId(), audit.ErrInvalidArgument, err)
		}
		leaves = append(leaves, h)
	}
	return leaves, nil
}

// insertTreeHashes stores a run of tree hashes from storage index $2 on.
const insertTreeHashes = `INSERT INTO tree_hashes (chain_id, idx, hash)
	SELECT $1, $2 + i - 1, h FROM unnest($3::bytea[]) WITH ORDINALITY AS t (h, i)`

// treeGrowth returns the tree hashes leaves add to chainID's tree of
// oldSize leaves, as arguments of insertTreeHashes. It takes the earlier
// hashes it needs from known (stored hashes by index, fetched beforehand;
// nil for none) and reads any other through q.
func treeGrowth(ctx context.Context, q querier, known map[int64][]byte, chainID string, oldSize int64, leaves []tlog.Hash) ([]any, error) {
	r := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		if hs, err := pickHashes(known, chainID, indexes); err == nil {
			return hs, nil
		}
		return readHashes(ctx, q, chainID, indexes)
	})
	hs, err := transparency.StoredHashes(r, oldSize, leaves)
	if err != nil {
		return nil, fmt.Errorf("grow tree of chain %s: %w", chainID, err)
	}
	raw := make([][]byte, len(hs))
	for i := range hs {
		raw[i] = hs[i][:]
	}
	return []any{chainID, tlog.StoredHashCount(oldSize), raw}, nil
}

// TreeSize implements audit.Store and transparency.HashStore.
func (s *Store) TreeSize(ctx context.Context, chainID string) (int64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	return treeSize(ctx, s.r, chainID)
}

func treeSize(ctx context.Context, q querier, chainID string) (int64, error) {
	var n int64
	err := q.QueryRow(ctx, "SELECT tree_size FROM chain_heads WHERE chain_id = $1", chainID).Scan(&n)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("read tree size of chain %s: %w", chainID, err)
	}
	return n, nil
}

// ReadHashes implements audit.Store and transparency.HashStore.
func (s *Store) ReadHashes(ctx context.Context, chainID string, indexes []int64) ([]tlog.Hash, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	return readHashes(ctx, s.r, chainID, indexes)
}

// AppendHashes makes Store a transparency.HashStore; it returns an error
// wrapping audit.ErrTreeReadOnly, since the tree grows only inside Append.
func (s *Store) AppendHashes(context.Context, string, int64, int64, []tlog.Hash) error {
	return fmt.Errorf("append tree hashes: %w", audit.ErrTreeReadOnly)
}

var _ transparency.HashStore = (*Store)(nil)

// PutCheckpoint implements audit.Store and transparency.CheckpointStore.
// Checkpointers of one chain are serialised by a transaction-scoped
// advisory lock per chain, so two cannot both pass the newest-size check.
func (s *Store) PutCheckpoint(ctx context.Context, chainID string, cp transparency.Checkpoint) error {
	if err := s.check(); err != nil {
		return err
	}
	if cp.Size < 0 || len(cp.Note) == 0 {
		return fmt.Errorf("checkpoint of chain %s at size %d without a note: %w", chainID, cp.Size, audit.ErrInvalidArgument)
	}
	tx, err := s.w.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin checkpoint store: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended('checkpoints/' || $1, 0))", chainID); err != nil {
		return fmt.Errorf("lock checkpoints of chain %s: %w", chainID, err)
	}
	var size int64
	var root []byte
	err = tx.QueryRow(ctx, "SELECT tree_size, root FROM checkpoints WHERE chain_id = $1 ORDER BY tree_size DESC LIMIT 1", chainID).Scan(&size, &root)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return fmt.Errorf("read newest checkpoint of chain %s: %w", chainID, err)
	case size == cp.Size && string(root) == string(cp.Root[:]):
		return nil
	case size >= cp.Size:
		return fmt.Errorf("checkpoint of chain %s at size %d: the newest stored has size %d: %w", chainID, cp.Size, size, audit.ErrInvalidArgument)
	}
	at := cp.SignedAt
	if at.IsZero() {
		at = time.Now()
	}
	if _, err := tx.Exec(ctx, "INSERT INTO checkpoints (chain_id, tree_size, root, origin, note, signed_at) VALUES ($1, $2, $3, $4, $5, $6)",
		chainID, cp.Size, cp.Root[:], cp.Origin, cp.Note, at.UnixNano()); err != nil {
		return fmt.Errorf("store checkpoint of chain %s at size %d: %w", chainID, cp.Size, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit checkpoint of chain %s: %w", chainID, err)
	}
	return nil
}

// LatestCheckpoint implements audit.Store and transparency.CheckpointStore.
func (s *Store) LatestCheckpoint(ctx context.Context, chainID string) (transparency.Checkpoint, error) {
	if err := s.check(); err != nil {
		return transparency.Checkpoint{}, err
	}
	cp, err := audit.ScanCheckpoint(s.r.QueryRow(ctx, "SELECT "+audit.CheckpointColumns+" FROM checkpoints WHERE chain_id = $1 ORDER BY tree_size DESC LIMIT 1", chainID))
	if errors.Is(err, pgx.ErrNoRows) {
		return transparency.Checkpoint{}, fmt.Errorf("checkpoint of chain %s: %w: %w", chainID, audit.ErrNotFound, transparency.ErrNotFound)
	}
	if err != nil {
		return transparency.Checkpoint{}, fmt.Errorf("read newest checkpoint of chain %s: %w", chainID, err)
	}
	return cp, nil
}

// ListCheckpoints implements audit.Store. The page token is the size of the
// last checkpoint returned, as in the SQLite store.
func (s *Store) ListCheckpoints(ctx context.Context, q audit.CheckpointQuery) (audit.CheckpointPage, error) {
	if err := s.check(); err != nil {
		return audit.CheckpointPage{}, err
	}
	below, err := audit.CheckpointsBelow(q.PageToken)
	if err != nil {
		return audit.CheckpointPage{}, err
	}
	size := q.EffectivePageSize()
	query := "SELECT " + audit.CheckpointColumns + " FROM checkpoints WHERE chain_id = $1"
	args := []any{q.ChainID}
	if below >= 0 {
		query += " AND tree_size < $2"
		args = append(args, below)
	}
	rows, err := s.r.Query(ctx, query+" ORDER BY tree_size DESC LIMIT "+strconv.Itoa(size+1), args...)
	if err != nil {
		return audit.CheckpointPage{}, fmt.Errorf("list checkpoints of chain %s: %w", q.ChainID, err)
	}
	defer rows.Close()
	page, err := audit.CheckpointPageOf(rows, size)
	if err != nil {
		return audit.CheckpointPage{}, fmt.Errorf("list checkpoints of chain %s: %w", q.ChainID, err)
	}
	return page, nil
}

// View implements audit.Store: a read-only REPEATABLE READ transaction on
// one connection of the audit pool, whose snapshot is taken at its first
// read. Appends go on beside it.
func (s *Store) View(ctx context.Context, fn func(audit.Snapshot) error) error {
	if err := s.check(); err != nil {
		return err
	}
	tx, err := s.r.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("open audit snapshot: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	return fn(&snapshot{tx: tx})
}

// snapshot is audit.Snapshot over a read-only transaction.
type snapshot struct{ tx pgx.Tx }

func (n *snapshot) Head(ctx context.Context, chainID string) (audit.Head, error) {
	return head(ctx, n.tx, chainID)
}

func (n *snapshot) Chains(ctx context.Context) ([]string, error) { return chains(ctx, n.tx) }

func (n *snapshot) Chain(ctx context.Context, chainID string, fromSeq uint64, fn func(*audit.Record) error) error {
	return chain(ctx, n.tx, chainID, fromSeq, fn)
}

func (n *snapshot) TreeSize(ctx context.Context, chainID string) (int64, error) {
	return treeSize(ctx, n.tx, chainID)
}

func (n *snapshot) ReadHashes(ctx context.Context, chainID string, indexes []int64) ([]tlog.Hash, error) {
	return readHashes(ctx, n.tx, chainID, indexes)
}

func (n *snapshot) Checkpoints(ctx context.Context, chainID string) ([]transparency.Checkpoint, error) {
	rows, err := n.tx.Query(ctx, "SELECT "+audit.CheckpointColumns+" FROM checkpoints WHERE chain_id = $1 ORDER BY tree_size", chainID)
	if err != nil {
		return nil, fmt.Errorf("read checkpoints of chain %s: %w", chainID, err)
	}
	defer rows.Close()
	var out []transparency.Checkpoint
	for rows.Next() {
		cp, err := audit.ScanCheckpoint(rows)
		if err != nil {
			return nil, fmt.Errorf("read checkpoints of chain %s: %w", chainID, err)
		}
		out = append(out, cp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read checkpoints of chain %s: %w", chainID, err)
	}
	return out, nil
}
