package audit_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
	"github.com/tollgate/tollgate/server/audit/sqlite"
)

func openStore(tb testing.TB, dir string) *sqlite.Store {
	tb.Helper()
	s, err := sqlite.Open(context.Background(), dir)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func newWriter(tb testing.TB, cfg audit.Config, s audit.Store) *audit.Writer {
	tb.Helper()
	if cfg.ChainID == "" {
		cfg.ChainID = "test"
	}
	w, err := audit.NewWriter(cfg, s, zerolog.Nop())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { w.Close() })
	return w
}

// rawDB opens the audit file beside the store, as an attacker or an
// operator with file access would.
func rawDB(tb testing.TB, s *sqlite.Store) *sql.DB {
	tb.Helper()
	db, err := sql.Open("sqlite", s.Path()+"?_pragma=busy_timeout(10000)")
	if err != nil {
		tb.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	tb.Cleanup(func() { db.Close() })
	return db
}

func exec(tb testing.TB, db *sql.DB, q string, args ...any) {
	tb.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
}

func verify(tb testing.TB, s audit.Store, chain string) audit.Report {
	tb.Helper()
	rep, err := audit.Verify(context.Background(), s, chain)
	if err != nil {
		tb.Fatal(err)
	}
	return rep
}

func keyed(n int, key string) *audit.Record {
	r := audittest.Decision(n)
	r.IdempotencyKey = key
	r.Request.IdempotencyKey = key
	return r
}

func TestWriterSync(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	w := newWriter(t, audit.Config{}, s)
	for i := 0; i < 5; i++ {
		in := audittest.Decision(i)
		stored, replayOf, err := w.Write(ctx, in)
		if err != nil || replayOf != nil {
			t.Fatalf("Write(%d) = _, %v, %v", i, replayOf, err)
		}
		if stored.Seq != uint64(i+1) || len(stored.Hash) != 32 || stored.ChainId != "test" {
			t.Errorf("stored seq %d hash %x chain %q; want seq %d, a hash, chain test", stored.Seq, stored.Hash, stored.ChainId, i+1)
		}
		if in.Seq != 0 || in.Hash != nil {
			t.Errorf("Write modified its argument")
		}
		// Sync: the record is readable as soon as Write returns.
		got, err := s.Get(ctx, stored.DecisionId)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(stored, got, protocmp.Transform()); d != "" {
			t.Errorf("stored record (-want +got):\n%s", d)
		}
	}
	if rep := verify(t, s, "test"); !rep.OK || rep.RecordsChecked != 5 {
		t.Errorf("Verify = %+v, want OK with 5 records", rep)
	}
}

func TestWriterAsyncCloseDrains(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	w, err := audit.NewWriter(audit.Config{Mode: audit.ModeAsync, ChainID: "test"}, s, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += 4 {
				stored, _, err := w.Write(ctx, audittest.Decision(i))
				if err != nil {
					t.Error(err)
					return
				}
				if stored.Seq != 0 {
					t.Errorf("async Write returned seq %d; want 0 (assigned at commit)", stored.Seq)
				}
			}
		}()
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.Write(ctx, audittest.Decision(999)); !errors.Is(err, audit.ErrClosed) {
		t.Errorf("Write after Close: err = %v, want ErrClosed", err)
	}
	if rep := verify(t, s, "test"); !rep.OK || rep.RecordsChecked != n {
		t.Errorf("Verify after Close = %+v, want OK with %d records", rep, n)
	}
}

func TestGroupCommitBatches(t *testing.T) {
	for _, mode := range []audit.Mode{audit.ModeSync, audit.ModeAsync} {
		t.Run(string(mode), func(t *testing.T) {
			s := openStore(t, t.TempDir())
			reg := prometheus.NewRegistry()
			w := newWriter(t, audit.Config{Mode: mode, Registry: reg}, s)
			const writers, each = 32, 20
			var wg sync.WaitGroup
			for g := 0; g < writers; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < each; i++ {
						if _, _, err := w.Write(context.Background(), audittest.Decision(g*each+i)); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			w.Close()
			count, sum := histogram(t, reg, "tollgate_audit_batch_size")
			if sum != writers*each {
				t.Errorf("batch size sum = %v, want %d records", sum, writers*each)
			}
			if count >= sum {
				t.Errorf("%v commits for %v records: no batch held more than one record", count, sum)
			}
			t.Logf("%s: %v records in %v commits (mean batch %.1f)", mode, sum, count, sum/count)
		})
	}
}

func histogram(tb testing.TB, reg *prometheus.Registry, name string) (count, sum float64) {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			h := mf.GetMetric()[0].GetHistogram()
			return float64(h.GetSampleCount()), h.GetSampleSum()
		}
	}
	tb.Fatalf("metric %s not registered", name)
	return 0, 0
}

