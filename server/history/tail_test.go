package history_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
	"github.com/tollgate/tollgate/server/audit/postgres"
	"github.com/tollgate/tollgate/server/audit/postgres/pgtest"
	"github.com/tollgate/tollgate/server/history"
)

// fleet is one audit database as two replicas see it: the writer appends the
// chains, the tail reads through its own connection. On SQLite they are one
// Store (one file has one opener); on PostgreSQL two, as in a fleet.
type fleet struct{ write, read audit.Store }

// forEachStore runs fn on a real SQLite store and on a real PostgreSQL
// database of its own (skipped, saying so, without a server; failing instead
// with TOLLGATE_REQUIRE_POSTGRES=1, see pgtest).
func forEachStore(t *testing.T, fn func(t *testing.T, f fleet)) {
	t.Run("sqlite", func(t *testing.T) {
		s := openStore(t)
		fn(t, fleet{write: s, read: s})
	})
	t.Run("postgres", func(t *testing.T) {
		url := pgtest.NewDatabase(t)
		fn(t, fleet{write: openPostgres(t, url), read: openPostgres(t, url)})
	})
}

func openPostgres(tb testing.TB, url string) *postgres.Store {
	tb.Helper()
	s, err := postgres.Open(context.Background(), postgres.Config{URL: url})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// extend seals recs after chain's stored head and appends them in batches.
func extend(tb testing.TB, s audit.Store, chain string, recs []*audit.Record) {
	tb.Helper()
	ctx := context.Background()
	for len(recs) > 0 {
		head, err := s.Head(ctx, chain)
		if err != nil {
			tb.Fatal(err)
		}
		n := min(len(recs), 500)
		sealed, _ := audittest.Sealed(tb, head, recs[:n]...)
		if err := s.Append(ctx, head, audittest.Entries(tb, sealed...)); err != nil {
			tb.Fatal(err)
		}
		recs = recs[n:]
	}
}

// pos returns n PO.SUBMIT decisions named prefix-0…, evaluated at the times
// given by at(i).
func pos(tb testing.TB, prefix string, n int, at func(i int) time.Time) []*audit.Record {
	tb.Helper()
	recs := make([]*audit.Record, n)
	for i := range recs {
		recs[i] = rec(fmt.Sprintf("%s-%d", prefix, i), at(i), allow, po(tb, fmt.Sprintf("u%d", i%3), "10.00", "USD"))
	}
	return recs
}

// before returns times i milliseconds apart, ending at end.
func before(end time.Time, n int) func(int) time.Time {
	return func(i int) time.Time { return end.Add(-time.Duration(n-i) * time.Millisecond) }
}

// received collects what a Tail delivers. Run delivers on its own goroutine.
type received struct {
	mu   sync.Mutex
	recs []*audit.Record
}

func (r *received) observe(rec *audit.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
}

// take returns the decision ids received since the last take.
func (r *received) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]string, len(r.recs))
	for i, rec := range r.recs {
		ids[i] = rec.GetDecisionId()
	}
	r.recs = nil
	return ids
}

// seqs returns the seqs received of chain, in delivery order.
func (r *received) seqs(chain string) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []uint64
	for _, rec := range r.recs {
		if rec.GetChainId() == chain {
			out = append(out, rec.GetSeq())
		}
	}
	return out
}

// tailConfig is replica "a"'s tail of store, retention 24h, at t0.
func tailConfig(store audit.Store, observe func(*audit.Record)) history.TailConfig {
	return history.TailConfig{
		Store:     store,
		Own:       "a",
		Retention: func() time.Duration { return 24 * time.Hour },
		Observe:   observe,
		Clock:     func() time.Time { return t0 },
		Log:       zerolog.Nop(),
	}
}

