package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"

	tollgate "github.com/tollgate/tollgate/clients/go"
	"github.com/tollgate/tollgate/examples/temporal/p2p"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// The test's size: 20 workflows, the worker killed once about a fifth of
// the way in, and 30 % of the decisions failing once after they were
// answered.
const (
	workflows       = 20
	killAfter       = 25 // recorded decisions
	failAfterDecide = "0.3"
	runName         = "ci"
	seed            = 7
)

// TestProcureToPayUnderRetries runs the example's workflows on a real
// Temporal dev server with a real Tollgate while forcing activity retries
// (a worker killed mid-run and restarted, activities failing after their
// decision was answered), then checks, from the audit log, that no decision
// was duplicated, that every workflow ended as its decisions say it must,
// and that the audit chain verifies.
func TestProcureToPayUnderRetries(t *testing.T) {
	cli := temporalCLI(t)
	dir := t.TempDir()
	example, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(filepath.Dir(example))
	tollgateBin := goBuild(t, root, "./cmd/tollgate", filepath.Join(dir, "tollgate"))
	workerBin := goBuild(t, example, "./cmd/worker", filepath.Join(dir, "worker"))

	temporalAddr := "127.0.0.1:" + freePort(t)
	startProc(t, "temporal", dir, cli, "server", "start-dev", "--headless", "--ip", "127.0.0.1",
		"--port", strings.TrimPrefix(temporalAddr, "127.0.0.1:"), "--http-port", freePort(t), "--metrics-port", freePort(t),
		"--db-filename", filepath.Join(dir, "temporal.db"), "--log-level", "warn")
	tollgateAddr := "127.0.0.1:" + freePort(t)
	startProc(t, "tollgate", dir, tollgateBin, "serve", "--addr", tollgateAddr,
		"--http-addr", "127.0.0.1:"+freePort(t), "--data-dir", filepath.Join(dir, "tollgate-data"))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tc := dialTemporal(ctx, t, temporalAddr)
	tg := dialTollgate(ctx, t, tollgateAddr)

	orders := p2p.Orders(runName, workflows, seed)
	registerBuyers(ctx, t, tg, orders)
	workerArgs := []string{workerBin, "--temporal", temporalAddr, "--tollgate", tollgateAddr, "--fail-after-decide", failAfterDecide}
	worker := startProc(t, "worker", dir, workerArgs...)

	humans := &p2p.Humans{Temporal: tc, ThinkTime: func() time.Duration { return rand.N(300 * time.Millisecond) }}
	done := make(chan []p2p.Result, 1)
	go func() { done <- p2p.RunAll(ctx, tc, humans, runName, orders, workflows) }()

	waitForDecisions(ctx, t, tg, killAfter)
	worker.kill()
	select {
	case <-done:
		t.Fatalf("every workflow had ended before the worker was killed after %d decisions: kill earlier", killAfter)
	default:
	}
	time.Sleep(time.Second) // the restarted worker is a new one, not a reconnect
	startProc(t, "worker-restarted", dir, workerArgs...)

	var results []p2p.Result
	select {
	case results = <-done:
	case <-ctx.Done():
		t.Fatalf("workflows did not end in time: %v", ctx.Err())
	}
	var report strings.Builder
	p2p.WriteReport(&report, results)
	t.Logf("outcomes:\n%s", report.String())

	var replays int
	statuses := map[p2p.Status]int{}
	for _, r := range results {
		if r.Err != nil {
			t.Errorf("%s: %v", r.WorkflowID, r.Err)
			continue
		}
		statuses[r.Outcome.Status]++
		replays += checkWorkflow(ctx, t, tg, r)
	}
	if replays == 0 {
		t.Errorf("no replay marker in the audit log: the injected failures and the killed worker forced no retry")
	}
	if statuses[p2p.Completed] == 0 || statuses[p2p.Rejected] == 0 {
		t.Errorf("final states %v: want both COMPLETED and REJECTED workflows in the mix", statuses)
	}

	v, err := tg.VerifyLog(ctx, "")
	if err != nil {
		t.Fatalf("verify log: %v", err)
	}
	if !v.GetOk() {
		t.Errorf("audit log does not verify: %s at seq %d (%s)", v.GetProblem(), v.GetFirstBadSeq(), v.GetFirstBadDecisionId())
	}
	t.Logf("worker killed after %d decisions and restarted; %d replay markers recorded", killAfter, replays)
}

