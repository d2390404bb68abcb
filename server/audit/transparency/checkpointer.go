package transparency

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/mod/sumdb/note"
)

// DefaultCheckpointInterval is how often the Checkpointer looks for grown
// trees unless configured.
const DefaultCheckpointInterval = time.Second

// CheckpointStore keeps the checkpoints the Checkpointer signs. It is safe
// for concurrent use.
type CheckpointStore interface {
	// PutCheckpoint stores cp, the newest checkpoint of chainID.
	PutCheckpoint(ctx context.Context, chainID string, cp Checkpoint) error
	// LatestCheckpoint returns chainID's newest stored checkpoint, or
	// ErrNotFound if it has none.
	LatestCheckpoint(ctx context.Context, chainID string) (Checkpoint, error)
}

// CheckpointerConfig configures a Checkpointer.
type CheckpointerConfig struct {
	// Signer signs every checkpoint; required.
	Signer note.Signer
	// Interval is how often trees are checked for growth; a chain gets at
	// most one checkpoint per interval. Default DefaultCheckpointInterval.
	Interval time.Duration
	// OriginPrefix makes each chain's origin Origin(OriginPrefix, chain).
	// Default DefaultOriginPrefix.
	OriginPrefix string
	// Witnesses receive every checkpoint signed.
	Witnesses []Witness
	// Now is the clock for SignedAt; default time.Now.
	Now func() time.Time
	// Registry receives the counters of CheckpointerStats as
	// tollgate_audit_checkpoints_total, tollgate_audit_checkpoint_errors_total,
	// tollgate_audit_witness_pushes_total and
	// tollgate_audit_witness_push_errors_total; nil registers none.
	Registry *prometheus.Registry
}

func (c *CheckpointerConfig) setDefaults() error {
	if c.Signer == nil {
		return fmt.Errorf("%w: checkpointer needs a signer", ErrInvalidArgument)
	}
	if c.Interval < 0 {
		return fmt.Errorf("%w: checkpoint interval %v", ErrInvalidArgument, c.Interval)
	}
	if c.Interval == 0 {
		c.Interval = DefaultCheckpointInterval
	}
	if c.OriginPrefix == "" {
		c.OriginPrefix = DefaultOriginPrefix
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	for i, w := range c.Witnesses {
		if w == nil {
			return fmt.Errorf("%w: witness %d is nil", ErrInvalidArgument, i)
		}
	}
	return nil
}

// CheckpointerStats counts what a Checkpointer did since it started.
type CheckpointerStats struct {
	// Signed counts checkpoints signed and stored.
	Signed uint64
	// Errors counts rounds' failures for a chain: reading the tree, a tree
	// that does not extend the last checkpoint, signing or storing.
	Errors uint64
	// Pushed counts checkpoints witnesses accepted.
	Pushed uint64
	// WitnessErrors counts failed pushes; each is retried.
	WitnessErrors uint64
}

// Checkpointer signs checkpoints of every chain's tree in the background:
// every interval, for each chain whose tree grew since its last checkpoint,
// it checks that the tree extends that checkpoint, signs a new one, stores
// it and hands it to every witness. It is off any decision path: its errors
// are logged and counted and retried on the next round, and each witness is
// pushed to from its own goroutine, so a slow or failing witness delays
// neither signing nor the other witnesses. Methods are safe for concurrent
// use.
type Checkpointer struct {
	cfg     CheckpointerConfig
	hashes  HashStore
	store   CheckpointStore
	log     zerolog.Logger
	workers []*witnessWorker

	// roundMu serialises rounds (the ticker's and SignNow's).
	roundMu sync.Mutex

	mu      sync.Mutex
	latest  map[string]Checkpoint // newest checkpoint signed or loaded, per chain
	changed chan struct{}         // closed and replaced when latest changes
	closed  bool

	signed, errs, pushed, witnessErrs atomic.Uint64

	stop, stopWitnesses chan struct{}
	signerWG, witnessWG sync.WaitGroup
	closeOnce           sync.Once
}

// NewCheckpointer starts a Checkpointer over the trees in hashes, storing
// checkpoints in store. Close stops it.
func NewCheckpointer(cfg CheckpointerConfig, hashes HashStore, store CheckpointStore, log zerolog.Logger) (*Checkpointer, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if hashes == nil || store == nil {
		return nil, fmt.Errorf("%w: checkpointer needs a hash store and a checkpoint store", ErrInvalidArgument)
	}
	c := &Checkpointer{
		cfg:     cfg,
		hashes:  hashes,
		store:   store,
		log:     log.With().Str("component", "checkpointer").Logger(),
		latest:  map[string]Checkpoint{},
		changed: make(chan struct{}),
		stop:    make(chan struct{}),

		stopWitnesses: make(chan struct{}),
	}
	if err := c.register(cfg.Registry); err != nil {
		return nil, err
	}
	for _, w := range cfg.Witnesses {
		ww := &witnessWorker{c: c, w: w, pending: map[string]Checkpoint{}, wake: make(chan struct{}, 1)}
		c.workers = append(c.workers, ww)
		c.witnessWG.Add(1)
		go ww.run()
	}
	c.signerWG.Add(1)
	go c.run()
	return c, nil
}

func (c *Checkpointer) register(reg *prometheus.Registry) error {
	if reg == nil {
		return nil
	}
	counter := func(name, help string, v *atomic.Uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(v.Load()) })
	}
	for _, col := range []prometheus.Collector{
		counter("tollgate_audit_checkpoints_total", "Audit checkpoints signed and stored.", &c.signed),
		counter("tollgate_audit_checkpoint_errors_total", "Failures to checkpoint a chain (reading, a tree not extending the last checkpoint, signing, storing); retried.", &c.errs),
		counter("tollgate_audit_witness_pushes_total", "Checkpoints accepted by witnesses.", &c.pushed),
		counter("tollgate_audit_witness_push_errors_total", "Failed pushes of checkpoints to witnesses; retried.", &c.witnessErrs),
	} {
		if err := reg.Register(col); err != nil {
			return fmt.Errorf("register checkpointer metrics: %w", err)
		}
	}
	return nil
}

