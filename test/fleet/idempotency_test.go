// Package fleet_test runs several Tollgate replicas against one PostgreSQL
// audit database (pgtest: TOLLGATE_TEST_POSTGRES, its own database per test).
package fleet_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
	"github.com/tollgate/tollgate/server/audit/postgres"
	"github.com/tollgate/tollgate/server/audit/postgres/pgtest"
	"github.com/tollgate/tollgate/test/testserver"
)

// replica is one service of the fleet; its audit appends can be held back.
type replica struct {
	*testserver.Server
	faults *audittest.FaultStore
}

func startReplica(t *testing.T, url, keyFile, id string) replica {
	t.Helper()
	var r replica
	r.Server = testserver.Start(t, app.Config{AuditStore: url, ReplicaID: id, PayloadKeyFile: keyFile, WrapAuditStore: func(s audit.Store) audit.Store {
		r.faults = audittest.NewFaultStore(s)
		return r.faults
	}})
	return r
}

// payloadKeyFile writes one payload key file for every replica of a test, as an operator gives every
// replica writing to one audit log the same --audit-payload-key.
func payloadKeyFile(t *testing.T) string {
	t.Helper()
	secret := make([]byte, audit.PayloadKeySize)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "audit-payload.key")
	if err := os.WriteFile(path, []byte(hex.EncodeToString(secret)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func keyed(key, amount string) *tollgatev1.DecideRequest {
	req := testserver.POSubmit("u-buyer", amount)
	req.IdempotencyKey = key
	return req
}

// TestRetryOnAnotherReplica: a retry that lands on another replica gets
// the original decision as a replay; the key with another payload is
// AlreadyExists there too.
func TestRetryOnAnotherReplica(t *testing.T) {
	ctx := context.Background()
	url, key := pgtest.NewDatabase(t), payloadKeyFile(t)
	a, b := startReplica(t, url, key, "replica-a"), startReplica(t, url, key, "replica-b")
	if a.App.AuditChain() != "replica-a" || b.App.AuditChain() != "replica-b" {
		t.Fatalf("audit chains %q, %q; want the replica ids", a.App.AuditChain(), b.App.AuditChain())
	}
	first, err := a.Client.Decide(ctx, keyed("order-1", "900.00"))
	if err != nil {
		t.Fatal(err)
	}
	retry, err := b.Client.Decide(ctx, keyed("order-1", "900.00"))
	if err != nil {
		t.Fatal(err)
	}
	if !retry.Replay || retry.DecisionId != first.DecisionId || retry.Effect != first.Effect {
		t.Errorf("retry on replica b: decision %s replay %v effect %s; want a replay of %s (%s)",
			retry.DecisionId, retry.Replay, retry.Effect, first.DecisionId, first.Effect)
	}
	_, err = b.Client.Decide(ctx, keyed("order-1", "950.00"))
	if status.Code(err) != codes.AlreadyExists {
		t.Errorf("same key, other payload on replica b: %v; want AlreadyExists", err)
	}
	// Auditors ask either replica and see both chains.
	for _, r := range []replica{a, b} {
		v, err := r.Client.VerifyLog(ctx, "")
		if err != nil || !v.Ok || v.RecordsChecked != 2 {
			t.Errorf("VerifyLog on %s = %v, %v; want OK over the decision and the replay marker", r.App.AuditChain(), v, err)
		}
	}
	got, err := a.Client.GetDecision(ctx, retry.DecisionId)
	if err != nil || got.GetChainId() != "replica-a" {
		t.Errorf("GetDecision on replica a: chain %q, %v", got.GetChainId(), err)
	}
}

// TestSameKeyAtTheSameInstant sends one idempotency key to two replicas at
// once. In the held rounds both replicas' appends are held back until both
// decisions reached the store, so neither replica can have seen the other's
// (their in-flight maps are their own): the database's unique index decides.
// The free rounds race unaided. Each key ends with exactly one decision
// record, and both callers are answered with its decision id.
func TestSameKeyAtTheSameInstant(t *testing.T) {
	ctx := context.Background()
	url, key := pgtest.NewDatabase(t), payloadKeyFile(t)
	reps := []replica{startReplica(t, url, key, "replica-a"), startReplica(t, url, key, "replica-b")}
	const held, free = 5, 20
	for round := range held + free {
		key := fmt.Sprintf("order-%d", round)
		var releases []func()
		var before []int
		if round < held {
			for _, r := range reps {
				before = append(before, r.faults.Appends())
				releases = append(releases, r.faults.BlockAppends())
			}
		}
		resps := make([]*tollgatev1.DecideResponse, len(reps))
		errs := make([]error, len(reps))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, r := range reps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				resps[i], errs[i] = r.Client.Decide(ctx, keyed(key, "900.00"))
			}()
		}
		close(start)
		if round < held {
			for i, r := range reps {
				for deadline := time.Now().Add(10 * time.Second); r.faults.Appends() < before[i]+1; time.Sleep(time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("round %d: replica %d's decision did not reach the store", round, i)
					}
				}
			}
			for _, release := range releases {
				release()
			}
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: replica %d: %v", round, i, err)
			}
		}
		if resps[0].DecisionId != resps[1].DecisionId || resps[0].Replay == resps[1].Replay {
			t.Errorf("round %d: answers %s (replay %v) and %s (replay %v); want one decision id, one fresh answer and one replay",
				round, resps[0].DecisionId, resps[0].Replay, resps[1].DecisionId, resps[1].Replay)
		}
	}

	// The database holds one decision and one replay marker per key, on the two chains, and both verify.
	s, err := postgres.Open(ctx, postgres.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	kinds := map[string]map[tollgatev1.RecordKind]int{}
	f := audit.Filter{PageSize: audit.MaxPageSize}
	for {
		page, err := s.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Records {
			if kinds[r.IdempotencyKey] == nil {
				kinds[r.IdempotencyKey] = map[tollgatev1.RecordKind]int{}
			}
			kinds[r.IdempotencyKey][r.Kind]++
		}
		if f.PageToken = page.NextPageToken; f.PageToken == "" {
			break
		}
	}
	for round := range held + free {
		key := fmt.Sprintf("order-%d", round)
		want := map[tollgatev1.RecordKind]int{tollgatev1.RecordKind_RECORD_KIND_DECISION: 1, tollgatev1.RecordKind_RECORD_KIND_REPLAY: 1}
		if got := kinds[key]; got[tollgatev1.RecordKind_RECORD_KIND_DECISION] != 1 || got[tollgatev1.RecordKind_RECORD_KIND_REPLAY] != 1 {
			t.Errorf("key %s: stored kinds %v, want %v", key, got, want)
		}
	}
	rep, err := audit.Verify(ctx, s, "")
	if err != nil || !rep.OK || rep.RecordsChecked != 2*(held+free) {
		t.Errorf("Verify = %+v, %v; want OK over %d records", rep, err, 2*(held+free))
	}
}
