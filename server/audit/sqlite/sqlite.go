// Package sqlite is the embedded audit.Store: one file, audit.db, under the
// data directory.
//
// The database runs in WAL mode with synchronous=FULL. In WAL mode
// synchronous=NORMAL only fsyncs at checkpoints, so a power loss can roll
// back the last committed transactions; FULL fsyncs the WAL on every commit,
// which is what lets a sync-mode Writer answer a decision only after its
// record is durable. The cost is one fsync per transaction, which the
// Writer's group commit spreads over many records. A busy timeout lets a
// second process (tollgatectl reading the file) wait instead of failing.
//
// Checkpoints (copying the WAL back into the database file) run on a reader
// connection every CheckpointInterval, not inside a commit: SQLite's
// automatic checkpoint would run in whichever append crossed 1,000 WAL pages,
// and every decision waiting on that group commit would wait for it too.
// A PASSIVE checkpoint never blocks the writer. Durability does not depend
// on it: the WAL itself is fsynced at every commit.
//
// # Connections
//
// A Store holds three pools on the same file, so that no reader can make a
// decision wait for a connection (WAL lets readers run beside the writer):
//
//   - write, one connection: Append (BEGIN IMMEDIATE), PutBundle, Ping and
//     migrations.
//   - decision, DecisionReadConns connections: the reads on a decision's
//     path, FindByIdempotencyKey, and Head and Last (the writer's start and
//     its recovery after a failed append; Verify's one Head read per chain
//     is a single-row lookup too).
//   - audit, AuditReadConns connections: everything an auditor asks, List,
//     Get, Chains, Chain and View (Verify), Export, GetBundle (replay),
//     the tree and checkpoint reads, and the background WAL checkpointer. Long reads hold a connection for their whole
//     walk; api.AuditServer admits fewer of them at once than this pool has,
//     so short audit reads still find a connection, and each walk is paced
//     to half of one core (paceEvery), so it leaves the CPU to decisions.
//
// Every connection of every pool is opened with the same pragmas
// (journal_mode=WAL, synchronous=FULL); Settings reads them back.
//
// A row's body is the record's canonical body (audit.Entry.Body: the JCS
// JSON its hash covers, hash left out), encoded once on the deciding
// goroutine; the hash is its own column. Bodies written before that are the
// record's protojson form with the hash inside; decode reads both. Every
// List filter has an index led by its column and then evaluated_at
// (migration 002; plan_test.go checks each query plan); the reason_code
// filter goes through the record_reasons side table, one B-tree keyed
// (code, evaluated_at, decision_id) since migration 008, so a reason code
// costs an append one index insert, not two.
//
// # Tree and checkpoints
//
// Each chain's Merkle tree (package transparency) lives in tree_hashes,
// written by Append in the transaction that inserts the records, with
// chain_heads.tree_size moved beside the head: the tree is always exactly
// the committed records, and a crash cannot split them. Append reads the
// few earlier hashes it needs through that transaction. A file from before
// migration 004 gets its trees at Open, backfillBatch records per
// transaction. Signed checkpoints are kept in checkpoints, one per size.
// View reads head, records, tree and checkpoints in one deferred read
// transaction on one connection of the audit pool, so Verify sees one
// snapshot while appends go on.
//
// Schema migrations are the embedded migrations/*.sql, applied in name
// order in one transaction each; PRAGMA user_version counts those applied.
//
// # Driver
//
// modernc.org/sqlite (pure Go) was measured against github.com/mattn/go-sqlite3
// (cgo) appending sealed records in one transaction per batch, WAL +
// synchronous=FULL, 2 shared vCPUs (load average 7-9 from other builds, so
// expect ±30 %), two runs each, records/s:
//
//	batch      modernc        mattn
//	1          481-616        396-504
//	16         1759-1876      2649-3482
//	128        5642-5769      4163-5789
//	512        3813-7073      5134-7226
//
//	go test -tags mattn -run '^$' -bench Append -benchtime 2s -count 2 ./server/audit/sqlite/
//
// Per-commit cost is dominated by the fsync; per-record cost by index
// maintenance and encoding the body, which both drivers pay alike. cgo wins
// only at small batches, which group commit avoids under load, so the
// pure-Go driver is kept: no C toolchain in builds, static binaries, easy
// cross-compilation. mattn_bench_test.go (build tag mattn) keeps the
// comparison reproducible.
package sqlite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/encoding/protojson"
	_ "modernc.org/sqlite" // registers driver "sqlite"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
)

