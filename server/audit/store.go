package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit/transparency"
)

// Errors returned by a Store and the Writer. Test with errors.Is.
var (
	// ErrInvalidArgument: a malformed filter, page token or record.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNotFound: no record, chain or bundle with that key.
	ErrNotFound = errors.New("not found")
	// ErrHeadMismatch: an append does not continue the stored chain head,
	// e.g. because a second writer appended to the same chain.
	ErrHeadMismatch = errors.New("chain head mismatch")
	// ErrDuplicate: an append holds a decision_id, or a decision's
	// idempotency_key, that is already stored.
	ErrDuplicate = errors.New("duplicate record")
	// ErrBundleConflict: a bundle revision is already stored with other content.
	ErrBundleConflict = errors.New("bundle revision stored with a different digest")
	// ErrCorrupt: stored data does not decode or does not match its indexes.
	ErrCorrupt = errors.New("corrupt record")
	// ErrUnavailable: the store failed; the record was not written.
	ErrUnavailable = errors.New("audit store unavailable")
	// ErrQueueFull: the async queue stayed full until the caller's deadline.
	ErrQueueFull = errors.New("audit queue full")
	// ErrClosed: the Writer or Store is closed.
	ErrClosed = errors.New("audit closed")
)

// ConflictError reports an idempotency key reused with a different payload
// by the same caller (keys are scoped, see IdempotencyScope), so OriginalID
// is always one of that caller's own decisions. It wraps ErrDuplicate.
type ConflictError struct {
	Key        string
	OriginalID string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("idempotency key %q already used with a different payload by decision %s", e.Key, e.OriginalID)
}

// Unwrap makes errors.Is(err, ErrDuplicate) hold.
func (e *ConflictError) Unwrap() error { return ErrDuplicate }

// IntegrityError names a stored record whose data cannot be trusted as read:
// its body does not decode, or its index columns disagree with its body.
// It wraps ErrCorrupt. Store.Chain returns it so Verify can name the record.
type IntegrityError struct {
	ChainID    string
	Seq        uint64
	DecisionID string
	Problem    string
}

func (e *IntegrityError) Error() string {
	return fmt.Sprintf("record %s (chain %s seq %d): %s", e.DecisionID, e.ChainID, e.Seq, e.Problem)
}

// Unwrap makes errors.Is(err, ErrCorrupt) hold.
func (e *IntegrityError) Unwrap() error { return ErrCorrupt }

// IdempotencyScope returns the scope in which rec's idempotency key is
// unique: the authenticated caller's name, taken from rec.caller ("name
// (via)" or "name (via) from addr", via being mtls, token or open), so one
// caller's certificate and token share keys and in open mode every caller
// ("anonymous (open)") shares one scope. It is "" for a record without a key
// or without an authenticated caller. The rule is the text before the first
// " (mtls)", " (token)" or " (open)"; stores derive their scope column from
// the stored caller with it (sqlite migration 003 spells it in SQL).
func IdempotencyScope(rec *Record) string {
	if rec.GetIdempotencyKey() == "" {
		return ""
	}
	caller, at := rec.GetCaller(), -1
	for _, via := range []string{" (mtls)", " (token)", " (open)"} {
		if i := strings.Index(caller, via); i >= 0 && (at < 0 || i < at) {
			at = i
		}
	}
	if at < 0 {
		return ""
	}
	return caller[:at]
}

// Head is the last record of a chain as recorded by the store beside the
// records, in the same transaction. The zero Head (Seq 0) is an empty chain.
type Head struct {
	ChainID string
	Seq     uint64
	Hash    []byte
}

// Filter selects records for Store.List. Zero fields match everything.
type Filter struct {
	// From is inclusive and To exclusive, on evaluated_at.
	From, To       time.Time
	ActorID        string
	Action         string
	ResourceType   string
	ResourceID     string
	Effect         tollgatev1.Effect
	ReasonCode     string
	BundleRevision string
	// WorkflowID matches request.context["workflow_id"].
	WorkflowID string
	// PageSize defaults to DefaultPageSize and is capped at MaxPageSize.
	PageSize int
	// PageToken is Page.NextPageToken of the previous page, else empty.
	PageToken string
}

// Paging limits for Store.List.
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
)

// EffectivePageSize returns f.PageSize after defaulting and capping.
func (f Filter) EffectivePageSize() int {
	switch {
	case f.PageSize <= 0:
		return DefaultPageSize
	case f.PageSize > MaxPageSize:
		return MaxPageSize
	}
	return f.PageSize
}

// Page is one page of Store.List, newest first (evaluated_at, then
// decision_id, descending).
type Page struct {
	Records []*Record
	// NextPageToken is empty on the last page.
	NextPageToken string
}

// ExportQuery selects records for Store.Export: the records of one chain
// after a position, in seq order.
type ExportQuery struct {
	ChainID string
	// AfterSeq is the position: only records with a greater seq. 0 starts
	// at the chain's first record.
	AfterSeq uint64
	// From is inclusive and To exclusive, on evaluated_at; zero is unbounded.
	From, To time.Time
	// Limit defaults to MaxPageSize and is capped at it.
	Limit int
}

