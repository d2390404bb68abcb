// Package masterdata holds the ERP master data that policies read (policy-pack §3) in go-memdb: one table
// per Kind, fed by change events, read through consistent snapshots.
//
// Change events are validated on the way in (required fields, types, exact enum values, exact decimal
// amounts in supported currencies, timestamps and dates, composite keys that match the record). A record
// with a field its kind does not have is rejected, so that typos in master data surface instead of being
// silently ignored. The one field beyond policy-pack §3 is "id" on single-key kinds: it may be sent (it
// must equal the key) and is always stored, so policies see a record's own id. Events are idempotent by event id and ordered per record by version; every applied
// batch increments a revision that is stored in memdb beside the data, so a Snapshot's revision always
// matches what it sees. Fed by a stream, the revision is instead the stream sequence (ApplyAt).
//
// The memory that makes events idempotent and ordered (the seen event ids, and the tombstones of deleted
// records) is compacted by event time, Config.Retain: see Config.Retain for what that costs.
//
// Every read goes through an index (the key, or a secondary index such as IndexPair); no read scans a
// table except Snapshot.All, which exists for export. The package knows nothing of OPA or gRPC.
package masterdata

import (
	"fmt"
	"maps"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// Outcome is what Apply did with one event.
type Outcome string

// The outcomes of an event.
const (
	// OutcomeApplied: the record was stored (or, for a DELETE, replaced by a tombstone).
	OutcomeApplied Outcome = "APPLIED"
	// OutcomeDuplicate: the event id was applied before (in an earlier batch or earlier in the same one);
	// nothing changed.
	OutcomeDuplicate Outcome = "DUPLICATE"
	// OutcomeStale: the version is not newer than the stored record's or tombstone's; nothing changed.
	OutcomeStale Outcome = "STALE"
	// OutcomeInvalid: the event failed validation (or Config.Prepare); nothing changed.
	OutcomeInvalid Outcome = "INVALID"
)

// EventResult is the outcome of one event. Err is set for INVALID (matching ErrInvalid, a
// *ValidationError) and STALE (matching ErrStale, a *StaleError), and nil otherwise.
type EventResult struct {
	EventID string
	Outcome Outcome
	Err     error
}

// ApplyResult reports one Apply: a result per event, in input order, and the revision after the batch.
type ApplyResult struct {
	Results  []EventResult
	Revision uint64
}

// Config configures a Store. The zero Config is valid.
type Config struct {
	// Prepare, if set, computes Record.Prepared for each valid upserted record before commit. The engine
	// uses it to precompute the OPA value of a record once, so decisions never convert records. An error
	// from Prepare makes that event INVALID. Apply calls it once per record it is about to store, in the
	// calling goroutine. LoadDir calls it ahead, from several goroutines at once, for every valid UPSERT,
	// including those that then turn out DUPLICATE or STALE (whose result and error are dropped). So
	// Prepare must be safe for concurrent use, must not call the Store (the writer lock is held), and
	// must not retain or modify fields.
	Prepare func(kind Kind, key string, fields map[string]any) (any, error)
	// Now returns the time recorded as Status.LastAppliedAt, and the event time of what Apply and LoadDir
	// apply (see Retain); nil means time.Now.
	Now func() time.Time
	// Retain is how long the store remembers an applied event's id (to report a resent event DUPLICATE)
	// and a deleted record's tombstone (to report an older UPSERT of it STALE), in event time: after
	// each committed batch, what is older than the newest event time seen minus Retain is forgotten. The
	// event time is the stream message's timestamp for ApplyAt (so replicas that applied the same
	// messages forget the same things), and Now when the batch commits for Apply and LoadDir.
	//
	// Beyond the window, a resent event is still refused as STALE when its record has not gone back
	// (records keep their version); it is applied again only if its version is newer than the stored
	// record's. But a late UPSERT of a record whose tombstone was forgotten is applied, resurrecting the
	// deleted record: so Retain must exceed the longest delay with which the source can deliver an
	// event. 0 means DefaultRetain; a negative Retain keeps everything forever (memory then grows with
	// every event id and delete).
	Retain time.Duration
}

// DefaultRetain is Config.Retain's default: a day, far longer than an ERP outbox or a stream consumer is
// expected to hold an event back, and small enough that a busy source's ids fit in memory.
const DefaultRetain = 24 * time.Hour

// Store is the master-data cache. It is safe for concurrent use: Apply calls are serialized by memdb's
// writer lock, and readers use snapshots that never block writers or each other.
type Store struct {
	db      *memdb.MemDB
	prepare func(Kind, string, map[string]any) (any, error)
	now     func() time.Time
	// applied holds every event id applied so far. Only a batch (of Apply or LoadDir) uses it, and only
	// while it holds memdb's writer lock (between Txn(true) and Commit or Abort), so it needs no lock of
	// its own; readers never need it. It is a map rather than a memdb table because a table row per event cost about 400 bytes
	// and six allocations per record (radix node, leaf, two notify channels, key, row), against about 40
	// bytes here, the id's text being shared with Record.EventID.
	applied map[string]struct{}
	// retain is Config.Retain (negative: never compact). window holds what applied batches remembered,
	// oldest first, until compaction forgets it; newest is the latest event time seen. Like applied they
	// are only used under memdb's writer lock.
	retain time.Duration
	window []remembered
	newest time.Time
}

// remembered is what one committed batch added to the store's memory: the event ids it applied and the
// tombstones it stored, all with the batch's event time.
type remembered struct {
	at         time.Time
	ids        []string
	tombstones []*Record
}

// meta is the single object in tableMeta, replaced (never modified) by every Apply that applies an event.
type meta struct {
	ID            string
	Revision      uint64
	Counts        map[Kind]int // live records per kind
	LastEventID   string
	LastAppliedAt time.Time
	// SeenEventIDs and Tombstones are the sizes of the store's memory after the batch's compaction.
	SeenEventIDs int
	Tombstones   int
}

// New returns an empty Store at revision 0.
func New(cfg Config) (*Store, error) {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		return nil, fmt.Errorf("create master-data memdb: %w", err)
	}
	s := &Store{db: db, prepare: cfg.Prepare, now: cfg.Now, applied: make(map[string]struct{}), retain: cfg.Retain}
	if s.now == nil {
		s.now = time.Now
	}
	if s.retain == 0 {
		s.retain = DefaultRetain
	}
	txn := db.Txn(true)
	m := &meta{ID: metaID, Counts: make(map[Kind]int, len(kindSpecs))}
	for _, k := range Kinds() {
		m.Counts[k] = 0
	}
	if err := txn.Insert(tableMeta, m); err != nil {
		txn.Abort()
		return nil, fmt.Errorf("initialize master-data meta: %w", err)
	}
	txn.Commit()
	return s, nil
}

