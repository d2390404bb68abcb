package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
	"github.com/tollgate/tollgate/server/audit/postgres"
	"github.com/tollgate/tollgate/server/audit/postgres/pgtest"
)

// TestMigrationsConcurrentStart opens eight stores on a fresh database at
// once, as replicas starting together do: every Open succeeds and each
// migration is recorded once.
func TestMigrationsConcurrentStart(t *testing.T) {
	url := pgtest.NewDatabase(t)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	stores := make([]*postgres.Store, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = postgres.Open(context.Background(), postgres.Config{URL: url})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
			continue
		}
		defer stores[i].Close()
	}
	if t.Failed() {
		return
	}
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	v, err := stores[0].SchemaVersion(context.Background())
	if err != nil || v != len(files) {
		t.Errorf("SchemaVersion = %d, %v; want %d, one per migration", v, err, len(files))
	}
}

// TestReplicasShareTheAuditLog: two stores on one database, as two
// replicas, each write their own chain; either one lists, verifies and
// exports both.
func TestReplicasShareTheAuditLog(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	a, b := openStore(t, url), openStore(t, url)
	for i, s := range []*postgres.Store{a, b} {
		w, err := audit.NewWriter(audit.Config{ChainID: fmt.Sprintf("replica-%d", i)}, s, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		for n := range 5 {
			r := audittest.Decision(i*5 + n)
			if _, _, err := w.Write(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		w.Close()
	}
	chains, err := a.Chains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"replica-0", "replica-1"}, chains); d != "" {
		t.Errorf("Chains (-want +got):\n%s", d)
	}
	page, err := a.List(ctx, audit.Filter{})
	if err != nil || len(page.Records) != 10 {
		t.Errorf("List on replica 0: %d records, %v; want both replicas' 10", len(page.Records), err)
	}
	rep, err := audit.Verify(ctx, a, "")
	if err != nil || !rep.OK || rep.RecordsChecked != 10 {
		t.Errorf("Verify all chains on replica 0 = %+v, %v; want OK with 10", rep, err)
	}
	recs, err := a.Export(ctx, audit.ExportQuery{ChainID: "replica-1"})
	if err != nil || len(recs) != 5 || recs[0].DecisionId != "d005" {
		t.Errorf("Export of replica 1's chain on replica 0: %d records, %v; want 5 from d005", len(recs), err)
	}
}

// TestKeyUniqueAcrossChains: two replicas append a decision under the same
// (scope, key) on their own chains at the same instant. The unique index
// spans chains, so exactly one commits and the other is ErrDuplicate.
func TestKeyUniqueAcrossChains(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	stores := []*postgres.Store{openStore(t, url), openStore(t, url)}
	for round := range 20 {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		start := make(chan struct{})
		for i, s := range stores {
			chain := fmt.Sprintf("r%d", i)
			h, err := s.Head(ctx, chain)
			if err != nil {
				t.Fatal(err)
			}
			d := audittest.Decision(round)
			d.DecisionId = fmt.Sprintf("%s-%d", chain, round)
			d.IdempotencyKey, d.Caller = fmt.Sprintf("k%d", round), "alice (token)"
			recs, _ := audittest.Sealed(t, h, d)
			entries := audittest.Entries(t, recs...)
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[i] = s.Append(ctx, h, entries)
			}()
		}
		close(start)
		wg.Wait()
		ok, dup := 0, 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, audit.ErrDuplicate):
				dup++
			default:
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if ok != 1 || dup != 1 {
			t.Fatalf("round %d: %d appends stored, %d duplicates; want 1 and 1 (%v)", round, ok, dup, errs)
		}
	}
}

// TestDecisionReadsDoNotWaitForAuditReads holds every audit-pool connection
// in chain walks that do not finish and checks that the decision path's
// reads and a ping still answer.
func TestDecisionReadsDoNotWaitForAuditReads(t *testing.T) {
	ctx := context.Background()
	const auditConns = 2
	s, err := postgres.Open(ctx, postgres.Config{URL: pgtest.NewDatabase(t), AuditReadConns: auditConns})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d1 := audittest.Decision(1)
	d1.IdempotencyKey, d1.PayloadHash, d1.Caller = "k1", []byte{1}, "alice (mtls) from 10.0.0.1:5000"
	recs, _ := audittest.Sealed(t, audit.Head{ChainID: "c"}, d1, audittest.Decision(2))
	if err := s.Append(ctx, audit.Head{ChainID: "c"}, audittest.Entries(t, recs...)); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var walking, done sync.WaitGroup
	for range auditConns {
		walking.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			first := true
			_ = s.Chain(ctx, "c", 1, func(*audit.Record) error {
				if first {
					first = false
					walking.Done()
					<-release
				}
				return nil
			})
		}()
	}
	walking.Wait()
	defer done.Wait()
	defer close(release)

	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := s.Get(short, "d001"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get with the audit pool taken: err = %v, want DeadlineExceeded (the pool is not taken)", err)
	}
	ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if r, err := s.FindByIdempotencyKey(ctx, "alice", "k1"); err != nil || r.DecisionId != "d001" {
		t.Errorf("FindByIdempotencyKey = %v, %v; want d001", r.GetDecisionId(), err)
	}
	if h, err := s.Head(ctx, "c"); err != nil || h.Seq != 2 {
		t.Errorf("Head = %+v, %v; want seq 2", h, err)
	}
	if r, err := s.Last(ctx, "c"); err != nil || r.DecisionId != "d002" {
		t.Errorf("Last = %v, %v; want d002", r.GetDecisionId(), err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
}
