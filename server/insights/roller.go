package insights

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/server/audit"
)

// DefaultRollInterval is how often a started Roller rolls up.
const DefaultRollInterval = 500 * time.Millisecond

// RollerConfig configures a Roller.
type RollerConfig struct {
	// Interval between roll-ups once started. Default DefaultRollInterval.
	Interval time.Duration
	// BatchSize is how many records one transaction folds. Default and cap
	// audit.MaxPageSize.
	BatchSize int
	// Config returns the insights config to fold with, normally the active
	// bundle's. Nil folds with the zero Config.
	Config func() Config
}

// Roller keeps a Store's roll-ups up to date with an audit log. Its
// methods are safe for concurrent use; roll-ups run one at a time.
type Roller struct {
	cfg RollerConfig
	src audit.Store
	dst Store
	log zerolog.Logger

	mu sync.Mutex // one roll-up at a time

	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	started atomic.Bool
}

// NewRoller returns a Roller folding src's chains into dst.
func NewRoller(cfg RollerConfig, src audit.Store, dst Store, log zerolog.Logger) *Roller {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultRollInterval
	}
	if cfg.BatchSize <= 0 || cfg.BatchSize > audit.MaxPageSize {
		cfg.BatchSize = audit.MaxPageSize
	}
	if cfg.Config == nil {
		cfg.Config = func() Config { return Config{} }
	}
	return &Roller{cfg: cfg, src: src, dst: dst, log: log, stop: make(chan struct{}), done: make(chan struct{})}
}

// Start rolls up every Interval in a goroutine until Close; a second
// Start is a no-op. Errors are
// logged and retried at the next round: the roll-ups only lag.
func (r *Roller) Start() {
	if r.started.Swap(true) {
		return
	}
	go func() {
		defer close(r.done)
		t := time.NewTicker(r.cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-r.stop:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				select {
				case <-r.stop:
					cancel()
				case <-ctx.Done():
				}
			}()
			if _, err := r.Sync(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn().Err(err).Msg("insights roll-up")
			}
			cancel()
		}
	}()
}

// Close stops a started Roller and waits for its round to end; a round
// cut short commits nothing of its last batch. Close without Start is a
// no-op.
func (r *Roller) Close() {
	r.once.Do(func() { close(r.stop) })
	if r.started.Load() {
		<-r.done
	}
}

// Sync rolls every chain up to its head as it stands when Sync reads it,
// and returns how many records it folded. Callers use it to answer with
// the decisions committed before they asked.
func (r *Roller) Sync(ctx context.Context) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	chains, err := r.src.Chains(ctx)
	if err != nil {
		return 0, fmt.Errorf("list chains: %w", err)
	}
	marks, err := r.dst.Watermarks(ctx)
	if err != nil {
		return 0, fmt.Errorf("read watermarks: %w", err)
	}
	total := 0
	for _, chain := range chains {
		n, err := r.syncChain(ctx, chain, marks[chain])
		total += n
		if err != nil {
			return total, fmt.Errorf("chain %s: %w", chain, err)
		}
	}
	return total, nil
}

// syncChain folds chain from seq after on, one batch per transaction,
// until a batch comes back short (the chain's end as it stood).
func (r *Roller) syncChain(ctx context.Context, chain string, after uint64) (int, error) {
	total := 0
	for {
		recs, err := r.src.Export(ctx, audit.ExportQuery{ChainID: chain, AfterSeq: after, Limit: r.cfg.BatchSize})
		if err != nil {
			return total, fmt.Errorf("read records after %d: %w", after, err)
		}
		if len(recs) == 0 {
			return total, nil
		}
		d := NewDelta()
		cfg := r.cfg.Config()
		for _, rec := range recs {
			d.Fold(rec, cfg)
		}
		err = r.dst.Update(ctx, func(tx Tx) error { return Commit(ctx, tx, chain, after, d) })
		if errors.Is(err, ErrWatermarkMoved) {
			return total, nil // another roller got there first; the next round continues from its mark
		}
		if err != nil {
			return total, err
		}
		total += len(recs)
		after = d.LastSeq
		if len(recs) < r.cfg.BatchSize {
			return total, nil
		}
	}
}

// Commit applies d, the fold of chain's records after seq from, through
// tx and moves the chain's watermark past them. It returns
// ErrWatermarkMoved, applying nothing, if the watermark is not from.
func Commit(ctx context.Context, tx Tx, chain string, from uint64, d *Delta) error {
	mark, err := tx.Watermark(ctx, chain)
	if err != nil {
		return err
	}
	if mark != from {
		return fmt.Errorf("chain %s at %d, delta folded after %d: %w", chain, mark, from, ErrWatermarkMoved)
	}
	if err := d.Apply(ctx, tx); err != nil {
		return err
	}
	return tx.SetWatermark(ctx, chain, d.LastSeq)
}