//go:embed migrations/*.sql
var migrations embed.FS

// FileName is the database file created under the data directory.
const FileName = "audit.db"

// driver names a database/sql driver and how to build its DSN with the
// pragmas above.
type driver struct {
	name string
	dsn  func(path string, readOnly bool) string
}

func moderncDriver() driver {
	return driver{name: "sqlite", dsn: func(path string, readOnly bool) string {
		q := "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_txlock=immediate"
		if readOnly {
			q += "&_pragma=query_only(1)"
		}
		return path + q
	}}
}

// Store is the SQLite audit.Store. It is safe for concurrent use.
type Store struct {
	path   string
	w      *sql.DB // one connection: appends, bundles, ping
	d      *sql.DB // the decision path's reads
	r      *sql.DB // auditors' reads and the checkpointer
	closed atomic.Bool

	stmtMu sync.Mutex
	stmts  map[string]*sql.Stmt // prepared on w, by query

	stopCheckpoints chan struct{}
	checkpointsDone chan struct{}
}

// CheckpointInterval is how often the WAL is checkpointed into the database file.
const CheckpointInterval = time.Second

// Sizes of the read pools (see Connections in the package doc).
const (
	// DecisionReadConns serves the decision path's reads, single-row
	// index lookups that hold a connection for microseconds.
	DecisionReadConns = 2
	// AuditReadConns serves auditors' reads.
	AuditReadConns = 4
)

var _ audit.Store = (*Store)(nil)

// Open opens (creating if needed) dataDir/audit.db and migrates its schema.
func Open(ctx context.Context, dataDir string) (*Store, error) {
	return open(ctx, dataDir, moderncDriver())
}

func open(ctx context.Context, dataDir string, d driver) (*Store, error) {
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create audit data dir: %w", err)
	}
	path := filepath.Join(dataDir, FileName)
	w, err := sql.Open(d.name, d.dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("open audit db %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	s := &Store{path: path, w: w, stmts: make(map[string]*sql.Stmt)}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	if err := s.backfillTrees(ctx); err != nil {
		w.Close()
		return nil, err
	}
	for _, pool := range []struct {
		db    **sql.DB
		conns int
	}{{&s.d, DecisionReadConns}, {&s.r, AuditReadConns}} {
		db, err := sql.Open(d.name, d.dsn(path, true))
		if err != nil {
			s.closePools()
			return nil, fmt.Errorf("open audit db %s: %w", path, err)
		}
		db.SetMaxOpenConns(pool.conns)
		db.SetMaxIdleConns(pool.conns)
		*pool.db = db
	}
	// The writer never checkpoints on its own; the checkpointer below does. A connection the pool
	// reopens after an error would checkpoint automatically again, which is only slower.
	if _, err := w.ExecContext(ctx, "PRAGMA wal_autocheckpoint = 0"); err != nil {
		s.Close()
		return nil, fmt.Errorf("open audit db %s: turn off automatic checkpoints: %w", path, err)
	}
	s.stopCheckpoints, s.checkpointsDone = make(chan struct{}), make(chan struct{})
	go s.checkpoint(checkpointInterval)
	return s, nil
}

// checkpointInterval is CheckpointInterval; tests shorten it.
var checkpointInterval = CheckpointInterval

// checkpoint copies the WAL into the database file every interval until Close. PASSIVE does what it
// can without waiting for readers or the writer; what it leaves, the next round copies. Its errors
// are not fatal to anything (the WAL only grows until a round succeeds), so they are not reported.
func (s *Store) checkpoint(interval time.Duration) {
	defer close(s.checkpointsDone)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stopCheckpoints:
			return
		case <-t.C:
			_, _ = s.r.Exec("PRAGMA wal_checkpoint(PASSIVE)")
		}
	}
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// ConnSettings are the durability settings one connection runs with, as
// SQLite reports them.
type ConnSettings struct {
	// Pool is "write", "decision" or "audit" (see Connections in the package doc).
	Pool string
	// JournalMode is PRAGMA journal_mode: "wal".
	JournalMode string
	// Synchronous is PRAGMA synchronous: 2 is FULL.
	Synchronous int
}

