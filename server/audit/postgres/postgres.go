// Package postgres is the audit.Store on PostgreSQL, for a fleet of
// replicas that share one audit database: each replica writes its own hash
// chain (its own chain id) and every replica reads every chain, so an
// auditor may ask any of them.
//
// Its semantics are the SQLite store's (server/audit/sqlite), checked by the
// same conformance suite (audittest): one transaction per appended batch,
// all or nothing; the chain head moves in that transaction and only from the
// head the writer names (ErrHeadMismatch otherwise); a duplicate decision id
// or a second decision under a (scope, key) is ErrDuplicate. The idempotency
// index spans every chain, so two replicas that decide the same key at the
// same instant cannot both store a decision: the second transaction fails
// with ErrDuplicate (PostgreSQL makes it wait for the first to commit or
// roll back), and audit.Writer answers its caller with the stored original.
//
// Commits are durable when PostgreSQL's synchronous_commit is on (its
// default): COMMIT returns after the WAL is flushed, which is what a
// sync-mode Writer needs before answering a decision.
//
// Appending sealed records straight to the store, one transaction per
// batch, against the local PostgreSQL 15 (default settings, loopback) and
// the SQLite store beside it, 2 shared vCPUs with other builds running (one
// run each, so expect ±30 %), records/s:
//
//	batch      postgres     sqlite
//	1          698          715
//	16         5684         3405
//	128        8615         8719
//	512        7202         10966
//
//	go test -run '^$' -bench Append -benchtime 2s ./server/audit/postgres/ ./server/audit/sqlite/
//
// # Connections
//
// A Store holds three pgxpool pools on the same database, so that no long
// audit read can make a decision wait for a connection:
//
//   - write, Config.WriteConns: Append, PutBundle and Ping. One Writer
//     appends one batch at a time, so two are enough.
//   - decision, Config.DecisionReadConns: the reads on a decision's path,
//     FindByIdempotencyKey, and Head and Last (the writer's start and its
//     recovery after a failed append).
//   - audit, Config.AuditReadConns: everything an auditor asks, List, Get,
//     Chains, Chain and View (Verify), Export, GetBundle, and the tree and
//     checkpoint reads. Chain and Export walks are paced to half of one
//     core, as in the SQLite store.
//
// A replica so holds at most WriteConns+DecisionReadConns+AuditReadConns
// connections (10 by default); size PostgreSQL's max_connections for the
// fleet. Pool parameters in the URL (pool_max_conns and the like) are
// ignored: the three sizes come from Config.
//
// # Tree and checkpoints
//
// Each chain's Merkle tree (package transparency) lives in tree_hashes,
// written by Append in the transaction that inserts the records, with
// chain_heads.tree_size moved beside the head, so the tree is always exactly
// the committed records, per chain: each replica's chain has its own tree
// and its own signed checkpoints (one per size). View is a read-only
// REPEATABLE READ transaction, so Verify sees one snapshot while every
// replica goes on appending.
//
// # Migrations
//
// The embedded migrations/*.sql are applied at Open in name order, in one
// transaction that first takes a transaction-scoped advisory lock
// (MigrationLockID), so replicas starting at once apply each migration
// exactly once: the others wait for the lock and then find them applied in
// schema_migrations.
package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/encoding/protojson"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
)

//go:embed migrations/*.sql
var migrations embed.FS

// MigrationLockID is the pg_advisory_xact_lock key held while migrating.
const MigrationLockID int64 = 0x746f6c6c67617465 // "tollgate"

// Config configures a Store. Zero sizes take the defaults.
type Config struct {
	// URL is a PostgreSQL connection URL or keyword/value string, e.g.
	// postgres://user@host:5432/tollgate?sslmode=disable.
	URL string
	// WriteConns sizes the write pool. Default 2.
	WriteConns int32
	// DecisionReadConns sizes the decision path's read pool. Default 4.
	DecisionReadConns int32
	// AuditReadConns sizes the auditors' read pool. Default 4.
	AuditReadConns int32
}

func (c *Config) setDefaults() error {
	if c.URL == "" {
		return fmt.Errorf("postgres audit store: empty URL")
	}
	for _, p := range []struct {
		n   *int32
		def int32
	}{{&c.WriteConns, 2}, {&c.DecisionReadConns, 4}, {&c.AuditReadConns, 4}} {
		if *p.n <= 0 {
			*p.n = p.def
		}
	}
	return nil
}

