package authzen

import (
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// Decision is an Access Evaluation response (§6.2): decision is true only for ALLOW.
type Decision struct {
	Decision bool             `json:"decision"`
	Context  *DecisionContext `json:"context,omitempty"`
}

// DecisionContext is what Tollgate says beside the boolean. An answered decision fills every field
// but Error; an item that could not be evaluated has Error only.
type DecisionContext struct {
	// DecisionID names the audit record (tollgatectl audit get <id>).
	DecisionID string `json:"decision_id,omitempty"`
	// Effect is Tollgate's own: ALLOW, DENY or REQUIRE_APPROVAL.
	Effect string `json:"effect,omitempty"`
	// Reason is "approval_required" for REQUIRE_APPROVAL (the Access Request & Approval profile's
	// requestable denial), the primary reason code for DENY, and absent for ALLOW.
	Reason string `json:"reason,omitempty"`
	// Reasons are every reason of the decision, the primary first.
	Reasons []Reason `json:"reasons,omitempty"`
	// Approvers are the roles that must approve a REQUIRE_APPROVAL.
	Approvers          []string `json:"approvers,omitempty"`
	BundleRevision     string   `json:"bundle_revision,omitempty"`
	MasterdataRevision uint64   `json:"masterdata_revision,omitempty"`
	// Replay is true when the answer repeats an earlier decision with the same idempotency key.
	Replay bool       `json:"replay,omitempty"`
	Error  *ItemError `json:"error,omitempty"`
}

// Reason explains a decision: a stable UPPER_SNAKE code and a message.
type Reason struct {
	Code    string `json:"code"`
	Message string `json:"message,omitempty"`
}

// ItemError is why one item of an Access Evaluations request has no decision (§7.2.1): the HTTP status
// the same request would have got from the Access Evaluation endpoint, and its message.
type ItemError struct {
	Status  int    `json:"status"`
	Message string `json:"message"`
}

// EvaluationsResponse answers an Access Evaluations request in item order (§7.2).
type EvaluationsResponse struct {
	Evaluations []Decision `json:"evaluations"`
}

// ApprovalRequired is the reason of a REQUIRE_APPROVAL answer.
const ApprovalRequired = "approval_required"

// decisionFrom maps a Tollgate decision to its AuthZEN answer.
func decisionFrom(resp *tollgatev1.DecideResponse) Decision {
	c := &DecisionContext{
		DecisionID:         resp.GetDecisionId(),
		Effect:             effectName(resp.GetEffect()),
		Reasons:            make([]Reason, len(resp.GetReasons())),
		BundleRevision:     resp.GetBundleRevision(),
		MasterdataRevision: resp.GetMasterdataRevision(),
		Replay:             resp.GetReplay(),
	}
	for i, r := range resp.GetReasons() {
		c.Reasons[i] = Reason{Code: r.GetCode(), Message: r.GetMessage()}
	}
	switch resp.GetEffect() {
	case tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL:
		c.Reason, c.Approvers = ApprovalRequired, resp.GetApprovers()
	case tollgatev1.Effect_EFFECT_DENY:
		if len(c.Reasons) > 0 {
			c.Reason = c.Reasons[0].Code
		}
	}
	return Decision{Decision: resp.GetEffect() == tollgatev1.Effect_EFFECT_ALLOW, Context: c}
}

func effectName(e tollgatev1.Effect) string {
	switch e {
	case tollgatev1.Effect_EFFECT_ALLOW:
		return "ALLOW"
	case tollgatev1.Effect_EFFECT_DENY:
		return "DENY"
	case tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL:
		return "REQUIRE_APPROVAL"
	}
	return e.String()
}

// failed is the answer of an item that could not be evaluated: closed, with the error.
func failed(status int, msg string) Decision {
	return Decision{Context: &DecisionContext{Error: &ItemError{Status: status, Message: msg}}}
}
