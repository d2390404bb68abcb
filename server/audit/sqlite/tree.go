package sqlite

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/transparency"
)

// querier is what reads need of a pool, a transaction or a connection.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// hashChunk bounds the indexes of one tree-hash read and the rows of one
// tree-hash INSERT (3 parameters a row).
const hashChunk = 128

// readHashes reads chainID's stored tree hashes at indexes through q.
func readHashes(ctx context.Context, q querier, chainID string, indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for start := 0; start < len(indexes); start += hashChunk {
		chunk := indexes[start:min(start+hashChunk, len(indexes))]
		args := make([]any, 0, len(chunk)+1)
		args = append(args, chainID)
		for _, i := range chunk {
			args = append(args, i)
		}
		rows, err := q.QueryContext(ctx, "SELECT idx, hash FROM tree_hashes WHERE chain_id = ? AND idx IN (?"+
			strings.Repeat(",?", len(chunk)-1)+")", args...)
		if err != nil {
			return nil, fmt.Errorf("read tree hashes of chain %s: %w", chainID, err)
		}
		got := make(map[int64][]byte, len(chunk))
		for rows.Next() {
			var i int64
			var h []byte
			if err := rows.Scan(&i, &h); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read tree hashes of chain %s: %w", chainID, err)
			}
			got[i] = h
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("read tree hashes of chain %s: %w", chainID, err)
		}
		for k, i := range chunk {
			h, ok := got[i]
			if !ok {
				return nil, fmt.Errorf("tree hash %d of chain %s: %w: %w", i, chainID, audit.ErrNotFound, transparency.ErrNotFound)
			}
			if len(h) != tlog.HashSize {
				return nil, fmt.Errorf("tree hash %d of chain %s has %d bytes: %w", i, chainID, len(h), audit.ErrCorrupt)
			}
			copy(out[start+k][:], h)
		}
	}
	return out, nil
}

// treeInsertSQL returns a multi-row INSERT of n tree hashes (n <= hashChunk).
// OR ROLLBACK for the reason insertSQL gives: a stored index again fails the
// whole append.
func treeInsertSQL(n int) string {
	return "INSERT OR ROLLBACK INTO tree_hashes (chain_id, idx, hash) VALUES (?,?,?)" + strings.Repeat(",(?,?,?)", n-1)
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

// growTree stores the tree hashes of leaves appended to chainID's tree of
// oldSize leaves, inside tx, reading the earlier hashes through tx.
func (s *Store) growTree(ctx context.Context, tx *sql.Tx, chainID string, oldSize int64, leaves []tlog.Hash) error {
	r := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) { return readHashes(ctx, tx, chainID, indexes) })
	hs, err := transparency.StoredHashes(r, oldSize, leaves)
	if err != nil {
		return fmt.Errorf("grow tree of chain %s: %w", chainID, err)
	}
	base := tlog.StoredHashCount(oldSize)
	for start := 0; start < len(hs); start += hashChunk {
		chunk := hs[start:min(start+hashChunk, len(hs))]
		args := make([]any, 0, 3*len(chunk))
		for k, h := range chunk {
			args = append(args, chainID, base+int64(start+k), h[:])
		}
		q := treeInsertSQL(len(chunk))
		if st := s.cachedStmt(q); st != nil {
			_, err = tx.StmtContext(ctx, st).ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, q, args...)
		}
		if err != nil {
			return fmt.Errorf("store tree hashes of chain %s: %w", chainID, err)
		}
	}
	return nil
}

// prepareTreeInserts prepares the INSERT shapes growing a tree by n
// hashes needs, before a transaction takes the write connection.
func (s *Store) prepareTreeInserts(ctx context.Context, n int64) error {
	if n >= hashChunk {
		if _, err := s.stmt(ctx, treeInsertSQL(hashChunk)); err != nil {
			return err
		}
	}
	if n%hashChunk != 0 {
		if _, err := s.stmt(ctx, treeInsertSQL(int(n%hashChunk))); err != nil {
			return err
		}
	}
	return nil
}

// cachedStmt returns query's prepared statement if the cache holds it; it
// never prepares, so it is safe while a transaction holds the write
// connection.
func (s *Store) cachedStmt(query string) *sql.Stmt {
	s.stmtMu.Lock()
	defer s.stmtMu.Unlock()
	return s.stmts[query]
}

