package history

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
)

// DefaultEvictInterval is how often Tracker.Run evicts what no window reaches any more.
const DefaultEvictInterval = time.Minute

// TrackerConfig configures a Tracker.
type TrackerConfig struct {
	// Store is the audit store the index is rebuilt from.
	Store audit.Store
	// Stripes is the size of the lock table (NewLocks); default DefaultStripes.
	Stripes int
	// EvictInterval paces Run; default DefaultEvictInterval.
	EvictInterval time.Duration
	// Clock is the service's clock; default time.Now.
	Clock func() time.Time
	// Registry receives the tracker's metrics; nil registers none.
	Registry prometheus.Registerer
	Log      zerolog.Logger
}

// Tracker keeps the Index of the active bundle's views, from the moment the service starts until it
// stops, and serializes decisions per view key. The decision path calls Begin before evaluating a
// request and, through the Ticket, observes the record it wrote and releases the keys; the activation
// gate calls Prepare before a bundle decides; a fleet tail feeds other replicas' records to Observe.
// It is safe for concurrent use.
type Tracker struct {
	cfg   TrackerConfig
	locks *Locks
	log   zerolog.Logger

	current atomic.Pointer[Index]

	// prepare serializes Prepare calls; mu guards building.
	prepare  sync.Mutex
	mu       sync.Mutex
	building []*Index // indexes being rebuilt: they observe live records too, so none falls between

	decisions *prometheus.GaugeVec
	rebuilds  prometheus.Histogram
	lockWait  prometheus.Histogram
}

// NewTracker returns a Tracker over an empty index that declares no views.
func NewTracker(cfg TrackerConfig) (*Tracker, error) {
	if cfg.Store == nil {
		return nil, errors.New("history: tracker needs the audit store")
	}
	if cfg.EvictInterval <= 0 {
		cfg.EvictInterval = DefaultEvictInterval
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	t := &Tracker{cfg: cfg, locks: NewLocks(cfg.Stripes), log: cfg.Log.With().Str("component", "history").Logger()}
	t.current.Store(New(Views{}))
	t.decisions = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tollgate_history_tracked",
		Help: "What the history index holds: distinct decisions, entries (a decision once per view that counts it) and keys.",
	}, []string{"kind"})
	t.rebuilds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tollgate_history_rebuild_seconds",
		Help:    "Time to rebuild the history index from the audit store, at start and when a bundle brings new views.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
	})
	t.lockWait = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tollgate_history_lock_wait_seconds",
		Help:    "Time decisions waited for the locks of their history view keys.",
		Buckets: prometheus.ExponentialBuckets(0.00001, 4, 10),
	})
	if cfg.Registry != nil {
		for _, c := range []prometheus.Collector{t.decisions, t.rebuilds, t.lockWait} {
			if err := cfg.Registry.Register(c); err != nil {
				return nil, fmt.Errorf("history: register metrics: %w", err)
			}
		}
	}
	return t, nil
}

// Index returns the index decisions read now.
func (t *Tracker) Index() *Index { return t.current.Load() }

// Views returns the views the current index maintains.
func (t *Tracker) Views() Views { return t.current.Load().Views() }

// Retention returns how far back the current index reaches.
func (t *Tracker) Retention() time.Duration { return t.current.Load().Views().Retention() }

// Prepare makes the index answer for views before the bundle declaring them decides. When the current
// index already maintains each of them, as declared, it does nothing. Otherwise it rebuilds an index
// over the current views and the new ones (Views.Merge, so a decision still evaluating on the bundle
// being replaced reads its views too) from the audit store, back to the longest window, while the
// current index keeps serving; the new index observes every record written meanwhile, and is then
// swapped in. An error leaves the current index in place: the caller must not activate the bundle.
func (t *Tracker) Prepare(ctx context.Context, views Views) error {
	t.prepare.Lock()
	defer t.prepare.Unlock()
	cur := t.current.Load()
	if cur.Views().Covers(views) {
		return nil
	}
	next := New(cur.Views().Merge(views))
	// Registered before the store is read: a record written from now on reaches next by Observe, one
	// written before is in the store, and one that does both is counted once.
	t.mu.Lock()
	t.building = append(t.building, next)
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		for i, ix := range t.building {
			if ix == next {
				t.building = append(t.building[:i], t.building[i+1:]...)
				break
			}
		}
		t.mu.Unlock()
	}()
	start := time.Now()
	if err := next.fill(ctx, t.cfg.Store, t.cfg.Clock()); err != nil {
		return err
	}
	t.rebuilds.Observe(time.Since(start).Seconds())
	t.mu.Lock()
	t.current.Store(next)
	t.mu.Unlock()
	st := next.Stats()
	t.log.Info().Strs("views", next.Views().Names()).Int("decisions", st.Decisions).Int("keys", st.Keys).
		Dur("took", time.Since(start)).Msg("history index rebuilt from the audit store")
	t.updateStats(next)
	return nil
}

