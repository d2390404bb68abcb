package api_test

import (
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tollgate/tollgate/bundles/demo"
	"github.com/tollgate/tollgate/policies"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/api"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/sqlite"
	"github.com/tollgate/tollgate/server/bundles"
	"github.com/tollgate/tollgate/server/engine"
	"github.com/tollgate/tollgate/server/history"
	"github.com/tollgate/tollgate/server/masterdata"
)

// countingStore is a real SQLite store that counts its appends and the records in each.
type countingStore struct {
	audit.Store
	mu      sync.Mutex
	appends []int
}

func (c *countingStore) Append(ctx context.Context, prev audit.Head, entries []audit.Entry) error {
	err := c.Store.Append(ctx, prev, entries)
	if err == nil {
		c.mu.Lock()
		c.appends = append(c.appends, len(entries))
		c.mu.Unlock()
	}
	return err
}

func (c *countingStore) committed() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.appends...)
}

// newBatchService is the real decision service over the embedded pack and demo data, with history
// views, recording in sync mode to a real SQLite log through a countingStore.
func newBatchService(tb testing.TB) (*api.DecisionServer, *countingStore) {
	tb.Helper()
	ctx := context.Background()
	log := zerolog.New(io.Discard)
	md, err := masterdata.New(masterdata.Config{Prepare: engine.PrepareRecord})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := md.LoadDir(demo.FS); err != nil {
		tb.Fatal(err)
	}
	eng, err := engine.New(engine.Config{EvalTimeout: time.Minute}, md, log)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(eng.Close)
	real, err := sqlite.Open(ctx, tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { real.Close() })
	store := &countingStore{Store: real}
	tracker, err := history.NewTracker(history.TrackerConfig{Store: real, Log: log})
	if err != nil {
		tb.Fatal(err)
	}
	gate, err := bundles.New(bundles.Config{PrepareViews: tracker.Prepare}, eng, real, log)
	if err != nil {
		tb.Fatal(err)
	}
	if c := gate.OfferEmbedded(ctx, policies.FS); c.Outcome != bundles.Activated {
		tb.Fatalf("embedded pack: %+v", c)
	}
	w, err := audit.NewWriter(audit.Config{Mode: audit.ModeSync}, store, log)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { w.Close() })
	return api.NewDecisionServer(eng, w, api.Limits{}, prometheusMetrics(tb), log).WithHistory(tracker), store
}

// TestDecideBatchOneGroupCommit checks that a sync-mode batch commits its decisions in one store append,
// and that each answer's record is stored when the batch returns.
func TestDecideBatchOneGroupCommit(t *testing.T) {
	ds, store := newBatchService(t)
	ctx := context.Background()
	const n = 40
	reqs := make([]*tollgatev1.DecideRequest, n)
	for i := range reqs {
		reqs[i] = poSubmit("u_buyer1", fmt.Sprintf("%d.00", 100+i*500))
	}
	before := len(store.committed())
	resp, err := ds.DecideBatch(ctx, &tollgatev1.DecideBatchRequest{Requests: reqs})
	if err != nil {
		t.Fatal(err)
	}
	if got := store.committed()[before:]; len(got) != 1 || got[0] != n {
		t.Errorf("a batch of %d appended %v records per append, want one append of %d", n, got, n)
	}
	for i, r := range resp.GetResponses() {
		rec, err := store.Get(ctx, r.GetDecisionId())
		if err != nil {
			t.Fatalf("responses[%d] %s: %v", i, r.GetDecisionId(), err)
		}
		if rec.GetEffect() != r.GetEffect() || rec.GetRequest().GetResource().GetAttributes().AsMap()["amount"] != fmt.Sprintf("%d.00", 100+i*500) {
			t.Errorf("responses[%d] names a record of another request or effect", i)
		}
	}
}

// TestDecideBatchRepeatedKey checks a batch that carries one idempotency key twice: the second is
// answered as a replay of the first, in the same commit; with another payload it is a conflict naming
// AlreadyExists, and the decision before it is still recorded.
func TestDecideBatchRepeatedKey(t *testing.T) {
	ds, store := newBatchService(t)
	ctx := context.Background()
	keyed := func(amount, key string) *tollgatev1.DecideRequest {
		r := poSubmit("u_buyer1", amount)
		r.IdempotencyKey = key
		return r
	}
	before := len(store.committed())
	resp, err := ds.DecideBatch(ctx, &tollgatev1.DecideBatchRequest{Requests: []*tollgatev1.DecideRequest{
		keyed("10.00", "k1"), poSubmit("u_nobody", "1.00"), keyed("10.00", "k1"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	rs := resp.GetResponses()
	if rs[0].GetReplay() || !rs[2].GetReplay() || rs[2].GetDecisionId() != rs[0].GetDecisionId() {
		t.Errorf("repeated key: responses %s (replay %v) and %s (replay %v), want the second a replay of the first",
			rs[0].GetDecisionId(), rs[0].GetReplay(), rs[2].GetDecisionId(), rs[2].GetReplay())
	}
	if got := store.committed()[before:]; len(got) != 1 || got[0] != 3 {
		t.Errorf("appends %v, want one of 3 (two decisions and a replay marker)", got)
	}
	head, err := store.Head(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}

	_, err = ds.DecideBatch(ctx, &tollgatev1.DecideBatchRequest{Requests: []*tollgatev1.DecideRequest{
		keyed("20.00", "k2"), keyed("30.00", "k2"),
	}})
	if status.Code(err) != codes.AlreadyExists {
		t.Fatalf("same key, other payload in one batch: %v, want AlreadyExists", err)
	}
	after, err := store.Head(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	if after.Seq != head.Seq+1 {
		t.Errorf("head moved from %d to %d, want the first decision recorded (+1)", head.Seq, after.Seq)
	}
}