func gauge(tb testing.TB, reg *prometheus.Registry, name string) float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	tb.Fatalf("metric %s not registered", name)
	return 0
}

func TestIdempotency(t *testing.T) {
	for _, mode := range []audit.Mode{audit.ModeSync, audit.ModeAsync} {
		t.Run(string(mode), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			s := openStore(t, dir)
			key := testPayloadKey(t, 1) // the service keeps its key in a file across restarts
			w, err := audit.NewWriter(audit.Config{Mode: mode, ChainID: "test", PayloadKey: key}, s, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			orig, replayOf, err := w.Write(ctx, keyed(1, "k1"))
			if err != nil || replayOf != nil {
				t.Fatalf("first write: replayOf %v, err %v", replayOf, err)
			}
			// A retry: same payload, new decision id from the engine.
			retry := keyed(1, "k1")
			retry.DecisionId = "retry-1"
			marker, replayOf, err := w.Write(ctx, retry)
			if err != nil {
				t.Fatal(err)
			}
			if replayOf.GetDecisionId() != orig.DecisionId || marker.Kind != tollgatev1.RecordKind_RECORD_KIND_REPLAY ||
				marker.ReplayOf != orig.DecisionId || marker.DecisionId != "retry-1" || marker.Effect != orig.Effect {
				t.Errorf("retry: marker %s kind %s replay_of %s effect %s, replayOf %s; want marker retry-1 REPLAY of %s with its effect",
					marker.DecisionId, marker.Kind, marker.ReplayOf, marker.Effect, replayOf.GetDecisionId(), orig.DecisionId)
			}
			// Same key, different payload.
			conflicting := keyed(2, "k1")
			_, _, err = w.Write(ctx, conflicting)
			var ce *audit.ConflictError
			if !errors.As(err, &ce) || ce.Key != "k1" || ce.OriginalID != "d001" || !errors.Is(err, audit.ErrDuplicate) {
				t.Errorf("conflicting write: err = %v, want ConflictError{k1, d001}", err)
			}
			w.Close()

			// Keys survive a restart of the writer and the store.
			s.Close()
			s2 := openStore(t, dir)
			w2 := newWriter(t, audit.Config{Mode: mode, PayloadKey: testPayloadKey(t, 1)}, s2)
			retry2 := keyed(1, "k1")
			retry2.DecisionId = "retry-2"
			_, replayOf, err = w2.Write(ctx, retry2)
			if err != nil || replayOf.GetDecisionId() != "d001" {
				t.Errorf("retry after reopen: replayOf %v, err %v; want d001", replayOf.GetDecisionId(), err)
			}
			if _, _, err := w2.Write(ctx, keyed(3, "k1")); !errors.As(err, &ce) || ce.OriginalID != "d001" {
				t.Errorf("conflict after reopen: err = %v, want ConflictError naming d001", err)
			}
			w2.Close()
			if rep := verify(t, s2, "test"); !rep.OK || rep.RecordsChecked != 3 {
				t.Errorf("Verify = %+v; want OK with 3 records (decision and two markers)", rep)
			}
		})
	}
}

