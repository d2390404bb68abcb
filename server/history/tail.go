package history

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/server/audit"
)

// DefaultTailInterval is TailConfig.Interval's default: with a group-commit
// delay of a few milliseconds, another replica's decision is counted here
// about a second after it was answered at most.
const DefaultTailInterval = time.Second

// tailLogInterval rate-limits the log line about failed polls: a database
// that is down for an hour is one line a minute, not one per poll.
const tailLogInterval = time.Minute

// TailConfig configures a Tail.
type TailConfig struct {
	// Store is the fleet's shared audit store. Required.
	Store audit.Store
	// Own is this replica's chain id. Its chain is not tailed: its records
	// are observed as they are written. Required.
	Own string
	// Interval is Run's poll interval. Default DefaultTailInterval.
	Interval time.Duration
	// Retention is how far back before now a chain first seen is read: the
	// views' Retention, so a replica that joined later is counted as far as
	// any window reaches. It is called on every poll, so a bundle that
	// changes its views changes it. Required.
	Retention func() time.Duration
	// Observe is called for every record of another chain, in seq order per
	// chain, never concurrently: the wiring's call of the current Index's
	// Observe. Required.
	Observe func(*audit.Record)
	// Clock is the time the lag, the retention and the last success are
	// measured by. Default time.Now.
	Clock func() time.Time
	// Registry receives the tail's metrics; nil registers none.
	Registry prometheus.Registerer
	// Log receives Run's rate-limited failure and recovery lines.
	Log zerolog.Logger
}

// Tail brings other replicas' decisions into this replica's history index:
// it reads every other chain of the shared audit store after the last seq
// it delivered (Store.Export, whose chains commit in seq order without gaps,
// so nothing committed in the meantime is skipped) and calls Observe.
//
// Its methods are safe for concurrent use; polls (and Mark) run one at a
// time, so Observe is never called concurrently.
type Tail struct {
	cfg     TailConfig
	metrics tailMetrics

	mu sync.Mutex
	// pos maps a chain to the last seq delivered (or marked). A chain
	// missing from it was never read: it starts within Retention.
	pos map[string]uint64
}

// NewTail returns a Tail reading cfg.Store, with its metrics registered on
// cfg.Registry. It returns an error if a required field is missing, the
// interval is negative or the metrics cannot be registered.
func NewTail(cfg TailConfig) (*Tail, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("history tail: no audit store")
	case cfg.Own == "":
		return nil, errors.New("history tail: no own chain id")
	case cfg.Retention == nil:
		return nil, errors.New("history tail: no retention")
	case cfg.Observe == nil:
		return nil, errors.New("history tail: no observe function")
	case cfg.Interval < 0:
		return nil, fmt.Errorf("history tail: negative interval %v", cfg.Interval)
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultTailInterval
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	m, err := newTailMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	return &Tail{cfg: cfg, metrics: m, pos: map[string]uint64{}}, nil
}

// Mark notes every other chain's current head as its position, so that Run
// delivers only records after it. The caller marks before Rebuild: what
// Rebuild reads overlaps what Run delivers (Observe de-duplicates), and
// nothing falls between them. A chain whose head cannot be read stays
// unmarked and is read from Retention on, so a failed Mark costs a re-read,
// never a record; Mark marks every chain it can and returns the first error.
func (t *Tail) Mark(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	chains, err := t.cfg.Store.Chains(ctx)
	if err != nil {
		return fmt.Errorf("mark history tail: %w", err)
	}
	var first error
	for _, chain := range chains {
		if chain == t.cfg.Own {
			continue
		}
		head, err := t.cfg.Store.Head(ctx, chain)
		if err != nil {
			first = keepFirst(first, fmt.Errorf("mark history tail: chain %s: %w", chain, err))
			continue
		}
		t.pos[chain] = head.Seq
	}
	return first
}

