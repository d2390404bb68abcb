package p2p_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"

	"github.com/tollgate/tollgate/examples/temporal/p2p"
)

// tollgateAnswers stands in for Tollgate at the activity boundary: it
// answers by the step's context.step (ALLOW when not listed) and records
// what was asked. The e2e test runs the real thing.
type tollgateAnswers struct {
	mu      sync.Mutex
	answers map[string]p2p.Decision
	asked   []p2p.Ask
}

func (f *tollgateAnswers) decide(_ context.Context, ask p2p.Ask) (p2p.Decision, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, ask)
	d, ok := f.answers[ask.Step]
	if !ok {
		d = p2p.Decision{Effect: p2p.Allow, Reasons: []p2p.Reason{{Code: "ALLOWED"}}}
	}
	d.DecisionID = "d-" + ask.Key
	return d, nil
}

func order() p2p.Order {
	return p2p.Order{
		PO: "PO-1", Buyer: "u_buyer1", Supplier: "S1", Site: "DC1", Category: "MRO",
		Lines: []p2p.Line{{Item: "I1", Qty: 100, UnitPriceCents: 1250, InvoicePriceCents: 1250, QtyReceived: 100, QtyInvoiced: 100}},
		ASN:   "ASN-1", Receiver: "u_rc1",
		Allocation: &p2p.Allocation{Agent: "agent_alloc", ModelVersion: "alloc-2026.11", Confidence: 0.95,
			Customer: "C1", Item: "I1", Qty: 10, ValueCents: 12500},
		InvoiceRef: "INV-1", InvoiceDate: "2026-11-20", PostingDate: "2026-11-30", Company: "ACME",
		APClerk: "u_ap1", Treasurer: "u_treas1", ApprovalTimeout: time.Hour,
	}
}

func requireApproval(roles ...string) p2p.Decision {
	return p2p.Decision{Effect: p2p.RequireApproval, Reasons: []p2p.Reason{{Code: "NEEDS_APPROVAL"}}, Approvers: roles}
}

// signal is an approval sent after a delay of workflow time.
type signal struct {
	after time.Duration
	p2p.Approval
}

// execute runs the workflow on Temporal's test environment with the fake
// Tollgate and the given approval signals, and returns its outcome and the
// questions asked.
func execute(t *testing.T, o p2p.Order, answers map[string]p2p.Decision, signals ...signal) (p2p.Outcome, []p2p.Ask) {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	fake := &tollgateAnswers{answers: answers}
	env.RegisterActivityWithOptions(fake.decide, activity.RegisterOptions{Name: p2p.ActivityDecide})
	for _, s := range signals {
		env.RegisterDelayedCallback(func() { env.SignalWorkflow(p2p.SignalApproval, s.Approval) }, s.after)
	}
	env.ExecuteWorkflow(p2p.ProcureToPay, o)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow: %v", err)
	}
	var out p2p.Outcome
	if err := env.GetWorkflowResult(&out); err != nil {
		t.Fatal(err)
	}
	return out, fake.asked
}

// steps lists the context.step of each question, in order.
func steps(asked []p2p.Ask) []string {
	out := make([]string, len(asked))
	for i, a := range asked {
		out[i] = a.Step
	}
	return out
}

func TestWorkflowAllowedThroughout(t *testing.T) {
	out, asked := execute(t, order(), nil)
	if out.Status != p2p.Completed || out.Step != p2p.StepPayment {
		t.Errorf("outcome %s at %s, want COMPLETED at %s", out.Status, out.Step, p2p.StepPayment)
	}
	want := []string{p2p.StepPOSubmit, p2p.StepGoodsReceipt, p2p.StepAllocation, p2p.StepInvoiceMatch, p2p.StepInvoicePost, p2p.StepPayment}
	if diff := cmp.Diff(want, steps(asked)); diff != "" {
		t.Errorf("steps asked (-want +got):\n%s", diff)
	}
	for _, a := range asked {
		if a.WorkflowID == "" || a.Key != p2p.StepKey(a.WorkflowID, a.Step) {
			t.Errorf("step %s: workflow id %q, key %q: want the key derived from the workflow id and the step", a.Step, a.WorkflowID, a.Key)
		}
	}
	if ai := asked[2]; ai.ActorType != p2p.AIAgent || ai.AI == nil || ai.AI.Mode != "EXECUTE" {
		t.Errorf("allocation asked as %s %s with ai %+v, want the AI agent executing", ai.ActorType, ai.Actor, ai.AI)
	}
}

