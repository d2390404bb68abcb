package p2p

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// TaskQueue is the Temporal task queue the worker polls and the starter
// starts workflows on.
const TaskQueue = "procure-to-pay"

// SignalApproval is the signal an approver sends ([Approval]); QueryPending
// the query that shows which roles a workflow waits for ([Pending]).
const (
	SignalApproval = "approval"
	QueryPending   = "pending"
)

// Effects as the Tollgate API names them in JSON.
const (
	Allow           = "ALLOW"
	Deny            = "DENY"
	RequireApproval = "REQUIRE_APPROVAL"
)

// Status is how a workflow ended.
type Status string

// The workflow's final states.
const (
	// Completed: every step was allowed or approved; the payment is released.
	Completed Status = "COMPLETED"
	// Rejected: Tollgate denied a step, or did not allow an approval of it.
	Rejected Status = "REJECTED"
	// TimedOut: a step's approvals did not all arrive in Order.ApprovalTimeout.
	TimedOut Status = "TIMED_OUT"
)

// ReasonApprovalTimeout is the reason of a TIMED_OUT outcome; it is the
// workflow's, not Tollgate's.
const ReasonApprovalTimeout = "APPROVAL_TIMEOUT"

// Approval is the signal of one approver: user approves step for role. For
// a human task, user takes the step over.
type Approval struct {
	Step string `json:"step"`
	Role string `json:"role"`
	User string `json:"user"`
}

// Pending is what a workflow waits for: the roles of Step that have not
// approved yet. It is zero when the workflow waits for nobody.
type Pending struct {
	Step      string   `json:"step"`
	Action    string   `json:"action"`
	Site      string   `json:"site"`
	Creator   string   `json:"creator"`
	Roles     []string `json:"roles"`
	HumanTask bool     `json:"human_task"`
	Reasons   []Reason `json:"reasons"`
}

// Outcome is a workflow's result: its final state, the step it ended at,
// the reasons (the DENY's for REJECTED), and every decision it acted on.
type Outcome struct {
	Status    Status         `json:"status"`
	Step      string         `json:"step"`
	Reasons   []Reason       `json:"reasons"`
	Decisions []StepDecision `json:"decisions"`
}

// StepDecision is one decision the workflow acted on. Role is set for an
// approval (or a human task): the role it was asked for.
type StepDecision struct {
	Step   string `json:"step"`
	Key    string `json:"key"`
	Action string `json:"action"`
	Actor  string `json:"actor"`
	Role   string `json:"role,omitempty"`
	Decision
}

// activityOptions: a Decide answers in milliseconds, so a short
// start-to-close timeout lets a worker that died mid-call be noticed within
// seconds; retries go on until Tollgate answers, each with the same
// idempotency key.
var activityOptions = workflow.ActivityOptions{
	StartToCloseTimeout: 5 * time.Second,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:    200 * time.Millisecond,
		BackoffCoefficient: 2,
		MaximumInterval:    5 * time.Second,
	},
}

// ProcureToPay is the workflow: each of the order's steps in turn, asked
// before it is done. ALLOW goes on; DENY ends the workflow REJECTED with the
// reasons; REQUIRE_APPROVAL waits for an approval signal from each named
// role (one human taking over, for the AI allocation), each approval a
// decision of its own. Errors are only Temporal's (cancellation); Tollgate's
// answers are outcomes.
func ProcureToPay(ctx workflow.Context, o Order) (Outcome, error) {
	r := &run{
		order:      o,
		workflowID: workflow.GetInfo(ctx).WorkflowExecution.ID,
		approvals:  workflow.GetSignalChannel(ctx, SignalApproval),
	}
	if err := workflow.SetQueryHandler(ctx, QueryPending, func() (Pending, error) { return r.pending, nil }); err != nil {
		return Outcome{}, fmt.Errorf("set query handler: %w", err)
	}
	ctx = workflow.WithActivityOptions(ctx, activityOptions)
	for _, s := range o.steps() {
		r.outcome.Step = s.name
		ended, err := r.runStep(ctx, s)
		if err != nil || ended {
			return r.outcome, err
		}
	}
	r.outcome.Status = Completed
	return r.outcome, nil
}

// run is one workflow execution's state.
type run struct {
	order      Order
	workflowID string
	approvals  workflow.ReceiveChannel
	pending    Pending
	outcome    Outcome
}