// Settings reads journal_mode and synchronous back from every connection of
// every pool, the write connection included. It holds all of a pool's
// connections at once so that each is a distinct one, waiting for those in
// use: it is for tests and diagnostics, not for a serving path.
func (s *Store) Settings(ctx context.Context) ([]ConnSettings, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	var out []ConnSettings
	for _, p := range []struct {
		name  string
		db    *sql.DB
		conns int
	}{{"write", s.w, 1}, {"decision", s.d, DecisionReadConns}, {"audit", s.r, AuditReadConns}} {
		var held []*sql.Conn
		for range p.conns {
			c, err := p.db.Conn(ctx)
			if err != nil {
				closeConns(held)
				return nil, fmt.Errorf("%s pool: %w", p.name, err)
			}
			held = append(held, c)
			cs := ConnSettings{Pool: p.name}
			err = c.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&cs.JournalMode)
			if err == nil {
				err = c.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&cs.Synchronous)
			}
			if err != nil {
				closeConns(held)
				return nil, fmt.Errorf("%s pool: read settings: %w", p.name, err)
			}
			out = append(out, cs)
		}
		closeConns(held)
	}
	return out, nil
}

func closeConns(cs []*sql.Conn) {
	for _, c := range cs {
		_ = c.Close()
	}
}

func (s *Store) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("list audit migrations: %w", err)
	}
	sort.Strings(names)
	var version int
	if err := s.w.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("read audit schema version: %w", err)
	}
	if version > len(names) {
		return fmt.Errorf("audit schema version %d is newer than this build's %d", version, len(names))
	}
	for i := version; i < len(names); i++ {
		src, err := migrations.ReadFile(names[i])
		if err != nil {
			return fmt.Errorf("read audit migration %s: %w", names[i], err)
		}
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("begin audit migration %s: %w", names[i], err)
		}
		if _, err := tx.ExecContext(ctx, string(src)); err != nil {
			tx.Rollback()
			return fmt.Errorf("apply audit migration %s: %w", names[i], err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", i+1)); err != nil {
			tx.Rollback()
			return fmt.Errorf("set audit schema version: %w", err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("commit audit migration %s: %w", names[i], err)
		}
	}
	return nil
}

func (s *Store) check() error {
	if s.closed.Load() {
		return audit.ErrClosed
	}
	return nil
}

// recordCols are the columns of one records row, in insert order.
const recordCols = `decision_id, chain_id, seq, kind, evaluated_at, actor_id, action, resource_type, resource_id,
	effect, bundle_revision, workflow_id, idempotency_key, idempotency_scope, hash, body`

// insertChunk bounds the rows of one multi-row INSERT: 16 parameters a row
// stays far below SQLite's 32766 host parameters.
const insertChunk = 64

// insertSQL returns a multi-row INSERT of n records (n <= insertChunk).
//
// OR ROLLBACK: a duplicate decision id or idempotency key fails the whole
// append anyway (Append rolls back on any error), and saying so lets SQLite
// skip the statement journal it otherwise keeps to undo half a statement: a
// copy of every page the INSERT touches, 15 % of an append's CPU. For the same
// reason the one foreign key (record_reasons to records) is checked at the
// commit, which still fails on a violation: DEFERRABLE INITIALLY DEFERRED
// since migration 008, a PRAGMA defer_foreign_keys per append before.
func insertSQL(n int) string {
	var b strings.Builder
	b.WriteString("INSERT OR ROLLBACK INTO records (" + recordCols + ") VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
	}
	return b.String()
}