// checkWorkflow checks one workflow against its audit records and returns
// how many replay markers it has: exactly one decision per idempotency key,
// every replay marker naming that decision, the workflow's decisions being
// exactly the recorded ones, and its final state the one the recorded
// decisions call for.
func checkWorkflow(ctx context.Context, t *testing.T, tg *tollgate.Client, r p2p.Result) (replays int) {
	t.Helper()
	records := workflowRecords(ctx, t, tg, r.WorkflowID)
	byKey := map[string]*tollgatev1.DecisionRecord{}
	var decisions []*tollgatev1.DecisionRecord
	for _, rec := range records {
		key := rec.GetIdempotencyKey()
		if !strings.HasPrefix(key, r.WorkflowID+"/") {
			t.Errorf("%s: record %s has idempotency key %q, not one of this workflow's", r.WorkflowID, rec.GetDecisionId(), key)
		}
		if rec.GetKind() != tollgatev1.RecordKind_RECORD_KIND_DECISION {
			continue
		}
		if first, dup := byKey[key]; dup {
			t.Errorf("%s: key %q has two decisions, %s and %s", r.WorkflowID, key, first.GetDecisionId(), rec.GetDecisionId())
		}
		byKey[key] = rec
		decisions = append(decisions, rec)
	}
	for _, rec := range records {
		if rec.GetKind() != tollgatev1.RecordKind_RECORD_KIND_REPLAY {
			continue
		}
		replays++
		if orig := byKey[rec.GetIdempotencyKey()]; orig == nil || orig.GetDecisionId() != rec.GetReplayOf() {
			t.Errorf("%s: replay marker %s of key %q repeats %s, not the key's decision", r.WorkflowID, rec.GetDecisionId(), rec.GetIdempotencyKey(), rec.GetReplayOf())
		}
	}

	acted := map[string]bool{}
	for _, d := range r.Outcome.Decisions {
		if acted[d.Key] {
			t.Errorf("%s: the workflow acted twice on key %q", r.WorkflowID, d.Key)
		}
		acted[d.Key] = true
		rec := byKey[d.Key]
		switch {
		case rec == nil:
			t.Errorf("%s: the workflow acted on decision %s (key %q), which is not in the audit log", r.WorkflowID, d.DecisionID, d.Key)
		case rec.GetDecisionId() != d.DecisionID || effect(rec) != d.Effect:
			t.Errorf("%s: key %q: the workflow acted on %s %s, the audit log has %s %s", r.WorkflowID, d.Key, d.DecisionID, d.Effect, rec.GetDecisionId(), effect(rec))
		}
	}
	for key, rec := range byKey {
		if !acted[key] {
			t.Errorf("%s: decision %s (key %q) is recorded but the workflow did not act on it", r.WorkflowID, rec.GetDecisionId(), key)
		}
	}

	want := judge(decisions)
	got := outcome{Status: r.Outcome.Status, Step: r.Outcome.Step, Reasons: r.Outcome.Reasons}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s: final state does not follow from its decisions (-want +got):\n%s", r.WorkflowID, diff)
	}
	return replays
}

// outcome is the part of a workflow's result its decisions determine.
type outcome struct {
	Status  p2p.Status
	Step    string
	Reasons []p2p.Reason
}

// judge says how a workflow must have ended, from its decision records in
// the order they were made: a step goes on after ALLOW; after
// REQUIRE_APPROVAL only once each named role (the first, for the AI
// allocation's human task) has a granting approval; a DENY, or an approval
// that does not grant, ends it REJECTED with that decision's reasons; and
// only a workflow whose last step, the payment release, went through is
// COMPLETED.
func judge(records []*tollgatev1.DecisionRecord) outcome {
	var (
		waiting []string
		last    string
	)
	for _, rec := range records {
		step, role, approval := strings.Cut(rec.GetRequest().GetContext()["step"], "/approve/")
		last = step
		if !approval {
			if len(waiting) > 0 {
				return outcome{Status: "MOVED ON WITHOUT APPROVALS", Step: step}
			}
			switch effect(rec) {
			case p2p.Allow:
				continue
			case p2p.RequireApproval:
				waiting = slices.Clone(rec.GetApprovers())
				if step == p2p.StepAllocation {
					waiting = waiting[:1]
				}
				continue
			default:
				return outcome{Status: p2p.Rejected, Step: step, Reasons: reasons(rec)}
			}
		}
		if !slices.Contains(waiting, role) {
			return outcome{Status: "APPROVAL NOT ASKED FOR", Step: step}
		}
		granted := effect(rec) == p2p.Allow ||
			effect(rec) == p2p.RequireApproval && slices.Equal(rec.GetApprovers(), []string{role})
		if !granted {
			return outcome{Status: p2p.Rejected, Step: step, Reasons: reasons(rec)}
		}
		waiting = slices.DeleteFunc(waiting, func(r string) bool { return r == role })
	}
	switch {
	case len(waiting) > 0:
		return outcome{Status: p2p.TimedOut, Step: last}
	case last != p2p.StepPayment:
		return outcome{Status: "STOPPED WITHOUT A REASON", Step: last}
	}
	return outcome{Status: p2p.Completed, Step: last}
}

