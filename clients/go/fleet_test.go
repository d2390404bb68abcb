package tollgate_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"

	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// namedReplica is a DecisionService at the network boundary that answers
// every decision with its own name as the decision id, so a test sees which
// replica answered.
type namedReplica struct {
	tollgatev1.UnimplementedDecisionServiceServer
	name string
}

func (r namedReplica) Decide(context.Context, *tollgatev1.DecideRequest) (*tollgatev1.DecideResponse, error) {
	return &tollgatev1.DecideResponse{DecisionId: r.name}, nil
}

// startReplicas starts n named replicas and returns their addresses and servers.
func startReplicas(t *testing.T, names ...string) ([]string, []*grpc.Server) {
	t.Helper()
	var addrs []string
	var srvs []*grpc.Server
	for _, name := range names {
		srv := grpc.NewServer()
		tollgatev1.RegisterDecisionServiceServer(srv, namedReplica{name: name})
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(lis) //nolint:errcheck // Serve returns when Stop runs
		t.Cleanup(srv.Stop)
		addrs = append(addrs, lis.Addr().String())
		srvs = append(srvs, srv)
	}
	return addrs, srvs
}

// TestDialFleetRoundRobin: a comma-separated target spreads calls over every
// replica, and a replica that stops is skipped: calls go on on the others.
func TestDialFleetRoundRobin(t *testing.T) {
	addrs, srvs := startReplicas(t, "a", "b", "c")
	c, err := tollgate.Dial(t.Context(), addrs[0]+","+addrs[1]+" , "+addrs[2])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// failed counts calls that got an error: a call already sent to a replica that stops fails
	// Unavailable (the caller retries it, with its idempotency key); only then is the replica skipped.
	failed := 0
	answered := func(calls int) map[string]int {
		t.Helper()
		seen := map[string]int{}
		for range calls {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			resp, err := c.Decisions().Decide(ctx, &tollgatev1.DecideRequest{}, grpc.WaitForReady(true))
			cancel()
			if err != nil {
				failed++
				continue
			}
			seen[resp.GetDecisionId()]++
		}
		return seen
	}
	// Round robin starts on the replicas as they become ready; after the first calls every one answers.
	answered(6)
	if seen := answered(30); len(seen) != 3 || failed > 0 {
		t.Fatalf("30 calls were answered by %v with %d failures, want all three replicas and none", seen, failed)
	}
	srvs[1].Stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		seen := answered(20)
		if seen["b"] == 0 && seen["a"] > 0 && seen["c"] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after replica b stopped, calls were answered by %v, want a and c only", seen)
		}
	}
	if failed > 1 {
		t.Errorf("%d calls failed after one replica stopped, want at most the one in flight", failed)
	}
}

func TestDialFleetRefusesBadTargets(t *testing.T) {
	if _, err := tollgate.Dial(t.Context(), "127.0.0.1:7070,tollgate.example.com:7070"); !errors.Is(err, tollgate.ErrNoTransportSecurity) {
		t.Errorf("a fleet with a remote replica over plaintext: error = %v, want ErrNoTransportSecurity", err)
	}
	if _, err := tollgate.Dial(t.Context(), "127.0.0.1:7070,no-port"); err == nil {
		t.Error("a fleet address without a port was accepted")
	}
	if _, err := tollgate.Dial(t.Context(), ",,"); err == nil {
		t.Error("a fleet target without an address was accepted")
	}
}
