package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// Mode says when Writer.Write returns.
type Mode string

// Logging modes.
const (
	// ModeSync returns after the record's transaction committed durably.
	ModeSync Mode = "sync"
	// ModeAsync returns once the record is queued.
	ModeAsync Mode = "async"
)

// Config configures a Writer. Zero values take the documented defaults.
type Config struct {
	// Mode is ModeSync (default) or ModeAsync.
	Mode Mode
	// QueueSize bounds the records waiting in the queue; up to MaxBatch more
	// are in the transaction being committed. A crash in async mode can so
	// lose at most QueueSize+MaxBatch answered records (test/fault measures
	// it); in sync mode none. Default 4096.
	QueueSize int
	// MaxBatch bounds the records per transaction. Default 512.
	MaxBatch int
	// MaxDelay is how long the committer waits for more records once it
	// holds fewer than MaxBatch. Zero takes the mode's default: 5ms in async
	// mode; in sync mode 2ms, adaptively: the committer waits only while
	// callers are concurrent (the last batch held records of more than one
	// Write or Group flush) and
	// waiting gathered more records last time, so a lone caller or a pair
	// never pays for it. A negative value means no wait.
	MaxDelay time.Duration
	// adaptiveDelay waits MaxDelay only when it is likely to pay off (see MaxDelay).
	adaptiveDelay bool
	// ChainID names this writer's hash chain. One Writer per chain at a
	// time. Default "default".
	ChainID string
	// MaskPaths are request paths replaced by Masked before hashing and
	// storing, e.g. "resource.attributes.bank_account" or "context.iban".
	MaskPaths []string
	// PayloadKey keys the payload hashes of keyed decisions (PayloadHash),
	// so a masked field cannot be recovered from its record's payload hash
	// by trying every value. Every writer of one log must use the same key
	// and keep it across restarts: a retry is recognised by its payload
	// hash. Nil takes a random key for this Writer alone, so a retry of a
	// decision written before a restart is taken for a conflict; the
	// service always passes the key of its key file.
	PayloadKey *PayloadKey
	// Registry receives the writer's metrics; nil registers none.
	Registry *prometheus.Registry
	// RetryInterval paces store retries in async mode and health probes
	// while the store is failing. Default 500ms.
	RetryInterval time.Duration
	// IdleProbeInterval is how often a healthy writer that committed
	// nothing since the last look probes the store (Ping), so that Healthy
	// turns false when the store goes away while no decision comes, not
	// only at the next decision: a load balancer then sends no caller to a
	// replica that cannot record. Default 1s; negative disables it.
	IdleProbeInterval time.Duration
	// DeadLetterFile is where async mode keeps answered records the store
	// refuses (see the Writer's failure policy): one JSON object a line,
	// appended and fsynced. "" keeps them in the error log only.
	DeadLetterFile string
	// AcceptChainBreak lets NewWriter start on a chain whose stored tail does
	// not verify: it writes a RECORD_KIND_CHAIN_BREAK record naming what was
	// found and who accepted it, and continues the chain after it. Without
	// it NewWriter refuses with a *ChainBreakError.
	AcceptChainBreak bool
}

func (c *Config) setDefaults() error {
	if c.Mode == "" {
		c.Mode = ModeSync
	}
	if c.Mode != ModeSync && c.Mode != ModeAsync {
		return fmt.Errorf("audit mode %q: want %q or %q", c.Mode, ModeSync, ModeAsync)
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 4096
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 512
	}
	if c.MaxDelay == 0 && c.Mode == ModeAsync {
		c.MaxDelay = 5 * time.Millisecond
	}
	if c.MaxDelay == 0 && c.Mode == ModeSync {
		c.MaxDelay = 2 * time.Millisecond
		c.adaptiveDelay = true
	}
	if c.ChainID == "" {
		c.ChainID = "default"
	}
	if c.RetryInterval <= 0 {
		c.RetryInterval = 500 * time.Millisecond
	}
	if c.IdleProbeInterval == 0 {
		c.IdleProbeInterval = time.Second
	}
	if c.PayloadKey == nil {
		k, err := GeneratePayloadKey()
		if err != nil {
			return err
		}
		c.PayloadKey = k
	}
	return nil
}