func (c *Checkpointer) run() {
	defer c.signerWG.Done()
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			// Cover what was appended since the last round.
			_ = c.round(context.Background())
			return
		case <-t.C:
			_ = c.round(context.Background())
		}
	}
}

// SignNow runs one round at once: it checkpoints every chain whose tree grew
// since its last checkpoint and queues the checkpoints for the witnesses. It
// returns the round's errors, joined, which are also logged and counted.
func (c *Checkpointer) SignNow(ctx context.Context) error {
	select {
	case <-c.stop:
		return ErrClosed
	default:
	}
	return c.round(ctx)
}

func (c *Checkpointer) round(ctx context.Context) error {
	c.roundMu.Lock()
	defer c.roundMu.Unlock()
	chains, err := c.hashes.Chains(ctx)
	if err != nil {
		c.errs.Add(1)
		c.log.Error().Err(err).Msg("list chains for checkpoints")
		return fmt.Errorf("list chains: %w", err)
	}
	var errs []error
	for _, chain := range chains {
		if err := c.checkpoint(ctx, chain); err != nil {
			c.errs.Add(1)
			msg := "checkpoint chain; retrying next round"
			if errors.Is(err, ErrInconsistent) {
				msg = "audit tree does not extend its last checkpoint (truncated or rewritten?); refusing to sign it"
			}
			c.log.Error().Err(err).Str("chain", chain).Msg(msg)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkpoint signs, stores and queues a checkpoint of chain if its tree grew.
func (c *Checkpointer) checkpoint(ctx context.Context, chain string) error {
	prev, err := c.previous(ctx, chain)
	if err != nil {
		return err
	}
	size, err := c.hashes.TreeSize(ctx, chain)
	if err != nil {
		return fmt.Errorf("read tree size of chain %s: %w", chain, err)
	}
	if size == prev.Size {
		return nil
	}
	// A log must never sign two inconsistent checkpoints: if the stored tree
	// was truncated or rewritten under us, refuse rather than sign it.
	root, err := CheckExtends(ctx, c.hashes, chain, size, prev)
	if err != nil {
		return err
	}
	cp, err := SignCheckpoint(c.cfg.Signer, Origin(c.cfg.OriginPrefix, chain), size, root, c.cfg.Now())
	if err != nil {
		return err
	}
	if err := c.store.PutCheckpoint(ctx, chain, cp); err != nil {
		return fmt.Errorf("store checkpoint of chain %s at size %d: %w", chain, size, err)
	}
	c.signed.Add(1)
	c.log.Debug().Str("chain", chain).Int64("size", size).Msg("signed checkpoint")
	c.mu.Lock()
	c.latest[chain] = cp
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	for _, w := range c.workers {
		w.offer(chain, cp)
	}
	return nil
}

// previous returns chain's newest checkpoint, loading it from the store the
// first time; the zero Checkpoint if there is none.
func (c *Checkpointer) previous(ctx context.Context, chain string) (Checkpoint, error) {
	c.mu.Lock()
	cp, ok := c.latest[chain]
	c.mu.Unlock()
	if ok {
		return cp, nil
	}
	cp, err := c.store.LatestCheckpoint(ctx, chain)
	switch {
	case errors.Is(err, ErrNotFound):
		return Checkpoint{}, nil
	case err != nil:
		return Checkpoint{}, fmt.Errorf("read last checkpoint of chain %s: %w", chain, err)
	}
	c.mu.Lock()
	c.latest[chain] = cp
	c.mu.Unlock()
	return cp, nil
}

// Latest returns the newest checkpoint of chainID signed (or loaded) by c,
// and whether there is one.
func (c *Checkpointer) Latest(chainID string) (Checkpoint, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cp, ok := c.latest[chainID]
	return cp, ok
}

// WaitFor blocks until c has a checkpoint of chainID covering at least size
// leaves and returns it; ctx's error if ctx ends first, ErrClosed if c
// closes first. A receipt for a just-written record waits here for the next
// round.
func (c *Checkpointer) WaitFor(ctx context.Context, chainID string, size int64) (Checkpoint, error) {
	for {
		c.mu.Lock()
		cp, ok := c.latest[chainID]
		changed, closed := c.changed, c.closed
		c.mu.Unlock()
		if ok && cp.Size >= size {
			return cp, nil
		}
		if closed {
			return Checkpoint{}, ErrClosed
		}
		select {
		case <-ctx.Done():
			return Checkpoint{}, ctx.Err()
		case <-changed:
		}
	}
}

// Stats returns c's counters.
func (c *Checkpointer) Stats() CheckpointerStats {
	return CheckpointerStats{
		Signed:        c.signed.Load(),
		Errors:        c.errs.Load(),
		Pushed:        c.pushed.Load(),
		WitnessErrors: c.witnessErrs.Load(),
	}
}

// Close runs a last round, so records appended since the previous one are
// covered, gives every witness one last push of what it has not yet taken,
// and returns when all of c's goroutines have ended, so it can take as long
// as the slowest witness's push (HTTPWitness bounds that by its timeout).
// Waiters in WaitFor get ErrClosed. Close does not close the witnesses; it is
// idempotent.
func (c *Checkpointer) Close() error {
	c.closeOnce.Do(func() {
		// The signer stops first so its last checkpoints reach the
		// witnesses' final pushes.
		close(c.stop)
		c.signerWG.Wait()
		close(c.stopWitnesses)
		c.witnessWG.Wait()
		c.mu.Lock()
		c.closed = true
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
	})
	return nil
}

// witnessWorker pushes one witness the newest checkpoint of each chain it
// has not yet taken.
type witnessWorker struct {
	c       *Checkpointer
	w       Witness
	mu      sync.Mutex
	pending map[string]Checkpoint
	wake    chan struct{}
}

// offer makes cp the next checkpoint of chain to push, replacing an older
// one not yet pushed.
func (w *witnessWorker) offer(chain string, cp Checkpoint) {
	w.mu.Lock()
	w.pending[chain] = cp
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *witnessWorker) run() {
	defer w.c.witnessWG.Done()
	retry := time.NewTicker(w.c.cfg.Interval)
	defer retry.Stop()
	for {
		select {
		case <-w.c.stopWitnesses:
			w.deliver()
			return
		case <-w.wake:
		case <-retry.C:
		}
		w.deliver()
	}
}

func (w *witnessWorker) deliver() {
	w.mu.Lock()
	todo := maps.Clone(w.pending)
	w.mu.Unlock()
	for _, chain := range slices.Sorted(maps.Keys(todo)) {
		cp := todo[chain]
		if err := w.w.Push(context.Background(), cp); err != nil {
			w.c.witnessErrs.Add(1)
			w.c.log.Warn().Err(err).Str("witness", w.w.Name()).Str("chain", chain).Int64("size", cp.Size).
				Msg("push checkpoint to witness; retrying next round")
			continue
		}
		w.c.pushed.Add(1)
		w.mu.Lock()
		if w.pending[chain].Size == cp.Size {
			delete(w.pending, chain)
		}
		w.mu.Unlock()
	}
}

// MemoryCheckpointStore is a CheckpointStore in memory, for tests and tools.
// The zero value is ready to use; it is safe for concurrent use.
type MemoryCheckpointStore struct {
	mu  sync.Mutex
	cps map[string][]Checkpoint
}

// PutCheckpoint implements CheckpointStore.
func (m *MemoryCheckpointStore) PutCheckpoint(_ context.Context, chainID string, cp Checkpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cps == nil {
		m.cps = map[string][]Checkpoint{}
	}
	m.cps[chainID] = append(m.cps[chainID], cp)
	return nil
}

// LatestCheckpoint implements CheckpointStore.
func (m *MemoryCheckpointStore) LatestCheckpoint(_ context.Context, chainID string) (Checkpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cps := m.cps[chainID]
	if len(cps) == 0 {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint of chain %s", ErrNotFound, chainID)
	}
	return cps[len(cps)-1], nil
}

// Checkpoints returns chainID's stored checkpoints, oldest first.
func (m *MemoryCheckpointStore) Checkpoints(chainID string) []Checkpoint {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.cps[chainID])
}