// Apply applies a batch of change events in ONE memdb write transaction and reports an outcome per event.
//
// Per event, in order: an event that fails validation is INVALID; an event id already applied (in an
// earlier batch, or earlier in this one) is DUPLICATE; a version not newer than the stored record's or
// tombstone's is STALE; otherwise the event is APPLIED. An UPSERT stores the normalized record (Prepare, if
// configured, runs here; its error makes the event INVALID). A DELETE stores a tombstone, even when the
// record was never seen, so that an older UPSERT arriving later cannot resurrect it; its Record is ignored.
//
// A batch is NOT all-or-nothing: the valid events commit together even when others in the same batch are
// INVALID, DUPLICATE or STALE; those change nothing, and their event ids are not remembered (so an invalid
// event may be corrected and resent under the same id). Readers see either none or all of a batch. The
// revision grows by one per Apply that applied at least one event. Apply is safe for concurrent use.
//
// Apply is for a store fed by calls and files; a store fed by a stream uses ApplyAt only, since Apply's
// revision +1 would no longer be a stream sequence.
func (s *Store) Apply(events []Event) ApplyResult {
	res, _ := s.applyBatch(events, 0, time.Time{})
	return res
}

// ApplyAt applies a batch of events from a stream as Apply does, except for the revision: it becomes
// revision (the stream sequence of the batch's last message), even if no event of the batch applied, so
// that every replica that processed the same messages reports the same revision, bad and duplicate
// messages included. at is the batch's event time (the message's stream timestamp), which compaction
// (Config.Retain) uses instead of the clock so that replicas forget the same things.
//
// It returns an error matching ErrRevision, and applies nothing, if revision is not greater than the
// current revision; a memdb failure is reported per event as in Apply, with a nil error and the
// revision unchanged. ApplyAt is safe for concurrent use.
func (s *Store) ApplyAt(events []Event, revision uint64, at time.Time) (ApplyResult, error) {
	if revision == 0 {
		return ApplyResult{}, fmt.Errorf("%w: revision 0", ErrRevision)
	}
	return s.applyBatch(events, revision, at)
}