// Writer appends records to one hash chain, many per transaction (group
// commit). It is safe for concurrent use; Close stops it.
//
// Failure policy, by what the store's Append returned:
//
//   - Any error: the committer first asks the store whether the batch was
//     committed after all (Head, then Get of the batch's last record): an
//     ambiguous commit that stored the records with the hashes just sealed
//     counts as committed, so a retry never meets its own records as
//     duplicates and nothing is dropped or written twice.
//   - A store failure (ErrUnavailable, I/O, a lock held elsewhere): in sync
//     mode every Write of the batch fails with an error wrapping
//     ErrUnavailable; those records are not stored (their callers were
//     told, no decision was given) and the chain continues from the last
//     committed record, gap-free. In async mode callers were already
//     answered, so the batch is retried every RetryInterval until it
//     commits; meanwhile the queue fills and new Writes get ErrQueueFull.
//   - A record the store refuses (ErrInvalidArgument, or ErrDuplicate that
//     is not our own earlier commit): the batch is split in halves until
//     the refused records stand alone, so every other record commits. In
//     sync mode the refused record's Write fails with the store's error. In
//     async mode its caller was answered, so it is never dropped silently:
//     it is appended to DeadLetterFile with the error, logged at error
//     level with its decision id, counted in
//     tollgate_audit_rejected_records_total, and Healthy reports false for
//     at least RetryInterval and until a later commit or probe succeeds.
//     One exception, sync mode only: a keyed decision refused because
//     another writer on the store stored its (scope, key) first is answered
//     like a retry instead (see lostKeyRace).
//   - Close with a failing store (async): the queue is retried ten times
//     RetryInterval apart, then what is left goes to DeadLetterFile too.
//
// Healthy reports false from a failed commit, or a failed probe of an idle
// store (Ping, every IdleProbeInterval without a commit), until a commit or
// a probe (every RetryInterval) succeeds.
type Writer struct {
	cfg    Config
	store  Store
	log    zerolog.Logger
	masker *masker
	met    *metrics

	queue chan *item
	// lastBatch is how many callers' records (a group counting once) the
	// previous batch held, and skipWaits how many batches
	// to commit without waiting after a wait gathered nothing; the committer
	// goroutine owns both.
	lastBatch, skipWaits int
	// carry is the part of a group that did not fit in the last batch; the
	// committer goroutine owns it.
	carry []*item
	quit  chan struct{}
	done  chan struct{}

	// mu guards closed and inflight; it is never held across a store call,
	// so no Write or commit waits on the database behind another's lookup.
	mu       sync.Mutex
	closed   bool
	inflight map[string]*pending // by scopedKey
	senders  sync.WaitGroup

	healthy atomic.Bool
	// holdUntil (unix ns) keeps Healthy false after a refused record even
	// when the next commit succeeds at once, so a health check sees it.
	holdUntil atomic.Int64
	head      Head // owned by the committer goroutine after NewWriter
	// committed is set by every successful append since the last idle
	// probe; the committer goroutine owns it.
	committed bool
	deadMu    sync.Mutex // serializes appends to DeadLetterFile
}

// pending is a decision with an idempotency key that is being looked up,
// or is queued but not yet committed, so concurrent retries find it before
// the store does.
type pending struct {
	// resolved is closed once the claimer's store lookup is over; until
	// then rec and snapshot are nil and other claimers of the key wait.
	resolved chan struct{}
	rec      *Record // the queued record; read only after it committed
	snapshot *Record // a copy taken before queueing, safe to read any time
	// failed is set if the record will not be stored: by Write before
	// queued is closed, or by the committer.
	failed error
	// queued is closed once Write's attempt to queue rec is over.
	queued chan struct{}
	// group is the Group that rec is staged in until it is flushed; guarded
	// by Writer.mu.
	group *Group
}

// scopedKey is the in-flight map's key: an idempotency key within its scope.
func scopedKey(r *Record) string { return IdempotencyScope(r) + "\x00" + r.GetIdempotencyKey() }

type item struct {
	rec    *Record
	prep   []byte     // rec's canonical form with placeholder position
	pend   *pending   // for a keyed decision
	origin *pending   // for a replay marker of a queued decision
	result chan error // sync mode only
	// follow are the records of a Group queued with this one, its first:
	// the committer takes them all into its batch. Set only while queued.
	follow []*item
	// stored is the original of a keyed decision that another writer
	// stored first (see lostKeyRace): rec became a replay marker of it.
	// Set by the committer before result is sent.
	stored *Record
}

// NewWriter validates cfg, loads the chain head from store so the chain
// continues across restarts, and starts the committer.
//
// It first checks the chain's tail: the stored head must name the last
// record (same seq and hash), and that record must hash to its stored hash
// and link to the record before it. A tail that does not (rows deleted or
// rewritten, a head rolled back) makes NewWriter return a *ChainBreakError
// naming the problem, unless cfg.AcceptChainBreak is set: then it appends a
// RECORD_KIND_CHAIN_BREAK record before any decision (see writeChainBreak)
// and the chain continues after it.
func NewWriter(cfg Config, store Store, log zerolog.Logger) (*Writer, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	m, err := newMasker(cfg.MaskPaths)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	head, brk, err := checkTail(ctx, store, cfg.ChainID)
	if err != nil {
		return nil, err
	}
	if brk != nil {
		if !cfg.AcceptChainBreak {
			return nil, brk
		}
		if head, err = writeChainBreak(ctx, store, brk, operator(), time.Now()); err != nil {
			return nil, err
		}
		log.Warn().Str("chain", cfg.ChainID).Str("problem", brk.Problem).Uint64("break_seq", head.Seq).
			Msg("audit chain break accepted: chain-break record written, the chain continues after it")
	}
	if head.Seq == 0 {
		head.Hash = GenesisHash()
	}
	w := &Writer{
		cfg:      cfg,
		store:    store,
		log:      log,
		masker:   m,
		queue:    make(chan *item, cfg.QueueSize),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
		inflight: make(map[string]*pending),
		head:     head,
	}
	w.healthy.Store(true)
	w.met, err = newMetrics(cfg.Registry, cfg.ChainID,
		func() float64 { return float64(len(w.queue)) },
		func() float64 {
			if w.Healthy() {
				return 1
			}
			return 0
		})
	if err != nil {
		return nil, err
	}
	w.met.headSeq.Set(float64(head.Seq))
	go w.run()
	return w, nil
}

// Healthy reports whether the last commit (or store probe) succeeded, and
// no record was refused by the store within the last RetryInterval.
func (w *Writer) Healthy() bool {
	return w.healthy.Load() && time.Now().UnixNano() >= w.holdUntil.Load()
}

// Mode returns the writer's logging mode.
func (w *Writer) Mode() Mode { return w.cfg.Mode }

