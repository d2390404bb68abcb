package authzen_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/authzen"
	"github.com/tollgate/tollgate/test/testserver"
)

// benchConcurrency is the number of requests in flight on each side, as test/perf's lower level.
const benchConcurrency = 16

// benchRounds alternates the two sides this many times, so a machine that slows down or speeds up
// during the run weighs on both alike.
const benchRounds = 10

// BenchmarkAuthZENvsGRPC sets AuthZEN over HTTP (JSON, one Access Evaluation per request, keep-alive
// connections) against gRPC Decide on the same requests against one running service: the same
// decisions, each recorded in the SQLite audit log, in sync mode and in async mode. It splits b.N
// decisions of each kind into benchRounds alternating rounds of benchConcurrency callers and reports
// each side's decisions/s and their ratio, authzen/grpc (1.0: AuthZEN costs nothing over gRPC). ns/op
// is for one decision of each.
//
//	go test -run '^$' -bench AuthZENvsGRPC -benchtime 4000x ./test/authzen/
func BenchmarkAuthZENvsGRPC(b *testing.B) {
	// Sync is the default and what a deployment runs; async takes the audit commit off the answer's
	// path, so the front door's own cost shows.
	for _, mode := range []audit.Mode{audit.ModeSync, audit.ModeAsync} {
		b.Run("audit="+string(mode), func(b *testing.B) {
			benchAuthZENvsGRPC(b, testserver.Start(b, app.Config{Audit: audit.Config{Mode: mode}}))
		})
	}
}

func benchAuthZENvsGRPC(b *testing.B, srv *testserver.Server) {
	reqs := benchRequests(b)
	bodies := make([][]byte, len(reqs))
	for i, r := range reqs {
		data, err := json.Marshal(asEvaluation(b, r))
		if err != nil {
			b.Fatal(err)
		}
		bodies[i] = data
	}
	url := "http://" + srv.App.HTTPAddr().String() + authzen.EvaluationPath
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchConcurrency}}
	ctx := context.Background()

	grpcOne := func(i int) error {
		resp, err := srv.Client.Decide(ctx, reqs[i%len(reqs)])
		if err == nil && resp.GetDecisionId() == "" {
			err = errNoDecision
		}
		return err
	}
	httpOne := func(i int) error { return postEvaluation(hc, url, bodies[i%len(bodies)]) }
	// Warm both paths (connections, the engine's caches) before timing.
	for i := range 2 * benchConcurrency {
		if err := grpcOne(i); err != nil {
			b.Fatal(err)
		}
		if err := httpOne(i); err != nil {
			b.Fatal(err)
		}
	}

	b.ResetTimer()
	var grpcTime, httpTime time.Duration
	for round := range benchRounds {
		n := b.N/benchRounds + boolInt(round < b.N%benchRounds)
		grpcTime += runConcurrently(b, n, grpcOne)
		httpTime += runConcurrently(b, n, httpOne)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/grpcTime.Seconds(), "grpc-decisions/s")
	b.ReportMetric(float64(b.N)/httpTime.Seconds(), "authzen-decisions/s")
	b.ReportMetric(grpcTime.Seconds()/httpTime.Seconds(), "authzen/grpc")
}

var errNoDecision = &benchError{"answer without a decision_id"}

type benchError struct{ msg string }

func (e *benchError) Error() string { return e.msg }

// runConcurrently makes n calls of one from benchConcurrency goroutines and returns the wall time.
func runConcurrently(b *testing.B, n int, one func(i int) error) time.Duration {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range benchConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := one(i); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// postEvaluation sends one Access Evaluation and decodes its answer, as a PEP would.
func postEvaluation(hc *http.Client, url string, body []byte) error {
	resp, err := hc.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return &benchError{resp.Status + ": " + string(data)}
	}
	var d authzen.Decision
	if err := json.Unmarshal(data, &d); err != nil {
		return err
	}
	if d.Context == nil || d.Context.DecisionID == "" {
		return errNoDecision
	}
	return nil
}

// benchRequests are the tour's purchase order at amounts across the threshold tiers and a malformed
// one: ALLOW, REQUIRE_APPROVAL and DENY answers.
func benchRequests(b *testing.B) []*tollgatev1.DecideRequest {
	var out []*tollgatev1.DecideRequest
	for _, amount := range []string{"100.00", "4999.99", "8000.00", "12000.00", "60000.00", "12abc"} {
		out = append(out, mustRequest(b, strings.Replace(tourRequest, "8000.00", amount, 1)))
	}
	return out
}

func boolInt(v bool) int {
	if v {
		return 1
	}
	return 0
}

// tourRequest is the README tour's request.json.
const tourRequest = `{
  "actor":    {"id": "u_buyer1", "type": "HUMAN"},
  "action":   "PO.SUBMIT",
  "resource": {"type": "purchase_order", "id": "PO-1001",
               "attributes": {"amount": "8000.00", "currency": "USD", "category": "MRO",
                              "site_id": "DC1", "supplier_id": "S1"}},
  "context":  {"workflow_id": "wf-77", "step": "approve"}
}`