// applyBatch is Apply (revision 0: the next revision, and only if an event applied) and ApplyAt.
func (s *Store) applyBatch(events []Event, revision uint64, at time.Time) (ApplyResult, error) {
	checked := make([]checkedEvent, len(events))
	for i, ev := range events {
		checked[i] = check(ev, false)
	}
	b := s.begin(len(events))
	defer b.abort() // no-op after commit
	if revision != 0 && revision <= b.cur.Revision {
		return ApplyResult{Revision: b.cur.Revision}, fmt.Errorf("%w: %d is not after the current revision %d", ErrRevision, revision, b.cur.Revision)
	}
	b.revision, b.at = revision, at
	results := make([]EventResult, len(events))
	for i, ev := range checked {
		res, err := b.apply(ev)
		if err != nil {
			return abortedResult(checked, results[:i], b.cur.Revision, err), nil
		}
		results[i] = res
	}
	rev, err := b.commit()
	if err != nil {
		return abortedResult(checked, results, b.cur.Revision, err), nil
	}
	return ApplyResult{Results: results, Revision: rev}, nil
}

// checkedEvent is an event after checkEvent. It does not keep the event's Record: a large load then holds
// the normalized fields it will store, not the decoded JSON beside them.
type checkedEvent struct {
	id      string
	kind    Kind
	key     string // as given, for errors
	version uint64
	op      Op
	stored  string         // the canonical key, if err is nil
	fields  map[string]any // the normalized fields of a valid UPSERT
	err     error          // why the event is INVALID, or nil
	// prepared and prepareErr are Config.Prepare's result for fields if isPrepared: LoadDir prepares
	// ahead, on other goroutines.
	prepared   any
	prepareErr error
	isPrepared bool
}

// check checks ev; owned is checkEvent's.
func check(ev Event, owned bool) checkedEvent {
	stored, fields, err := checkEvent(ev, owned)
	return checkedEvent{
		id: ev.EventID, kind: ev.Kind, key: ev.Key, version: ev.Version, op: ev.Op,
		stored: stored, fields: fields, err: err,
	}
}

// batch is one write transaction: an Apply, or a whole LoadDir. Its reads never go through txn: go-memdb
// answers a read on a write transaction from a clone of the index (iradix Txn.Clone), and cloning empties
// the index's cache of nodes already copied in this transaction, so each insert after such a read copies
// its whole path from the root again. Reading before every insert made a 1,000,000-record load copy about
// 25 radix nodes per record. Instead a batch reads the store as it was when the batch began (committed:
// the writer lock is held, so nothing else changes it) and, first, what the batch itself wrote.
type batch struct {
	s         *Store
	txn       *memdb.Txn
	committed *memdb.Txn
	cur       *meta                 // the meta object when the batch began
	counts    map[Kind]int          // live records per kind, as the batch changes them
	records   map[recordRef]*Record // records inserted by this batch
	added     []string              // event ids this batch added to s.applied
	tombs     []*Record             // tombstones this batch stored
	tombCount int                   // tombstones in the store, as the batch changes them
	applied   int                   // events APPLIED
	lastID    string                // the last event APPLIED
	// revision is ApplyAt's revision (the batch commits as it even if nothing applied), 0 for the next
	// one; at is ApplyAt's event time, zero for Now.
	revision uint64
	at       time.Time
}

// recordRef names a record across kinds.
type recordRef struct {
	kind Kind
	key  string
}