// Write logs rec, a RECORD_KIND_DECISION with decision_id set. rec is not
// modified: the writer masks a copy, sets chain_id, and assigns seq,
// prev_hash and hash at commit. If rec.payload_hash is empty and
// rec.idempotency_key is set, it is computed with PayloadHash under
// cfg.PayloadKey from the unmasked request.
//
// Idempotency: if a decision with rec's idempotency_key in rec's scope
// (IdempotencyScope: the caller's name) is stored or queued, Write does not
// log rec. With an equal payload_hash (or, for a decision stored before
// payload hashes were keyed, an equal PlainPayloadHash) it logs a
// RECORD_KIND_REPLAY marker (rec's decision_id, replay_of the original) and
// returns the marker and the original; with another payload_hash it returns
// a *ConflictError. This holds across concurrent Writes, and across
// restarts with the same PayloadKey.
//
// In sync mode Write returns after the record committed durably; stored
// then carries its seq and hash. In async mode it returns once the record is
// queued and stored has no seq or hash yet. Either way, if the queue is full
// Write waits until ctx is done and then returns ErrQueueFull. A queued
// record is written even if ctx is cancelled later; a sync Write whose ctx
// ends first returns ctx's error without knowing the outcome. A failed
// commit returns an error wrapping ErrUnavailable. After Close, ErrClosed.
func (w *Writer) Write(ctx context.Context, rec *Record) (stored *Record, replayOf *Record, err error) {
	return w.WriteQueued(ctx, rec, nil)
}

// WriteQueued is Write that calls queued, on the caller's goroutine, once rec is in the commit queue as
// a decision of its own (not a replay marker of an earlier one), before a sync Write waits for the
// commit. queued gets the record as it will be stored, masked, before the commit assigns its chain
// position; it must only read it, and not keep it. The decision path uses it to let the next decision on the same history key proceed while
// this one's commit is still in flight (history.Ticket): the commit may still fail, or, for a keyed
// decision another replica stored first, turn rec into a replay marker (replayOf set), and the caller
// must then undo what queued did.
func (w *Writer) WriteQueued(ctx context.Context, rec *Record, queued func(*Record)) (stored *Record, replayOf *Record, err error) {
	q, err := w.Enqueue(ctx, rec, queued)
	if err != nil {
		return nil, nil, err
	}
	return q.Wait(ctx)
}

// Enqueue is the first half of WriteQueued: it claims rec's idempotency key, queues rec (or its replay
// marker) for the committer and calls queued as WriteQueued does, and returns without waiting for the
// commit. Its errors are WriteQueued's that arise before the wait. Wait on the returned Queued gives
// what WriteQueued would have returned; a record is committed whether or not anyone waits for it.
func (w *Writer) Enqueue(ctx context.Context, rec *Record, queued func(*Record)) (*Queued, error) {
	return w.enqueueRecord(ctx, rec, queued, nil)
}

// Queued is a record handed to the writer by Enqueue or Group.Enqueue, not yet waited for.
type Queued struct {
	it          *item
	r           *Record // the decision as masked, before any replay marker replaced it
	originalRec *Record // the stored original of an idempotent retry
	snapshot    *Record // async mode: a copy of it.rec taken before the committer sealed it
	group       *Group  // staged in this group until it is flushed
}

// Wait waits, in sync mode, until q's record committed, and returns what Write returns: the stored
// record, and for an idempotent retry the original it replays. In async mode it returns at once. If
// q's group was not flushed yet, Wait flushes it first, under ctx. A Wait whose ctx ends first returns
// ctx's error without knowing the outcome; the record is committed or failed all the same. Call Wait
// once, from one goroutine.
func (q *Queued) Wait(ctx context.Context) (stored *Record, replayOf *Record, err error) {
	it, r := q.it, q.r
	if q.group != nil {
		// A failed flush has failed our record too if it was still staged: its result says so.
		_ = q.group.Flush(ctx)
	}
	if it.result == nil {
		if it.origin != nil {
			return q.snapshot, proto.Clone(it.origin.snapshot).(*Record), nil
		}
		return q.snapshot, q.originalRec, nil
	}
	select {
	case err = <-it.result: // an outcome already known wins over an ended ctx
	default:
		select {
		case err = <-it.result:
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("wait for audit commit of %s: %w", r.DecisionId, ctx.Err())
		}
	}
	if err != nil {
		return nil, nil, err
	}
	if it.origin != nil {
		// The original committed in this or an earlier batch on the committer
		// goroutine before our result was sent, so reading it is safe.
		return it.rec, proto.Clone(it.origin.rec).(*Record), nil
	}
	if it.stored != nil {
		return it.rec, it.stored, nil
	}
	return it.rec, q.originalRec, nil
}

// Group queues records that commit together: in sync mode Group.Enqueue stages them, in order, and
// Flush (or Wait on any of them) hands them to the committer at once, which puts them in one
// transaction, as many as MaxBatch allows; a group's staged records count as one entry of the
// QueueSize bound. A caller with several decisions to record (DecideBatch) so waits for one commit,
// not one per record. In async mode, where nobody waits for a commit, Group.Enqueue is Enqueue.
//
// A staged record counts as queued for every other purpose: queued is called, and a concurrent retry
// of its idempotency key (on any goroutine) becomes its replay marker; such a retry flushes the group
// itself rather than wait for its owner, so two groups retrying each other's keys cannot wait on each
// other. A Group is safe for concurrent use; its records commit in the order they were staged. Flush
// it (or Wait) before dropping it, or its staged records are never written.
type Group struct {
	w      *Writer
	mu     sync.Mutex // held across a flush, so records staged later queue later
	staged []*item
}