// Append implements audit.Store. Records go in with one multi-row INSERT per
// insertChunk records and their reason codes with one more; the body stored
// is the entry's canonical body, checked against the record's hash.
func (s *Store) Append(ctx context.Context, prev audit.Head, entries []audit.Entry) error {
	if err := s.check(); err != nil {
		return err
	}
	if len(entries) == 0 {
		return nil
	}
	for i, e := range entries {
		r := e.Record
		want := prev.Seq + 1
		switch {
		case i > 0:
			want = entries[i-1].Record.GetSeq() + 1
		case r.GetKind() == tollgatev1.RecordKind_RECORD_KIND_CHAIN_BREAK && r.GetSeq() > prev.Seq:
			want = r.GetSeq() // may jump past rows beyond the head: see audit.Store.Append
		}
		if r.GetChainId() != prev.ChainID || r.GetSeq() != want || r.GetDecisionId() == "" {
			return fmt.Errorf("append record %q (chain %q seq %d) after %q seq %d: %w",
				r.GetDecisionId(), r.GetChainId(), r.GetSeq(), prev.ChainID, prev.Seq, audit.ErrInvalidArgument)
		}
		if sum := sha256.Sum256(e.Body); !bytes.Equal(sum[:], r.GetHash()) {
			return fmt.Errorf("append record %s: body does not hash to the record's hash: %w", r.GetDecisionId(), audit.ErrInvalidArgument)
		}
	}
	// Build every statement first and prepare them before the transaction
	// takes the write connection: one multi-row INSERT of records and one of
	// reason codes per insertChunk records.
	type op struct {
		stmt  *sql.Stmt // nil: run query unprepared
		query string
		args  []any
		what  string
	}
	var ops []op
	for start := 0; start < len(entries); start += insertChunk {
		chunk := entries[start:min(start+insertChunk, len(entries))]
		args := make([]any, 0, 16*len(chunk))
		var reasons []any
		for _, e := range chunk {
			c := audit.ColumnsOf(e.Record)
			args = append(args, c.DecisionID, c.ChainID, c.Seq, c.Kind, c.EvaluatedAt,
				c.ActorID, c.Action, c.ResType, c.ResID, c.Effect, c.BundleRevision, c.WorkflowID, c.IdempotKey,
				c.IdempotScope, c.Hash, string(e.Body))
			for _, reason := range e.Record.GetReasons() {
				if reason.GetCode() != "" {
					reasons = append(reasons, reason.GetCode(), c.DecisionID, c.EvaluatedAt)
				}
			}
		}
		what := fmt.Sprintf("audit records %s..%s", chunk[0].Record.GetDecisionId(), chunk[len(chunk)-1].Record.GetDecisionId())
		q := insertSQL(len(chunk))
		st, err := s.stmt(ctx, q)
		if err != nil {
			return err
		}
		ops = append(ops, op{st, q, args, what})
		if len(reasons) > 0 {
			q := "INSERT OR IGNORE INTO record_reasons (code, decision_id, evaluated_at) VALUES (?,?,?)" + strings.Repeat(",(?,?,?)", len(reasons)/3-1)
			st, err := s.stmt(ctx, q)
			if err != nil {
				return err
			}
			ops = append(ops, op{st, q, reasons, "reasons of " + what})
		}
	}
	last := entries[len(entries)-1].Record
	moveHead := `INSERT INTO chain_heads (chain_id, seq, hash, tree_size) VALUES (?, ?, ?, ?)
		ON CONFLICT (chain_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, tree_size = excluded.tree_size`
	headStmt, err := s.stmt(ctx, moveHead)
	if err != nil {
		return err
	}
	// The tree grows by one leaf per seq, so its hashes are known in number
	// unless a chain-break record jumps (then they go unprepared).
	if err := s.prepareTreeInserts(ctx, tlog.StoredHashCount(int64(last.GetSeq()))-tlog.StoredHashCount(int64(prev.Seq))); err != nil {
		return err
	}

	// The head read is prepared too. No PRAGMA runs in the transaction: a
	// flag pragma (defer_foreign_keys, as Append ran before migration 008
	// declared the one foreign key deferred) expires every prepared
	// statement of the connection, so each append parsed all of its
	// statements again, 18 % of a one-record append's CPU.
	const readHead = "SELECT seq, hash, tree_size FROM chain_heads WHERE chain_id = ?"
	readStmt, err := s.stmt(ctx, readHead)
	if err != nil {
		return err
	}

	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin audit append: %w", err)
	}
	defer tx.Rollback()
	var seq uint64
	var hash []byte
	var size int64
	var row *sql.Row
	if readStmt != nil {
		row = tx.StmtContext(ctx, readStmt).QueryRowContext(ctx, prev.ChainID)
	} else {
		row = tx.QueryRowContext(ctx, readHead, prev.ChainID)
	}
	err = row.Scan(&seq, &hash, &size)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read audit chain head: %w", err)
	}
	if seq != prev.Seq || (seq != 0 && !bytes.Equal(hash, prev.Hash)) {
		return fmt.Errorf("append to chain %s: stored head seq %d, writer's %d: %w", prev.ChainID, seq, prev.Seq, audit.ErrHeadMismatch)
	}
	leaves, err := treeLeaves(prev.ChainID, prev.Seq, size, entries)
	if err != nil {
		return err
	}
	for _, o := range ops {
		if o.stmt != nil {
			_, err = tx.StmtContext(ctx, o.stmt).ExecContext(ctx, o.args...)
		} else {
			_, err = tx.ExecContext(ctx, o.query, o.args...)
		}
		if err != nil {
			if isUnique(err) {
				return fmt.Errorf("insert %s: %w: %w", o.what, audit.ErrDuplicate, err)
			}
			return fmt.Errorf("insert %s: %w", o.what, err)
		}
	}
	if err := s.growTree(ctx, tx, prev.ChainID, size, leaves); err != nil {
		if isUnique(err) {
			return fmt.Errorf("%w: %w", audit.ErrCorrupt, err)
		}
		return err
	}
	if _, err := tx.StmtContext(ctx, headStmt).ExecContext(ctx, prev.ChainID, last.GetSeq(), last.GetHash(), last.GetSeq()); err != nil {
		return fmt.Errorf("move audit chain head: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit audit append: %w", err)
	}
	return nil
}