// Store is the PostgreSQL audit.Store. It is safe for concurrent use.
type Store struct {
	w, d, r *pgxpool.Pool // see Connections in the package doc
	closed  atomic.Bool
}

var _ audit.Store = (*Store)(nil)

// Open connects to cfg.URL, migrates the schema and returns the Store. It
// fails if the database cannot be reached.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	base, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("parse postgres audit store URL: %w", err)
	}
	s := &Store{}
	for _, p := range []struct {
		pool  **pgxpool.Pool
		conns int32
		name  string
	}{{&s.w, cfg.WriteConns, "write"}, {&s.d, cfg.DecisionReadConns, "decision"}, {&s.r, cfg.AuditReadConns, "audit"}} {
		pc := base.Copy()
		pc.MaxConns, pc.MinConns = p.conns, 0
		pc.ConnConfig.RuntimeParams["application_name"] = "tollgate-audit-" + p.name
		pool, err := pgxpool.NewWithConfig(ctx, pc)
		if err != nil {
			s.closePools()
			return nil, fmt.Errorf("open postgres audit %s pool: %w", p.name, err)
		}
		*p.pool = pool
	}
	if err := s.migrate(ctx); err != nil {
		s.closePools()
		return nil, err
	}
	return s, nil
}

func (s *Store) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("list audit migrations: %w", err)
	}
	sort.Strings(names)
	tx, err := s.w.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin audit migration: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", MigrationLockID); err != nil {
		return fmt.Errorf("lock audit migrations: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var version int
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&version); err != nil {
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
		// No arguments: pgx sends it as one simple-protocol query, so a file may hold many statements.
		if _, err := tx.Exec(ctx, string(src)); err != nil {
			return fmt.Errorf("apply audit migration %s: %w", names[i], err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", i+1, names[i]); err != nil {
			return fmt.Errorf("record audit migration %s: %w", names[i], err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit audit migrations: %w", err)
	}
	return nil
}

// SchemaVersion returns how many migrations the database has applied.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	var v int
	if err := s.r.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&v); err != nil {
		return 0, fmt.Errorf("read audit schema version: %w", err)
	}
	return v, nil
}

func (s *Store) check() error {
	if s.closed.Load() {
		return audit.ErrClosed
	}
	return nil
}

// insertRecords inserts a whole batch with one statement of column arrays,
// whatever its size, so the statement is prepared once per connection.
const insertRecords = `INSERT INTO records (decision_id, chain_id, seq, kind, evaluated_at, actor_id, action,
	resource_type, resource_id, effect, bundle_revision, workflow_id, idempotency_key, idempotency_scope, hash, body)
	SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::integer[], $5::bigint[], $6::text[], $7::text[],
	$8::text[], $9::text[], $10::integer[], $11::text[], $12::text[], $13::text[], $14::text[], $15::bytea[], $16::bytea[])`

const insertReasons = `INSERT INTO record_reasons (code, decision_id, evaluated_at)
	SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) ON CONFLICT DO NOTHING`

// The head moves with the tree's size. Append has locked the head row (or
// found none) and checked it is the writer's prev.
const (
	moveHead = `UPDATE chain_heads SET seq = $2, hash = $3, tree_size = $4 WHERE chain_id = $1`
	// A plain INSERT: a first append that another writer's first append
	// beat fails with a unique violation (ErrHeadMismatch) before COMMIT,
	// which is in the same round trip.
	newHead = `INSERT INTO chain_heads (chain_id, seq, hash, tree_size) VALUES ($1, $2, $3, $4)`
)