// Group returns an empty group of w.
func (w *Writer) Group() *Group { return &Group{w: w} }

// Enqueue is Writer.Enqueue for a record of the group: staged in sync mode, queued in async mode.
// An idempotent retry of a decision staged earlier in the group is staged after it as its replay
// marker, without a flush.
func (g *Group) Enqueue(ctx context.Context, rec *Record, queued func(*Record)) (*Queued, error) {
	if g.w.cfg.Mode != ModeSync {
		return g.w.Enqueue(ctx, rec, queued)
	}
	return g.w.enqueueRecord(ctx, rec, queued, g)
}

// Flush hands the staged records to the committer, as one entry, and returns without waiting for
// their commit. If they cannot be queued (ctx ends while the queue is full, the writer closed) every
// staged record fails with that error, which Flush returns, as does every Wait on them.
func (g *Group) Flush(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.staged) == 0 {
		return nil
	}
	staged := g.staged
	g.staged = nil
	head := staged[0]
	head.follow = staged[1:]
	err := g.w.enqueue(ctx, head) // the committer owns head.follow from here
	g.w.mu.Lock()
	for _, it := range staged {
		if p := it.pend; p != nil {
			p.group = nil
			if err != nil {
				g.w.forget(p, err)
			}
		}
	}
	g.w.mu.Unlock()
	for _, it := range staged {
		if it.pend != nil {
			close(it.pend.queued)
		}
		if err != nil {
			it.result <- err
		}
	}
	return err
}

// stage adds it to the group. Its pending's queued stays open until Flush queues it, so a retry of
// its key on another goroutine waits for that (flushing the group) and never commits its marker first.
func (g *Group) stage(it *item) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.w.mu.Lock()
	closed := g.w.closed
	if it.pend != nil {
		if closed {
			g.w.forget(it.pend, ErrClosed)
		} else {
			it.pend.group = g
		}
	}
	g.w.mu.Unlock()
	if closed {
		if it.pend != nil {
			close(it.pend.queued)
		}
		return ErrClosed
	}
	g.staged = append(g.staged, it)
	return nil
}

// stagedIn returns the group that p is staged in, not yet flushed, or nil.
func (w *Writer) stagedIn(p *pending) *Group {
	w.mu.Lock()
	defer w.mu.Unlock()
	return p.group
}

func (w *Writer) enqueueRecord(ctx context.Context, rec *Record, queued func(*Record), g *Group) (*Queued, error) {
	if rec.GetDecisionId() == "" {
		return nil, fmt.Errorf("audit record: decision_id is empty")
	}
	if k := rec.GetKind(); k != tollgatev1.RecordKind_RECORD_KIND_UNSPECIFIED && k != tollgatev1.RecordKind_RECORD_KIND_DECISION {
		return nil, fmt.Errorf("audit record %s: kind %s is written by the writer only", rec.GetDecisionId(), k)
	}
	r := shallowCopy(rec)
	if w.masker.masks() && r.Request != nil {
		r.Request = proto.Clone(r.Request).(*tollgatev1.DecideRequest) // masked below; the caller's stays whole
	}
	r.Kind = tollgatev1.RecordKind_RECORD_KIND_DECISION
	r.ChainId = w.cfg.ChainID
	r.Seq, r.PrevHash, r.Hash, r.ReplayOf = 0, nil, nil, ""
	var pl []byte // the payload, kept to compare with a plain payload hash stored before keys
	if r.IdempotencyKey != "" && len(r.PayloadHash) == 0 {
		pl = payload(r.GetRequest())
		r.PayloadHash = w.cfg.PayloadKey.sum(pl)
	}
	w.masker.mask(r.Request) // our own copy whenever there is something to mask

	it := &item{rec: r}
	q := &Queued{it: it, r: r}
	var err error
	if r.IdempotencyKey != "" {
		var own, original *pending
		own, original, q.originalRec, err = w.claim(ctx, r, pl)
		if err != nil {
			return nil, err
		}
		switch {
		case own != nil:
			it.pend = own
		case original != nil:
			// Queue the marker only after its original, so it never
			// commits ahead of the decision it names. An original staged
			// in the same group is ahead of it already; one staged in
			// another is flushed now rather than when its owner gets to it.
			og := w.stagedIn(original)
			if og != nil && og != g {
				if err := og.Flush(ctx); err != nil {
					return nil, err
				}
			}
			if og == nil || og != g {
				select {
				case <-original.queued:
				case <-ctx.Done():
					return nil, fmt.Errorf("queue audit record %s: %w", r.DecisionId, ErrQueueFull)
				}
			}
			if err := w.failure(original); err != nil {
				return nil, err
			}
			it.origin = original
			it.rec = replayMarker(r, original.snapshot)
		default:
			it.rec = replayMarker(r, q.originalRec)
		}
	}
	if w.cfg.Mode == ModeSync {
		it.result = make(chan error, 1)
	}
	if w.cfg.Mode == ModeAsync {
		// The committer seals it.rec after Write returns.
		q.snapshot = proto.Clone(it.rec).(*Record)
	}
	// Encode on the caller's goroutine; the committer only substitutes
	// the chain position and hashes.
	if it.prep, err = prepare(it.rec); err != nil {
		if it.pend != nil {
			w.release(it.pend, err)
			close(it.pend.queued)
		}
		return nil, fmt.Errorf("encode audit record %s: %w", r.DecisionId, err)
	}
	if g != nil {
		if err := g.stage(it); err != nil {
			return nil, err
		}
		q.group = g
	} else {
		err = w.enqueue(ctx, it)
		if it.pend != nil {
			if err != nil {
				w.release(it.pend, err)
			}
			close(it.pend.queued)
		}
		if err != nil {
			return nil, err
		}
	}
	if queued != nil && it.origin == nil && q.originalRec == nil {
		queued(r)
	}
	return q, nil
}

