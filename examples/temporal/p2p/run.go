package p2p

import (
	"context"
	"fmt"
	"sync"

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

// RunAll starts one ProcureToPay workflow per order on [TaskQueue], lets
// humans approve what each waits for, and waits for every workflow to end.
// Results are in the orders' order. A workflow that cannot be started or
// fails has its error in its Result.
func RunAll(ctx context.Context, c client.Client, humans *Humans, run string, orders []Order) []Result {
	results := make([]Result, len(orders))
	var wg sync.WaitGroup
	for i, o := range orders {
		results[i] = Result{WorkflowID: WorkflowID(run, i), Order: o}
		wg.Go(func() { runOne(ctx, c, humans, &results[i]) })
	}
	wg.Wait()
	return results
}

func runOne(ctx context.Context, c client.Client, humans *Humans, r *Result) {
	we, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: r.WorkflowID, TaskQueue: TaskQueue}, ProcureToPay, r.Order)
	if err != nil {
		r.Err = fmt.Errorf("start %s: %w", r.WorkflowID, err)
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