// begin starts a batch; it holds memdb's writer lock until commit or abort. size is the number of events
// expected, a hint (0 if unknown).
func (s *Store) begin(size int) *batch {
	txn := s.db.Txn(true)
	cur := currentMeta(txn)
	if size > len(s.applied) {
		// Growing a map a million entries at a time cost a 1,000,000-record load about 3 s of rehashing.
		// Made anew at its final size instead, the set costs one copy of what it held (nothing, at startup).
		applied := make(map[string]struct{}, len(s.applied)+size)
		for id := range s.applied {
			applied[id] = struct{}{}
		}
		s.applied = applied
	}
	return &batch{
		s:         s,
		txn:       txn,
		committed: s.db.Txn(false),
		cur:       cur,
		counts:    maps.Clone(cur.Counts),
		tombCount: cur.Tombstones,
		records:   make(map[recordRef]*Record, size),
		added:     make([]string, 0, size),
	}
}

// apply applies one checked event. A returned error is a memdb failure: the batch must be aborted.
func (b *batch) apply(ev checkedEvent) (EventResult, error) {
	res := EventResult{EventID: ev.id}
	if ev.err != nil {
		res.Outcome, res.Err = OutcomeInvalid, ev.err
		return res, nil
	}
	if _, seen := b.s.applied[ev.id]; seen {
		res.Outcome = OutcomeDuplicate
		return res, nil
	}
	key := ev.stored
	prev, err := b.record(ev.kind, key)
	if err != nil {
		return res, fmt.Errorf("look up %s %q: %w", ev.kind, key, err)
	}
	if prev != nil && ev.version <= prev.Version {
		res.Outcome = OutcomeStale
		res.Err = &StaleError{Kind: ev.kind, Key: key, Stored: prev.Version, Given: ev.version}
		return res, nil
	}
	rec := &Record{Kind: ev.kind, Key: key, Version: ev.version, EventID: ev.id}
	if ev.op == OpDelete {
		rec.Deleted = true
	} else {
		rec.Fields = ev.fields
		if b.s.prepare != nil {
			p, err := ev.prepared, ev.prepareErr
			if !ev.isPrepared {
				p, err = b.s.prepare(ev.kind, key, ev.fields)
			}
			if err != nil {
				res.Outcome = OutcomeInvalid
				res.Err = &ValidationError{Kind: ev.kind, Key: ev.key, Problem: "prepare", Err: err}
				return res, nil
			}
			rec.Prepared = p
		}
	}
	if err := b.txn.Insert(string(rec.Kind), rec); err != nil {
		return res, fmt.Errorf("insert %s %q: %w", rec.Kind, rec.Key, err)
	}
	b.records[recordRef{rec.Kind, rec.Key}] = rec
	b.s.applied[rec.EventID] = struct{}{}
	b.added = append(b.added, rec.EventID)
	if rec.Deleted {
		b.tombs = append(b.tombs, rec)
		if prev == nil || !prev.Deleted {
			b.tombCount++
		}
	} else if prev != nil && prev.Deleted {
		b.tombCount--
	}
	wasLive := prev != nil && !prev.Deleted
	switch {
	case rec.Deleted && wasLive:
		b.counts[ev.kind]--
	case !rec.Deleted && !wasLive:
		b.counts[ev.kind]++
	}
	b.applied++
	b.lastID = ev.id
	res.Outcome = OutcomeApplied
	return res, nil
}

// record returns the stored record or tombstone of kind and key, or nil.
func (b *batch) record(kind Kind, key string) (*Record, error) {
	if r, ok := b.records[recordRef{kind, key}]; ok {
		return r, nil
	}
	raw, err := b.committed.First(string(kind), IndexID, key)
	if raw == nil || err != nil {
		return nil, err
	}
	return raw.(*Record), nil
}