// shallowCopy returns a new record with rec's fields; message fields (the request, timestamps) are
// shared, not copied. Write sets only top-level fields on its copy and clones the request before
// masking it, so the caller's record is never modified; a deep copy of every decision's request was
// most of Write's own cost.
func shallowCopy(rec *Record) *Record {
	r := &Record{}
	dst := r.ProtoReflect()
	rec.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		dst.Set(fd, v)
		return true
	})
	return r
}

// claim resolves r's idempotency key within its scope. If the key is free
// it registers r as in flight and returns own; otherwise it returns the
// queued original or the stored original.
//
// The store lookup runs without w.mu: the claimer first registers a
// placeholder under the lock, so a concurrent claimer of the same key waits
// for the lookup instead of making a second decision, and the key cannot
// move from in flight to stored unseen (it is in the map until its record
// committed). Writes of other keys, and commits, never wait on the lookup.
// pl is r's payload when the writer computed r's payload hash (see
// samePayload), else nil.
func (w *Writer) claim(ctx context.Context, r *Record, pl []byte) (own, queued *pending, stored *Record, err error) {
	key := scopedKey(r)
	for {
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			return nil, nil, nil, ErrClosed
		}
		p, ok := w.inflight[key]
		if !ok {
			break // the lock is held: register our placeholder below
		}
		select {
		case <-p.resolved:
			snap := p.snapshot
			w.mu.Unlock()
			if !bytes.Equal(snap.PayloadHash, r.PayloadHash) {
				return nil, nil, nil, &ConflictError{Key: r.IdempotencyKey, OriginalID: snap.DecisionId}
			}
			return nil, p, nil, nil
		default:
		}
		w.mu.Unlock()
		select {
		case <-p.resolved:
		case <-ctx.Done():
			return nil, nil, nil, fmt.Errorf("wait for idempotency key %q: %w: %w", r.IdempotencyKey, ErrQueueFull, ctx.Err())
		}
	}
	p := &pending{resolved: make(chan struct{}), queued: make(chan struct{})}
	w.inflight[key] = p
	w.mu.Unlock()

	orig, err := w.store.FindByIdempotencyKey(ctx, IdempotencyScope(r), r.IdempotencyKey)

	w.mu.Lock()
	defer w.mu.Unlock()
	defer close(p.resolved)
	if errors.Is(err, ErrNotFound) {
		p.rec, p.snapshot = r, proto.Clone(r).(*Record)
		return p, nil, nil, nil
	}
	// Stored or failed: the key leaves the map, and waiting claimers look
	// it up themselves.
	delete(w.inflight, key)
	switch {
	case err != nil:
		return nil, nil, nil, fmt.Errorf("look up idempotency key %q: %w: %w", r.IdempotencyKey, ErrUnavailable, err)
	case !samePayload(orig.PayloadHash, r.PayloadHash, pl):
		return nil, nil, nil, &ConflictError{Key: r.IdempotencyKey, OriginalID: orig.DecisionId}
	}
	return nil, nil, orig, nil
}

// replayMarker builds the REPLAY record for retry r answered with orig: who
// retried and when, with the result they were given.
func replayMarker(r, orig *Record) *Record {
	m := proto.Clone(r).(*Record)
	m.Kind = tollgatev1.RecordKind_RECORD_KIND_REPLAY
	m.ReplayOf = orig.DecisionId
	m.Effect = orig.Effect
	m.Reasons = orig.Reasons
	m.Approvers = orig.Approvers
	m.BundleRevision = orig.BundleRevision
	m.MasterdataRevision = orig.MasterdataRevision
	m.FactsJson = ""
	return m
}

func (w *Writer) enqueue(ctx context.Context, it *item) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	w.senders.Add(1)
	w.mu.Unlock()
	defer w.senders.Done()
	select {
	case w.queue <- it:
		return nil
	default:
	}
	select {
	case w.queue <- it:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("queue audit record %s: %w", it.rec.DecisionId, ErrQueueFull)
	case <-w.quit:
		return ErrClosed
	}
}

// failure returns why p will not be stored, or nil.
func (w *Writer) failure(p *pending) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return p.failed
}

// release forgets an in-flight key whose record will not be stored.
func (w *Writer) release(p *pending, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.forget(p, err)
}

// forget is release with w.mu held.
func (w *Writer) forget(p *pending, err error) {
	p.failed = err
	if k := scopedKey(p.snapshot); w.inflight[k] == p {
		delete(w.inflight, k)
	}
}

// Close stops accepting writes, commits everything queued and waits for the
// committer. In async mode with a failing store it retries for up to ten
// RetryIntervals, then drops what is left with an error log. It is safe to
// call more than once.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.done
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	close(w.quit)
	w.senders.Wait()
	close(w.queue)
	<-w.done
	return nil
}