// Observe adds a committed record to the current index and to any being rebuilt; see Index.Observe.
func (t *Tracker) Observe(rec *audit.Record) {
	t.mu.Lock()
	cur, building := t.current.Load(), t.building
	if len(building) > 0 {
		building = append([]*Index(nil), building...)
	}
	t.mu.Unlock()
	cur.Observe(rec)
	for _, ix := range building {
		ix.Observe(rec)
	}
}

// Forget takes back a record Observe added, from the current index and any being rebuilt; see
// Index.Forget.
func (t *Tracker) Forget(rec *audit.Record) {
	t.mu.Lock()
	cur, building := t.current.Load(), append([]*Index(nil), t.building...)
	t.mu.Unlock()
	cur.Forget(rec)
	for _, ix := range building {
		ix.Forget(rec)
	}
}

// Ticket is one decision's hold on its history view keys, from before its evaluation until its record
// is observed. Release may be called more than once; the first call releases. The zero Ticket holds
// nothing and observes nothing.
type Ticket struct {
	t       *Tracker
	index   *Index
	keys    []ViewKey
	unlock  func()
	release sync.Once
}

// Begin takes the locks of every key of the current views that req would be counted under, waiting
// at most until ctx ends (the decision's deadline): then it returns an error, and the decision must
// not be made. The Ticket's Index is the one the evaluation must read.
//
// Serializing per key rather than re-checking at commit is the design (docs/history.md): two
// decisions on one key run one after the other, so the second reads the first.
func (t *Tracker) Begin(ctx context.Context, req *tollgatev1.DecideRequest) (*Ticket, error) {
	ix := t.current.Load()
	keys := ix.Views().Keys(req)
	tk := &Ticket{t: t, index: ix, keys: keys, unlock: func() {}}
	if len(keys) == 0 {
		return tk, nil
	}
	lockKeys := make([]string, len(keys))
	for i, k := range keys {
		lockKeys[i] = k.LockKey()
	}
	start := time.Now()
	unlock, err := t.locks.LockContext(ctx, lockKeys...)
	t.lockWait.Observe(time.Since(start).Seconds())
	if err != nil {
		return nil, err
	}
	tk.unlock = unlock
	return tk, nil
}

// Index is the index the decision reads.
func (tk *Ticket) Index() *Index { return tk.index }

// Keys are the view keys the ticket holds.
func (tk *Ticket) Keys() []ViewKey { return tk.keys }

// Observe adds the decision's record, as the audit writer returned it, to the history (Tracker.Observe):
// the next decision on its keys reads it.
func (tk *Ticket) Observe(rec *audit.Record) {
	if rec != nil && tk.t != nil {
		tk.t.Observe(rec)
	}
}

// Forget takes back a record the ticket observed before its commit (Tracker.Forget).
func (tk *Ticket) Forget(rec *audit.Record) {
	if rec != nil && tk.t != nil {
		tk.t.Forget(rec)
	}
}

// Release releases the keys; later calls do nothing.
func (tk *Ticket) Release() {
	tk.release.Do(func() {
		if tk.unlock != nil {
			tk.unlock()
		}
	})
}

// Run evicts, every EvictInterval until ctx ends, what no window reaches any more, so memory stays
// bounded by the decisions inside the windows.
func (t *Tracker) Run(ctx context.Context) {
	tick := time.NewTicker(t.cfg.EvictInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		ix := t.current.Load()
		if n := ix.Evict(t.cfg.Clock()); n > 0 {
			t.log.Debug().Int("entries", n).Msg("history entries evicted")
		}
		t.updateStats(ix)
	}
}

func (t *Tracker) updateStats(ix *Index) {
	st := ix.Stats()
	t.decisions.WithLabelValues("decisions").Set(float64(st.Decisions))
	t.decisions.WithLabelValues("entries").Set(float64(st.Entries))
	t.decisions.WithLabelValues("keys").Set(float64(st.Keys))
}
