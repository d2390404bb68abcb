package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
	"github.com/tollgate/tollgate/server/audit/sqlite"
)

func TestConformance(t *testing.T) {
	audittest.Run(t, func(t *testing.T) audit.Store {
		return openStore(t, t.TempDir())
	})
}

func openStore(tb testing.TB, dir string) *sqlite.Store {
	tb.Helper()
	s, err := sqlite.Open(context.Background(), dir)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// TestDurabilitySettings reads journal_mode and synchronous back from every connection of every
// pool: a connection opened without them would answer a sync-mode decision before its record is
// durable.
func TestDurabilitySettings(t *testing.T) {
	s := openStore(t, t.TempDir())
	got, err := s.Settings(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pools := map[string]int{}
	for _, c := range got {
		pools[c.Pool]++
		if c.JournalMode != "wal" || c.Synchronous != 2 {
			t.Errorf("%s connection: journal_mode %q, synchronous %d; want wal and 2 (FULL)", c.Pool, c.JournalMode, c.Synchronous)
		}
	}
	want := map[string]int{"write": 1, "decision": sqlite.DecisionReadConns, "audit": sqlite.AuditReadConns}
	if d := cmp.Diff(want, pools); d != "" {
		t.Errorf("connections read back per pool (-want +got):\n%s", d)
	}
}

// TestDecisionReadsDoNotWaitForAuditReads holds every audit-pool connection in chain walks that do
// not finish, as auditors' verifies do, and checks that the decision path's reads (idempotency
// lookup, head, last record) and a ping still answer.
func TestDecisionReadsDoNotWaitForAuditReads(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	d1 := audittest.Decision(1)
	d1.IdempotencyKey, d1.PayloadHash, d1.Caller = "k1", []byte{1}, "alice (mtls) from 10.0.0.1:5000"
	recs, _ := audittest.Sealed(t, audit.Head{ChainID: "c"}, d1, audittest.Decision(2))
	if err := s.Append(ctx, audit.Head{ChainID: "c"}, audittest.Entries(t, recs...)); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var walking, done sync.WaitGroup
	for range sqlite.AuditReadConns {
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

	// Every audit connection is taken: an audit read now waits.
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

func TestDurable(t *testing.T) {
	audittest.RunDurable(t, func(t *testing.T) audittest.Storage {
		return &storage{dir: t.TempDir()}
	})
}

// storage is a data directory; Rewrite and Delete open audit.db beside the store.
type storage struct{ dir string }

func (s *storage) Open(t *testing.T) audit.Store { return openStore(t, s.dir) }

func (s *storage) exec(t *testing.T, fn func(db *sql.DB) error) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(s.dir, sqlite.FileName)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := fn(db); err != nil {
		t.Fatal(err)
	}
}

func (s *storage) Rewrite(t *testing.T, decisionID string, edit func(*audittest.Row)) {
	s.exec(t, func(db *sql.DB) error {
		var r audittest.Row
		var body string
		if err := db.QueryRow("SELECT effect, hash, body FROM records WHERE decision_id = ?", decisionID).Scan(&r.Effect, &r.Hash, &body); err != nil {
			return err
		}
		r.Body = []byte(body)
		edit(&r)
		_, err := db.Exec("UPDATE records SET effect = ?, hash = ?, body = ? WHERE decision_id = ?", r.Effect, r.Hash, string(r.Body), decisionID)
		return err
	})
}

func (s *storage) Delete(t *testing.T, decisionID string) {
	s.exec(t, func(db *sql.DB) error {
		_, err := db.Exec("DELETE FROM record_reasons WHERE decision_id = ?1; DELETE FROM records WHERE decision_id = ?1", decisionID)
		return err
	})
}
