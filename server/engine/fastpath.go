package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown/builtins"

	"github.com/tollgate/tollgate/server/engine/irvm"
)

// The evaluation paths a decision can take.
const (
	// PathTopdown is OPA's own evaluator on the prepared query: the reference.
	PathTopdown = "topdown"
	// PathIR is package irvm over OPA's planner IR: the faster path, used only once the exactness gate
	// passed.
	PathIR = "ir"
)

// fastPath is a compiled bundle's IR program and the state of its exactness gate.
type fastPath struct {
	prog *irvm.Program // nil when the bundle cannot be planned or run by irvm
	data ast.Value     // the bundle's data document

	// fallbacks counts decisions on the IR path that met an irvm internal error and were decided on
	// topdown instead.
	fallbacks atomic.Int64
	// ir is set when the gate passed: decisions take the IR path unless demoted.
	ir atomic.Bool
	// The live shadow check (shadow.go): one decision in ShadowEvery on the IR path is decided again on
	// topdown in the background, over its own recorded facts; a difference demotes the bundle.
	decided    atomic.Int64
	shadowBusy atomic.Bool
	shadowed   atomic.Int64
	demoted    atomic.Bool

	mu     sync.Mutex
	status PathStatus
	ready  chan struct{} // closed once the gate has a verdict
}

// PathStatus tells which path a compiled bundle's decisions take, and why.
type PathStatus struct {
	// Path is PathIR or PathTopdown.
	Path string
	// Gate is "passed", "failed", "pending", "unsupported" (irvm cannot run the bundle) or "off" (the
	// engine has no gate corpus, so nothing is proven and topdown decides).
	Gate string
	// Reason explains a Gate other than passed: the first difference found, or why irvm refused.
	Reason string
	// Checked is the number of gate requests compared; Elapsed how long the gate took.
	Checked int
	Elapsed time.Duration
	// Fallbacks counts decisions on the IR path that met an irvm internal error (a bug, never the
	// policy's answer) and were decided on topdown instead.
	Fallbacks int64
	// ShadowChecks counts live decisions on the IR path decided again on topdown by the live shadow
	// check; a difference sets Gate to "failed" with the reason, and the bundle decides on topdown.
	ShadowChecks int64
}

// planFast plans b's decision query with the same compiler settings as prepare and readies an irvm
// program for it. An error means the bundle stays on topdown; it never fails the compile.
func planFast(ctx context.Context, b *bundle.Bundle, caps *Capabilities) (*irvm.Program, ast.Value, error) {
	opts, _ := decisionQuery(b, caps)
	prog, err := irvm.Compile(ctx, opts...)
	if err != nil {
		return nil, nil, err
	}
	data, err := ast.InterfaceToValue(b.Data)
	if err != nil {
		return nil, nil, fmt.Errorf("bundle data: %w", err)
	}
	return prog, data, nil
}

// evalIR evaluates req on the IR program, returning the decision term as the topdown path's
// rego.ResultSet would hold it, so finish treats both alike.
func (f *fastPath) evalIR(ctx context.Context, req *Request, now time.Time, facts builtins.NDBCache) (rego.ResultSet, error) {
	rs, err := f.prog.Eval(ctx, irvm.Env{Input: req.inputValue(), Data: f.data, Time: now, NDB: facts})
	if err != nil {
		return nil, err
	}
	out := make(rego.ResultSet, 0, len(rs))
	for _, r := range rs {
		// The plan's result set holds one object per answer, keyed by the query's variables; the
		// decision query has one expression, whose value rego reports under the generated "term0".
		obj, ok := r.Value.(ast.Object)
		if !ok || obj.Len() != 1 {
			return nil, fmt.Errorf("irvm: result %v is not a one-variable binding", r)
		}
		var v *ast.Term
		obj.Foreach(func(_, val *ast.Term) { v = val })
		out = append(out, rego.Result{Expressions: []*rego.ExpressionValue{{Value: v, Text: DecisionQuery}}})
	}
	return out, nil
}

// newFastPath readies the IR path of a compiled bundle; its gate verdict is still to come.
func newFastPath(ctx context.Context, b *bundle.Bundle, caps *Capabilities) *fastPath {
	f := &fastPath{ready: make(chan struct{})}
	prog, data, err := planFast(ctx, b, caps)
	if err != nil {
		f.status = PathStatus{Path: PathTopdown, Gate: GateUnsupported, Reason: err.Error()}
		close(f.ready)
		return f
	}
	f.prog, f.data = prog, data
	f.status = PathStatus{Path: PathTopdown, Gate: GatePending}
	return f
}

// Gate verdicts (PathStatus.Gate).
const (
	GatePassed      = "passed"
	GateFailed      = "failed"
	GatePending     = "pending"
	GateUnsupported = "unsupported"
	GateOff         = "off"
)

// useIR reports whether decisions on this bundle take the IR path: only after the gate passed.
func (f *fastPath) useIR() bool {
	return f != nil && f.prog != nil && f.ir.Load() && !f.demoted.Load()
}

// settle records the gate's verdict, once.
func (f *fastPath) settle(st PathStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.ready:
		return
	default:
	}
	f.status = st
	f.ir.Store(st.Path == PathIR)
	close(f.ready)
}

// PathStatus tells which path the bundle's decisions take and what its exactness gate found.
func (c *Compiled) PathStatus() PathStatus {
	if c.fast == nil {
		return PathStatus{Path: PathTopdown, Gate: GateOff}
	}
	c.fast.mu.Lock()
	defer c.fast.mu.Unlock()
	st := c.fast.status
	st.Fallbacks = c.fast.fallbacks.Load()
	st.ShadowChecks = c.fast.shadowed.Load()
	return st
}

// GateDone is closed once the bundle's exactness gate has a verdict (or none will come).
func (c *Compiled) GateDone() <-chan struct{} {
	if c.fast == nil {
		done := make(chan struct{})
		close(done)
		return done
	}
	return c.fast.ready
}

// eval evaluates req on the path the compiled bundle uses, or on the path forced. A decision on the
// path the bundle uses that meets an irvm internal error is decided again on topdown; the gate, which
// forces a path, sees the error as the IR path's answer.
func (c *Compiled) eval(ctx context.Context, req *Request, now time.Time, facts builtins.NDBCache, path string) (rego.ResultSet, error) {
	rs, _, err := c.evalOn(ctx, req, now, facts, path)
	return rs, err
}

// evalOn is eval that also says which path answered.
func (c *Compiled) evalOn(ctx context.Context, req *Request, now time.Time, facts builtins.NDBCache, path string) (rego.ResultSet, string, error) {
	live := path == ""
	if path == "" {
		path = PathTopdown
		if c.fast.useIR() {
			path = PathIR
		}
	}
	if path == PathIR && c.fast != nil && c.fast.prog != nil {
		rs, err := c.fast.evalIR(ctx, req, now, facts)
		var internal *irvm.InternalError
		if !errors.As(err, &internal) || !live {
			return rs, PathIR, err
		}
		// An evaluator bug is not the policy's answer: topdown decides, from a clean fact cache, and
		// the bundle says so in its fallback count.
		c.fast.fallbacks.Add(1)
		clear(facts)
	}
	rs, err := c.query.Eval(ctx,
		rego.EvalParsedInput(req.inputValue()),
		rego.EvalTime(now),
		rego.EvalNDBuiltinCache(facts),
		rego.EvalGenerateJSON(rawTerm),
	)
	return rs, PathTopdown, err
}