// backfillBatch is how many records one backfill transaction adds to a
// tree: short enough that a second process waiting on the file is not
// starved, long enough that the per-commit fsync does not dominate. Tests
// shorten it.
var backfillBatch int64 = 4096

// backfillTrees builds the trees of records written before migration 004:
// for every chain whose tree is shorter than its head, it appends the
// records' hashes up to the head's seq (ZeroLeaf for a seq with no record),
// backfillBatch records per transaction, so an interrupted backfill resumes
// where it stopped at the next Open.
func (s *Store) backfillTrees(ctx context.Context) error {
	rows, err := s.w.QueryContext(ctx, "SELECT chain_id FROM chain_heads WHERE tree_size < seq ORDER BY chain_id")
	if err != nil {
		return fmt.Errorf("find chains without trees: %w", err)
	}
	var chains []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			rows.Close()
			return fmt.Errorf("find chains without trees: %w", err)
		}
		chains = append(chains, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("find chains without trees: %w", err)
	}
	for _, c := range chains {
		for {
			done, err := s.backfillStep(ctx, c)
			if err != nil {
				return fmt.Errorf("build tree of audit chain %s: %w", c, err)
			}
			if done {
				break
			}
		}
	}
	return nil
}

// backfillStep adds up to backfillBatch leaves to chainID's tree in one
// transaction and reports whether the tree has reached the head.
func (s *Store) backfillStep(ctx context.Context, chainID string) (bool, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	var head, size int64
	if err := tx.QueryRowContext(ctx, "SELECT seq, tree_size FROM chain_heads WHERE chain_id = ?", chainID).Scan(&head, &size); err != nil {
		return false, err
	}
	if size >= head {
		return true, nil
	}
	to := min(head, size+backfillBatch)
	rows, err := tx.QueryContext(ctx, "SELECT seq, hash FROM records WHERE chain_id = ? AND seq > ? AND seq <= ? ORDER BY seq", chainID, size, to)
	if err != nil {
		return false, err
	}
	leaves := make([]tlog.Hash, to-size)
	for rows.Next() {
		var seq int64
		var h []byte
		if err := rows.Scan(&seq, &h); err != nil {
			rows.Close()
			return false, err
		}
		if len(h) == tlog.HashSize {
			copy(leaves[seq-size-1][:], h)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, err
	}
	if err := s.growTree(ctx, tx, chainID, size, leaves); err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE chain_heads SET tree_size = ? WHERE chain_id = ?", to, chainID); err != nil {
		return false, err
	}
	if err := tx.Commit(); err != nil {
		return false, err
	}
	return to >= head, nil
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
	err := q.QueryRowContext(ctx, "SELECT tree_size FROM chain_heads WHERE chain_id = ?", chainID).Scan(&n)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
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
func (s *Store) PutCheckpoint(ctx context.Context, chainID string, cp transparency.Checkpoint) error {
	if err := s.check(); err != nil {
		return err
	}
	if cp.Size < 0 || len(cp.Note) == 0 {
		return fmt.Errorf("checkpoint of chain %s at size %d without a note: %w", chainID, cp.Size, audit.ErrInvalidArgument)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin checkpoint store: %w", err)
	}
	defer tx.Rollback()
	var size int64
	var root []byte
	err = tx.QueryRowContext(ctx, "SELECT tree_size, root FROM checkpoints WHERE chain_id = ? ORDER BY tree_size DESC LIMIT 1", chainID).Scan(&size, &root)
	switch {
	case errors.Is(err, sql.ErrNoRows):
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
	if _, err := tx.ExecContext(ctx, "INSERT INTO checkpoints (chain_id, tree_size, root, origin, note, signed_at) VALUES (?, ?, ?, ?, ?, ?)",
		chainID, cp.Size, cp.Root[:], cp.Origin, cp.Note, at.UnixNano()); err != nil {
		return fmt.Errorf("store checkpoint of chain %s at size %d: %w", chainID, cp.Size, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit checkpoint of chain %s: %w", chainID, err)
	}
	return nil
}

// LatestCheckpoint implements audit.Store and transparency.CheckpointStore.
func (s *Store) LatestCheckpoint(ctx context.Context, chainID string) (transparency.Checkpoint, error) {
	if err := s.check(); err != nil {
		return transparency.Checkpoint{}, err
	}
	cp, err := audit.ScanCheckpoint(s.r.QueryRowContext(ctx, "SELECT "+audit.CheckpointColumns+" FROM checkpoints WHERE chain_id = ? ORDER BY tree_size DESC LIMIT 1", chainID))
	if errors.Is(err, sql.ErrNoRows) {
		return transparency.Checkpoint{}, fmt.Errorf("checkpoint of chain %s: %w: %w", chainID, audit.ErrNotFound, transparency.ErrNotFound)
	}
	if err != nil {
		return transparency.Checkpoint{}, fmt.Errorf("read newest checkpoint of chain %s: %w", chainID, err)
	}
	return cp, nil
}

// ListCheckpoints implements audit.Store. The page token is the size of the
// last checkpoint returned.
func (s *Store) ListCheckpoints(ctx context.Context, q audit.CheckpointQuery) (audit.CheckpointPage, error) {
	if err := s.check(); err != nil {
		return audit.CheckpointPage{}, err
	}
	below, err := audit.CheckpointsBelow(q.PageToken)
	if err != nil {
		return audit.CheckpointPage{}, err
	}
	size := q.EffectivePageSize()
	query := "SELECT " + audit.CheckpointColumns + " FROM checkpoints WHERE chain_id = ?"
	args := []any{q.ChainID}
	if below >= 0 {
		query += " AND tree_size < ?"
		args = append(args, below)
	}
	rows, err := s.r.QueryContext(ctx, query+" ORDER BY tree_size DESC LIMIT "+strconv.Itoa(size+1), args...)
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

// View implements audit.Store: a deferred read transaction on one
// connection of the audit pool, whose snapshot is fixed by its first read
// (WAL). It never takes a write lock, so the writer goes on beside it.
func (s *Store) View(ctx context.Context, fn func(audit.Snapshot) error) error {
	if err := s.check(); err != nil {
		return err
	}
	conn, err := s.r.Conn(ctx)
	if err != nil {
		return fmt.Errorf("open audit snapshot: %w", err)
	}
	defer conn.Close()
	// BEGIN by hand: the pool's DSN makes BeginTx say BEGIN IMMEDIATE,
	// which would take the write lock.
	if _, err := conn.ExecContext(ctx, "BEGIN DEFERRED"); err != nil {
		return fmt.Errorf("open audit snapshot: %w", err)
	}
	defer func() {
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); err != nil {
			// A connection still inside the transaction must not go back to
			// the pool, where the next reader would see this old snapshot.
			_ = conn.Raw(func(any) error { return sqldriver.ErrBadConn })
		}
	}()
	return fn(&snapshot{s: s, conn: conn})
}

// snapshot is audit.Snapshot over one connection inside a read transaction.
type snapshot struct {
	s    *Store
	conn *sql.Conn
}

func (n *snapshot) Head(ctx context.Context, chainID string) (audit.Head, error) {
	return head(ctx, n.conn, chainID)
}

func (n *snapshot) Chains(ctx context.Context) ([]string, error) { return chains(ctx, n.conn) }

func (n *snapshot) Chain(ctx context.Context, chainID string, fromSeq uint64, fn func(*audit.Record) error) error {
	return chain(ctx, n.conn, chainID, fromSeq, fn)
}

func (n *snapshot) TreeSize(ctx context.Context, chainID string) (int64, error) {
	return treeSize(ctx, n.conn, chainID)
}

func (n *snapshot) ReadHashes(ctx context.Context, chainID string, indexes []int64) ([]tlog.Hash, error) {
	return readHashes(ctx, n.conn, chainID, indexes)
}

func (n *snapshot) Checkpoints(ctx context.Context, chainID string) ([]transparency.Checkpoint, error) {
	rows, err := n.conn.QueryContext(ctx, "SELECT "+audit.CheckpointColumns+" FROM checkpoints WHERE chain_id = ? ORDER BY tree_size", chainID)
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
