package p2p

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
)

// Result is one workflow's end: its outcome, or the error that kept it
// from giving one.
type Result struct {
	WorkflowID string
	Order      Order
	Outcome    Outcome
	Err        error
}

// WorkflowID names the i-th (0-based) workflow of a run.
func WorkflowID(run string, i int) string { return fmt.Sprintf("p2p-%s-%03d", run, i+1) }

// RunAll runs one ProcureToPay workflow per order on [TaskQueue], at most
// parallel at a time (all at once when parallel < 1), lets humans approve
// what each waits for, and waits for every workflow to end. Results are in
// the orders' order; a workflow that could not be started or failed has its
// error in its Result.
func RunAll(ctx context.Context, c client.Client, humans *Humans, run string, orders []Order, parallel int) []Result {
	if parallel < 1 {
		parallel = len(orders)
	}
	slots := make(chan struct{}, parallel)
	results := make([]Result, len(orders))
	var wg sync.WaitGroup
	for i, o := range orders {
		results[i] = Result{WorkflowID: WorkflowID(run, i), Order: o}
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			runOne(ctx, c, humans, &results[i])
		})
	}
	wg.Wait()
	return results
}

func runOne(ctx context.Context, c client.Client, humans *Humans, r *Result) {
	we, err := start(ctx, c, r)
	if err != nil {
		r.Err = err
		return
	}
	approving, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { humans.Serve(approving, r.WorkflowID) })
	defer wg.Wait()
	defer stop()
	if err := we.Get(ctx, &r.Outcome); err != nil {
		r.Err = fmt.Errorf("workflow %s: %w", r.WorkflowID, err)
	}
}

// start starts r's workflow, trying again when the server is slow to
// answer: the workflow id makes the start idempotent, and a start that did
// succeed before is picked up.
func start(ctx context.Context, c client.Client, r *Result) (client.WorkflowRun, error) {
	opts := client.StartWorkflowOptions{ID: r.WorkflowID, TaskQueue: TaskQueue}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var we client.WorkflowRun
		if we, err = c.ExecuteWorkflow(ctx, opts, ProcureToPay, r.Order); err == nil {
			return we, nil
		}
		if _, started := errors.AsType[*serviceerror.WorkflowExecutionAlreadyStarted](err); started {
			if attempt == 0 {
				break // the id is taken by an earlier run, not by this start
			}
			return c.GetWorkflow(ctx, r.WorkflowID, ""), nil
		}
		if ctx.Err() != nil || !sleep(ctx, time.Second) {
			break
		}
	}
	return nil, fmt.Errorf("start %s: %w", r.WorkflowID, err)
}
