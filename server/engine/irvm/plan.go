package irvm

import (
	"context"
	"errors"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/ir"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// planTarget is the rego target under which planCapture hands over the planner's IR. OPA's public hook
// for other evaluators (rego.TargetPlugin) is the only way to its planner outside OPA's own module.
const planTarget = "tollgate-irvm-plan"

func init() { rego.RegisterPlugin(planTarget, planCapture{}) }

// Compile plans the query the rego options describe (query, modules or bundle, compiler, custom
// built-ins: the options a rego.New for topdown takes) and readies it for evaluation. The plan is made
// by rego's own PrepareForEval, so compilation, and its errors, are exactly topdown's.
func Compile(ctx context.Context, opts ...func(*rego.Rego)) (*Program, error) {
	sink := &planSink{}
	opts = append(opts[:len(opts):len(opts)], rego.Target(planTarget))
	if _, err := rego.New(opts...).PrepareForEval(context.WithValue(ctx, planSinkKey{}, sink)); err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	return New(sink.policy, sink.builtins)
}

// planCapture is a rego.TargetPlugin that evaluates nothing: PrepareForEval stores the plan and the
// custom built-ins in the planSink Compile put in the context.
type planCapture struct{}

type planSinkKey struct{}

type planSink struct {
	policy   *ir.Policy
	builtins map[string]*topdown.Builtin
}

func (planCapture) IsTarget(t string) bool { return t == planTarget }

func (planCapture) PrepareForEval(ctx context.Context, policy *ir.Policy, opts ...rego.PrepareOption) (rego.TargetPluginEval, error) {
	sink, _ := ctx.Value(planSinkKey{}).(*planSink)
	if sink == nil {
		return nil, errors.New("irvm: the plan target is for irvm.Compile only")
	}
	cfg := &rego.PrepareConfig{}
	for _, o := range opts {
		o(cfg)
	}
	sink.policy, sink.builtins = policy, cfg.BuiltinFuncs()
	return noEval{}, nil
}

type noEval struct{}

func (noEval) Eval(context.Context, *rego.EvalContext, ast.Value) (ast.Value, error) {
	return nil, errors.New("irvm: the plan target does not evaluate")
}