func TestIdempotencyConcurrentSameKey(t *testing.T) {
	for _, mode := range []audit.Mode{audit.ModeSync, audit.ModeAsync} {
		t.Run(string(mode), func(t *testing.T) {
			ctx := context.Background()
			s := openStore(t, t.TempDir())
			w := newWriter(t, audit.Config{Mode: mode}, s)
			const n = 32
			var (
				wg        sync.WaitGroup
				originals sync.Map
				fresh     atomic.Int32
			)
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := keyed(1, "same")
					r.DecisionId = fmt.Sprintf("try-%02d", i)
					stored, replayOf, err := w.Write(ctx, r)
					if err != nil {
						t.Error(err)
						return
					}
					if replayOf == nil {
						fresh.Add(1)
						originals.Store(stored.DecisionId, true)
					} else {
						originals.Store(replayOf.DecisionId, true)
					}
				}()
			}
			wg.Wait()
			w.Close()
			if fresh.Load() != 1 {
				t.Errorf("%d writes logged a new decision, want exactly 1", fresh.Load())
			}
			var ids []string
			originals.Range(func(k, _ any) bool { ids = append(ids, k.(string)); return true })
			if len(ids) != 1 {
				t.Errorf("writes were answered with originals %v, want one", ids)
			}
			page, err := s.List(ctx, audit.Filter{PageSize: 100})
			if err != nil {
				t.Fatal(err)
			}
			kinds := map[tollgatev1.RecordKind]int{}
			for _, r := range page.Records {
				kinds[r.Kind]++
			}
			want := map[tollgatev1.RecordKind]int{tollgatev1.RecordKind_RECORD_KIND_DECISION: 1, tollgatev1.RecordKind_RECORD_KIND_REPLAY: n - 1}
			if d := cmp.Diff(want, kinds); d != "" {
				t.Errorf("stored kinds (-want +got):\n%s", d)
			}
			if rep := verify(t, s, "test"); !rep.OK {
				t.Errorf("Verify = %+v", rep)
			}
		})
	}
}

func TestMaskingBeforeHashing(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	w := newWriter(t, audit.Config{MaskPaths: []string{"resource.attributes.bank_account", "context.iban", "actor.on_behalf_of"}}, s)
	in := keyed(1, "k-mask")
	in.Request.Context["iban"] = "GB33BUKB20201555555555"
	stored, _, err := w.Write(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, stored.DecisionId)
	if err != nil {
		t.Fatal(err)
	}
	req := got.Request
	if v := req.Resource.Attributes.Fields["bank_account"].GetStringValue(); v != audit.Masked {
		t.Errorf("stored bank_account = %q, want %q", v, audit.Masked)
	}
	if v := req.Context["iban"]; v != audit.Masked {
		t.Errorf("stored context.iban = %q, want %q", v, audit.Masked)
	}
	if req.Actor.OnBehalfOf != "" {
		t.Errorf("absent actor.on_behalf_of became %q; absent values stay absent", req.Actor.OnBehalfOf)
	}
	if v := req.Resource.Attributes.Fields["amount"].GetStringValue(); v != "5000.00" {
		t.Errorf("unmasked amount = %q", v)
	}
	// The caller's record is not touched: masking works on the writer's own copy of the request.
	if v := in.Request.Context["iban"]; v != "GB33BUKB20201555555555" {
		t.Errorf("caller's context.iban became %q", v)
	}
	if v := in.Request.Resource.Attributes.Fields["bank_account"].GetStringValue(); v == audit.Masked {
		t.Errorf("caller's bank_account was masked")
	}
	if in.Seq != 0 || len(in.Hash) != 0 || in.ChainId != "" {
		t.Errorf("caller's record got chain fields: seq %d, chain %q", in.Seq, in.ChainId)
	}
	// The stored hash is over the masked record, so the chain verifies.
	if rep := verify(t, s, "test"); !rep.OK {
		t.Errorf("Verify = %+v", rep)
	}
	// The payload hash is over the unmasked request: another bank account
	// under the same key is a conflict, not a retry.
	other := keyed(1, "k-mask")
	other.Request.Context["iban"] = "GB33BUKB20201555555555"
	other.Request.Resource.Attributes.Fields["bank_account"] = structpb.NewStringValue("FR7630006000011234567890189")
	var ce *audit.ConflictError
	if _, _, err := w.Write(ctx, other); !errors.As(err, &ce) {
		t.Errorf("same key, other masked value: err = %v, want ConflictError", err)
	}
	w.Close()
	s.Close()
	// Neither the database nor its WAL holds the secret.
	for _, f := range []string{sqlite.FileName, sqlite.FileName + "-wal"} {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(s.Path()), f))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		for _, secret := range []string{"DE44500105175407324931", "GB33BUKB20201555555555"} {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s contains the unmasked value %s", f, secret)
			}
		}
	}
}

