package audit_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
)

// TestKeyRaceBetweenWriters: two writers on one store (two replicas on one
// database), each on its own chain, receive the same idempotency key at the
// same instant. Both look the key up before either commits, so neither
// in-flight map can tell; the store's unique index refuses the second
// decision, and its caller gets what a retry gets: the first decision as a
// replay, or a ConflictError for another payload.
func TestKeyRaceBetweenWriters(t *testing.T) {
	for _, tc := range []struct {
		name         string
		otherPayload bool
	}{{"same payload", false}, {"other payload", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s := openStore(t, t.TempDir())
			f := audittest.NewFaultStore(s)
			var ws []*audit.Writer
			for _, chain := range []string{"replica-a", "replica-b"} {
				w, err := audit.NewWriter(audit.Config{ChainID: chain}, f, zerolog.Nop())
				if err != nil {
					t.Fatal(err)
				}
				defer w.Close()
				ws = append(ws, w)
			}
			before := f.Appends()
			release := f.BlockAppends()
			type result struct {
				stored, replayOf *audit.Record
				err              error
			}
			results := make([]result, 2)
			var wg sync.WaitGroup
			for i, w := range ws {
				r := keyed(1, "k")
				if tc.otherPayload && i == 1 {
					r = keyed(2, "k")
				}
				r.DecisionId = []string{"a-1", "b-1"}[i]
				wg.Add(1)
				go func() {
					defer wg.Done()
					var res result
					res.stored, res.replayOf, res.err = w.Write(ctx, r)
					results[i] = res
				}()
			}
			for deadline := time.Now().Add(5 * time.Second); f.Appends() < before+2; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the two writes did not both reach the store")
				}
			}
			release()
			wg.Wait()

			var first, second result
			switch {
			case results[0].err == nil && results[0].replayOf == nil:
				first, second = results[0], results[1]
			case results[1].err == nil && results[1].replayOf == nil:
				first, second = results[1], results[0]
			default:
				t.Fatalf("no write stored a decision: %+v", results)
			}
			if tc.otherPayload {
				var ce *audit.ConflictError
				if !errors.As(second.err, &ce) || ce.OriginalID != first.stored.DecisionId {
					t.Errorf("loser with another payload: err = %v, want ConflictError naming %s", second.err, first.stored.DecisionId)
				}
				return
			}
			if second.err != nil || second.replayOf.GetDecisionId() != first.stored.DecisionId ||
				second.stored.GetKind() != tollgatev1.RecordKind_RECORD_KIND_REPLAY || second.stored.GetReplayOf() != first.stored.DecisionId {
				t.Errorf("loser: stored %s kind %s replay_of %s, replayOf %s, err %v; want a REPLAY marker answering with %s",
					second.stored.GetDecisionId(), second.stored.GetKind(), second.stored.GetReplayOf(), second.replayOf.GetDecisionId(), second.err, first.stored.DecisionId)
			}
			rep, err := audit.Verify(ctx, s, "")
			if err != nil || !rep.OK || rep.RecordsChecked != 2 {
				t.Errorf("Verify = %+v, %v; want both chains OK with a decision and a marker", rep, err)
			}
		})
	}
}