// Append implements audit.Store: in one transaction it locks and checks
// the chain head, reads the few earlier tree hashes the new ones need, and
// sends the head move, the records, their reason codes, the tree hashes and
// the COMMIT; two round trips in all (see below).
func (s *Store) Append(ctx context.Context, prev audit.Head, entries []audit.Entry) error {
	if err := s.check(); err != nil {
		return err
	}
	if len(entries) == 0 {
		return nil
	}
	n := len(entries)
	var (
		ids, chains, actors, actions, resTypes, resIDs = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		bundles, workflows, keys, scopes               = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		seqs, ats                                      = make([]int64, n), make([]int64, n)
		kinds, effects                                 = make([]int32, n), make([]int32, n)
		hashes, bodies                                 = make([][]byte, n), make([][]byte, n)
		reasonCodes, reasonIDs                         []string
		reasonTimes                                    []int64
	)
	for i, e := range entries {
		r := e.Record
		want := prev.Seq + 1
		switch {
		case i > 0:
			want = entries[i-1].Record.GetSeq() + 1
		case r.GetKind() == tollgatev1.RecordKind_RECORD_KIND_CHAIN_BREAK && r.GetSeq() > prev.Seq:
			want = r.GetSeq() // may jump past rows beyond the head: see audit.Store.Append
		}
		if r.GetChainId() != prev.ChainID || r.GetSeq() != want || r.GetDecisionId() == "" || r.GetSeq() > 1<<63-1 {
			return fmt.Errorf("append record %q (chain %q seq %d) after %q seq %d: %w",
				r.GetDecisionId(), r.GetChainId(), r.GetSeq(), prev.ChainID, prev.Seq, audit.ErrInvalidArgument)
		}
		if sum := sha256.Sum256(e.Body); !bytes.Equal(sum[:], r.GetHash()) {
			return fmt.Errorf("append record %s: body does not hash to the record's hash: %w", r.GetDecisionId(), audit.ErrInvalidArgument)
		}
		c := audit.ColumnsOf(r)
		ids[i], chains[i], seqs[i], kinds[i], ats[i] = c.DecisionID, c.ChainID, c.Seq, c.Kind, c.EvaluatedAt
		actors[i], actions[i], resTypes[i], resIDs[i], effects[i] = c.ActorID, c.Action, c.ResType, c.ResID, c.Effect
		bundles[i], workflows[i], keys[i], scopes[i], hashes[i], bodies[i] = c.BundleRevision, c.WorkflowID, c.IdempotKey, c.IdempotScope, c.Hash, e.Body
		for _, reason := range r.GetReasons() {
			if reason.GetCode() != "" {
				reasonCodes, reasonIDs = append(reasonCodes, reason.GetCode()), append(reasonIDs, c.DecisionID)
				reasonTimes = append(reasonTimes, c.EvaluatedAt)
			}
		}
	}
	last := entries[n-1].Record
	what := fmt.Sprintf("audit records %s..%s", ids[0], ids[n-1])

	// Two round trips, as each one costs a wake-up of the server's backend
	// (and of this process) on top of the network: the first opens the
	// transaction, locks and reads the head and reads the earlier tree
	// hashes the new ones need; the second writes everything and commits.
	// The hashes to read depend only on the tree's size, which is the
	// head's seq unless a chain break skipped seqs, so they are fetched
	// for that size beside the head (stored hashes never change) and read
	// again, in one more round trip, only if the tree turns out larger.
	conn, err := s.w.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("begin audit append: %w", err)
	}
	// A connection left in a transaction (a failed ROLLBACK) is closed by
	// the pool on Release rather than reused.
	defer conn.Release()
	open := true
	defer func() {
		if open {
			_, _ = conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	guess, err := treeLeaves(prev.ChainID, prev.Seq, int64(prev.Seq), entries)
	if err != nil {
		guess = nil // a chain-break first record: the head's tree size tells
	}
	reads, err := treeReads(int64(prev.Seq), len(guess))
	if err != nil {
		return err
	}
	var first pgx.Batch
	first.Queue("BEGIN")
	// FOR UPDATE: a concurrent append to the same chain waits here for this
	// transaction and then reads the head it moved.
	first.Queue("SELECT seq, hash, tree_size FROM chain_heads WHERE chain_id = $1 FOR UPDATE", prev.ChainID)
	if len(reads) > 0 {
		first.Queue(selectHashes, prev.ChainID, reads)
	}
	var seq, size int64
	var hash []byte
	var known map[int64][]byte
	br := conn.SendBatch(ctx, &first)
	if _, err := br.Exec(); err != nil {
		br.Close()
		return fmt.Errorf("begin audit append: %w", err)
	}
	err = br.QueryRow().Scan(&seq, &hash, &size)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		br.Close()
		return fmt.Errorf("read audit chain head: %w", err)
	}
	if len(reads) > 0 {
		rows, err := br.Query()
		if err == nil {
			known, err = scanHashes(rows)
		}
		if err != nil {
			br.Close()
			return fmt.Errorf("read tree hashes of chain %s: %w", prev.ChainID, err)
		}
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("read audit chain head: %w", err)
	}
	if uint64(seq) != prev.Seq || (seq != 0 && !bytes.Equal(hash, prev.Hash)) {
		return fmt.Errorf("append to chain %s: stored head seq %d, writer's %d: %w", prev.ChainID, seq, prev.Seq, audit.ErrHeadMismatch)
	}
	leaves, err := treeLeaves(prev.ChainID, prev.Seq, size, entries)
	if err != nil {
		return err
	}
	if size != int64(prev.Seq) || len(leaves) != len(guess) {
		known = nil // fetched for another tree: read what this one needs
	}
	growth, err := treeGrowth(ctx, conn, known, prev.ChainID, size, leaves)
	if err != nil {
		return err
	}

	// The rest goes to the server in one round trip, ending with COMMIT:
	// the first statement that fails makes the server skip the others, the
	// COMMIT too, and the deferred ROLLBACK ends the transaction.
	type op struct {
		what string
		dup  error // what a unique violation means
	}
	var b pgx.Batch
	var ops []op
	if prev.Seq == 0 {
		b.Queue(newHead, prev.ChainID, int64(last.GetSeq()), last.GetHash(), int64(last.GetSeq()))
	} else {
		b.Queue(moveHead, prev.ChainID, int64(last.GetSeq()), last.GetHash(), int64(last.GetSeq()))
	}
	ops = append(ops, op{"audit chain head", audit.ErrHeadMismatch})
	b.Queue(insertRecords, ids, chains, seqs, kinds, ats, actors, actions, resTypes, resIDs, effects, bundles, workflows, keys, scopes, hashes, bodies)
	ops = append(ops, op{what, audit.ErrDuplicate})
	if len(reasonCodes) > 0 {
		b.Queue(insertReasons, reasonCodes, reasonIDs, reasonTimes)
		ops = append(ops, op{"reasons of " + what, audit.ErrDuplicate})
	}
	b.Queue(insertTreeHashes, growth...)
	ops = append(ops, op{"tree hashes of chain " + prev.ChainID, audit.ErrCorrupt})
	b.Queue("COMMIT")
	br = conn.SendBatch(ctx, &b)
	// No check of the head move's row count: the COMMIT is already on its
	// way, so a check here could not stop it. None is needed: the head row
	// this transaction found is locked (moveHead moves exactly it), and a
	// missing one is created by a plain INSERT that fails if another writer
	// created it first.
	for _, o := range ops {
		_, err := br.Exec()
		if err != nil {
			br.Close()
			if isUnique(err) {
				return fmt.Errorf("insert %s: %w: %w", o.what, o.dup, err)
			}
			return fmt.Errorf("insert %s: %w", o.what, err)
		}
	}
	if _, err := br.Exec(); err != nil {
		br.Close()
		return fmt.Errorf("commit audit append: %w", err)
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("commit audit append: %w", err)
	}
	open = false
	return nil
}