func newTail(tb testing.TB, cfg history.TailConfig) *history.Tail {
	tb.Helper()
	tail, err := history.NewTail(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return tail
}

func mustPoll(tb testing.TB, tail *history.Tail) int {
	tb.Helper()
	n, err := tail.Poll(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

func TestTailMarkThenPoll(t *testing.T) {
	forEachStore(t, func(t *testing.T, f fleet) {
		for _, chain := range []string{"a", "b", "c"} {
			extend(t, f.write, chain, pos(t, "old-"+chain, 3, before(t0.Add(-time.Hour), 3)))
		}
		var got received
		tail := newTail(t, tailConfig(f.read, got.observe))
		if err := tail.Mark(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := mustPoll(t, tail); n != 0 {
			t.Fatalf("Poll right after Mark delivered %d records (%v), want none", n, got.take())
		}
		for _, chain := range []string{"a", "b", "c"} {
			extend(t, f.write, chain, pos(t, "new-"+chain, 2, before(t0, 2)))
		}
		if n := mustPoll(t, tail); n != 4 {
			t.Errorf("Poll delivered %d records, want 4", n)
		}
		// Chains in order, each in seq order; never the own chain "a".
		want := []string{"new-b-0", "new-b-1", "new-c-0", "new-c-1"}
		if diff := cmp.Diff(want, got.take()); diff != "" {
			t.Errorf("delivered (-want +got):\n%s", diff)
		}
		if n := mustPoll(t, tail); n != 0 {
			t.Fatalf("a second Poll delivered %d records (%v), want none", n, got.take())
		}
	})
}

// A replica that joins after Mark is read from Retention before now; once
// read, every later record of it is delivered, whatever its clock says.
func TestTailNewChainStartsWithinRetention(t *testing.T) {
	forEachStore(t, func(t *testing.T, f fleet) {
		extend(t, f.write, "b", pos(t, "b", 1, before(t0, 1)))
		var got received
		tail := newTail(t, tailConfig(f.read, got.observe))
		if err := tail.Mark(context.Background()); err != nil {
			t.Fatal(err)
		}
		at := []time.Time{t0.Add(-48 * time.Hour), t0.Add(-24*time.Hour - time.Nanosecond), t0.Add(-24 * time.Hour), t0.Add(-time.Hour), t0.Add(time.Minute)}
		extend(t, f.write, "c", pos(t, "c", len(at), func(i int) time.Time { return at[i] }))
		// All of d is older than the retention: nothing, until it writes.
		extend(t, f.write, "d", pos(t, "d-old", 1, func(int) time.Time { return t0.Add(-30 * time.Hour) }))

		mustPoll(t, tail)
		if diff := cmp.Diff([]string{"c-2", "c-3", "c-4"}, got.take()); diff != "" {
			t.Errorf("first poll of a new chain (-want +got):\n%s", diff)
		}
		extend(t, f.write, "c", pos(t, "c-skewed", 1, func(int) time.Time { return t0.Add(-30 * time.Hour) }))
		extend(t, f.write, "d", pos(t, "d-new", 1, before(t0, 1)))
		mustPoll(t, tail)
		if diff := cmp.Diff([]string{"c-skewed-0", "d-new-0"}, got.take()); diff != "" {
			t.Errorf("second poll (-want +got):\n%s", diff)
		}
	})
}

func TestTailPagesOverMaxPageSize(t *testing.T) {
	forEachStore(t, func(t *testing.T, f fleet) {
		extend(t, f.write, "b", pos(t, "old", 5, before(t0, 5)))
		var got received
		tail := newTail(t, tailConfig(f.read, got.observe))
		if err := tail.Mark(context.Background()); err != nil {
			t.Fatal(err)
		}
		n := 2*audit.MaxPageSize + 7
		extend(t, f.write, "b", pos(t, "new", n, before(t0, n)))
		if got := mustPoll(t, tail); got != n {
			t.Errorf("Poll delivered %d records, want %d", got, n)
		}
		if diff := cmp.Diff(seqRange(6, 5+n), got.seqs("b")); diff != "" {
			t.Errorf("seqs of b (-want +got):\n%s", diff)
		}
	})
}

// seqRange returns from, from+1, … to.
func seqRange(from, to int) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, uint64(s))
	}
	return out
}

// failingStore fails the failAt-th Export (counting from 1), Chains while
// down is set, and Head of chain failHead: the shared database failing
// under a tail.
type failingStore struct {
	audit.Store
	down     atomic.Bool
	failAt   int
	failHead string
	mu       sync.Mutex
	exports  int
}

var errInjected = fmt.Errorf("injected: %w", audit.ErrUnavailable)

func (s *failingStore) Export(ctx context.Context, q audit.ExportQuery) ([]*audit.Record, error) {
	s.mu.Lock()
	s.exports++
	fail := s.exports == s.failAt
	s.mu.Unlock()
	if fail {
		return nil, errInjected
	}
	return s.Store.Export(ctx, q)
}

func (s *failingStore) Chains(ctx context.Context) ([]string, error) {
	if s.down.Load() {
		return nil, errInjected
	}
	return s.Store.Chains(ctx)
}

func (s *failingStore) Head(ctx context.Context, chain string) (audit.Head, error) {
	if chain == s.failHead {
		return audit.Head{}, errInjected
	}
	return s.Store.Head(ctx, chain)
}

// A chain whose head Mark cannot read is read from Retention on: a re-read
// of what Rebuild read, never a gap.
func TestTailMarkFailureRereads(t *testing.T) {
	forEachStore(t, func(t *testing.T, f fleet) {
		for _, chain := range []string{"b", "c", "d"} {
			extend(t, f.write, chain, pos(t, "old-"+chain, 2, before(t0, 2)))
		}
		var got received
		tail := newTail(t, tailConfig(&failingStore{Store: f.read, failHead: "c"}, got.observe))
		if err := tail.Mark(context.Background()); !errors.Is(err, audit.ErrUnavailable) || !strings.Contains(err.Error(), "chain c") {
			t.Fatalf("Mark = %v, want an error naming chain c wrapping audit.ErrUnavailable", err)
		}
		mustPoll(t, tail)
		if diff := cmp.Diff([]string{"old-c-0", "old-c-1"}, got.take()); diff != "" {
			t.Errorf("Poll after a failed Mark (-want +got):\n%s", diff)
		}
	})
}

func TestTailPollResumesAfterError(t *testing.T) {
	forEachStore(t, func(t *testing.T, f fleet) {
		// b's second page fails; c, after it, is still read.
		store := &failingStore{Store: f.read, failAt: 2}
		reg := prometheus.NewPedanticRegistry()
		var got received
		cfg := tailConfig(store, got.observe)
		cfg.Registry = reg
		tail := newTail(t, cfg)
		if err := tail.Mark(context.Background()); err != nil {
			t.Fatal(err)
		}
		n := audit.MaxPageSize + 500
		extend(t, f.write, "b", pos(t, "b", n, before(t0, n)))
		extend(t, f.write, "c", pos(t, "c", 3, before(t0, 3)))

		delivered, err := tail.Poll(context.Background())
		if !errors.Is(err, audit.ErrUnavailable) || !strings.Contains(err.Error(), "chain b") {
			t.Fatalf("Poll = %v, want an error naming chain b wrapping audit.ErrUnavailable", err)
		}
		if delivered != audit.MaxPageSize+3 {
			t.Errorf("failing Poll delivered %d records, want b's first page and c's 3", delivered)
		}
		if got := gauge(t, reg, "tollgate_history_tail_errors_total", ""); got != 1 {
			t.Errorf("errors_total = %v, want 1", got)
		}
		lastSuccess := "tollgate_history_tail_last_success_timestamp_seconds"
		if got, want := gauge(t, reg, lastSuccess, "c"), float64(t0.Unix()); got != want {
			t.Errorf("last success of c = %v, want %v", got, want)
		}
		if got := gauge(t, reg, lastSuccess, "b"); got != 0 {
			t.Errorf("last success of b, which failed, = %v, want none", got)
		}

		if d := mustPoll(t, tail); d != n-audit.MaxPageSize {
			t.Errorf("Poll after the error delivered %d records, want the %d left", d, n-audit.MaxPageSize)
		}
		if diff := cmp.Diff(seqRange(1, n), got.seqs("b")); diff != "" {
			t.Errorf("seqs of b over both polls (-want +got):\n%s", diff)
		}
		if got, want := gauge(t, reg, lastSuccess, "b"), float64(t0.Unix()); got != want {
			t.Errorf("last success of b after recovery = %v, want %v", got, want)
		}
	})
}

func TestTailLagHistogram(t *testing.T) {
	forEachStore(t, func(t *testing.T, f fleet) {
		reg := prometheus.NewPedanticRegistry()
		var got received
		cfg := tailConfig(f.read, got.observe)
		cfg.Registry = reg
		tail := newTail(t, cfg)
		if err := tail.Mark(context.Background()); err != nil {
			t.Fatal(err)
		}
		lags := []time.Duration{10 * time.Millisecond, 300 * time.Millisecond, 2 * time.Second, 90 * time.Second}
		extend(t, f.write, "b", pos(t, "b", len(lags), func(i int) time.Time { return t0.Add(-lags[i]) }))
		extend(t, f.write, "a", pos(t, "a", 1, func(int) time.Time { return t0.Add(-time.Hour) })) // own: no lag
		mustPoll(t, tail)

		h := histogram(t, reg, "tollgate_history_lag_seconds")
		if h.count != 4 || h.sum < 92.309 || h.sum > 92.311 {
			t.Errorf("lag histogram holds %d records summing to %vs, want 4 summing to 92.31s", h.count, h.sum)
		}
		if diff := cmp.Diff(map[float64]uint64{0.001: 0, 0.5: 2, 2: 3, 60: 3}, h.at(0.001, 0.5, 2, 60)); diff != "" {
			t.Errorf("cumulative lag buckets (-want +got):\n%s", diff)
		}
	})
}

// byChainAndPhase deals recs out to replicas a, b and c in turn, and each
// replica's share into three phases in order: 40 %, 20 % and 40 % of recs.
func byChainAndPhase(recs []*audit.Record) map[string][3][]*audit.Record {
	out := map[string][3][]*audit.Record{}
	for i, r := range recs {
		chain := []string{"a", "b", "c"}[i%3]
		phases := out[chain]
		phase := min(2, i*5/len(recs))
		phases[phase] = append(phases[phase], r)
		out[chain] = phases
	}
	return out
}

// assertLikeLive checks that ix answers every key of recs, at now and
// around it, like an index over views that observed every record live.
func assertLikeLive(tb testing.TB, ix *history.Index, views history.Views, recs []*audit.Record, now time.Time) {
	tb.Helper()
	live := history.New(views)
	keys := map[history.ViewKey]bool{}
	for _, r := range recs {
		live.Observe(r)
		for _, vk := range views.Keys(r.GetRequest()) {
			keys[vk] = true
		}
	}
	live.Evict(now)
	// Decisions differ by design: live still remembers the ids of records
	// its windows dropped (until the longest window forgets them), while an
	// index that observes after its rebuild's Evict never takes them in.
	type held struct{ Entries, Keys int }
	if diff := cmp.Diff(held{live.Stats().Entries, live.Stats().Keys}, held{ix.Stats().Entries, ix.Stats().Keys}); diff != "" {
		tb.Fatalf("Stats (-live +tailed):\n%s", diff)
	}
	counted := 0
	for vk := range keys {
		for _, at := range []time.Time{now, now.Add(-3 * time.Hour), now.Add(time.Hour)} {
			want, got := mustQuery(tb, live, vk.View, vk.Key, at), mustQuery(tb, ix, vk.View, vk.Key, at)
			if diff := cmp.Diff(want, got); diff != "" {
				tb.Errorf("%s %s at %v (-live +tailed):\n%s", vk.View, vk.Key, at, diff)
			}
			counted += got.Count
		}
	}
	if counted == 0 {
		tb.Fatal("no view counted anything: the fixture tests nothing")
	}
}

// TestTailFeedsIndexLikeLive runs the wiring's order on three replicas'
// chains: Mark, Rebuild, then the own chain observed as written and the
// others tailed. The index answers every key like one that observed every
// record live.
func TestTailFeedsIndexLikeLive(t *testing.T) {
	forEachStore(t, func(t *testing.T, f fleet) {
		vs := packViews(t)
		now := t0
		recs := history40Days(t, now)
		chains := byChainAndPhase(recs) // written before Mark, between Mark and Rebuild, after
		write := func(phase int) {
			for _, chain := range []string{"a", "b", "c"} {
				extend(t, f.write, chain, chains[chain][phase])
			}
		}

		write(0)
		var ix *history.Index
		cfg := tailConfig(f.read, func(r *audit.Record) { ix.Observe(r) })
		cfg.Retention, cfg.Clock = vs.Retention, func() time.Time { return now }
		tail := newTail(t, cfg)
		if err := tail.Mark(context.Background()); err != nil {
			t.Fatal(err)
		}
		write(1) // read by Rebuild and delivered by the tail: counted once
		var err error
		if ix, err = history.Rebuild(context.Background(), f.read, vs, now); err != nil {
			t.Fatal(err)
		}
		write(2)
		for _, r := range chains["a"][2] {
			ix.Observe(r)
		}
		delivered := mustPoll(t, tail)
		if want := len(chains["b"][1]) + len(chains["b"][2]) + len(chains["c"][1]) + len(chains["c"][2]); delivered != want {
			t.Errorf("Poll delivered %d records, want %d", delivered, want)
		}
		assertLikeLive(t, ix, vs, recs, now)
	})
}

// packViewsOnly returns the pack's views named, parsed from the fixture
// without the others.
func packViewsOnly(tb testing.TB, names ...string) history.Views {
	tb.Helper()
	data, err := os.ReadFile("testdata/pack_views.json")
	if err != nil {
		tb.Fatal(err)
	}
	var doc struct {
		Params struct {
			History struct {
				Views map[string]json.RawMessage `json:"views"`
			} `json:"history"`
		} `json:"params"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		tb.Fatal(err)
	}
	views := doc.Params.History.Views
	for name := range views {
		if !slices.Contains(names, name) {
			delete(views, name)
		}
	}
	js, err := json.Marshal(doc)
	if err != nil {
		tb.Fatal(err)
	}
	return parseViews(tb, string(js))
}

// TestTailFeedsTrackerThroughActivation wires the tail as the service does
// (Observe and Retention of the Tracker) and activates a bundle bringing new
// views while the other replicas write and the tail polls: the index swapped
// in misses nothing and counts nothing twice.
func TestTailFeedsTrackerThroughActivation(t *testing.T) {
	forEachStore(t, func(t *testing.T, f fleet) {
		ctx := context.Background()
		now := t0
		recs := history40Days(t, now)
		chains := byChainAndPhase(recs)
		for _, chain := range []string{"a", "b", "c"} {
			extend(t, f.write, chain, chains[chain][0])
		}
		tracker := newTracker(t, f.read, now)
		cfg := tailConfig(f.read, tracker.Observe)
		cfg.Retention, cfg.Clock = tracker.Retention, func() time.Time { return now }
		tail := newTail(t, cfg)
		if err := tail.Mark(ctx); err != nil {
			t.Fatal(err)
		}
		if err := tracker.Prepare(ctx, packViewsOnly(t, "po_split")); err != nil {
			t.Fatal(err)
		}

		// While a bundle with every view of the pack is prepared and the tail
		// polls, the replicas write phases 1 and 2 in turns of 25 records (one
		// store's Appends take turns, as one audit writer's commits do), and
		// this one (a) observes its own as written.
		all := packViews(t)
		prepared := make(chan error, 1)
		go func() { prepared <- tracker.Prepare(ctx, all) }()
		stop, polled := make(chan struct{}), make(chan error, 1)
		go func() {
			defer close(polled)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := tail.Poll(ctx); err != nil {
					polled <- err
					return
				}
			}
		}()
		rest := map[string][]*audit.Record{}
		for _, chain := range []string{"a", "b", "c"} {
			rest[chain] = append(chains[chain][1], chains[chain][2]...)
		}
		for len(rest["a"])+len(rest["b"])+len(rest["c"]) > 0 {
			for _, chain := range []string{"a", "b", "c"} {
				n := min(len(rest[chain]), 25)
				extend(t, f.write, chain, rest[chain][:n])
				if chain == "a" {
					for _, r := range rest[chain][:n] {
						tracker.Observe(r)
					}
				}
				rest[chain] = rest[chain][n:]
			}
		}
		if err := <-prepared; err != nil {
			t.Fatal(err)
		}
		close(stop)
		if err := <-polled; err != nil {
			t.Fatal(err)
		}
		mustPoll(t, tail) // what the others wrote after the last concurrent poll
		if !tracker.Views().Covers(all) {
			t.Fatalf("the tracker's views %v do not cover the pack's", tracker.Views().Names())
		}
		assertLikeLive(t, tracker.Index(), all, recs, now)
	})
}

// syncBuffer is a log sink Run writes to while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// eventually waits up to 10 s for cond.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestTailRunSurvivesOutage runs the tail against a database that is down:
// it keeps polling, logs one line rather than one per poll, logs its
// recovery, and then delivers again.
func TestTailRunSurvivesOutage(t *testing.T) {
	s := openStore(t)
	store := &failingStore{Store: s}
	store.down.Store(true)
	reg := prometheus.NewPedanticRegistry()
	var logs syncBuffer
	var got received
	cfg := tailConfig(store, got.observe)
	cfg.Registry, cfg.Interval, cfg.Clock = reg, time.Millisecond, time.Now
	cfg.Log = zerolog.New(&logs)
	tail := newTail(t, cfg)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); tail.Run(ctx) }()
	defer func() { cancel(); <-done }()

	eventually(t, "20 failed polls", func() bool { return gauge(t, reg, "tollgate_history_tail_errors_total", "") >= 20 })
	if n := strings.Count(logs.String(), "\n"); n != 1 || !strings.Contains(logs.String(), "history tail poll failed") {
		t.Fatalf("after 20 failed polls the log holds %d lines, want the one failure line:\n%s", n, logs.String())
	}
	store.down.Store(false)
	eventually(t, "the recovery line", func() bool { return strings.Contains(logs.String(), "history tail recovered") })
	extend(t, s, "b", pos(t, "b", 1, before(time.Now(), 1)))
	eventually(t, "b's record", func() bool { return len(got.seqs("b")) == 1 })

	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

func TestNewTailRefusesConfig(t *testing.T) {
	store := openStore(t)
	valid := func() history.TailConfig { return tailConfig(store, func(*audit.Record) {}) }
	for name, edit := range map[string]func(*history.TailConfig){
		"no store":          func(c *history.TailConfig) { c.Store = nil },
		"no own chain":      func(c *history.TailConfig) { c.Own = "" },
		"no retention":      func(c *history.TailConfig) { c.Retention = nil },
		"no observe":        func(c *history.TailConfig) { c.Observe = nil },
		"negative interval": func(c *history.TailConfig) { c.Interval = -time.Second },
	} {
		cfg := valid()
		edit(&cfg)
		if _, err := history.NewTail(cfg); err == nil {
			t.Errorf("%s: NewTail accepted it", name)
		}
	}
	cfg := valid()
	cfg.Registry = prometheus.NewPedanticRegistry()
	newTail(t, cfg)
	if _, err := history.NewTail(cfg); err == nil {
		t.Error("a second tail on one registry: NewTail accepted it")
	}
}

// gauge returns the value of the gauge or counter name (with label chain,
// unless chain is empty) gathered from reg, 0 if absent.
func gauge(tb testing.TB, reg *prometheus.Registry, name, chain string) float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if chain != "" && (len(m.GetLabel()) != 1 || m.GetLabel()[0].GetValue() != chain) {
				continue
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// gatheredHistogram is a histogram as gathered.
type gatheredHistogram struct {
	count   uint64
	sum     float64
	buckets map[float64]uint64 // upper bound → cumulative count
}

// at returns the cumulative counts at the given bucket bounds.
func (h gatheredHistogram) at(bounds ...float64) map[float64]uint64 {
	out := map[float64]uint64{}
	for _, b := range bounds {
		out[b] = h.buckets[b]
	}
	return out
}

func histogram(tb testing.TB, reg *prometheus.Registry, name string) gatheredHistogram {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) != 1 {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		g := gatheredHistogram{count: h.GetSampleCount(), sum: h.GetSampleSum(), buckets: map[float64]uint64{}}
		for _, b := range h.GetBucket() {
			g.buckets[b.GetUpperBound()] = b.GetCumulativeCount()
		}
		return g
	}
	tb.Fatalf("no histogram %s gathered", name)
	return gatheredHistogram{}
}

// BenchmarkTailPoll delivers 10,000 PO decisions of another replica's chain
// into an Index: one Poll of a chain first seen, as after a restart.
func BenchmarkTailPoll(b *testing.B) {
	const n = 10_000
	for _, backend := range []struct {
		name string
		open func(b *testing.B) audit.Store
	}{
		{"sqlite", func(b *testing.B) audit.Store { return openStore(b) }},
		{"postgres", func(b *testing.B) audit.Store { return openPostgres(b, pgtest.NewDatabase(b)) }},
	} {
		b.Run(backend.name, func(b *testing.B) {
			store := backend.open(b)
			vs := packViews(b)
			extend(b, store, "b", pos(b, "b", n, func(i int) time.Time { return t0.Add(-time.Duration(n-i) * time.Second) }))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				ix := history.New(vs)
				cfg := tailConfig(store, func(r *audit.Record) { ix.Observe(r) })
				cfg.Retention = vs.Retention
				tail := newTail(b, cfg)
				if got := mustPoll(b, tail); got != n {
					b.Fatalf("Poll delivered %d records, want %d", got, n)
				}
				if ix.Stats().Decisions != n {
					b.Fatalf("index holds %d decisions, want %d", ix.Stats().Decisions, n)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
		})
	}
}
