package audit_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
)

// TestGroupCommitsOnce checks that a sync group's records, a retry of one of them among them, commit in
// one transaction when they fit in MaxBatch, and in order in as few as fit otherwise.
func TestGroupCommitsOnce(t *testing.T) {
	for _, tt := range []struct {
		maxBatch, commits int
	}{{0, 1}, {16, 4}} {
		s := openStore(t, t.TempDir())
		reg := prometheus.NewRegistry()
		w := newWriter(t, audit.Config{Registry: reg, MaxBatch: tt.maxBatch}, s)
		ctx := context.Background()
		g := w.Group()
		const n = 50
		var qs []*audit.Queued
		for i := range n {
			rec := audittest.Decision(i)
			if i == 3 || i == 40 {
				rec = keyed(i, "k-3") // 40 retries 3 with the same request
				rec.Request = keyed(3, "k-3").Request
			}
			q, err := g.Enqueue(ctx, rec, nil)
			if err != nil {
				t.Fatal(err)
			}
			qs = append(qs, q)
		}
		if count, _ := histogram(t, reg, "tollgate_audit_batch_size"); count != 0 {
			t.Fatalf("%v commits before the group was flushed, want 0", count)
		}
		for i, q := range qs {
			stored, replayOf, err := q.Wait(ctx)
			if err != nil {
				t.Fatalf("Wait(%d): %v", i, err)
			}
			if stored.GetSeq() != uint64(i+1) {
				t.Errorf("record %d committed at seq %d, want %d (the order staged)", i, stored.GetSeq(), i+1)
			}
			if i == 40 && replayOf.GetDecisionId() != audittest.Decision(3).GetDecisionId() {
				t.Errorf("retry in the group replays %q, want the decision staged before it", replayOf.GetDecisionId())
			}
			if i != 40 && replayOf != nil {
				t.Errorf("record %d replays %s", i, replayOf.GetDecisionId())
			}
		}
		if count, sum := histogram(t, reg, "tollgate_audit_batch_size"); count != float64(tt.commits) || sum != n {
			t.Errorf("MaxBatch %d: %v records in %v commits, want %d in %d", tt.maxBatch, sum, count, n, tt.commits)
		}
		if rep := verify(t, s, "test"); !rep.OK || rep.RecordsChecked != n {
			t.Errorf("Verify = %+v, want OK with %d records", rep, n)
		}
	}
}

// TestGroupCrossedRetries checks that two groups each retrying a key the other staged do not wait on
// each other: a retry flushes the group its original is staged in.
func TestGroupCrossedRetries(t *testing.T) {
	s := openStore(t, t.TempDir())
	w := newWriter(t, audit.Config{}, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g1, g2 := w.Group(), w.Group()
	enqueue := func(g *audit.Group, rec *audit.Record) *audit.Queued {
		t.Helper()
		q, err := g.Enqueue(ctx, rec, nil)
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	a, b := keyed(1, "a"), keyed(2, "b")
	qa, qb := enqueue(g1, a), enqueue(g2, b)
	retryB, retryA := keyed(3, "b"), keyed(4, "a")
	retryB.Request, retryA.Request = b.Request, a.Request
	qrb := enqueue(g1, retryB) // flushes g2
	qra := enqueue(g2, retryA) // flushes g1
	for _, c := range []struct {
		q    *audit.Queued
		want string // the decision replayed, "" for none
	}{{qa, ""}, {qb, ""}, {qrb, b.DecisionId}, {qra, a.DecisionId}} {
		_, replayOf, err := c.q.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if replayOf.GetDecisionId() != c.want {
			t.Errorf("replays %q, want %q", replayOf.GetDecisionId(), c.want)
		}
	}
	if rep := verify(t, s, "test"); !rep.OK || rep.RecordsChecked != 4 {
		t.Errorf("Verify = %+v, want OK with 4 records", rep)
	}
}

// TestGroupAfterClose checks that a group's records fail with ErrClosed once the writer closed, whether
// staged before or after Close, and that their keys are free again.
func TestGroupAfterClose(t *testing.T) {
	s := openStore(t, t.TempDir())
	w := newWriter(t, audit.Config{}, s)
	ctx := context.Background()
	g := w.Group()
	q, err := g.Enqueue(ctx, keyed(1, "k"), nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if _, _, err := q.Wait(ctx); !errors.Is(err, audit.ErrClosed) {
		t.Errorf("Wait on a record staged before Close: %v, want ErrClosed", err)
	}
	if _, err := g.Enqueue(ctx, audittest.Decision(2), nil); !errors.Is(err, audit.ErrClosed) {
		t.Errorf("Enqueue after Close: %v, want ErrClosed", err)
	}
}

// TestGroupRefusedRecord checks that a record of a group the store refuses (a decision id already
// taken) fails alone: its batch-mates commit, in order, and only its Wait reports the refusal.
func TestGroupRefusedRecord(t *testing.T) {
	s := openStore(t, t.TempDir())
	w := newWriter(t, audit.Config{}, s)
	ctx := context.Background()
	g := w.Group()
	var qs []*audit.Queued
	for _, n := range []int{1, 2, 1, 3} { // the second 1 repeats a decision id
		q, err := g.Enqueue(ctx, audittest.Decision(n), nil)
		if err != nil {
			t.Fatal(err)
		}
		qs = append(qs, q)
	}
	var seqs []uint64
	for i, q := range qs {
		stored, _, err := q.Wait(ctx)
		if i == 2 {
			if !errors.Is(err, audit.ErrUnavailable) || !errors.Is(err, audit.ErrDuplicate) {
				t.Errorf("Wait on the repeated decision id: %v, want ErrUnavailable wrapping ErrDuplicate", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Wait(%d): %v", i, err)
		}
		seqs = append(seqs, stored.GetSeq())
	}
	if len(seqs) != 3 || seqs[0] != 1 || seqs[1] != 2 || seqs[2] != 3 {
		t.Errorf("batch-mates committed at seqs %v, want 1 2 3", seqs)
	}
	if rep := verify(t, s, "test"); !rep.OK || rep.RecordsChecked != 3 {
		t.Errorf("Verify = %+v, want OK with 3 records", rep)
	}
}

// TestGroupAsync checks that in async mode a group's records are queued at once (Wait returns without
// a commit) and all committed by Close.
func TestGroupAsync(t *testing.T) {
	s := openStore(t, t.TempDir())
	w := newWriter(t, audit.Config{Mode: audit.ModeAsync}, s)
	ctx := context.Background()
	g := w.Group()
	for n := range 10 {
		q, err := g.Enqueue(ctx, audittest.Decision(n), nil)
		if err != nil {
			t.Fatal(err)
		}
		if stored, _, err := q.Wait(ctx); err != nil || stored.GetSeq() != 0 {
			t.Fatalf("async Wait = seq %d, %v; want seq 0 (not committed yet), nil", stored.GetSeq(), err)
		}
	}
	w.Close()
	if rep := verify(t, s, "test"); !rep.OK || rep.RecordsChecked != 10 {
		t.Errorf("Verify after Close = %+v, want OK with 10 records", rep)
	}
}