// commit makes the batch visible as the next revision (or b.revision), if it applied any event or has
// b.revision, compacts the store's memory, and returns the revision readers now see. On an error the batch
// must be aborted.
func (b *batch) commit() (uint64, error) {
	if b.applied == 0 && b.revision == 0 {
		b.abort()
		return b.cur.Revision, nil
	}
	next := &meta{
		ID:            metaID,
		Revision:      b.cur.Revision + 1,
		Counts:        b.counts,
		LastEventID:   b.cur.LastEventID,
		LastAppliedAt: b.cur.LastAppliedAt,
	}
	if b.revision != 0 {
		next.Revision = b.revision
	}
	if b.applied > 0 {
		next.LastEventID, next.LastAppliedAt = b.lastID, b.s.now()
	}
	at := b.at
	if at.IsZero() {
		at = b.s.now()
	}
	forget, forgotten, err := b.compact(at)
	if err != nil {
		return 0, err
	}
	next.SeenEventIDs = len(b.s.applied) - forgotten
	next.Tombstones = b.tombCount
	if err := b.txn.Insert(tableMeta, next); err != nil {
		return 0, fmt.Errorf("insert meta: %w", err)
	}
	// Nothing can fail from here on, so the memory beside memdb changes too, before Commit releases the
	// writer lock that guards it.
	s := b.s
	for _, r := range s.window[:forget] {
		for _, id := range r.ids {
			delete(s.applied, id)
		}
	}
	s.window = s.window[forget:]
	if len(b.added) > 0 || len(b.tombs) > 0 {
		s.window = append(s.window, remembered{at: at, ids: b.added, tombstones: b.tombs})
	}
	if at.After(s.newest) {
		s.newest = at
	}
	b.added = nil
	b.txn.Commit()
	return next.Revision, nil
}

// compact deletes, in the batch's transaction, the tombstones of the oldest remembered batches whose
// event time is older than the newest event time (this batch's included) minus Retain, and returns how
// many of those batches to forget once the transaction commits and how many event ids they hold. A
// tombstone since replaced (by a newer UPSERT or DELETE) is not the stored record any more and stays.
func (b *batch) compact(at time.Time) (forget, ids int, err error) {
	s := b.s
	if s.retain < 0 {
		return 0, 0, nil
	}
	newest := s.newest
	if at.After(newest) {
		newest = at
	}
	cutoff := newest.Add(-s.retain)
	for forget < len(s.window) && s.window[forget].at.Before(cutoff) {
		r := s.window[forget]
		for _, t := range r.tombstones {
			cur, err := b.record(t.Kind, t.Key)
			if err != nil {
				return 0, 0, fmt.Errorf("look up %s %q: %w", t.Kind, t.Key, err)
			}
			if cur != t {
				continue
			}
			if err := b.txn.Delete(string(t.Kind), t); err != nil {
				return 0, 0, fmt.Errorf("delete tombstone %s %q: %w", t.Kind, t.Key, err)
			}
			b.tombCount--
		}
		ids += len(r.ids)
		forget++
	}
	return forget, ids, nil
}

// abort drops the batch: nothing it wrote is seen, and its event ids are forgotten. It is a no-op after
// commit or abort.
func (b *batch) abort() {
	b.txn.Abort()
	for _, id := range b.added {
		delete(b.s.applied, id)
	}
	b.added = nil
}

// abortedResult reports a batch whose transaction was abandoned on a memdb error: nothing was applied, so
// every event not already DUPLICATE, STALE or INVALID is reported INVALID with the cause.
func abortedResult(events []checkedEvent, done []EventResult, revision uint64, cause error) ApplyResult {
	err := &ValidationError{Problem: "batch aborted, nothing applied", Err: cause}
	results := make([]EventResult, len(events))
	for i, ev := range events {
		if i < len(done) && done[i].Outcome != OutcomeApplied {
			results[i] = done[i]
			continue
		}
		results[i] = EventResult{EventID: ev.id, Outcome: OutcomeInvalid, Err: err}
	}
	return ApplyResult{Results: results, Revision: revision}
}

func currentMeta(txn *memdb.Txn) *meta {
	raw, err := txn.First(tableMeta, IndexID, metaID)
	if err != nil || raw == nil {
		// New inserts the meta object before the Store is returned; the table and index are static.
		panic(fmt.Sprintf("masterdata: meta object missing: %v", err))
	}
	return raw.(*meta)
}

