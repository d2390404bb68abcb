package audit_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
)

// faultRig is a Writer over a FaultStore over a real SQLite store, with a
// dead-letter file and a metrics registry.
type faultRig struct {
	real       audit.Store
	fs         *audittest.FaultStore
	w          *audit.Writer
	reg        *prometheus.Registry
	deadLetter string
}

func newFaultRig(t *testing.T, cfg audit.Config) *faultRig {
	t.Helper()
	dir := t.TempDir()
	r := &faultRig{real: openStore(t, dir), reg: prometheus.NewRegistry(), deadLetter: filepath.Join(dir, "rejected.ndjson")}
	r.fs = audittest.NewFaultStore(r.real)
	t.Cleanup(r.fs.Heal) // never leave a Close blocked on an armed fault
	cfg.Registry, cfg.DeadLetterFile = r.reg, r.deadLetter
	if cfg.RetryInterval == 0 {
		cfg.RetryInterval = 20 * time.Millisecond
	}
	r.w = newWriter(t, cfg, r.fs)
	return r
}

// deadLetters returns the decision ids in the dead-letter file and the errors beside them.
func (r *faultRig) deadLetters(t *testing.T) (ids, errs []string) {
	t.Helper()
	f, err := os.Open(r.deadLetter)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct {
			Error  string `json:"error"`
			Record struct {
				DecisionID string `json:"decision_id"`
			} `json:"record"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("dead-letter line %q: %v", sc.Text(), err)
		}
		ids, errs = append(ids, line.Record.DecisionID), append(errs, line.Error)
	}
	return ids, errs
}

// assertAccounted checks the promise of the failure policy: every answered
// Write's record is in the store, or, for a record the store refused, in the
// dead-letter file; and the chain verifies with exactly the stored ones.
// refused are the answered ids not stored; dead the ids in the dead-letter
// file (refused unless a refused record shares a stored one's id).
func (r *faultRig) assertAccounted(t *testing.T, answered, refused, dead []string) {
	t.Helper()
	ctx := context.Background()
	stored, missing := audittest.Stored(ctx, r.real, answered...)
	gotDead, _ := r.deadLetters(t)
	sort.Strings(gotDead)
	sort.Strings(missing)
	sort.Strings(refused)
	sort.Strings(dead)
	if d := cmp.Diff(refused, missing); d != "" {
		t.Errorf("answered records missing from the store (-want refused +got missing):\n%s", d)
	}
	if d := cmp.Diff(dead, gotDead); d != "" {
		t.Errorf("dead-letter file (-want +got):\n%s", d)
	}
	if rep := verify(t, r.real, "test"); !rep.OK || rep.RecordsChecked != uint64(len(stored)) {
		t.Errorf("Verify = %+v; want OK with the %d stored records", rep, len(stored))
	}
}

func unavailable(what string) error { return fmt.Errorf("%s: %w", what, audit.ErrUnavailable) }

// writeAll writes Decision(from..to-1) and returns the ids of those answered.
func writeAll(t *testing.T, w *audit.Writer, from, to int) (answered []string, errs map[string]error) {
	t.Helper()
	errs = map[string]error{}
	for i := from; i < to; i++ {
		rec := audittest.Decision(i)
		if _, _, err := w.Write(context.Background(), rec); err != nil {
			errs[rec.DecisionId] = err
			continue
		}
		answered = append(answered, rec.DecisionId)
	}
	return answered, errs
}

func TestFaultTransientStoreFailure(t *testing.T) {
	t.Run("async", func(t *testing.T) {
		r := newFaultRig(t, audit.Config{Mode: audit.ModeAsync})
		r.fs.FailAppends(1<<30, unavailable("disk gone"))
		answered, errs := writeAll(t, r.w, 0, 5)
		if len(errs) != 0 {
			t.Fatalf("async writes failed: %v", errs)
		}
		waitFor(t, func() bool { return !r.w.Healthy() })
		start := r.fs.Appends()
		waitFor(t, func() bool { return r.fs.Appends() >= start+3 }) // it keeps retrying...
		if r.w.Healthy() {
			t.Errorf("Healthy() = true while every commit fails") // ...and stays unhealthy meanwhile
		}
		r.fs.Heal()
		waitFor(t, r.w.Healthy)
		r.w.Close()
		r.assertAccounted(t, answered, nil, nil)
	})
	t.Run("sync", func(t *testing.T) {
		r := newFaultRig(t, audit.Config{})
		r.fs.FailAppends(1, unavailable("disk gone"))
		r.fs.FailPing(unavailable("disk gone"))
		_, _, err := r.w.Write(context.Background(), audittest.Decision(0))
		if !errors.Is(err, audit.ErrUnavailable) {
			t.Fatalf("Write on a failing store: err = %v, want ErrUnavailable", err)
		}
		if r.w.Healthy() {
			t.Errorf("Healthy() = true after a failed commit")
		}
		r.fs.Heal()
		answered, errs := writeAll(t, r.w, 1, 4)
		if len(errs) != 0 || !r.w.Healthy() {
			t.Fatalf("after recovery: errs %v, healthy %v", errs, r.w.Healthy())
		}
		r.w.Close()
		r.assertAccounted(t, answered, nil, nil) // d000 was refused to its caller, so it is no answered record
		if stored, _ := audittest.Stored(context.Background(), r.real, "d000"); len(stored) != 0 {
			t.Errorf("the failed Write's record was stored")
		}
	})
}

// TestFaultAmbiguousCommit: the store commits and still reports an error.
// The retry must find its own records (counted as committed, the head
// moved on), not meet them as duplicates and drop them or write them twice.
func TestFaultAmbiguousCommit(t *testing.T) {
	for _, mode := range []audit.Mode{audit.ModeSync, audit.ModeAsync} {
		for _, headFails := range []int{0, 1} {
			t.Run(fmt.Sprintf("%s/head-read-fails-%d", mode, headFails), func(t *testing.T) {
				r := newFaultRig(t, audit.Config{Mode: mode, MaxDelay: 50 * time.Millisecond})
				r.fs.CommitThenFail(1, unavailable("connection reset after commit"))
				// The writer cannot tell at once whether it committed: in
				// async mode the retry then meets its own commit.
				r.fs.FailHead(headFails, unavailable("read failed"))
				answered, errs := writeAll(t, r.w, 0, 4)
				if mode == audit.ModeSync && headFails == 1 {
					// Sync cannot wait to find out: the first Write fails, as
					// a failed commit does, though its record was stored; the
					// next batch finds the head moved and continues after it.
					if len(errs) != 1 || !errors.Is(errs["d000"], audit.ErrUnavailable) {
						t.Fatalf("errs = %v, want d000 to fail with ErrUnavailable", errs)
					}
					answered = append(answered, "d000") // stored, so it must verify among the rest
				} else if len(errs) != 0 {
					t.Fatalf("writes failed: %v", errs)
				}
				waitFor(t, func() bool {
					stored, _ := audittest.Stored(context.Background(), r.real, "d000", "d001", "d002", "d003")
					return len(stored) == 4
				})
				r.w.Close()
				r.assertAccounted(t, answered, nil, nil)
				if got := gauge(t, r.reg, "tollgate_audit_rejected_records_total"); got != 0 {
					t.Errorf("rejected records = %v, want 0: nothing was refused", got)
				}
				if !r.w.Healthy() {
					t.Errorf("Healthy() = false after the commits went through")
				}
			})
		}
	}
}

// TestFaultRefusedRecord: the store refuses one record of a batch. The
// others commit; in async mode the refused one is in the dead-letter file,
// counted, and health drops; in sync mode its Write fails.
func TestFaultRefusedRecord(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"invalid argument", fmt.Errorf("body does not hash: %w", audit.ErrInvalidArgument)},
		{"duplicate of another record", fmt.Errorf("unique constraint: %w", audit.ErrDuplicate)},
	} {
		t.Run("async/"+tc.name, func(t *testing.T) {
			r := newFaultRig(t, audit.Config{Mode: audit.ModeAsync, MaxDelay: 100 * time.Millisecond, RetryInterval: 300 * time.Millisecond})
			r.fs.RejectRecord("d002", tc.err)
			answered, errs := writeAll(t, r.w, 0, 6)
			if len(errs) != 0 {
				t.Fatalf("async writes failed: %v", errs)
			}
			waitFor(t, func() bool { return gauge(t, r.reg, "tollgate_audit_rejected_records_total") == 1 })
			if r.w.Healthy() {
				t.Errorf("Healthy() = true right after a record was refused")
			}
			waitFor(t, func() bool {
				stored, _ := audittest.Stored(context.Background(), r.real, "d000", "d001", "d003", "d004", "d005")
				return len(stored) == 5
			})
			// Health returns with the next commit after the hold.
			time.Sleep(350 * time.Millisecond)
			if _, _, err := r.w.Write(context.Background(), audittest.Decision(6)); err != nil {
				t.Fatal(err)
			}
			answered = append(answered, "d006")
			waitFor(t, r.w.Healthy)
			r.w.Close()
			r.assertAccounted(t, answered, []string{"d002"}, []string{"d002"})
			if _, errs := r.deadLetters(t); len(errs) != 1 || !strings.Contains(errs[0], tc.err.Error()) {
				t.Errorf("dead-letter error %q, want the store's %q", errs, tc.err)
			}
		})
		t.Run("sync/"+tc.name, func(t *testing.T) {
			r := newFaultRig(t, audit.Config{})
			r.fs.RejectRecord("d002", tc.err)
			answered, errs := writeAll(t, r.w, 0, 5)
			if len(errs) != 1 || !errors.Is(errs["d002"], audit.ErrUnavailable) || !errors.Is(errs["d002"], errors.Unwrap(tc.err)) {
				t.Fatalf("errs = %v, want only d002 to fail, wrapping the store's error", errs)
			}
			if !r.w.Healthy() {
				t.Errorf("Healthy() = false: in sync mode a refused record's caller was told, the store is fine")
			}
			r.w.Close()
			r.assertAccounted(t, answered, nil, nil)
			if dead, _ := r.deadLetters(t); len(dead) != 0 {
				t.Errorf("sync mode wrote dead letters %v; the caller got the error instead", dead)
			}
		})
	}
}

// TestFaultDuplicateAfterTransientFailure: a batch fails once for a
// transient reason and holds a record reusing a stored decision id. Before,
// the retry's duplicate error dropped the whole answered batch.
func TestFaultDuplicateAfterTransientFailure(t *testing.T) {
	r := newFaultRig(t, audit.Config{Mode: audit.ModeAsync, MaxDelay: 100 * time.Millisecond})
	if _, _, err := r.w.Write(context.Background(), audittest.Decision(1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { s, _ := audittest.Stored(context.Background(), r.real, "d001"); return len(s) == 1 })
	r.fs.FailAppends(1, unavailable("busy"))
	answered, errs := writeAll(t, r.w, 2, 4)
	again := audittest.Decision(1)
	again.Caller = "someone else" // another record under a stored decision id
	if _, _, err := r.w.Write(context.Background(), again); err != nil {
		t.Fatal(err)
	}
	more, errs2 := writeAll(t, r.w, 4, 6)
	if len(errs)+len(errs2) != 0 {
		t.Fatalf("async writes failed: %v %v", errs, errs2)
	}
	r.w.Close()
	answered = append(append([]string{"d001"}, answered...), more...)
	r.assertAccounted(t, answered, nil, []string{"d001"}) // the second d001 is the dead letter
	if got, err := r.real.Get(context.Background(), "d001"); err != nil || got.Caller == "someone else" {
		t.Errorf("stored d001 = caller %q, %v; want the first one", got.GetCaller(), err)
	}
}

// TestFaultCloseWithFailingStore: Close gives up on a store that keeps
// failing, but the answered records go to the dead-letter file, not away.
func TestFaultCloseWithFailingStore(t *testing.T) {
	r := newFaultRig(t, audit.Config{Mode: audit.ModeAsync, RetryInterval: 5 * time.Millisecond})
	r.fs.FailAppends(1<<30, unavailable("disk gone"))
	answered, errs := writeAll(t, r.w, 0, 3)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	r.w.Close()
	dead, _ := r.deadLetters(t)
	sort.Strings(dead)
	if d := cmp.Diff(answered, dead); d != "" {
		t.Errorf("dead letters after Close on a failing store (-want +got):\n%s", d)
	}
}

// TestIdempotencyLookupOutsideLock: a key whose store lookup hangs must not
// hold up Writes without a key or with other keys, nor commits; a second
// claimer of the same key waits for the lookup and replays, never decides
// twice.
func TestIdempotencyLookupOutsideLock(t *testing.T) {
	for _, mode := range []audit.Mode{audit.ModeSync, audit.ModeAsync} {
		t.Run(string(mode), func(t *testing.T) {
			ctx := context.Background()
			r := newFaultRig(t, audit.Config{Mode: mode})
			release := r.fs.BlockFind("slow")
			type result struct {
				stored, replayOf *audit.Record
				err              error
			}
			slow := make(chan result, 2)
			for i, id := range []string{"slow-1", "slow-2"} {
				rec := keyed(1, "slow")
				rec.DecisionId = id
				go func() {
					s, o, err := r.w.Write(ctx, rec)
					slow <- result{s, o, err}
				}()
				if i == 0 {
					time.Sleep(20 * time.Millisecond) // usually slow-1 claims the key; either order must hold
				}
			}
			done := make(chan error, 1)
			go func() {
				tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				if _, _, err := r.w.Write(tctx, audittest.Decision(2)); err != nil {
					done <- err
					return
				}
				_, _, err := r.w.Write(tctx, keyed(3, "other"))
				done <- err
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("writes beside a hanging lookup: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("writes without the hanging key waited on its lookup")
			}
			select {
			case res := <-slow:
				t.Fatalf("a write of the blocked key returned before its lookup: %+v", res)
			default:
			}
			release()
			var fresh, replayOf []string
			for range 2 {
				res := <-slow
				if res.err != nil {
					t.Fatal(res.err)
				}
				if res.replayOf == nil {
					fresh = append(fresh, res.stored.GetDecisionId())
				} else {
					replayOf = append(replayOf, res.replayOf.GetDecisionId())
				}
			}
			if len(fresh) != 1 || len(replayOf) != 1 || replayOf[0] != fresh[0] {
				t.Errorf("fresh decisions %v, replays of %v; want one decision and one replay of it", fresh, replayOf)
			}
			r.w.Close()
			r.assertAccounted(t, []string{"slow-1", "slow-2", "d002", "d003"}, nil, nil)
		})
	}
}

// TestIdempotencyScopedByCaller: the same key from two callers is two
// decisions; from one caller over mtls and token, one.
func TestIdempotencyScopedByCaller(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	w := newWriter(t, audit.Config{}, s)
	write := func(id, caller string, n int) (*audit.Record, error) {
		t.Helper()
		rec := keyed(n, "k")
		rec.DecisionId, rec.Caller = id, caller
		_, replayOf, err := w.Write(ctx, rec)
		return replayOf, err
	}
	if o, err := write("a1", "alice (mtls) from 10.0.0.1:1", 1); err != nil || o != nil {
		t.Fatalf("alice's first: replay %v, err %v", o, err)
	}
	if o, err := write("b1", "bob (token) from 10.0.0.2:1", 1); err != nil || o != nil {
		t.Errorf("bob with alice's key: replay of %v, err %v; want his own decision", o.GetDecisionId(), err)
	}
	if o, err := write("a2", "alice (token) from 10.0.0.3:1", 1); err != nil || o.GetDecisionId() != "a1" {
		t.Errorf("alice again over a token: replay of %v, err %v; want a1", o.GetDecisionId(), err)
	}
	_, err := write("b2", "bob (token)", 2)
	var ce *audit.ConflictError
	if !errors.As(err, &ce) || ce.OriginalID != "b1" || strings.Contains(err.Error(), "a1") {
		t.Errorf("bob's conflicting payload: err = %v; want a conflict naming only his b1", err)
	}
}