// Poll reads each other chain once from its position to its end (pages of
// audit.MaxPageSize) and observes the records; a chain not marked (a
// replica that joined later) starts at the first record evaluated within
// Retention() before now (ExportQuery.From). Returns the number of records
// delivered, and the first error (other chains still polled). A chain's
// position moves with every page delivered, so the poll after an error
// resumes after the last record observed.
func (t *Tail) Poll(ctx context.Context) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	chains, err := t.cfg.Store.Chains(ctx)
	if err != nil {
		t.countError(ctx)
		return 0, fmt.Errorf("poll history tail: %w", err)
	}
	delivered := 0
	var first error
	for _, chain := range chains {
		if chain == t.cfg.Own {
			continue
		}
		n, err := t.pollChain(ctx, chain)
		delivered += n
		if err != nil {
			t.countError(ctx)
			first = keepFirst(first, fmt.Errorf("poll history tail: chain %s: %w", chain, err))
			continue
		}
		t.metrics.lastSuccess.WithLabelValues(chain).Set(float64(t.cfg.Clock().UnixNano()) / 1e9)
	}
	return delivered, first
}

// countError counts a failed read, unless it failed because ctx ended: a
// tail stopped at shutdown is not a failing tail.
func (t *Tail) countError(ctx context.Context) {
	if ctx.Err() == nil {
		t.metrics.errors.Inc()
	}
}

// pollChain delivers chain's records after its position, page by page, until
// a page is not full: the chain's end as it stood.
func (t *Tail) pollChain(ctx context.Context, chain string) (int, error) {
	delivered := 0
	for {
		if err := ctx.Err(); err != nil {
			return delivered, err
		}
		q := audit.ExportQuery{ChainID: chain, Limit: audit.MaxPageSize}
		if after, ok := t.pos[chain]; ok {
			q.AfterSeq = after
		} else {
			// Only the first page of a chain not yet read is bounded in time:
			// after it, every later record counts, whatever its clock says.
			q.From = t.cfg.Clock().Add(-t.cfg.Retention())
		}
		page, err := t.cfg.Store.Export(ctx, q)
		if err != nil {
			return delivered, err
		}
		now := t.cfg.Clock()
		for _, rec := range page {
			if rec.GetEvaluatedAt().IsValid() {
				t.metrics.lag.Observe(now.Sub(rec.GetEvaluatedAt().AsTime()).Seconds())
			}
			t.cfg.Observe(rec)
			t.pos[chain] = rec.GetSeq()
		}
		delivered += len(page)
		if len(page) < q.EffectiveLimit() {
			return delivered, nil
		}
	}
}

// Run polls every Interval until ctx ends, the first poll at once. A failing
// poll never stops the tail: the next one retries from the same positions.
// Failures are logged at most once a tailLogInterval with the count since
// the last line, and the first success after them once.
func (t *Tail) Run(ctx context.Context) {
	tick := time.NewTicker(t.cfg.Interval)
	defer tick.Stop()
	var lastLog time.Time
	failed := 0
	for {
		_, err := t.Poll(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			failed++
			if now := t.cfg.Clock(); lastLog.IsZero() || now.Sub(lastLog) >= tailLogInterval {
				t.cfg.Log.Warn().Err(err).Int("failed_polls", failed).
					Msg("history tail poll failed; other replicas' decisions are not counted here until it recovers (logged at most once a minute)")
				lastLog = now
			}
		case failed > 0:
			t.cfg.Log.Info().Int("failed_polls", failed).Msg("history tail recovered")
			failed, lastLog = 0, time.Time{}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// keepFirst returns first if set, else err.
func keepFirst(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// tailMetrics are the Tail's collectors. They exist even without a registry
// so the tail never checks for nil.
type tailMetrics struct {
	lag         prometheus.Histogram
	lastSuccess *prometheus.GaugeVec
	errors      prometheus.Counter
}

// lagBuckets span 1 ms to 60 s, finer around the default poll interval,
// where the lag bound is read.
var lagBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 2.5, 5, 10, 30, 60}

func newTailMetrics(reg prometheus.Registerer) (tailMetrics, error) {
	m := tailMetrics{
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tollgate_history_lag_seconds",
			Help:    "For every record the history tail delivered from another replica's chain, the time from its evaluation to its delivery here (negative or outlying for a replica whose clock is skewed).",
			Buckets: lagBuckets,
		}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tollgate_history_tail_last_success_timestamp_seconds",
			Help: "Unix time of the history tail's last successful read of another replica's chain: a stalled tail shows even when no records arrive.",
		}, []string{"chain"}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_history_tail_errors_total",
			Help: "History tail reads that failed: of the chain list, or of one chain in a poll.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.lag, m.lastSuccess, m.errors} {
		if err := reg.Register(c); err != nil {
			return tailMetrics{}, fmt.Errorf("register history tail metrics: %w", err)
		}
	}
	return m, nil
}