func TestMaskPathsValidated(t *testing.T) {
	s := openStore(t, t.TempDir())
	for _, p := range []string{"resource.nope", "resource.attributes", "actor.type", "ai.confidence", "context", "context.a.b", "resource..x"} {
		if _, err := audit.NewWriter(audit.Config{MaskPaths: []string{p}}, s, zerolog.Nop()); err == nil {
			t.Errorf("NewWriter accepted mask path %q", p)
		}
	}
}

func TestVerifyNamesAlteredRecord(t *testing.T) {
	tests := []struct {
		name    string
		tamper  string
		problem audit.Problem
	}{
		{"body", `UPDATE records SET body = json_set(body, '$.reasons[0].message', 'ok') WHERE seq = ?`, audit.ProblemHashMismatch},
		{"body and column", `UPDATE records SET effect = 1, body = json_set(body, '$.effect', 'EFFECT_ALLOW') WHERE seq = ?`, audit.ProblemHashMismatch},
		{"indexed column", `UPDATE records SET effect = 1 WHERE seq = ?`, audit.ProblemCorrupt},
		// The body leaves the hash out (it is what the hash covers), so a
		// forged hash column is a hash that does not match the body.
		{"hash column", `UPDATE records SET hash = zeroblob(32) WHERE seq = ?`, audit.ProblemHashMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, t.TempDir())
			w := newWriter(t, audit.Config{}, s)
			var target *audit.Record
			for i := 0; i < 10; i++ {
				r, _, err := w.Write(context.Background(), audittest.Decision(i))
				if err != nil {
					t.Fatal(err)
				}
				if i == 4 { // Decision(4) is a DENY
					target = r
				}
			}
			w.Close()
			exec(t, rawDB(t, s), tc.tamper, target.Seq)
			rep := verify(t, s, "test")
			want := audit.Report{ChainID: "test", RecordsChecked: target.Seq - 1, FirstBadSeq: target.Seq, FirstBadDecisionID: target.DecisionId, Problem: tc.problem}
			if d := cmp.Diff(want, rep, cmpIgnoreDetail()); d != "" {
				t.Errorf("Verify (-want +got):\n%s", d)
			}
			t.Log(rep.Message())
		})
	}
}

func cmpIgnoreDetail() cmp.Option {
	return cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "Detail" }, cmp.Ignore())
}

func TestChainContinuesAcrossReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for round := 0; round < 3; round++ {
		s, err := sqlite.Open(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		w, err := audit.NewWriter(audit.Config{ChainID: "test"}, s, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 4; i++ {
			r, _, err := w.Write(ctx, audittest.Decision(round*4+i))
			if err != nil {
				t.Fatal(err)
			}
			if want := uint64(round*4 + i + 1); r.Seq != want {
				t.Errorf("round %d: seq %d, want %d", round, r.Seq, want)
			}
		}
		w.Close()
		s.Close()
	}
	s := openStore(t, dir)
	if rep := verify(t, s, ""); !rep.OK || rep.RecordsChecked != 12 {
		t.Errorf("Verify = %+v, want OK with 12", rep)
	}
}

// lockDB holds SQLite's write lock from another connection, as a second
// process would, until the returned func is called.
func lockDB(tb testing.TB, s *sqlite.Store) (release func()) {
	tb.Helper()
	db := rawDB(tb, s)
	conn, err := db.Conn(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		tb.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			conn.ExecContext(context.Background(), "ROLLBACK")
			conn.Close()
		})
	}
	tb.Cleanup(release)
	return release
}