func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" // unique_violation
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
	var seq int64
	err := q.QueryRow(ctx, "SELECT seq, hash FROM chain_heads WHERE chain_id = $1", chainID).Scan(&seq, &h.Hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return h, nil
	}
	if err != nil {
		return audit.Head{}, fmt.Errorf("read audit chain head: %w", err)
	}
	h.Seq = uint64(seq)
	return h, nil
}

// Last implements audit.Store.
func (s *Store) Last(ctx context.Context, chainID string) (*audit.Record, error) {
	return s.one(ctx, s.d, "SELECT body, hash FROM records WHERE chain_id = $1 ORDER BY seq DESC LIMIT 1", chainID)
}

// Get implements audit.Store.
func (s *Store) Get(ctx context.Context, decisionID string) (*audit.Record, error) {
	return s.one(ctx, s.r, "SELECT body, hash FROM records WHERE decision_id = $1", decisionID)
}

// FindByIdempotencyKey implements audit.Store. It reads through the partial
// unique index records_idempotency, whose conditions it spells out.
func (s *Store) FindByIdempotencyKey(ctx context.Context, scope, key string) (*audit.Record, error) {
	if key == "" {
		return nil, audit.ErrNotFound
	}
	return s.one(ctx, s.d, `SELECT body, hash FROM records
		WHERE idempotency_scope = $1 AND idempotency_key = $2 AND idempotency_key <> '' AND kind = 1`, scope, key)
}

