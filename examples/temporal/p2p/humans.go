package p2p

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/client"
)

// approver is a demo user who approves for roles at sites (bundles/demo's
// 02-users.ndjson).
type approver struct {
	id    string
	roles []string
	sites []string
}

// demoApprovers lists the demo data's approvers in the order they are asked:
// the first that holds the role, covers the site and did not create the
// request.
func demoApprovers() []approver {
	both := []string{"DC1", "BR1"}
	return []approver{
		{"u_pm1", []string{"PROCUREMENT_MANAGER"}, both},
		{"u_pm2", []string{"PROCUREMENT_MANAGER"}, []string{"BR1"}},
		{"u_dir1", []string{"DIRECTOR_SUPPLY_CHAIN"}, both},
		{"u_cfo1", []string{"CFO"}, both},
		{"u_fc1", []string{"FINANCE_CONTROLLER"}, both},
		{"u_apsup1", []string{"AP_SUPERVISOR"}, both},
		{"u_apmgr1", []string{"AP_MANAGER"}, both},
		{"u_ctrl1", []string{"CONTROLLER"}, both},
		{"u_tmgr1", []string{"TREASURY_MANAGER"}, both},
		{"u_planner1", []string{"ALLOCATION_PLANNER"}, []string{"DC1"}},
		{"u_kam1", []string{"KEY_ACCOUNT_MANAGER"}, both},
	}
}

// Approver names the demo user who approves for role at site a request
// created by creator, or "" when no demo user may.
func Approver(role, site, creator string) string {
	for _, a := range demoApprovers() {
		if a.id != creator && slices.Contains(a.roles, role) && slices.Contains(a.sites, site) {
			return a.id
		}
	}
	return ""
}

// Humans plays the approvers of the demo: it watches a workflow's pending
// approvals and, after a think time, signals each role's approval by the
// demo user [Approver] names. It does not judge: Tollgate does, when the
// workflow asks as that user.
type Humans struct {
	Temporal client.Client
	// ThinkTime is how long a human takes before approving; nil is at once.
	ThinkTime func() time.Duration
	// Poll is how often pending approvals are looked at (default 500ms):
	// each look is a query the worker answers.
	Poll time.Duration
	// Logf, if set, is told of a role no demo user can approve for.
	Logf func(format string, args ...any)
}

// Serve acts for workflowID until ctx is done: the caller cancels it when
// the workflow has ended. A query that fails (no worker is running, say) is
// tried again at the next poll.
func (h *Humans) Serve(ctx context.Context, workflowID string) {
	poll := h.Poll
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	signalled := map[string]bool{}
	ticker := time.NewTicker(poll)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		p, err := h.pending(ctx, workflowID)
		if err != nil {
			continue
		}
		for _, role := range p.Roles {
			if signalled[p.Step+"/"+role] {
				continue
			}
			user := Approver(role, p.Site, p.Creator)
			if user == "" {
				if h.Logf != nil {
					h.Logf("%s: no demo user approves %s for %s at %s", workflowID, p.Step, role, p.Site)
				}
				signalled[p.Step+"/"+role] = true
				continue
			}
			if h.ThinkTime != nil && !sleep(ctx, h.ThinkTime()) {
				return
			}
			err := h.Temporal.SignalWorkflow(ctx, workflowID, "", SignalApproval, Approval{Step: p.Step, Role: role, User: user})
			if err == nil {
				signalled[p.Step+"/"+role] = true
			}
		}
	}
}

func (h *Humans) pending(ctx context.Context, workflowID string) (Pending, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	v, err := h.Temporal.QueryWorkflow(ctx, workflowID, "", QueryPending)
	if err != nil {
		return Pending{}, fmt.Errorf("query %s: %w", workflowID, err)
	}
	var p Pending
	if err := v.Get(&p); err != nil {
		return Pending{}, fmt.Errorf("query %s: %w", workflowID, err)
	}
	return p, nil
}

// sleep waits d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
