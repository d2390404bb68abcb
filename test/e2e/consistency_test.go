package e2e_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/test/testserver"
)

// revision is the service's master-data revision now.
func revision(t testing.TB, srv *testserver.Server) uint64 {
	t.Helper()
	st, err := srv.Client.MasterDataStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.GetRevision()
}

// recorded is the number of records in the service's audit log.
func recorded(t testing.TB, srv *testserver.Server) int64 {
	t.Helper()
	v, err := srv.Client.VerifyLog(context.Background(), "")
	if err != nil || !v.GetOk() {
		t.Fatalf("VerifyLog = %v, %v", v, err)
	}
	return int64(v.GetRecordsChecked())
}

// consistencyWaits reads tollgate_consistency_waits_total{outcome} from /metrics (0 if absent).
func consistencyWaits(t testing.TB, srv *testserver.Server, outcome string) string {
	t.Helper()
	prefix := fmt.Sprintf("tollgate_consistency_waits_total{outcome=%q} ", outcome)
	for line := range strings.Lines(httpGet(t, "http://"+srv.App.HTTPAddr().String()+"/metrics")) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), prefix); ok {
			return v
		}
	}
	return "0"
}

func withToken(req *tollgatev1.DecideRequest, min uint64) *tollgatev1.DecideRequest {
	req.MinMasterdataRevision = min
	return req
}

// TestConsistencyTokenWaitsForTheFeed asks for a decision on a user the replica does not know yet, with
// the revision that will add it: the decision waits until the event is applied and is evaluated on it.
func TestConsistencyTokenWaitsForTheFeed(t *testing.T) {
	srv := startServer(t, app.Config{ConsistencyWait: 10 * time.Second})
	ctx := context.Background()
	rev := revision(t, srv)

	type answer struct {
		resp *tollgatev1.DecideResponse
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		resp, err := srv.Client.Decide(ctx, withToken(poSubmit("u_late", "100.00"), rev+1))
		done <- answer{resp, err}
	}()
	select {
	case a := <-done:
		t.Fatalf("decided before the token's revision existed: %v, %v", a.resp, a.err)
	case <-time.After(200 * time.Millisecond):
	}
	if _, err := srv.Client.ApplyMasterData(ctx, []*tollgatev1.ChangeEvent{userEvent("u_late", "ev-late", 1, "ACTIVE")}); err != nil {
		t.Fatal(err)
	}
	a := <-done
	if a.err != nil {
		t.Fatal(a.err)
	}
	if a.resp.GetMasterdataRevision() < rev+1 || a.resp.GetReasons()[0].GetCode() == "UNKNOWN_USER" {
		t.Errorf("decision at revision %d with %v; want revision >= %d, on which u_late exists", a.resp.GetMasterdataRevision(), a.resp.GetReasons(), rev+1)
	}

	// A token the replica already has answers at once.
	for _, min := range []uint64{1, rev + 1} {
		resp, err := srv.Client.Decide(ctx, withToken(poSubmit("u_late", "100.00"), min))
		if err != nil || resp.GetMasterdataRevision() < min {
			t.Errorf("token %d: revision %d, %v; want revision >= token", min, resp.GetMasterdataRevision(), err)
		}
	}
	if got := consistencyWaits(t, srv, "waited"); got != "1" {
		t.Errorf("waits waited = %s, want 1", got)
	}
	if got := consistencyWaits(t, srv, "fresh"); got != "2" {
		t.Errorf("waits fresh = %s, want 2", got)
	}
}

// TestConsistencyTokenBehind: a replica that stays behind fails Unavailable, says by how much in the
// message and an ErrorInfo, records nothing, and counts it.
func TestConsistencyTokenBehind(t *testing.T) {
	for _, tc := range []struct {
		name     string
		wait     time.Duration
		deadline time.Duration // the server-side deadline of the call (--decision-timeout)
		minWait  time.Duration
	}{
		{"bounded wait", 300 * time.Millisecond, 0, 300 * time.Millisecond},
		{"no wait", -1, 0, 0},
		{"never past the call's deadline", time.Minute, 500 * time.Millisecond, 500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, app.Config{ConsistencyWait: tc.wait, DecisionTimeout: tc.deadline})
			ctx := context.Background()
			rev, before := revision(t, srv), recorded(t, srv)
			start := time.Now()
			_, err := srv.Client.Decide(ctx, withToken(poSubmit("u_buyer1", "100.00"), rev+5))
			took := time.Since(start)
			st := status.Convert(err)
			if st.Code() != codes.Unavailable {
				t.Fatalf("Decide with a token 5 ahead: %v; want Unavailable", err)
			}
			for _, want := range []string{fmt.Sprintf("at revision %d", rev), "5 behind", fmt.Sprintf("min_masterdata_revision %d", rev+5), "after waiting"} {
				if !strings.Contains(st.Message(), want) {
					t.Errorf("message %q lacks %q", st.Message(), want)
				}
			}
			if took < tc.minWait || took > tc.minWait+2*time.Second {
				t.Errorf("refused after %s; want about %s", took, tc.minWait)
			}
			var info *errdetails.ErrorInfo
			for _, d := range st.Details() {
				if i, ok := d.(*errdetails.ErrorInfo); ok {
					info = i
				}
			}
			want := map[string]string{"revision": fmt.Sprint(rev), "requested": fmt.Sprint(rev + 5), "behind": "5"}
			if info.GetReason() != "MASTERDATA_BEHIND" {
				t.Fatalf("details %v; want an ErrorInfo MASTERDATA_BEHIND", st.Details())
			}
			for k, v := range want {
				if info.GetMetadata()[k] != v {
					t.Errorf("ErrorInfo metadata %s = %q, want %q", k, info.GetMetadata()[k], v)
				}
			}
			if after := recorded(t, srv); after != before {
				t.Errorf("audit log grew from %d to %d records; a refused request is no decision", before, after)
			}
			if got := consistencyWaits(t, srv, "behind"); got != "1" {
				t.Errorf("waits behind = %s, want 1", got)
			}
		})
	}
}