func (w *Writer) run() {
	defer close(w.done)
	probe := time.NewTicker(w.cfg.RetryInterval)
	defer probe.Stop()
	var idle <-chan time.Time
	if w.cfg.IdleProbeInterval > 0 {
		t := time.NewTicker(w.cfg.IdleProbeInterval)
		defer t.Stop()
		idle = t.C
	}
	for {
		select {
		case it, ok := <-w.queue:
			if !ok {
				return
			}
			w.commit(w.collect(w.take(nil, it)))
			for len(w.carry) > 0 {
				// The rest of a group larger than MaxBatch goes next, in order.
				c := w.carry
				w.carry = nil
				w.commit(w.collect(c))
			}
		case <-probe.C:
			if !w.healthy.Load() {
				if err := w.ping(); err == nil {
					w.healthy.Store(true)
					w.log.Info().Str("chain", w.cfg.ChainID).Msg("audit store probe succeeded")
				}
			}
		case <-idle:
			if w.committed {
				w.committed = false // a commit since the last look proved the store
				continue
			}
			if !w.healthy.Load() {
				continue // the retry probe above watches a failing store
			}
			if err := w.ping(); err != nil && w.healthy.Swap(false) {
				w.log.Error().Err(err).Str("chain", w.cfg.ChainID).Msg("audit store probe failed while idle")
			}
		}
	}
}

// probeTimeout bounds one Ping, so an unreachable store (packets dropped,
// not refused) cannot hold the committer for the TCP connect timeout.
const probeTimeout = 5 * time.Second

func (w *Writer) ping() error {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	return w.store.Ping(ctx)
}

// collect gathers a batch: start, whatever is queued, and what arrives
// within MaxDelay, up to MaxBatch. A group's records (item.follow) come
// with their first; what does not fit is left in w.carry for run to
// commit next.
func (w *Writer) collect(start []*item) (batch []*item) {
	batch = start
	sends := 1 // callers whose records the batch holds, a group counting once
	defer func() {
		if len(batch) > w.cfg.MaxBatch {
			batch, w.carry = batch[:w.cfg.MaxBatch], batch[w.cfg.MaxBatch:]
		}
	}()
	for len(batch) < w.cfg.MaxBatch {
		select {
		case it, ok := <-w.queue:
			if !ok {
				return batch
			}
			batch, sends = w.take(batch, it), sends+1
			continue
		default:
		}
		break
	}
	defer func() { w.lastBatch = sends }()
	if len(batch) >= w.cfg.MaxBatch || w.cfg.MaxDelay <= 0 || !w.worthWaiting(sends) {
		return batch
	}
	gathered := len(batch)
	defer func() {
		if w.cfg.adaptiveDelay && len(batch) == gathered {
			w.skipWaits = adaptiveBackoff
		}
	}()
	timer := time.NewTimer(w.cfg.MaxDelay)
	defer timer.Stop()
	for len(batch) < w.cfg.MaxBatch {
		select {
		case it, ok := <-w.queue:
			if !ok {
				return batch
			}
			batch, sends = w.take(batch, it), sends+1
		case <-timer.C:
			return batch
		}
	}
	return batch
}

// take appends it, and the rest of its group if it heads one, to batch.
func (w *Writer) take(batch []*item, it *item) []*item {
	batch = append(batch, it)
	if len(it.follow) > 0 {
		batch = append(batch, it.follow...)
		it.follow = nil
	}
	return batch
}

// adaptiveBackoff is how many batches an adaptive committer commits without waiting after a wait
// gathered no record.
const adaptiveBackoff = 16

// worthWaiting says whether to wait MaxDelay for more records, given a batch of n so far.
func (w *Writer) worthWaiting(n int) bool {
	if !w.cfg.adaptiveDelay {
		return true
	}
	if w.skipWaits > 0 {
		w.skipWaits--
		return false
	}
	return n > 1 || w.lastBatch > 1
}

// commit seals and appends a batch under the Writer's failure policy,
// splitting it around records the store refuses. Replay markers whose
// original failed fail with it.
func (w *Writer) commit(batch []*item) {
	live := make([]*item, 0, len(batch))
	for _, it := range batch {
		if it.origin != nil {
			if err := w.failure(it.origin); err != nil {
				if w.cfg.Mode == ModeAsync {
					w.refuse(it, err) // answered with a decision that is not stored: keep the marker
				} else {
					w.finish(it, err)
				}
				continue
			}
		}
		live = append(live, it)
	}
	if len(live) == 0 {
		return
	}
	resealed := false
	for {
		err := w.appendBatch(live)
		if err == nil || w.committedAnyway(live, err) {
			w.settle(live, nil)
			return
		}
		switch {
		case len(live) == 1 && errors.Is(err, ErrDuplicate) && w.lostKeyRace(live[0]):
			return
		case refused(err) && len(live) > 1:
			// One bad record must not fail its batch-mates: bisect until it
			// stands alone. The halves commit in order, so the chain keeps
			// the batch's order less the refused records.
			w.commit(live[:len(live)/2])
			w.commit(live[len(live)/2:])
			return
		case refused(err):
			w.refuse(live[0], err)
			return
		case errors.Is(err, ErrHeadMismatch) && !resealed:
			// committedAnyway moved the head to the stored one: reseal
			// after it once, at once, so a head moved by an ambiguous
			// commit or another writer does not fail these callers.
			resealed = true
			continue
		case w.cfg.Mode == ModeSync:
			w.settle(live, err)
			return
		}
		// Async: the callers were answered; retry until the store takes it.
		select {
		case <-w.quit:
			w.retriesAfterClose(live)
			return
		case <-time.After(w.cfg.RetryInterval):
		}
	}
}

