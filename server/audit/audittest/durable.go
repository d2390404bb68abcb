package audittest

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/transparency"
)

// Storage is one backend's storage as the durability cases of RunDurable
// need it: stores opened on it one after another, as across restarts, and
// access to stored rows that bypasses the store, as an operator or an
// attacker with database access has.
type Storage interface {
	// Open returns a new store on the storage. The case closes it; the
	// storage must outlive it.
	Open(t *testing.T) audit.Store
	// Rewrite reads the stored row of decisionID, lets edit change it and
	// writes it back, bypassing the store.
	Rewrite(t *testing.T, decisionID string, edit func(*Row))
	// Delete removes the stored row of decisionID (and its reason codes),
	// bypassing the store; the chain head stays.
	Delete(t *testing.T, decisionID string)
}

// Row is the part of a stored record the tamper cases change: one indexed
// column, the hash column and the body as stored (the canonical body).
type Row struct {
	Effect int32
	Hash   []byte
	Body   []byte
}

// RunDurable runs the cases that need a store reopened on the same storage
// or rows changed behind the store's back: a chain continued across
// restarts, idempotency keys that survive a restart, and Verify naming a
// tampered, truncated or gapped record. Every backend's storage passes them
// alike.
func RunDurable(t *testing.T, newStorage func(t *testing.T) Storage) {
	ctx := context.Background()
	// One payload key for every writer, as the service keeps its key file across restarts: a writer
	// with a key of its own would take a retry after a restart for another payload.
	key, err := audit.GeneratePayloadKey()
	if err != nil {
		t.Fatal(err)
	}
	writer := func(t *testing.T, s audit.Store) *audit.Writer {
		t.Helper()
		w, err := audit.NewWriter(audit.Config{ChainID: "node-1", PayloadKey: key}, s, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	verify := func(t *testing.T, s audit.Store) audit.Report {
		t.Helper()
		rep, err := audit.Verify(ctx, s, "node-1")
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}

	t.Run("ChainContinuesAcrossRestart", func(t *testing.T) {
		st := newStorage(t)
		for round := range 3 {
			s := st.Open(t)
			w := writer(t, s)
			for i := range 4 {
				r, _, err := w.Write(ctx, Decision(round*4+i))
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
		s := st.Open(t)
		defer s.Close()
		root, err := transparency.TreeRoot(ctx, audit.Hashes(s), "node-1", 12)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(audit.Report{ChainID: "node-1", OK: true, RecordsChecked: 12, TreeSize: 12, Root: root[:]}, verify(t, s)); d != "" {
			t.Errorf("Verify after three restarts (-want +got):\n%s", d)
		}
	})

	t.Run("IdempotencyAcrossRestart", func(t *testing.T) {
		st := newStorage(t)
		keyed := func(n int, id string) *audit.Record {
			r := Decision(n)
			r.IdempotencyKey, r.Request.IdempotencyKey, r.Caller = "k1", "k1", "alice (mtls) from 10.0.0.1:5000"
			if id != "" {
				r.DecisionId = id
			}
			return r
		}
		var ce *audit.ConflictError
		s := st.Open(t)
		w := writer(t, s)
		if _, replayOf, err := w.Write(ctx, keyed(1, "")); err != nil || replayOf != nil {
			t.Fatalf("first write: replayOf %v, err %v", replayOf, err)
		}
		if _, replayOf, err := w.Write(ctx, keyed(1, "retry-1")); err != nil || replayOf.GetDecisionId() != "d001" {
			t.Errorf("retry: replayOf %v, err %v; want d001", replayOf.GetDecisionId(), err)
		}
		w.Close()
		s.Close()

		s = st.Open(t)
		defer s.Close()
		w = writer(t, s)
		defer w.Close()
		marker, replayOf, err := w.Write(ctx, keyed(1, "retry-2"))
		if err != nil || replayOf.GetDecisionId() != "d001" || marker.GetKind() != tollgatev1.RecordKind_RECORD_KIND_REPLAY {
			t.Errorf("retry after restart: marker kind %s, replayOf %v, err %v; want a REPLAY of d001", marker.GetKind(), replayOf.GetDecisionId(), err)
		}
		if _, _, err := w.Write(ctx, keyed(3, "")); !errors.As(err, &ce) || ce.OriginalID != "d001" {
			t.Errorf("other payload after restart: err = %v, want ConflictError naming d001", err)
		}
		w.Close()
		if rep := verify(t, s); !rep.OK || rep.RecordsChecked != 3 {
			t.Errorf("Verify = %+v; want OK with 3 records (decision and two markers)", rep)
		}
	})

	// Decision(4) is a DENY; each case changes its stored row.
	tampers := []struct {
		name    string
		edit    func(*Row)
		problem audit.Problem
	}{
		{"body", func(r *Row) {
			r.Body = bytes.Replace(r.Body, []byte(`"message":"m"`), []byte(`"message":"ok"`), 1)
		}, audit.ProblemHashMismatch},
		{"body and column", func(r *Row) {
			r.Effect = int32(tollgatev1.Effect_EFFECT_ALLOW)
			r.Body = bytes.Replace(r.Body, []byte(`"effect":"EFFECT_DENY"`), []byte(`"effect":"EFFECT_ALLOW"`), 1)
		}, audit.ProblemHashMismatch},
		{"indexed column", func(r *Row) { r.Effect = int32(tollgatev1.Effect_EFFECT_ALLOW) }, audit.ProblemCorrupt},
		// The body leaves the hash out (it is what the hash covers), so a
		// forged hash column is a hash that does not match the body.
		{"hash column", func(r *Row) { r.Hash = make([]byte, 32) }, audit.ProblemHashMismatch},
	}
	for _, tc := range tampers {
		t.Run("VerifyNamesTampered/"+tc.name, func(t *testing.T) {
			st := newStorage(t)
			s := st.Open(t)
			defer s.Close()
			w := writer(t, s)
			for i := range 10 {
				if _, _, err := w.Write(ctx, Decision(i)); err != nil {
					t.Fatal(err)
				}
			}
			w.Close()
			st.Rewrite(t, "d004", func(r *Row) {
				before := *r
				tc.edit(r)
				if r.Effect == before.Effect && bytes.Equal(r.Hash, before.Hash) && bytes.Equal(r.Body, before.Body) {
					t.Fatal("the edit changed nothing")
				}
			})
			want := audit.Report{ChainID: "node-1", RecordsChecked: 4, FirstBadSeq: 5, FirstBadDecisionID: "d004", Problem: tc.problem}
			if d := cmp.Diff(want, verify(t, s), ignoreDetail()); d != "" {
				t.Errorf("Verify (-want +got):\n%s", d)
			}
		})
	}

	for _, tc := range []struct {
		name string
		gone string
		want audit.Report
	}{
		{"truncated tail", "d009", audit.Report{ChainID: "node-1", RecordsChecked: 9, FirstBadSeq: 10, Problem: audit.ProblemTruncated}},
		{"gap", "d004", audit.Report{ChainID: "node-1", RecordsChecked: 4, FirstBadSeq: 6, FirstBadDecisionID: "d005", Problem: audit.ProblemSeqGap}},
	} {
		t.Run("VerifyNamesDeleted/"+tc.name, func(t *testing.T) {
			st := newStorage(t)
			s := st.Open(t)
			defer s.Close()
			w := writer(t, s)
			for i := range 10 {
				if _, _, err := w.Write(ctx, Decision(i)); err != nil {
					t.Fatal(err)
				}
			}
			w.Close()
			st.Delete(t, tc.gone)
			if d := cmp.Diff(tc.want, verify(t, s), ignoreDetail()); d != "" {
				t.Errorf("Verify (-want +got):\n%s", d)
			}
		})
	}
}

func ignoreDetail() cmp.Option {
	return cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "Detail" }, cmp.Ignore())
}