// maxStmts bounds the prepared statements a Store keeps; the multi-row
// INSERTs vary only in row count, so few shapes recur.
const maxStmts = 256

// stmt returns query prepared on the write connection, from the cache when
// it was prepared before, or nil once the cache is full (run the query text
// instead). It must not be called while a transaction holds that connection.
func (s *Store) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	s.stmtMu.Lock()
	defer s.stmtMu.Unlock()
	if st := s.stmts[query]; st != nil {
		return st, nil
	}
	if len(s.stmts) >= maxStmts {
		return nil, nil
	}
	st, err := s.w.PrepareContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("prepare audit statement: %w", err)
	}
	s.stmts[query] = st
	return st, nil
}

func isUnique(err error) bool {
	return strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// Head implements audit.Store.
func (s *Store) Head(ctx context.Context, chainID string) (audit.Head, error) {
	if err := s.check(); err != nil {
		return audit.Head{}, err
	}
	return head(ctx, s.d, chainID)
}

func head(ctx context.Context, q querier, chainID string) (audit.Head, error) {
	h := audit.Head{ChainID: chainID}
	err := q.QueryRowContext(ctx, "SELECT seq, hash FROM chain_heads WHERE chain_id = ?", chainID).Scan(&h.Seq, &h.Hash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return audit.Head{}, fmt.Errorf("read audit chain head: %w", err)
	}
	return h, nil
}

// Last implements audit.Store.
func (s *Store) Last(ctx context.Context, chainID string) (*audit.Record, error) {
	return s.one(ctx, s.d, "SELECT body, hash FROM records WHERE chain_id = ? ORDER BY seq DESC LIMIT 1", chainID)
}

// Get implements audit.Store.
func (s *Store) Get(ctx context.Context, decisionID string) (*audit.Record, error) {
	return s.one(ctx, s.r, "SELECT body, hash FROM records WHERE decision_id = ?", decisionID)
}

// FindByIdempotencyKey implements audit.Store.
func (s *Store) FindByIdempotencyKey(ctx context.Context, scope, key string) (*audit.Record, error) {
	if key == "" {
		return nil, audit.ErrNotFound
	}
	return s.one(ctx, s.d, findByKeySQL, scope, key)
}

// findByKeySQL looks a decision up by (scope, key). Spelling the partial
// unique index's own conditions (kind 1, a non-empty key) as literals lets
// SQLite see that records_idempotency covers the query; with a bound kind it
// scanned the table (plan_idempotency_test.go checks the plan).
const findByKeySQL = `SELECT body, hash FROM records
	WHERE idempotency_scope = ? AND idempotency_key = ? AND idempotency_key <> '' AND kind = 1`

// one reads the record query selects on pool db.
func (s *Store) one(ctx context.Context, db *sql.DB, query string, args ...any) (*audit.Record, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	var body string
	var hash []byte
	err := db.QueryRowContext(ctx, query, args...).Scan(&body, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, audit.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read audit record: %w", err)
	}
	return decode(body, hash)
}

// decode returns the record stored as body with hash column hash. A body is
// the record's canonical body, which leaves the hash out; bodies written
// before that carry the hash themselves, which then wins, so Chain can still
// tell a changed hash column.
func decode(body string, hash []byte) (*audit.Record, error) {
	r := &audit.Record{}
	if err := protojson.Unmarshal([]byte(body), r); err != nil {
		return nil, fmt.Errorf("decode audit record: %w: %w", audit.ErrCorrupt, err)
	}
	if len(r.Hash) == 0 {
		r.Hash = hash
	}
	return r, nil
}

// Chains implements audit.Store.
func (s *Store) Chains(ctx context.Context) ([]string, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	return chains(ctx, s.r)
}

func chains(ctx context.Context, q querier) ([]string, error) {
	rows, err := q.QueryContext(ctx, "SELECT chain_id FROM chain_heads UNION SELECT chain_id FROM records ORDER BY 1")
	if err != nil {
		return nil, fmt.Errorf("list audit chains: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, fmt.Errorf("list audit chains: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// listQuery is the SELECT of List for f, newest first, at most limit rows.
// Every filter has an index led by its column and followed by evaluated_at
// (migrations), so SQLite walks one index in time order and stops at limit.
// The page token's position is written as a range on evaluated_at plus a
// tie-break, so that range can use the index too.
func listQuery(f audit.Filter, limit int) (string, []any, error) {
	var where []string
	var args []any
	add := func(cond string, a ...any) {
		where = append(where, cond)
		args = append(args, a...)
	}
	if !f.From.IsZero() {
		add("evaluated_at >= ?", f.From.UnixNano())
	}
	if !f.To.IsZero() {
		add("evaluated_at < ?", f.To.UnixNano())
	}
	for _, eq := range []struct{ col, v string }{
		{"actor_id", f.ActorID}, {"action", f.Action}, {"resource_type", f.ResourceType},
		{"resource_id", f.ResourceID}, {"bundle_revision", f.BundleRevision}, {"workflow_id", f.WorkflowID},
	} {
		if eq.v != "" {
			add(eq.col+" = ?", eq.v)
		}
	}
	if f.WorkflowID != "" {
		// Implied, but SQLite needs it spelled out to use the partial index.
		add("workflow_id <> ''")
	}
	if f.Effect != tollgatev1.Effect_EFFECT_UNSPECIFIED {
		add("effect = ?", int64(f.Effect))
	}
	if f.ReasonCode != "" {
		// The range goes inside too, so the (code, evaluated_at) index bounds the codes read.
		inner, args := reasonRange(f)
		add("decision_id IN (SELECT decision_id FROM record_reasons WHERE code = ?"+inner+")", append([]any{f.ReasonCode}, args...)...)
	}
	if f.PageToken != "" {
		at, id, err := decodeToken(f.PageToken)
		if err != nil {
			return "", nil, err
		}
		add("evaluated_at <= ? AND (evaluated_at < ? OR decision_id < ?)", at, at, id)
	}
	q := "SELECT evaluated_at, decision_id, body, hash FROM records"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY evaluated_at DESC, decision_id DESC LIMIT " + strconv.Itoa(limit)
	return q, args, nil
}

// List implements audit.Store.
// reasonRange is the time range of f as conditions on record_reasons.evaluated_at (migration 007).
func reasonRange(f audit.Filter) (string, []any) {
	var cond string
	var args []any
	if !f.From.IsZero() {
		cond += " AND evaluated_at >= ?"
		args = append(args, f.From.UnixNano())
	}
	if !f.To.IsZero() {
		cond += " AND evaluated_at < ?"
		args = append(args, f.To.UnixNano())
	}
	return cond, args
}

func (s *Store) List(ctx context.Context, f audit.Filter) (audit.Page, error) {
	if err := s.check(); err != nil {
		return audit.Page{}, err
	}
	size := f.EffectivePageSize()
	q, args, err := listQuery(f, size+1)
	if err != nil {
		return audit.Page{}, err
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return audit.Page{}, fmt.Errorf("list audit records: %w", err)
	}
	defer rows.Close()
	var page audit.Page
	var lastAt int64
	var lastID string
	for rows.Next() {
		var at int64
		var id, body string
		var hash []byte
		if err := rows.Scan(&at, &id, &body, &hash); err != nil {
			return audit.Page{}, fmt.Errorf("list audit records: %w", err)
		}
		if len(page.Records) == size {
			page.NextPageToken = encodeToken(lastAt, lastID)
			break
		}
		r, err := decode(body, hash)
		if err != nil {
			return audit.Page{}, fmt.Errorf("record %s: %w", id, err)
		}
		page.Records = append(page.Records, r)
		lastAt, lastID = at, id
	}
	if err := rows.Err(); err != nil {
		return audit.Page{}, fmt.Errorf("list audit records: %w", err)
	}
	return page, nil
}

func encodeToken(at int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at, 10) + "|" + id))
}

func decodeToken(tok string) (int64, string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err == nil {
		if at, id, ok := strings.Cut(string(raw), "|"); ok {
			n, err := strconv.ParseInt(at, 10, 64)
			if err == nil {
				return n, id, nil
			}
		}
	}
	return 0, "", fmt.Errorf("page token %q: %w", tok, audit.ErrInvalidArgument)
}

// Chain implements audit.Store. Besides decoding each body it checks that
// the indexed columns still agree with it, so an UPDATE of a column alone
// (which Get and List would not show but filters would act on) is reported
// as an *audit.IntegrityError naming the record.
func (s *Store) Chain(ctx context.Context, chainID string, fromSeq uint64, fn func(*audit.Record) error) error {
	if err := s.check(); err != nil {
		return err
	}
	return chain(ctx, s.r, chainID, fromSeq, fn)
}

func chain(ctx context.Context, q querier, chainID string, fromSeq uint64, fn func(*audit.Record) error) error {
	rows, err := q.QueryContext(ctx, `SELECT decision_id, chain_id, seq, kind, evaluated_at, actor_id, action,
		resource_type, resource_id, effect, bundle_revision, workflow_id, idempotency_key, idempotency_scope, hash, body
		FROM records WHERE chain_id = ? AND seq >= ? ORDER BY seq`, chainID, fromSeq)
	if err != nil {
		return fmt.Errorf("read audit chain %s: %w", chainID, err)
	}
	defer rows.Close()
	var pace pacer
	for n := 1; rows.Next(); n++ {
		if n%paceEvery == 0 {
			pace.rest()
		}
		var c audit.Columns
		var body string
		if err := rows.Scan(append(c.Targets(), &body)...); err != nil {
			return fmt.Errorf("read audit chain %s: %w", chainID, err)
		}
		r, err := decode(body, c.Hash)
		if err != nil {
			return &audit.IntegrityError{ChainID: chainID, Seq: uint64(c.Seq), DecisionID: c.DecisionID, Problem: "body does not decode: " + err.Error()}
		}
		if col := c.Diff(audit.ColumnsOf(r)); col != "" {
			return &audit.IntegrityError{ChainID: chainID, Seq: uint64(c.Seq), DecisionID: c.DecisionID, Problem: "column " + col + " disagrees with the record body"}
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read audit chain %s: %w", chainID, err)
	}
	return nil
}

// exportQuery is the page query of Export: the chain's records after a seq,
// in seq order, read through the (chain_id, seq) index. The unary + keeps
// the time bounds off records_time: walking that index would find every
// record of the range and sort them for each page.
func exportQuery(q audit.ExportQuery, afterSeq uint64, limit int) (string, []any) {
	query := "SELECT decision_id, body, hash FROM records WHERE chain_id = ? AND seq > ?"
	args := []any{q.ChainID, afterSeq}
	if !q.From.IsZero() {
		query += " AND +evaluated_at >= ?"
		args = append(args, q.From.UnixNano())
	}
	if !q.To.IsZero() {
		query += " AND +evaluated_at < ?"
		args = append(args, q.To.UnixNano())
	}
	return query + " ORDER BY seq LIMIT " + strconv.Itoa(limit), args
}

// Export implements audit.Store. A first page (AfterSeq 0) with From set
// starts at the lowest seq evaluated at or after From, found through
// records_time, so it does not walk the chain's older records to get there;
// the records before it are all older than From whatever their order.
func (s *Store) Export(ctx context.Context, q audit.ExportQuery) ([]*audit.Record, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	after := q.AfterSeq
	if after == 0 && !q.From.IsZero() {
		var first sql.NullInt64
		err := s.r.QueryRowContext(ctx, "SELECT MIN(seq) FROM records INDEXED BY records_time WHERE evaluated_at >= ? AND chain_id = ?",
			q.From.UnixNano(), q.ChainID).Scan(&first)
		if err != nil {
			return nil, fmt.Errorf("export audit chain %s: %w", q.ChainID, err)
		}
		if !first.Valid {
			return nil, nil
		}
		after = uint64(first.Int64) - 1
	}
	query, args := exportQuery(q, after, q.EffectiveLimit())
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("export audit chain %s: %w", q.ChainID, err)
	}
	defer rows.Close()
	var out []*audit.Record
	var pace pacer
	for n := 1; rows.Next(); n++ {
		if n%paceEvery == 0 {
			pace.rest()
		}
		var id, body string
		var hash []byte
		if err := rows.Scan(&id, &body, &hash); err != nil {
			return nil, fmt.Errorf("export audit chain %s: %w", q.ChainID, err)
		}
		r, err := decode(body, hash)
		if err != nil {
			return nil, fmt.Errorf("record %s: %w", id, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("export audit chain %s: %w", q.ChainID, err)
	}
	return out, nil
}

// Long walks (Chain under Verify, Export) are CPU-bound: every record is decoded and, for a verify,
// hashed, and the allocation drives the garbage collector, whose assists decisions pay too. Each walk
// is paced to half of one core: every paceEvery records it sleeps as long as it worked since its last
// rest (time waiting for a CPU counts as work, so it backs off further on a busy machine).
//
// Measured with 8 looping verifies and a looping export beside sync-mode decisions over gRPC, on a
// 30,000-record log, 2 shared vCPUs with other builds running (so expect wide spread), decision p99
// beside the readers over p99 alone, closed loop / half load:
//
//	paced every 32 records (this), 1 long read   0.89/0.81  1.50/4.67  1.33/1.41  1.50/1.16
//	paced every 8 records, 1 long read           1.05/0.72  (a verify: 6.6 s)
//	only yielding every 8 records, 1 long read   1.53/1.99
//	neither, 2 long reads at once (closed loop)  4.70
//
//	go test -run '^$' -bench BenchmarkDecideBesideAuditReads -benchtime 4000x ./test/e2e/
//
// The 4.67 is one run whose p99 beside was a single 157 ms stall. The price: one verify of the
// 30,000 records takes 4.1-4.9 s paced, 1.6 s flat out.
const paceEvery = 32

// pacer keeps a walk to half of one core; see paceEvery.
type pacer struct{ since time.Time }

// rest sleeps as long as the walk worked since the last rest.
func (p *pacer) rest() {
	if !p.since.IsZero() {
		time.Sleep(time.Since(p.since))
	}
	p.since = time.Now()
}

// PutBundle implements audit.Store.
func (s *Store) PutBundle(ctx context.Context, b audit.Bundle) error {
	if err := s.check(); err != nil {
		return err
	}
	sum := sha256.Sum256(b.Data)
	digest := hex.EncodeToString(sum[:])
	if b.Revision == "" || (b.Digest != "" && b.Digest != digest) {
		return fmt.Errorf("bundle %q: empty revision or digest %q is not the data's %s: %w", b.Revision, b.Digest, digest, audit.ErrInvalidArgument)
	}
	at := b.ActivatedAt
	if at.IsZero() {
		at = time.Now()
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin bundle store: %w", err)
	}
	defer tx.Rollback()
	var stored string
	err = tx.QueryRowContext(ctx, "SELECT digest FROM bundles WHERE revision = ?", b.Revision).Scan(&stored)
	switch {
	case err == nil && stored == digest:
		return nil
	case err == nil:
		return fmt.Errorf("bundle %s: stored %s, given %s: %w", b.Revision, stored, digest, audit.ErrBundleConflict)
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("read bundle %s: %w", b.Revision, err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO bundles (revision, digest, data, activated_at) VALUES (?, ?, ?, ?)",
		b.Revision, digest, b.Data, at.UnixNano()); err != nil {
		return fmt.Errorf("store bundle %s: %w", b.Revision, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit bundle %s: %w", b.Revision, err)
	}
	return nil
}

// GetBundle implements audit.Store.
func (s *Store) GetBundle(ctx context.Context, revision string) (audit.Bundle, error) {
	if err := s.check(); err != nil {
		return audit.Bundle{}, err
	}
	b := audit.Bundle{Revision: revision}
	var at int64
	err := s.r.QueryRowContext(ctx, "SELECT digest, data, activated_at FROM bundles WHERE revision = ?", revision).Scan(&b.Digest, &b.Data, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return audit.Bundle{}, fmt.Errorf("bundle %s: %w", revision, audit.ErrNotFound)
	}
	if err != nil {
		return audit.Bundle{}, fmt.Errorf("read bundle %s: %w", revision, err)
	}
	b.ActivatedAt = time.Unix(0, at)
	return b, nil
}

// Ping implements audit.Store with a one-row write transaction.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.check(); err != nil {
		return err
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO heartbeat (id, at) VALUES (1, ?)
		ON CONFLICT (id) DO UPDATE SET at = excluded.at`, time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("ping audit db: %w", err)
	}
	return nil
}

// Close implements audit.Store.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if s.stopCheckpoints != nil {
		close(s.stopCheckpoints)
		<-s.checkpointsDone
	}
	s.stmtMu.Lock()
	var errs []error
	for _, st := range s.stmts {
		errs = append(errs, st.Close())
	}
	s.stmtMu.Unlock()
	return errors.Join(append(errs, s.closePools())...)
}

// closePools closes the pools that are open.
func (s *Store) closePools() error {
	var errs []error
	for _, db := range []*sql.DB{s.r, s.d, s.w} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
	return errors.Join(errs...)
}