// lostKeyRace settles a sync-mode keyed decision that the store refused as
// a duplicate because another writer on the same store (another replica on
// a shared database) stored a decision under the same (scope, key) after
// claim looked the key up: the in-flight map sees only this writer's keys,
// the store's unique index sees all. The caller then gets what a retry
// would: with the same payload, rec becomes a replay marker of the stored
// original, committed on this chain, and Write returns that original; with
// another payload, a ConflictError. It reports false, changing nothing,
// when the duplicate is not such a race (the decision id itself is taken,
// or this very record is the one stored). Async callers were already
// answered with rec, so there it does not apply: rec is refused as before.
func (w *Writer) lostKeyRace(it *item) bool {
	r := it.rec
	if w.cfg.Mode != ModeSync || r.GetKind() != tollgatev1.RecordKind_RECORD_KIND_DECISION || r.GetIdempotencyKey() == "" {
		return false
	}
	orig, err := w.store.FindByIdempotencyKey(context.Background(), IdempotencyScope(r), r.IdempotencyKey)
	if err != nil || orig.GetDecisionId() == r.GetDecisionId() {
		return false
	}
	w.log.Info().Str("chain", w.cfg.ChainID).Str("decision_id", r.GetDecisionId()).Str("original", orig.GetDecisionId()).
		Msg("idempotency key stored by another writer first; answering with its decision")
	if !bytes.Equal(orig.GetPayloadHash(), r.GetPayloadHash()) {
		w.finish(it, &ConflictError{Key: r.IdempotencyKey, OriginalID: orig.GetDecisionId()})
		return true
	}
	marker := replayMarker(r, orig)
	marker.Seq, marker.PrevHash, marker.Hash = 0, nil, nil
	prep, err := prepare(marker)
	if err != nil {
		return false
	}
	if it.pend != nil {
		// Replay markers already queued behind rec on this writer name rec,
		// which is not stored: they fail (Unavailable) rather than record a
		// replay of nothing; their callers' retries find the original.
		w.release(it.pend, fmt.Errorf("idempotency key %q: decided first by another writer as %s: %w",
			r.IdempotencyKey, orig.GetDecisionId(), ErrUnavailable))
	}
	it.rec, it.prep, it.stored = marker, prep, orig
	w.commit([]*item{it})
	return true
}

// refused reports whether err is the store refusing a record rather than
// failing: the same records would fail again however often retried.
func refused(err error) bool {
	return errors.Is(err, ErrInvalidArgument) || errors.Is(err, ErrDuplicate)
}

// committedAnyway reports whether an append of live that failed with err
// was committed after all (an ambiguous commit: the transaction committed
// but the store reported an error), judged by the stored head or, if
// another writer appended since, by the stored copy of the batch's last
// record: stored with the hash just sealed, it is this very attempt's
// record, and appends are all or nothing. If so the head moves on. If not,
// and err says another writer moved the head, the head is reloaded so the
// next attempt continues after it. It runs before any reload and reseal, so
// a retry never meets its own earlier commit as a duplicate.
func (w *Writer) committedAnyway(live []*item, err error) bool {
	last := live[len(live)-1].rec
	if len(last.Hash) == 0 {
		return false // not sealed: the attempt never reached the store
	}
	ctx := context.Background()
	h, herr := w.store.Head(ctx, w.cfg.ChainID)
	if herr != nil {
		return false // cannot tell; the head stays, so a retry reseals alike
	}
	mine := h.Seq == last.Seq && bytes.Equal(h.Hash, last.Hash)
	if !mine && h.Seq > last.Seq {
		stored, gerr := w.store.Get(ctx, last.DecisionId)
		mine = gerr == nil && stored.GetSeq() == last.Seq && bytes.Equal(stored.GetHash(), last.Hash)
	}
	if !mine {
		if errors.Is(err, ErrHeadMismatch) {
			// Someone else appended to this chain: continue after them so
			// the chain stays linked, and say so.
			if h.Seq == 0 {
				h.Hash = GenesisHash()
			}
			w.log.Warn().Str("chain", w.cfg.ChainID).Uint64("head_seq", h.Seq).Msg("audit chain head moved by another writer; continuing after it")
			w.head = h
		}
		return false
	}
	w.head = h
	w.met.batchSize.Observe(float64(len(live)))
	w.met.records.Add(float64(len(live)))
	w.healthy.Store(true)
	w.log.Warn().Str("chain", w.cfg.ChainID).Int("records", len(live)).Uint64("last_seq", last.Seq).
		Msg("audit commit reported an error but was stored: counted as committed")
	return true
}

// refuse settles a record the store will not take. Its Write fails in sync
// mode; in async mode, where the caller was answered, the record goes to
// the dead-letter file and health drops (see the Writer's failure policy).
func (w *Writer) refuse(it *item, err error) {
	w.log.Error().Err(err).Str("chain", w.cfg.ChainID).Str("decision_id", it.rec.GetDecisionId()).
		Str("mode", string(w.cfg.Mode)).Msg("audit record refused by the store")
	if w.cfg.Mode == ModeAsync {
		w.holdUntil.Store(time.Now().Add(w.cfg.RetryInterval).UnixNano())
		w.healthy.Store(false)
		w.deadLetter(it.rec, err)
	}
	w.met.rejected.Inc()
	if !errors.Is(err, ErrUnavailable) {
		err = fmt.Errorf("append audit record %s: %w: %w", it.rec.GetDecisionId(), ErrUnavailable, err)
	}
	w.finish(it, err)
}