// TestConsistencyTokenNotInIdempotencyPayload: a retry with another token is the same request, so it
// replays the original decision, even one evaluated on an older revision than the retry's token.
func TestConsistencyTokenNotInIdempotencyPayload(t *testing.T) {
	srv := startServer(t, app.Config{ConsistencyWait: 200 * time.Millisecond})
	ctx := context.Background()
	rev := revision(t, srv)
	keyed := func(min uint64) *tollgatev1.DecideRequest {
		req := withToken(poSubmit("u_buyer1", "100.00"), min)
		req.IdempotencyKey = "order-7"
		return req
	}
	first, err := srv.Client.Decide(ctx, keyed(rev))
	if err != nil {
		t.Fatal(err)
	}
	apply, err := srv.Client.ApplyMasterData(ctx, []*tollgatev1.ChangeEvent{userEvent("u_other", "ev-other", 1, "ACTIVE")})
	if err != nil {
		t.Fatal(err)
	}
	for _, min := range []uint64{0, apply.GetRevision()} {
		retry, err := srv.Client.Decide(ctx, keyed(min))
		if err != nil {
			t.Fatalf("retry with token %d: %v", min, err)
		}
		if !retry.GetReplay() || retry.GetDecisionId() != first.GetDecisionId() || retry.GetMasterdataRevision() != first.GetMasterdataRevision() {
			t.Errorf("retry with token %d: decision %s replay %v revision %d; want a replay of %s at revision %d",
				min, retry.GetDecisionId(), retry.GetReplay(), retry.GetMasterdataRevision(), first.GetDecisionId(), first.GetMasterdataRevision())
		}
	}
	// A retry whose token this replica does not have yet is refused like any request: it cannot know it
	// is a retry before it decides.
	if _, err := srv.Client.Decide(ctx, keyed(apply.GetRevision()+1)); status.Code(err) != codes.Unavailable {
		t.Errorf("retry with a token ahead: %v; want Unavailable", err)
	}
}

// TestConsistencyTokenBatch: a batch waits once for its highest token, then every answer is at least as
// fresh as its own; a batch that stays behind is refused whole, naming the request, and records nothing.
func TestConsistencyTokenBatch(t *testing.T) {
	srv := startServer(t, app.Config{ConsistencyWait: 10 * time.Second})
	ctx := context.Background()
	rev := revision(t, srv)
	go func() {
		time.Sleep(100 * time.Millisecond)
		_, _ = srv.Client.ApplyMasterData(ctx, []*tollgatev1.ChangeEvent{userEvent("u_batch", "ev-batch", 1, "ACTIVE")})
	}()
	reqs := []*tollgatev1.DecideRequest{
		withToken(poSubmit("u_buyer1", "100.00"), 0),
		withToken(poSubmit("u_batch", "100.00"), rev+1),
		withToken(poSubmit("u_buyer1", "100.00"), rev),
	}
	resps, err := srv.Client.DecideBatch(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, resp := range resps {
		if resp.GetMasterdataRevision() < reqs[i].GetMinMasterdataRevision() || resp.GetMasterdataRevision() < rev+1 {
			t.Errorf("requests[%d] with token %d: revision %d; want >= %d", i, reqs[i].GetMinMasterdataRevision(), resp.GetMasterdataRevision(), rev+1)
		}
	}
	if code := resps[1].GetReasons()[0].GetCode(); code == "UNKNOWN_USER" {
		t.Errorf("requests[1] decided without the user its token's revision added: %s", code)
	}

	slow := startServer(t, app.Config{ConsistencyWait: 100 * time.Millisecond})
	rev, before := revision(t, slow), recorded(t, slow)
	_, err = slow.Client.DecideBatch(ctx, []*tollgatev1.DecideRequest{
		withToken(poSubmit("u_buyer1", "100.00"), rev),
		withToken(poSubmit("u_buyer1", "100.00"), rev+3),
	})
	if st := status.Convert(err); st.Code() != codes.Unavailable || !strings.HasPrefix(st.Message(), "requests[1]: ") || !strings.Contains(st.Message(), "3 behind") {
		t.Errorf("batch with a token 3 ahead: %v; want Unavailable naming requests[1], 3 behind", err)
	}
	if after := recorded(t, slow); after != before {
		t.Errorf("audit log grew from %d to %d records; a refused batch decides nothing", before, after)
	}
}