func TestWorkflowDenyEndsWithReasons(t *testing.T) {
	deny := p2p.Decision{Effect: p2p.Deny, Reasons: []p2p.Reason{{Code: "DUPLICATE_ASN", Message: "already received"}}}
	out, asked := execute(t, order(), map[string]p2p.Decision{p2p.StepGoodsReceipt: deny})
	want := p2p.Outcome{Status: p2p.Rejected, Step: p2p.StepGoodsReceipt, Reasons: deny.Reasons}
	if diff := cmp.Diff(want, out, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Decisions" }, cmp.Ignore())); diff != "" {
		t.Errorf("outcome (-want +got):\n%s", diff)
	}
	if len(asked) != 2 || len(out.Decisions) != 2 {
		t.Errorf("asked %v and acted on %d decisions, want the two steps up to the DENY", steps(asked), len(out.Decisions))
	}
}

func TestWorkflowWaitsForEachNamedRole(t *testing.T) {
	answers := map[string]p2p.Decision{p2p.StepPOSubmit: requireApproval("PROCUREMENT_MANAGER", "DIRECTOR_SUPPLY_CHAIN")}
	out, asked := execute(t, order(), answers,
		signal{time.Minute, p2p.Approval{Step: p2p.StepInvoicePost, Role: "CONTROLLER", User: "u_ctrl1"}}, // not waited for: ignored
		signal{2 * time.Minute, p2p.Approval{Step: p2p.StepPOSubmit, Role: "DIRECTOR_SUPPLY_CHAIN", User: "u_dir1"}},
		signal{3 * time.Minute, p2p.Approval{Step: p2p.StepPOSubmit, Role: "DIRECTOR_SUPPLY_CHAIN", User: "u_dir1"}}, // repeated: ignored
		signal{4 * time.Minute, p2p.Approval{Step: p2p.StepPOSubmit, Role: "PROCUREMENT_MANAGER", User: "u_pm1"}},
	)
	if out.Status != p2p.Completed {
		t.Fatalf("outcome %s at %s %v, want COMPLETED", out.Status, out.Step, out.Reasons)
	}
	got := steps(asked)[:3]
	want := []string{p2p.StepPOSubmit, "po.submit/approve/DIRECTOR_SUPPLY_CHAIN", "po.submit/approve/PROCUREMENT_MANAGER"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("first questions (-want +got):\n%s", diff)
	}
	approval := asked[1]
	if approval.Action != "PO.APPROVE" || approval.Actor != "u_dir1" || approval.Attributes["created_by"] != "u_buyer1" ||
		approval.Key != p2p.ApprovalKey(approval.WorkflowID, p2p.StepPOSubmit, "DIRECTOR_SUPPLY_CHAIN", "u_dir1") {
		t.Errorf("approval asked as %+v, want PO.APPROVE by u_dir1 naming the buyer, keyed by step, role and approver", approval)
	}
	if out.Decisions[1].Role != "DIRECTOR_SUPPLY_CHAIN" {
		t.Errorf("approval decision recorded with role %q", out.Decisions[1].Role)
	}
}

func TestWorkflowApprovalNotGrantedRejects(t *testing.T) {
	limit := p2p.Decision{Effect: p2p.Deny, Reasons: []p2p.Reason{{Code: "APPROVAL_LIMIT_EXCEEDED"}}}
	answers := map[string]p2p.Decision{
		p2p.StepPOSubmit:                        requireApproval("PROCUREMENT_MANAGER"),
		"po.submit/approve/PROCUREMENT_MANAGER": limit,
	}
	out, _ := execute(t, order(), answers, signal{time.Minute, p2p.Approval{Step: p2p.StepPOSubmit, Role: "PROCUREMENT_MANAGER", User: "u_pm1"}})
	if out.Status != p2p.Rejected || out.Step != p2p.StepPOSubmit || !cmp.Equal(out.Reasons, limit.Reasons) {
		t.Errorf("outcome %s at %s %v, want REJECTED at po.submit with the approval's reasons", out.Status, out.Step, out.Reasons)
	}
}

