package fleet_test

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/audit/postgres/pgtest"
	"github.com/tollgate/tollgate/test/testserver"
)

// splitPO is u_buyer1's PO of amount to demo supplier S8 at DC1: two of 4,000.00 within 24 h are a split
// purchase (TH-7).
func splitPO(id, amount string) *tollgatev1.DecideRequest {
	req := testserver.POSubmit("u_buyer1", amount)
	req.Resource.Id = id
	req.Resource.Attributes.Fields["supplier_id"] = structpb.NewStringValue("S8")
	return req
}

// TestHistoryAcrossReplicas: a PO decided on replica A counts on replica B once B's tail has read A's
// chain, so the second half of a split purchase sent to another replica still needs approval; B's
// tollgate_history_lag_seconds measured the delay.
func TestHistoryAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	url, key := pgtest.NewDatabase(t), payloadKeyFile(t)
	start := func(id string) *testserver.Server {
		return testserver.Start(t, app.Config{AuditStore: url, ReplicaID: id, PayloadKeyFile: key, HistoryTailInterval: 50 * time.Millisecond})
	}
	a, b := start("replica-a"), start("replica-b")

	first, err := a.Client.Decide(ctx, splitPO("PO-A", "4000.00"))
	if err != nil || first.GetEffect() != tollgatev1.Effect_EFFECT_ALLOW {
		t.Fatalf("first half on replica A: %v %v, want ALLOW", first.GetEffect(), err)
	}
	// Within the lag bound (the tail interval plus a poll), B sees it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		lag := lagCount(t, b)
		if lag >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("replica B's tail did not deliver replica A's decision within 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	second, err := b.Client.Decide(ctx, splitPO("PO-B", "4000.00"))
	if err != nil {
		t.Fatal(err)
	}
	if second.GetEffect() != tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL || second.GetReasons()[0].GetCode() != "PO_SPLIT_SUSPECTED" ||
		!strings.Contains(second.GetReasons()[0].GetMessage(), "8000.00") {
		t.Fatalf("second half on replica B: %s %v, want REQUIRE_APPROVAL PO_SPLIT_SUSPECTED over 8000.00", second.GetEffect(), second.GetReasons())
	}
	rec, err := b.Client.GetDecision(ctx, second.GetDecisionId())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rec.GetFactsJson(), first.GetDecisionId()) {
		t.Fatalf("replica B's decision did not record replica A's as read: %s", rec.GetFactsJson())
	}
}

var lagCountLine = regexp.MustCompile(`(?m)^tollgate_history_lag_seconds_count (\d+)$`)

// lagCount is how many records of other replicas srv's history tail has delivered.
func lagCount(t *testing.T, srv *testserver.Server) int {
	t.Helper()
	resp, err := http.Get("http://" + srv.App.HTTPAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	m := lagCountLine.FindSubmatch(body)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}