func TestAsyncQueueFull(t *testing.T) {
	s := openStore(t, t.TempDir())
	reg := prometheus.NewRegistry()
	w := newWriter(t, audit.Config{Mode: audit.ModeAsync, QueueSize: 4, MaxBatch: 1, MaxDelay: -1, Registry: reg}, s)
	release := lockDB(t, s)
	// One record is taken by the blocked committer, four fill the queue.
	for i := 0; i < 5; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _, err := w.Write(ctx, audittest.Decision(i))
		cancel()
		if err != nil {
			t.Fatalf("Write %d while the queue has room: %v", i, err)
		}
	}
	waitFor(t, func() bool { return gauge(t, reg, "tollgate_audit_queue_depth") == 4 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	start := time.Now()
	_, _, err := w.Write(ctx, audittest.Decision(5))
	cancel()
	if !errors.Is(err, audit.ErrQueueFull) {
		t.Fatalf("Write into a full queue: err = %v, want ErrQueueFull", err)
	}
	if waited := time.Since(start); waited < 90*time.Millisecond {
		t.Errorf("Write gave up after %v, before its deadline", waited)
	}
	release()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if rep := verify(t, s, "test"); !rep.OK || rep.RecordsChecked != 5 {
		t.Errorf("Verify = %+v, want OK with the 5 queued records", rep)
	}
}

func waitFor(tb testing.TB, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatal("condition not reached in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// failInserts makes every insert into records fail inside SQLite until the
// returned func is called.
func failInserts(tb testing.TB, s *sqlite.Store) (heal func()) {
	tb.Helper()
	db := rawDB(tb, s)
	// Ping's heartbeat write fails too, so the health probe sees the fault.
	exec(tb, db, `CREATE TRIGGER fault BEFORE INSERT ON records BEGIN SELECT RAISE(ABORT, 'injected fault'); END`)
	exec(tb, db, `CREATE TRIGGER fault_ping BEFORE UPDATE ON heartbeat BEGIN SELECT RAISE(ABORT, 'injected fault'); END`)
	exec(tb, db, `INSERT OR IGNORE INTO heartbeat (id, at) VALUES (1, 0)`)
	return func() { exec(tb, db, "DROP TRIGGER fault"); exec(tb, db, "DROP TRIGGER fault_ping") }
}

func TestSyncStoreFailure(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	reg := prometheus.NewRegistry()
	w := newWriter(t, audit.Config{Registry: reg, RetryInterval: 20 * time.Millisecond}, s)
	if _, _, err := w.Write(ctx, audittest.Decision(0)); err != nil {
		t.Fatal(err)
	}
	heal := failInserts(t, s)
	_, _, err := w.Write(ctx, keyed(1, "k-fail"))
	if !errors.Is(err, audit.ErrUnavailable) {
		t.Fatalf("Write with failing store: err = %v, want ErrUnavailable", err)
	}
	if w.Healthy() {
		t.Errorf("Healthy() = true after a failed commit")
	}
	if got := gauge(t, reg, "tollgate_audit_commit_failures_total"); got < 1 {
		t.Errorf("commit failures = %v, want >= 1", got)
	}
	heal()
	// The probe restores health without traffic.
	waitFor(t, w.Healthy)
	// The failed record was not written and its key is free again.
	stored, replayOf, err := w.Write(ctx, keyed(1, "k-fail"))
	if err != nil || replayOf != nil || stored.Seq != 2 {
		t.Fatalf("Write after recovery = seq %d, replayOf %v, err %v; want seq 2, a new decision", stored.GetSeq(), replayOf, err)
	}
	if rep := verify(t, s, "test"); !rep.OK || rep.RecordsChecked != 2 {
		t.Errorf("Verify = %+v, want OK with 2", rep)
	}
}

func TestAsyncStoreFailureRetries(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	w := newWriter(t, audit.Config{Mode: audit.ModeAsync, RetryInterval: 20 * time.Millisecond}, s)
	heal := failInserts(t, s)
	for i := 0; i < 5; i++ {
		if _, _, err := w.Write(ctx, audittest.Decision(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return !w.Healthy() })
	heal()
	waitFor(t, w.Healthy)
	w.Close()
	if rep := verify(t, s, "test"); !rep.OK || rep.RecordsChecked != 5 {
		t.Errorf("Verify = %+v, want all 5 queued records committed after recovery", rep)
	}
}

func TestCancelledCallerStillLogged(t *testing.T) {
	s := openStore(t, t.TempDir())
	w := newWriter(t, audit.Config{}, s)
	release := lockDB(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, _, err := w.Write(ctx, audittest.Decision(1))
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond) // queued, commit blocked on the lock
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Write with cancelled ctx: err = %v, want context.Canceled", err)
	}
	release()
	w.Close()
	if _, err := s.Get(context.Background(), "d001"); err != nil {
		t.Errorf("record of a cancelled caller: %v, want it logged", err)
	}
}

func TestWriteRejectsBadRecords(t *testing.T) {
	s := openStore(t, t.TempDir())
	w := newWriter(t, audit.Config{}, s)
	noID := audittest.Decision(1)
	noID.DecisionId = ""
	replay := audittest.Decision(2)
	replay.Kind = tollgatev1.RecordKind_RECORD_KIND_REPLAY
	for name, r := range map[string]*audit.Record{"no id": noID, "replay kind": replay} {
		if _, _, err := w.Write(context.Background(), r); err == nil {
			t.Errorf("%s: Write accepted it", name)
		}
	}
	if _, err := audit.NewWriter(audit.Config{Mode: "later"}, s, zerolog.Nop()); err == nil {
		t.Errorf("NewWriter accepted mode %q", "later")
	}
	if _, _, err := w.Write(context.Background(), proto.Clone(audittest.Decision(3)).(*audit.Record)); err != nil {
		t.Errorf("good record after bad ones: %v", err)
	}
	// A reused decision_id is the caller's fault: refused, store still healthy.
	if _, _, err := w.Write(context.Background(), audittest.Decision(3)); !errors.Is(err, audit.ErrDuplicate) {
		t.Errorf("reused decision_id: err = %v, want ErrDuplicate", err)
	}
	if !w.Healthy() {
		t.Errorf("Healthy() = false after a refused record")
	}
	if stored, _, err := w.Write(context.Background(), audittest.Decision(4)); err != nil || stored.Seq != 2 {
		t.Errorf("next record: seq %d, err %v; want seq 2", stored.GetSeq(), err)
	}
}

func TestSecondWriterOnChainRecovers(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	a := newWriter(t, audit.Config{}, s)
	b := newWriter(t, audit.Config{}, s) // misconfigured: same chain id
	if _, _, err := a.Write(ctx, audittest.Decision(1)); err != nil {
		t.Fatal(err)
	}
	// Each stale writer picks up the stored head and continues after it at
	// once, so the chain stays linked and no caller fails for it.
	for i, w := range []*audit.Writer{b, a} {
		stored, _, err := w.Write(ctx, audittest.Decision(2+i))
		if err != nil || stored.Seq != uint64(2+i) {
			t.Fatalf("stale writer %d: seq %d, err %v; want seq %d", i, stored.GetSeq(), err, 2+i)
		}
	}
	if rep := verify(t, s, "test"); !rep.OK || rep.RecordsChecked != 3 {
		t.Errorf("Verify = %+v, want OK with 3", rep)
	}
}

// TestIdleStoreFailure: a writer that gets no record still notices a store that went away (its idle
// probe), so a health check of an idle replica turns false, and true again when the store is back.
func TestIdleStoreFailure(t *testing.T) {
	s := openStore(t, t.TempDir())
	w := newWriter(t, audit.Config{RetryInterval: 20 * time.Millisecond, IdleProbeInterval: 50 * time.Millisecond}, s)
	if !w.Healthy() {
		t.Fatal("Healthy() = false on a new writer")
	}
	heal := failInserts(t, s) // no Write from here on: only the idle probe can see it
	waitFor(t, func() bool { return !w.Healthy() })
	heal()
	waitFor(t, w.Healthy)

	// With the idle probe off, health follows commits only.
	s2 := openStore(t, t.TempDir())
	off := newWriter(t, audit.Config{RetryInterval: 20 * time.Millisecond, IdleProbeInterval: -1}, s2)
	defer failInserts(t, s2)()
	time.Sleep(200 * time.Millisecond)
	if !off.Healthy() {
		t.Error("Healthy() = false with the idle probe off and no commit")
	}
}
