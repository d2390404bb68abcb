package engine

import (
	"errors"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
)

var (
	keyEffect    = ast.InternedTerm("effect")
	keyReasons   = ast.InternedTerm("reasons")
	keyApprovers = ast.InternedTerm("approvers")
	keyCode      = ast.InternedTerm("code")
	keyMessage   = ast.InternedTerm("message")
)

// parseDecision reads the policy's decision object into res, checking the contract of policy-pack §1:
// a known effect, at least one reason with a code, approvers exactly when approval is required.
func parseDecision(v any, res *Result) error {
	t, ok := v.(*ast.Term)
	if !ok {
		return fmt.Errorf("decision is %T, want an OPA term", v)
	}
	obj, ok := t.Value.(ast.Object)
	if !ok {
		return fmt.Errorf("decision is %s, want object", ast.ValueName(t.Value))
	}
	effect, ok := stringField(obj, keyEffect)
	if !ok {
		return errors.New("decision.effect is missing or not a string")
	}
	switch Effect(effect) {
	case Allow, Deny, RequireApproval:
		res.Effect = Effect(effect)
	default:
		return fmt.Errorf("decision.effect %q is not ALLOW, DENY or REQUIRE_APPROVAL", effect)
	}

	reasons, ok := arrayField(obj, keyReasons)
	if !ok || reasons.Len() == 0 {
		return errors.New("decision.reasons is missing or empty")
	}
	res.Reasons = make([]Reason, 0, reasons.Len())
	for i := range reasons.Len() {
		r, ok := reasons.Elem(i).Value.(ast.Object)
		if !ok {
			return fmt.Errorf("decision.reasons[%d] is not an object", i)
		}
		code, ok := stringField(r, keyCode)
		if !ok || code == "" {
			return fmt.Errorf("decision.reasons[%d].code is missing", i)
		}
		msg, _ := stringField(r, keyMessage)
		res.Reasons = append(res.Reasons, Reason{Code: code, Message: msg})
	}

	if approvers, ok := arrayField(obj, keyApprovers); ok && approvers.Len() > 0 {
		res.Approvers = make([]string, 0, approvers.Len())
		for i := range approvers.Len() {
			role, ok := approvers.Elem(i).Value.(ast.String)
			if !ok {
				return fmt.Errorf("decision.approvers[%d] is not a string", i)
			}
			res.Approvers = append(res.Approvers, string(role))
		}
	}
	if res.Effect == RequireApproval && len(res.Approvers) == 0 {
		return errors.New("decision requires approval but names no approvers")
	}
	if res.Effect != RequireApproval {
		// Approver roles only mean something on REQUIRE_APPROVAL; a DENY or ALLOW carries none.
		res.Approvers = nil
	}
	return nil
}

func stringField(obj ast.Object, key *ast.Term) (string, bool) {
	t := obj.Get(key)
	if t == nil {
		return "", false
	}
	s, ok := t.Value.(ast.String)
	return string(s), ok
}

func arrayField(obj ast.Object, key *ast.Term) (*ast.Array, bool) {
	t := obj.Get(key)
	if t == nil {
		return nil, false
	}
	a, ok := t.Value.(*ast.Array)
	return a, ok
}