func TestWorkflowAIHandsOverToOneHuman(t *testing.T) {
	answers := map[string]p2p.Decision{
		p2p.StepAllocation: requireApproval("ALLOCATION_PLANNER", "KEY_ACCOUNT_MANAGER"),
		// Tollgate names the planner again when the planner asks: that is the planner's call.
		"allocation/approve/ALLOCATION_PLANNER": requireApproval("ALLOCATION_PLANNER"),
	}
	out, asked := execute(t, order(), answers, signal{time.Minute, p2p.Approval{Step: p2p.StepAllocation, Role: "ALLOCATION_PLANNER", User: "u_planner1"}})
	if out.Status != p2p.Completed {
		t.Fatalf("outcome %s at %s %v, want COMPLETED", out.Status, out.Step, out.Reasons)
	}
	human := asked[3]
	if human.Step != "allocation/approve/ALLOCATION_PLANNER" || human.ActorType != p2p.Human || human.Actor != "u_planner1" || human.AI != nil || human.Action != "ALLOCATION.CREATE" {
		t.Errorf("human task asked as %+v, want ALLOCATION.CREATE by the planner as a human", human)
	}
}

func TestWorkflowApprovalTimesOut(t *testing.T) {
	o := order()
	o.ApprovalTimeout = 10 * time.Minute
	out, _ := execute(t, o, map[string]p2p.Decision{p2p.StepPayment: requireApproval("TREASURY_MANAGER")})
	if out.Status != p2p.TimedOut || out.Step != p2p.StepPayment || len(out.Reasons) != 1 || out.Reasons[0].Code != p2p.ReasonApprovalTimeout ||
		!strings.Contains(out.Reasons[0].Message, "TREASURY_MANAGER") {
		t.Errorf("outcome %+v, want TIMED_OUT at payment.release naming the missing role", out)
	}
}

func TestApproves(t *testing.T) {
	for _, tc := range []struct {
		d    p2p.Decision
		want bool
	}{
		{p2p.Decision{Effect: p2p.Allow}, true},
		{requireApproval("TREASURY_MANAGER"), true},
		{requireApproval("TREASURY_MANAGER", "CFO"), false},
		{requireApproval(), false},
		{p2p.Decision{Effect: p2p.Deny}, false},
		{p2p.Decision{Effect: "SOMETHING_NEW"}, false},
	} {
		if got := p2p.Approves(tc.d, "TREASURY_MANAGER"); got != tc.want {
			t.Errorf("Approves(%s %v, TREASURY_MANAGER) = %v, want %v", tc.d.Effect, tc.d.Approvers, got, tc.want)
		}
	}
}

func TestOrdersAreReproducibleAndAvoidSplitPurchases(t *testing.T) {
	a, b := p2p.Orders("r", 100, 3), p2p.Orders("r", 100, 3)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Fatalf("same seed, different orders (-first +second):\n%s", diff)
	}
	seen := map[[3]string]string{}
	for _, o := range a {
		k := [3]string{o.Buyer, o.Supplier, o.Site}
		if first, dup := seen[k]; dup {
			t.Errorf("%s and %s: same buyer, supplier and site in one run", first, o.PO)
		}
		seen[k] = o.PO
	}
	events, err := p2p.BuyerEvents(a)
	if err != nil {
		t.Fatal(err)
	}
	registered := map[string]bool{}
	for _, e := range events {
		registered[e.GetKey()] = true
	}
	for _, o := range a {
		if !registered[o.Buyer] {
			t.Errorf("%s: buyer %s is not registered", o.PO, o.Buyer)
		}
	}
}