// deadLetter appends rec, as answered, with the store's error to
// DeadLetterFile and fsyncs it. Failing that, the error log carries the
// whole record, so it is never only in memory.
func (w *Writer) deadLetter(rec *Record, cause error) {
	unsealed := proto.Clone(rec).(*Record)
	unsealed.Seq, unsealed.PrevHash, unsealed.Hash = 0, nil, nil // its seal was never stored
	body, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(unsealed)
	if err != nil {
		w.log.Error().Err(err).Str("decision_id", rec.GetDecisionId()).Msg("encode refused audit record")
		return
	}
	line, err := json.Marshal(deadLetter{RefusedAt: time.Now().UTC(), Chain: w.cfg.ChainID, Error: cause.Error(), Record: body})
	if err == nil && w.cfg.DeadLetterFile != "" {
		err = w.appendDeadLetter(append(line, '\n'))
		if err == nil {
			return
		}
	}
	w.log.Error().Err(err).Str("decision_id", rec.GetDecisionId()).RawJSON("record", body).
		Msg("refused audit record not written to the dead-letter file; this log line is its only copy")
}

// deadLetter is one line of DeadLetterFile.
type deadLetter struct {
	RefusedAt time.Time       `json:"refused_at"`
	Chain     string          `json:"chain_id"`
	Error     string          `json:"error"`
	Record    json.RawMessage `json:"record"`
}

func (w *Writer) appendDeadLetter(line []byte) error {
	w.deadMu.Lock()
	defer w.deadMu.Unlock()
	f, err := os.OpenFile(w.cfg.DeadLetterFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("open audit dead-letter file: %w", err)
	}
	if _, err := f.Write(line); err != nil {
		f.Close()
		return fmt.Errorf("write audit dead-letter file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync audit dead-letter file: %w", err)
	}
	return f.Close()
}

// retriesAfterClose retries a failing async batch a bounded number of times
// once Close was called, then keeps what is left in the dead-letter file.
func (w *Writer) retriesAfterClose(live []*item) {
	for i := 0; i < 10; i++ {
		err := w.appendBatch(live)
		if err == nil || w.committedAnyway(live, err) {
			w.settle(live, nil)
			return
		}
		if refused(err) {
			w.commit(live)
			return
		}
		time.Sleep(w.cfg.RetryInterval)
	}
	w.log.Error().Str("chain", w.cfg.ChainID).Int("records", len(live)).Msg("audit writer closed with a failing store; queued records go to the dead-letter file")
	for _, it := range live {
		w.refuse(it, ErrUnavailable)
	}
}

// appendBatch seals live from the current head and appends it. On success
// the head moves; on failure the records' seals are discarded at the next
// attempt.
func (w *Writer) appendBatch(live []*item) error {
	entries := make([]Entry, len(live))
	prev := w.head
	seq, hash := prev.Seq, prev.Hash
	for i, it := range live {
		body, err := sealPrepared(it.rec, it.prep, seq+1, hash)
		if err != nil {
			// The record itself cannot be encoded: retrying cannot help.
			return fmt.Errorf("seal audit record %s: %w: %w", it.rec.GetDecisionId(), ErrInvalidArgument, err)
		}
		seq, hash = it.rec.Seq, it.rec.Hash
		entries[i] = Entry{Record: it.rec, Body: body}
	}
	start := time.Now()
	err := w.store.Append(context.Background(), storedHead(prev), entries)
	w.met.commitSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		w.met.commitFailures.Inc()
		if refused(err) {
			// A bad record, not a bad store: commit isolates it.
			return err
		}
		if w.healthy.Swap(false) {
			w.log.Error().Err(err).Str("chain", w.cfg.ChainID).Msg("audit commit failed")
		}
		return err
	}
	w.head = Head{ChainID: w.cfg.ChainID, Seq: seq, Hash: hash}
	w.met.headSeq.Set(float64(seq))
	w.met.lastCommit.SetToCurrentTime()
	w.committed = true
	w.met.batchSize.Observe(float64(len(entries)))
	w.met.records.Add(float64(len(entries)))
	if !w.healthy.Swap(true) {
		w.log.Info().Str("chain", w.cfg.ChainID).Msg("audit commits succeed again")
	}
	return nil
}

// storedHead is the head as the store knows it: an empty chain has no hash.
func storedHead(h Head) Head {
	if h.Seq == 0 {
		return Head{ChainID: h.ChainID}
	}
	return h
}

func (w *Writer) settle(live []*item, err error) {
	if err != nil && w.cfg.Mode == ModeAsync {
		w.log.Error().Err(err).Str("chain", w.cfg.ChainID).Int("records", len(live)).Msg("queued audit records not written")
	}
	if err != nil && !errors.Is(err, ErrUnavailable) {
		err = fmt.Errorf("append audit batch: %w: %w", ErrUnavailable, err)
	}
	for _, it := range live {
		w.finish(it, err)
	}
}

func (w *Writer) finish(it *item, err error) {
	if it.pend != nil {
		if err != nil {
			w.release(it.pend, err)
		} else {
			w.mu.Lock()
			if k := scopedKey(it.pend.snapshot); w.inflight[k] == it.pend {
				delete(w.inflight, k)
			}
			w.mu.Unlock()
		}
	}
	if it.result != nil {
		it.result <- err
	}
}