// workflowRecords lists a workflow's audit records, oldest first.
func workflowRecords(ctx context.Context, t *testing.T, tg *tollgate.Client, workflowID string) []*tollgatev1.DecisionRecord {
	t.Helper()
	var records []*tollgatev1.DecisionRecord
	for page, err := range tg.DecisionPages(ctx, &tollgatev1.ListDecisionsRequest{WorkflowId: workflowID, PageSize: 1000}) {
		if err != nil {
			t.Fatalf("list %s: %v", workflowID, err)
		}
		records = append(records, page.GetRecords()...)
	}
	slices.Reverse(records)
	return records
}

func effect(rec *tollgatev1.DecisionRecord) string {
	return strings.TrimPrefix(rec.GetEffect().String(), "EFFECT_")
}

func reasons(rec *tollgatev1.DecisionRecord) []p2p.Reason {
	var out []p2p.Reason
	for _, r := range rec.GetReasons() {
		out = append(out, p2p.Reason{Code: r.GetCode(), Message: r.GetMessage()})
	}
	return out
}

// quietLogger keeps the Temporal client's warnings and errors only.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// temporalCLI finds the Temporal CLI, or skips (fails, with
// TOLLGATE_REQUIRE_TEMPORAL=1) when it is not built.
func temporalCLI(t *testing.T) string {
	t.Helper()
	cli := os.Getenv("TEMPORAL_CLI")
	if cli == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatalf("home directory: %v", err)
		}
		cli = filepath.Join(home, ".cache", "tollgate", "temporal-v1.5.1", "temporal")
	}
	if _, err := os.Stat(cli); err != nil {
		msg := fmt.Sprintf("no Temporal CLI at %s (make temporal-cli builds it; TEMPORAL_CLI names another): %v", cli, err)
		if os.Getenv("TOLLGATE_REQUIRE_TEMPORAL") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return cli
}

// dialTemporal connects once the dev server answers its health check.
func dialTemporal(ctx context.Context, t *testing.T, addr string) client.Client {
	t.Helper()
	var lastErr error
	for ctx.Err() == nil {
		c, err := client.Dial(client.Options{HostPort: addr, Logger: log.NewStructuredLogger(quietLogger())})
		if err == nil {
			t.Cleanup(c.Close)
			return c
		}
		lastErr = err
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("temporal dev server at %s did not come up: %v", addr, lastErr)
	return nil
}

// dialTollgate connects once Tollgate answers.
func dialTollgate(ctx context.Context, t *testing.T, addr string) *tollgate.Client {
	t.Helper()
	tg, err := tollgate.Dial(ctx, addr)
	if err != nil {
		t.Fatalf("dial tollgate: %v", err)
	}
	t.Cleanup(func() { tg.Close() })
	for {
		_, err := tg.MasterDataStatus(ctx)
		if err == nil {
			return tg
		}
		if ctx.Err() != nil {
			t.Fatalf("tollgate at %s did not come up: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func registerBuyers(ctx context.Context, t *testing.T, tg *tollgate.Client, orders []p2p.Order) {
	t.Helper()
	events, err := p2p.BuyerEvents(orders)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tg.ApplyMasterData(ctx, events)
	if err != nil {
		t.Fatalf("register buyers: %v", err)
	}
	for _, r := range resp.GetResults() {
		if r.GetOutcome() != tollgatev1.EventOutcome_EVENT_OUTCOME_APPLIED {
			t.Fatalf("register buyers: %s: %s %s", r.GetEventId(), r.GetOutcome(), r.GetError())
		}
	}
}

// waitForDecisions waits until the audit log holds n decision records.
func waitForDecisions(ctx context.Context, t *testing.T, tg *tollgate.Client, n int) {
	t.Helper()
	for {
		resp, err := tg.ListDecisions(ctx, &tollgatev1.ListDecisionsRequest{PageSize: 1000})
		if err == nil && len(resp.GetRecords()) >= n {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("waiting for %d decisions: %v", n, errors.Join(err, ctx.Err()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
