package audit_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
)

// TestChainBreakAtStart damages the tail of a 10-record chain in each way a
// start must notice, then checks that NewWriter refuses naming the break,
// that AcceptChainBreak writes a chain-break record linked to the last intact
// record before any decision, and how Verify reports the chain afterwards.
func TestChainBreakAtStart(t *testing.T) {
	tests := []struct {
		name   string
		tamper []string
		// want in the refusal's message
		problem string
		// lastIntact is the seq the break record links to; breakSeq its own seq.
		lastIntact, breakSeq uint64
		// firstBad is ChainBreak.first_bad_seq (0: none, e.g. a missing tail).
		firstBad uint64
	}{
		{"truncated tail", []string{
			"DELETE FROM record_reasons WHERE decision_id IN (SELECT decision_id FROM records WHERE seq > 7)",
			"DELETE FROM records WHERE seq > 7",
		}, "records after seq 7 are missing: the head names seq 10", 7, 11, 0},
		{"every record deleted", []string{"DELETE FROM record_reasons", "DELETE FROM records"},
			"the head names seq 10 but the chain has no records", 0, 11, 0},
		{"head rolled back", []string{"UPDATE chain_heads SET seq = 6, hash = (SELECT hash FROM records WHERE seq = 6)"},
			"records up to seq 10 lie beyond the head's seq 6", 10, 11, 0},
		{"head hash rewritten", []string{"UPDATE chain_heads SET hash = zeroblob(32)"},
			"the head's hash 0000000000000000… is not the last record's hash", 10, 11, 0},
		{"last record rewritten", []string{`UPDATE records SET body = json_set(body, '$.caller', 'mallory') WHERE seq = 10`},
			"the last record (seq 10) does not hash to its stored hash", 9, 11, 10},
		{"record before the last deleted", []string{"DELETE FROM record_reasons WHERE decision_id = 'd008'", "DELETE FROM records WHERE seq = 9"},
			"seq 9, before the last record, is missing", 8, 11, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			s := openStore(t, dir)
			w := newWriter(t, audit.Config{}, s)
			for i := 0; i < 10; i++ {
				if _, _, err := w.Write(ctx, audittest.Decision(i)); err != nil {
					t.Fatal(err)
				}
			}
			w.Close()
			db := rawDB(t, s)
			for _, q := range tc.tamper {
				exec(t, db, q)
			}

			_, err := audit.NewWriter(audit.Config{ChainID: "test"}, s, zerolog.Nop())
			var brk *audit.ChainBreakError
			if !errors.As(err, &brk) || !errors.Is(err, audit.ErrCorrupt) {
				t.Fatalf("NewWriter on a broken tail: err = %v, want a *ChainBreakError", err)
			}
			if !strings.Contains(err.Error(), "audit chain test is broken: "+tc.problem) {
				t.Errorf("refusal %q does not name the break %q", err, tc.problem)
			}
			if tc.firstBad != 0 && brk.FirstBadSeq != tc.firstBad {
				t.Errorf("refusal names first bad seq %d, want %d", brk.FirstBadSeq, tc.firstBad)
			}

			w2 := newWriter(t, audit.Config{AcceptChainBreak: true}, s)
			breakID := fmt.Sprintf("chain-break-test-%d", tc.breakSeq)
			rec, err := s.Get(ctx, breakID)
			if err != nil {
				t.Fatalf("chain-break record: %v", err)
			}
			cb := rec.GetChainBreak()
			if rec.GetKind() != tollgatev1.RecordKind_RECORD_KIND_CHAIN_BREAK || rec.GetSeq() != tc.breakSeq ||
				!strings.Contains(cb.GetProblem(), tc.problem) || !strings.Contains(cb.GetAcceptedBy(), "@") ||
				cb.GetHeadSeq() != brk.Head.Seq || cb.GetLastSeq() != brk.LastSeq || cb.GetFirstBadSeq() != tc.firstBad ||
				rec.GetEvaluatedAt() == nil || rec.GetRequest() != nil {
				t.Errorf("chain-break record = %v; want kind CHAIN_BREAK at seq %d naming %q, who and when", rec, tc.breakSeq, tc.problem)
			}
			prev := audit.GenesisHash()
			if tc.lastIntact > 0 {
				var intact *audit.Record
				_ = s.Chain(ctx, "test", tc.lastIntact, func(r *audit.Record) error { intact = r; return errors.New("stop") })
				prev = intact.GetHash()
			}
			if !bytes.Equal(rec.GetPrevHash(), prev) {
				t.Errorf("chain-break prev_hash does not link to the last intact record (seq %d)", tc.lastIntact)
			}

			// Decisions continue after the break and verify; the break stays reported.
			for i := 10; i < 13; i++ {
				r, _, err := w2.Write(ctx, audittest.Decision(i))
				if err != nil {
					t.Fatal(err)
				}
				if want := tc.breakSeq + uint64(i) - 9; r.Seq != want {
					t.Errorf("decision after the break has seq %d, want %d", r.Seq, want)
				}
			}
			rep := verify(t, s, "test")
			if rep.OK || rep.Problem != audit.ProblemAcceptedBreak || rep.FirstBadSeq != tc.breakSeq || rep.FirstBadDecisionID != breakID {
				t.Fatalf("Verify = %+v; want not OK, %q at the break record", rep, audit.ProblemAcceptedBreak)
			}
			if len(rep.AcceptedBreaks) != 1 || rep.AcceptedBreaks[0].AcceptedBy != cb.GetAcceptedBy() ||
				!strings.Contains(rep.Detail, "accepted by "+cb.GetAcceptedBy()) || !strings.Contains(rep.Detail, "the 3 records after it verify") {
				t.Errorf("Verify detail %q / breaks %+v: want who accepted it and 3 records verified after it", rep.Detail, rep.AcceptedBreaks)
			}
			t.Log(rep.Message())
			// A restart over the accepted break starts cleanly and writes no second break.
			w2.Close()
			w3 := newWriter(t, audit.Config{AcceptChainBreak: true}, s)
			w3.Close()
			if again := verify(t, s, "test"); len(again.AcceptedBreaks) != 1 {
				t.Errorf("restart wrote another break: %+v", again.AcceptedBreaks)
			}
			// Damage after the break is still found and wins over it.
			exec(t, db, `UPDATE records SET body = json_set(body, '$.caller', 'mallory') WHERE seq = ?`, tc.breakSeq+1)
			rep = verify(t, s, "test")
			if d := cmp.Diff(audit.ProblemHashMismatch, rep.Problem); d != "" || rep.FirstBadSeq != tc.breakSeq+1 {
				t.Errorf("Verify with damage after the break = %+v; want a hash mismatch at seq %d", rep, tc.breakSeq+1)
			}
		})
	}
}