// Status summarises the store.
type Status struct {
	// Revision counts the Apply calls that applied at least one event; fed by ApplyAt, it is the last
	// stream sequence processed.
	Revision uint64
	// Counts holds the number of live records (tombstones excluded) of every kind.
	Counts map[Kind]int
	// LastEventID is the id of the last event applied, "" before the first.
	LastEventID string
	// LastAppliedAt is when the last applying batch committed (Config.Now), zero before the first.
	LastAppliedAt time.Time
	// SeenEventIDs is the number of event ids remembered to refuse duplicates, and Tombstones the number
	// of deleted records remembered to refuse stale UPSERTs; both shrink with compaction (Config.Retain).
	SeenEventIDs int
	Tombstones   int
}

// Status returns the current status. It does not scan: counts are maintained by Apply. The returned map
// is the caller's.
func (s *Store) Status() Status {
	return s.Snapshot().Status()
}

// Snapshot returns a consistent read view of the store as of now. It is cheap (no copying), never blocks
// Apply, and stays unchanged however many batches are applied after it; drop it when done. A Snapshot is
// safe for concurrent use.
func (s *Store) Snapshot() *Snapshot {
	txn := s.db.Txn(false)
	return &Snapshot{txn: txn, meta: currentMeta(txn)}
}

// Snapshot is a consistent, immutable read view of the store (a memdb read transaction).
type Snapshot struct {
	txn  *memdb.Txn
	meta *meta
}

// Revision returns the revision of the data this snapshot sees.
func (sn *Snapshot) Revision() uint64 { return sn.meta.Revision }

// Status returns the status as of this snapshot. The returned map is the caller's.
func (sn *Snapshot) Status() Status {
	return Status{
		Revision:      sn.meta.Revision,
		Counts:        maps.Clone(sn.meta.Counts),
		LastEventID:   sn.meta.LastEventID,
		LastAppliedAt: sn.meta.LastAppliedAt,
		SeenEventIDs:  sn.meta.SeenEventIDs,
		Tombstones:    sn.meta.Tombstones,
	}
}

// Get returns the live record of kind with key, by the unique key index. Tombstones, unknown kinds and
// malformed keys report false. A supplier_invoice key may be given with its ref part unnormalized
// ("S1/INV-00123" finds "S1/INV00123"). The Record must not be modified.
func (sn *Snapshot) Get(kind Kind, key string) (*Record, bool) {
	if !kind.Valid() {
		return nil, false
	}
	key, problem := canonicalKey(kind, key)
	if problem != "" {
		return nil, false
	}
	raw, err := sn.txn.First(string(kind), IndexID, key)
	if err != nil || raw == nil {
		return nil, false
	}
	r := raw.(*Record)
	if r.Deleted {
		return nil, false
	}
	return r, true
}

// Lookup returns the live records of kind whose secondary index equals value, ordered by key. Indexes:
// delegation IndexPair ("<delegator_id>/<delegate_id>"), IndexDelegator, IndexDelegate; inventory
// IndexSite, IndexItem; fiscal_period IndexCompany; supplier_invoice IndexSupplier, IndexCompany; asn
// IndexSupplier. IndexID works for every kind. An unknown kind or index, or no match, gives nil. The
// Records must not be modified.
func (sn *Snapshot) Lookup(kind Kind, index, value string) []*Record {
	if !kind.Valid() {
		return nil
	}
	if index == IndexID {
		if r, ok := sn.Get(kind, value); ok {
			return []*Record{r}
		}
		return nil
	}
	it, err := sn.txn.Get(string(kind), index, value)
	if err != nil {
		return nil
	}
	return collect(it)
}

// All returns every live record of kind, ordered by key. Unlike Get and Lookup it scans the table: it is
// for export and inspection, never for the decision path. An unknown kind gives nil.
func (sn *Snapshot) All(kind Kind) []*Record {
	if !kind.Valid() {
		return nil
	}
	it, err := sn.txn.Get(string(kind), IndexID)
	if err != nil {
		return nil
	}
	return collect(it) // the id index iterates in key order
}

func collect(it memdb.ResultIterator) []*Record {
	var out []*Record
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if r := raw.(*Record); !r.Deleted {
			out = append(out, r)
		}
	}
	return out
}