// runStep asks for step s and acts on the answer; ended reports that the
// workflow ends here.
func (r *run) runStep(ctx workflow.Context, s step) (ended bool, err error) {
	ask := s.ask(r.order)
	ask.WorkflowID, ask.Step, ask.Key = r.workflowID, s.name, StepKey(r.workflowID, s.name)
	d, err := r.decide(ctx, ask, "")
	if err != nil {
		return true, err
	}
	switch d.Effect {
	case Allow:
		return false, nil
	case RequireApproval:
		return r.awaitApprovals(ctx, s, ask, d)
	default: // DENY, and any effect this workflow does not know: fail closed
		r.end(Rejected, d.Reasons)
		return true, nil
	}
}

// awaitApprovals waits for the roles of a REQUIRE_APPROVAL, one signal each,
// and asks Tollgate about each approval as the approving user.
func (r *run) awaitApprovals(ctx workflow.Context, s step, ask Ask, d Decision) (ended bool, err error) {
	roles := slices.Clone(d.Approvers)
	if s.humanTask && len(roles) > 1 {
		roles = roles[:1]
	}
	r.pending = Pending{Step: s.name, Action: ask.Action, Site: r.order.Site, Creator: ask.Actor,
		Roles: roles, HumanTask: s.humanTask, Reasons: d.Reasons}
	defer func() { r.pending = Pending{} }()

	timerCtx, cancelTimer := workflow.WithCancel(ctx)
	defer cancelTimer()
	var timeout workflow.Future
	if r.order.ApprovalTimeout > 0 {
		timeout = workflow.NewTimer(timerCtx, r.order.ApprovalTimeout)
	}
	for len(r.pending.Roles) > 0 {
		sig, ok := r.nextApproval(ctx, timeout)
		if !ok {
			r.end(TimedOut, []Reason{{Code: ReasonApprovalTimeout,
				Message: fmt.Sprintf("no approval from %v within %s", r.pending.Roles, r.order.ApprovalTimeout)}})
			return true, nil
		}
		if sig.Step != s.name || !slices.Contains(r.pending.Roles, sig.Role) {
			continue // late, repeated or for another step: that role is not waited for
		}
		approval := s.approve(r.order, sig.Role, sig.User)
		approval.WorkflowID, approval.Step = r.workflowID, s.name+"/approve/"+sig.Role
		approval.Key = ApprovalKey(r.workflowID, s.name, sig.Role, sig.User)
		ad, err := r.decide(ctx, approval, sig.Role)
		if err != nil {
			return true, err
		}
		if !Approves(ad, sig.Role) {
			r.end(Rejected, ad.Reasons)
			return true, nil
		}
		r.pending.Roles = slices.DeleteFunc(r.pending.Roles, func(role string) bool { return role == sig.Role })
	}
	return false, nil
}

// Approves reports whether an approver's own decision, asked for role,
// grants the approval: Tollgate allows it, or it names no role but the
// approver's own (the approver is the one it asks for).
func Approves(d Decision, role string) bool {
	switch d.Effect {
	case Allow:
		return true
	case RequireApproval:
		return len(d.Approvers) > 0 && !slices.ContainsFunc(d.Approvers, func(r string) bool { return r != role })
	default:
		return false
	}
}

// nextApproval waits for the next approval signal; ok is false when the
// approval timeout fired first.
func (r *run) nextApproval(ctx workflow.Context, timeout workflow.Future) (sig Approval, ok bool) {
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(r.approvals, func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, &sig)
		ok = true
	})
	if timeout != nil {
		sel.AddFuture(timeout, func(workflow.Future) {})
	}
	sel.Select(ctx)
	return sig, ok
}

// decide runs the Decide activity and records the decision in the outcome.
func (r *run) decide(ctx workflow.Context, ask Ask, role string) (Decision, error) {
	var d Decision
	if err := workflow.ExecuteActivity(ctx, ActivityDecide, ask).Get(ctx, &d); err != nil {
		return Decision{}, fmt.Errorf("step %s: %w", ask.Step, err)
	}
	r.outcome.Decisions = append(r.outcome.Decisions, StepDecision{
		Step: ask.Step, Key: ask.Key, Action: ask.Action, Actor: ask.Actor, Role: role, Decision: d,
	})
	return d, nil
}

func (r *run) end(status Status, reasons []Reason) {
	r.outcome.Status, r.outcome.Reasons = status, reasons
}