// TestVerifyAllChainsPastAcceptedBreak: an accepted break in one chain does not stop Verify of every
// chain from finding damage in another, and is reported when nothing else is wrong.
func TestVerifyAllChainsPastAcceptedBreak(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	for _, chain := range []string{"a", "b"} {
		w := newWriter(t, audit.Config{ChainID: chain}, s)
		for i := 0; i < 4; i++ {
			r := audittest.Decision(i)
			r.DecisionId = chain + r.DecisionId
			if _, _, err := w.Write(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		w.Close()
	}
	db := rawDB(t, s)
	exec(t, db, "DELETE FROM record_reasons WHERE decision_id = 'ad003'")
	exec(t, db, "DELETE FROM records WHERE decision_id = 'ad003'")
	newWriter(t, audit.Config{ChainID: "a", AcceptChainBreak: true}, s).Close()

	rep := verify(t, s, "")
	if rep.Problem != audit.ProblemAcceptedBreak || rep.ChainID != "a" || rep.RecordsChecked != 3+1+4 {
		t.Errorf("Verify(all) = %+v; want chain a's accepted break, 8 records checked", rep)
	}
	exec(t, db, `UPDATE records SET body = json_set(body, '$.caller', 'mallory') WHERE decision_id = 'bd002'`)
	rep = verify(t, s, "")
	if rep.Problem != audit.ProblemHashMismatch || rep.ChainID != "b" || rep.FirstBadDecisionID != "bd002" {
		t.Errorf("Verify(all) = %+v; want chain b's hash mismatch at bd002", rep)
	}
}