// EffectiveLimit returns q.Limit after defaulting and capping.
func (q ExportQuery) EffectiveLimit() int {
	if q.Limit <= 0 || q.Limit > MaxPageSize {
		return MaxPageSize
	}
	return q.Limit
}

// Bundle is an activated policy bundle kept so a decision can be replayed
// against the exact policy that made it.
type Bundle struct {
	Revision string
	// Digest is the hex SHA-256 of Data.
	Digest      string
	Data        []byte
	ActivatedAt time.Time
}

// Entry is a sealed record handed to Store.Append with the bytes its hash
// covers, encoded once by the Writer on the caller's goroutine so the store
// need not encode it again on the single committing goroutine.
type Entry struct {
	Record *Record
	// Body is CanonicalBody(Record): SHA-256(Body) == Record.Hash. Stores
	// may keep it as the record's stored form; it decodes with protojson.
	Body []byte
}

// NewEntry returns the Entry of a sealed record, computing its body.
func NewEntry(rec *Record) (Entry, error) {
	body, err := CanonicalBody(rec)
	if err != nil {
		return Entry{}, err
	}
	return Entry{Record: rec, Body: body}, nil
}

// Store persists decision records. Implementations are safe for concurrent
// use. Records handed to Append must not be modified afterwards; records
// returned are the caller's.
type Store interface {
	// Append stores entries, consecutive sealed records of one chain
	// starting right after prev, grows the chain's Merkle tree by their
	// hashes and moves the chain head to the last of them, in one durable
	// transaction: all or nothing, so the tree is always exactly the
	// committed records. A RECORD_KIND_CHAIN_BREAK record first in entries
	// may jump past prev.Seq+1 (see writeChainBreak); the seqs it skips,
	// from the tree's size on, get ZeroLeaf as their leaves, keeping leaf
	// index = seq-1. Any other append returns ErrCorrupt if the stored
	// tree's size is not prev.Seq. It returns
	// ErrHeadMismatch if the stored head is not prev, ErrDuplicate if a
	// decision_id or a decision's idempotency_key is already stored, and
	// ErrInvalidArgument if an entry is out of sequence or its Body does not
	// hash to its record's hash.
	Append(ctx context.Context, prev Head, entries []Entry) error
	// Head returns the stored head of a chain; the zero Head (with ChainID
	// set) if the chain has no records.
	Head(ctx context.Context, chainID string) (Head, error)
	// Last returns the record with the highest seq in a chain, which may
	// differ from Head if rows were deleted; ErrNotFound if none.
	Last(ctx context.Context, chainID string) (*Record, error)
	// Chains lists the chain ids that have a head or records, sorted.
	Chains(ctx context.Context) ([]string, error)
	// Get returns a record by decision_id or ErrNotFound.
	Get(ctx context.Context, decisionID string) (*Record, error)
	// List returns one page of records matching f, newest first. A page
	// token that does not decode returns ErrInvalidArgument.
	List(ctx context.Context, f Filter) (Page, error)
	// Chain calls fn for each record of a chain in seq order, from seq
	// fromSeq on, stopping at fn's first error, which it returns. A record
	// that cannot be read faithfully yields an *IntegrityError.
	Chain(ctx context.Context, chainID string, fromSeq uint64, fn func(*Record) error) error
	// Export returns up to q.EffectiveLimit() records of chain q.ChainID
	// with a seq above q.AfterSeq and evaluated_at in [q.From, q.To), in
	// seq order, read in one snapshot; none once the chain has no more. A
	// chain's records commit in seq order and without gaps, so a reader
	// that continues after the last record returned never skips one
	// committed in the meantime. Fewer than the limit means the chain was
	// read to its end as it stood. An unknown chain has no records.
	Export(ctx context.Context, q ExportQuery) ([]*Record, error)
	// FindByIdempotencyKey returns the RECORD_KIND_DECISION record stored
	// with key in scope (IdempotencyScope of the record), or ErrNotFound.
	// Append enforces one decision per (scope, key): the same key in two
	// scopes is two decisions.
	FindByIdempotencyKey(ctx context.Context, scope, key string) (*Record, error)
	// PutBundle stores an activated bundle by revision and sets its Digest
	// from Data (a given Digest must match). Storing the same
	// revision with the same digest again is a no-op; with another digest
	// it returns ErrBundleConflict.
	PutBundle(ctx context.Context, b Bundle) error
	// GetBundle returns the bundle stored under revision or ErrNotFound.
	GetBundle(ctx context.Context, revision string) (Bundle, error)
	// TreeSize returns the number of leaves of chainID's Merkle tree: 0 for
	// a chain without records. Append keeps it equal to the head's seq (see
	// Tree in the package doc); a store upgraded from a version without
	// trees builds them for its existing records before serving.
	TreeSize(ctx context.Context, chainID string) (int64, error)
	// ReadHashes returns chainID's stored tree hashes at the storage
	// indexes given (tlog.StoredHashIndex), one per index, in order. An
	// index not stored returns an error wrapping both ErrNotFound and
	// transparency.ErrNotFound.
	ReadHashes(ctx context.Context, chainID string, indexes []int64) ([]tlog.Hash, error)
	// PutCheckpoint stores cp as chainID's newest checkpoint. Storing a
	// checkpoint again (same size and root) is a no-op; one of a size below
	// the newest stored, or of a stored size with another root, returns
	// ErrInvalidArgument: checkpoints of a log only grow, and two roots for
	// one size are a fork the store must not hide by overwriting.
	PutCheckpoint(ctx context.Context, chainID string, cp transparency.Checkpoint) error
	// LatestCheckpoint returns chainID's checkpoint of the greatest size,
	// or an error wrapping both ErrNotFound and transparency.ErrNotFound.
	LatestCheckpoint(ctx context.Context, chainID string) (transparency.Checkpoint, error)
	// ListCheckpoints returns one page of q.ChainID's checkpoints, newest
	// (greatest size) first. A page token that does not decode returns
	// ErrInvalidArgument.
	ListCheckpoints(ctx context.Context, q CheckpointQuery) (CheckpointPage, error)
	// View calls fn with a Snapshot: every read through it sees the store as
	// it stood at one instant, whatever commits meanwhile. The Snapshot is
	// valid only until fn returns; View returns fn's error. A snapshot may
	// hold a read connection for as long as fn runs.
	View(ctx context.Context, fn func(Snapshot) error) error
	// PayloadKeyID returns the id of the payload key the log is bound to
	// (PayloadKey.ID), or ErrNotFound if none is bound yet.
	PayloadKeyID(ctx context.Context) ([]byte, error)
	// BindPayloadKey binds the log to the payload key with id if no key is
	// bound yet, atomically, so of two starts with different keys only one
	// binds. If another key is bound it returns an error wrapping
	// ErrPayloadKeyMismatch that names both ids.
	BindPayloadKey(ctx context.Context, id []byte) error
	// Ping checks that the store accepts a write transaction.
	Ping(ctx context.Context) error
	// Close releases the store; later calls return ErrClosed.
	Close() error
}