// one reads the record query selects on pool p.
func (s *Store) one(ctx context.Context, p *pgxpool.Pool, query string, args ...any) (*audit.Record, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	var body, hash []byte
	err := p.QueryRow(ctx, query, args...).Scan(&body, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, audit.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read audit record: %w", err)
	}
	return decode(body, hash)
}

// decode returns the record stored as body (its canonical body, which
// leaves the hash out) with hash column hash.
func decode(body, hash []byte) (*audit.Record, error) {
	r := &audit.Record{}
	if err := protojson.Unmarshal(body, r); err != nil {
		return nil, fmt.Errorf("decode audit record: %w: %w", audit.ErrCorrupt, err)
	}
	if len(r.Hash) == 0 {
		r.Hash = hash
	}
	return r, nil
}

// Chains implements audit.Store. The chain ids of records are found by a
// skip scan of the (chain_id, seq) index, one probe per chain, not by
// reading every record.
func (s *Store) Chains(ctx context.Context) ([]string, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	return chains(ctx, s.r)
}

func chains(ctx context.Context, q querier) ([]string, error) {
	rows, err := q.Query(ctx, `WITH RECURSIVE c (chain_id) AS (
			(SELECT chain_id FROM records ORDER BY chain_id LIMIT 1)
			UNION ALL
			SELECT (SELECT r.chain_id FROM records r WHERE r.chain_id > c.chain_id ORDER BY r.chain_id LIMIT 1)
			FROM c WHERE c.chain_id IS NOT NULL)
		SELECT chain_id FROM c WHERE chain_id IS NOT NULL
		UNION SELECT chain_id FROM chain_heads ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("list audit chains: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list audit chains: %w", err)
	}
	return out, nil
}

// listQuery is the SELECT of List for f, newest first, at most limit rows.
// The page token's position is a range on evaluated_at plus a tie-break, so
// the planner can walk a (column, evaluated_at) index backwards.
func listQuery(f audit.Filter, limit int) (string, []any, error) {
	var where []string
	var args []any
	add := func(cond string, a any) {
		args = append(args, a)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
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
		where = append(where, "workflow_id <> ''") // lets the planner use the partial index
	}
	if f.Effect != tollgatev1.Effect_EFFECT_UNSPECIFIED {
		add("effect = ?", int32(f.Effect))
	}
	if f.ReasonCode != "" {
		// The range goes inside too, so the (code, evaluated_at) index bounds the codes read.
		args = append(args, f.ReasonCode)
		inner := "code = $" + strconv.Itoa(len(args))
		if !f.From.IsZero() {
			args = append(args, f.From.UnixNano())
			inner += " AND evaluated_at >= $" + strconv.Itoa(len(args))
		}
		if !f.To.IsZero() {
			args = append(args, f.To.UnixNano())
			inner += " AND evaluated_at < $" + strconv.Itoa(len(args))
		}
		where = append(where, "decision_id IN (SELECT decision_id FROM record_reasons WHERE "+inner+")")
	}
	if f.PageToken != "" {
		at, id, err := decodeToken(f.PageToken)
		if err != nil {
			return "", nil, err
		}
		add("evaluated_at <= ?", at)
		args = append(args, id)
		where = append(where, fmt.Sprintf("(evaluated_at < $%d OR decision_id < $%d)", len(args)-1, len(args)))
	}
	q := "SELECT evaluated_at, decision_id, body, hash FROM records"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY evaluated_at DESC, decision_id DESC LIMIT " + strconv.Itoa(limit)
	return q, args, nil
}

// List implements audit.Store.
func (s *Store) List(ctx context.Context, f audit.Filter) (audit.Page, error) {
	if err := s.check(); err != nil {
		return audit.Page{}, err
	}
	size := f.EffectivePageSize()
	q, args, err := listQuery(f, size+1)
	if err != nil {
		return audit.Page{}, err
	}
	rows, err := s.r.Query(ctx, q, args...)
	if err != nil {
		return audit.Page{}, fmt.Errorf("list audit records: %w", err)
	}
	defer rows.Close()
	var page audit.Page
	var lastAt int64
	var lastID string
	for rows.Next() {
		var at int64
		var id string
		var body, hash []byte
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

// Page tokens are the SQLite store's: base64url of "evaluated_at|decision_id".
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
	if fromSeq > 1<<63-1 {
		return nil
	}
	rows, err := q.Query(ctx, `SELECT decision_id, chain_id, seq, kind, evaluated_at, actor_id, action,
		resource_type, resource_id, effect, bundle_revision, workflow_id, idempotency_key, idempotency_scope, hash, body
		FROM records WHERE chain_id = $1 AND seq >= $2 ORDER BY seq`, chainID, int64(fromSeq))
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
		var body []byte
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

// Export implements audit.Store. A first page (AfterSeq 0) with From set
// starts at the lowest seq evaluated at or after From, so it does not walk
// the chain's older records to get there; the records before it are all
// older than From whatever their order. Each page is one statement, so one
// snapshot.
func (s *Store) Export(ctx context.Context, q audit.ExportQuery) ([]*audit.Record, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	after := int64(min(q.AfterSeq, 1<<63-1))
	if after == 0 && !q.From.IsZero() {
		var first *int64
		err := s.r.QueryRow(ctx, "SELECT min(seq) FROM records WHERE chain_id = $1 AND evaluated_at >= $2",
			q.ChainID, q.From.UnixNano()).Scan(&first)
		if err != nil {
			return nil, fmt.Errorf("export audit chain %s: %w", q.ChainID, err)
		}
		if first == nil {
			return nil, nil
		}
		after = *first - 1
	}
	query := "SELECT decision_id, body, hash FROM records WHERE chain_id = $1 AND seq > $2"
	args := []any{q.ChainID, after}
	if !q.From.IsZero() {
		args = append(args, q.From.UnixNano())
		query += fmt.Sprintf(" AND evaluated_at >= $%d", len(args))
	}
	if !q.To.IsZero() {
		args = append(args, q.To.UnixNano())
		query += fmt.Sprintf(" AND evaluated_at < $%d", len(args))
	}
	query += " ORDER BY seq LIMIT " + strconv.Itoa(q.EffectiveLimit())
	rows, err := s.r.Query(ctx, query, args...)
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
		var id string
		var body, hash []byte
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

// paceEvery is how many records a long walk (Chain, Export) reads between
// rests; see the SQLite store, whose measurements chose it. A walk decodes
// and, under Verify, hashes every record in this process, whatever the
// database, so the same pacing keeps it to half of one core here.
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

// PutBundle implements audit.Store. Replicas that activate the same
// revision at once both succeed: the loser of the insert finds the
// winner's row and compares digests.
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
	if _, err := s.w.Exec(ctx, "INSERT INTO bundles (revision, digest, data, activated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (revision) DO NOTHING",
		b.Revision, digest, b.Data, at.UnixNano()); err != nil {
		return fmt.Errorf("store bundle %s: %w", b.Revision, err)
	}
	var stored string
	if err := s.w.QueryRow(ctx, "SELECT digest FROM bundles WHERE revision = $1", b.Revision).Scan(&stored); err != nil {
		return fmt.Errorf("read bundle %s: %w", b.Revision, err)
	}
	if stored != digest {
		return fmt.Errorf("bundle %s: stored %s, given %s: %w", b.Revision, stored, digest, audit.ErrBundleConflict)
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
	err := s.r.QueryRow(ctx, "SELECT digest, data, activated_at FROM bundles WHERE revision = $1", revision).Scan(&b.Digest, &b.Data, &at)
	if errors.Is(err, pgx.ErrNoRows) {
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
	_, err := s.w.Exec(ctx, `INSERT INTO heartbeat (id, at) VALUES (1, $1)
		ON CONFLICT (id) DO UPDATE SET at = excluded.at`, time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("ping audit db: %w", err)
	}
	return nil
}

// Close implements audit.Store. It waits for connections in use to be
// returned to their pools.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.closePools()
	return nil
}

func (s *Store) closePools() {
	for _, p := range []*pgxpool.Pool{s.r, s.d, s.w} {
		if p != nil {
			p.Close()
		}
	}
}