// ZeroLeaf is the leaf (record hash) of a seq that has no record in the
// tree: the seqs a chain-break record skips when it is appended past rows
// lying beyond the head, and, in a tree built for records written before
// trees existed, seqs with no record. Leaf index is always seq-1, so a
// receipt's index names its record without a lookup.
var ZeroLeaf tlog.Hash

// CheckpointQuery selects a page of a chain's checkpoints for
// Store.ListCheckpoints.
type CheckpointQuery struct {
	ChainID string
	// PageSize defaults to DefaultPageSize and is capped at MaxPageSize.
	PageSize int
	// PageToken is CheckpointPage.NextPageToken of the previous page, else empty.
	PageToken string
}

// EffectivePageSize returns q.PageSize after defaulting and capping.
func (q CheckpointQuery) EffectivePageSize() int {
	return Filter{PageSize: q.PageSize}.EffectivePageSize()
}

// CheckpointPage is one page of Store.ListCheckpoints, newest first.
type CheckpointPage struct {
	Checkpoints []transparency.Checkpoint
	// NextPageToken is empty on the last page.
	NextPageToken string
}

// Snapshot reads a store as it stood at one instant (Store.View); its
// methods are those of Store, plus Checkpoints. It is not safe for
// concurrent use and is valid only inside the View call that made it.
type Snapshot interface {
	Head(ctx context.Context, chainID string) (Head, error)
	Chains(ctx context.Context) ([]string, error)
	Chain(ctx context.Context, chainID string, fromSeq uint64, fn func(*Record) error) error
	TreeSize(ctx context.Context, chainID string) (int64, error)
	ReadHashes(ctx context.Context, chainID string, indexes []int64) ([]tlog.Hash, error)
	// Checkpoints returns every stored checkpoint of chainID, oldest
	// (smallest size) first.
	Checkpoints(ctx context.Context, chainID string) ([]transparency.Checkpoint, error)
}

// TreeReader is what a transparency.HashStore reads; Store and Snapshot
// both are one.
type TreeReader interface {
	Chains(ctx context.Context) ([]string, error)
	TreeSize(ctx context.Context, chainID string) (int64, error)
	ReadHashes(ctx context.Context, chainID string, indexes []int64) ([]tlog.Hash, error)
}

// ErrTreeReadOnly is what AppendHashes of Hashes returns: a store's tree
// grows only inside Append, with its records.
var ErrTreeReadOnly = errors.New("tree hashes are written by Append, with the records")

// Hashes returns r's trees as a transparency.HashStore, for proofs,
// receipts and the Checkpointer. Its AppendHashes returns an error wrapping
// ErrTreeReadOnly.
func Hashes(r TreeReader) transparency.HashStore { return treeHashes{r} }

type treeHashes struct{ TreeReader }

func (treeHashes) AppendHashes(context.Context, string, int64, int64, []tlog.Hash) error {
	return ErrTreeReadOnly
}
