package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/builtins"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/server/masterdata"
)

// DecisionQuery is the rule every policy bundle must define for every input.
const DecisionQuery = "data.tollgate.decision"

// Reason codes of the engine's own fail-closed paths (policy-pack §1).
const (
	CodePolicyError       = "POLICY_ERROR"
	CodePolicyUndefined   = "POLICY_UNDEFINED"
	CodeEvaluationTimeout = "EVALUATION_TIMEOUT"
)

// Effect is the outcome of a decision.
type Effect string

// The three effects of policy-pack §1.
const (
	Allow           Effect = "ALLOW"
	Deny            Effect = "DENY"
	RequireApproval Effect = "REQUIRE_APPROVAL"
)

// Reason explains a decision.
type Reason struct {
	Code    string
	Message string
}

// Result is everything a decision produced: what the caller is answered and what the audit record keeps.
type Result struct {
	Effect    Effect
	Reasons   []Reason // Reasons[0] is the primary reason; never empty
	Approvers []string
	// BundleRevision is the revision of the bundle that decided ("" when none was active).
	BundleRevision string
	// MasterdataRevision is the revision of the snapshot the policy read.
	MasterdataRevision uint64
	// EvaluatedAt is the clock the policy saw; replaying with it gives the same decision.
	EvaluatedAt time.Time
	// Facts holds every non-deterministic builtin call the evaluation made, master-data reads included,
	// with its result. Encode it with EncodeFacts for the audit record.
	Facts builtins.NDBCache
	// Failure is the engine's fail-closed code (CodePolicyError, …) when the decision is a DENY because
	// evaluation failed; "" otherwise.
	Failure string
}

// Config configures an Engine.
type Config struct {
	// EvalTimeout bounds one evaluation; a slower one is a DENY with EVALUATION_TIMEOUT.
	// Default 250ms.
	EvalTimeout time.Duration
	// Clock gives the evaluation time of each decision. Default time.Now; tests and decision cases set
	// a fixed instant.
	Clock func() time.Time
	// MaxConcurrent is the number of evaluator goroutines, so the evaluations running at once; further
	// decisions wait their turn in arrival order. Default GOMAXPROCS: evaluation is pure CPU, so more at
	// once only interleaves them, and every one finishes later than in turn.
	MaxConcurrent int
	// Capabilities are the built-ins bundles compiled by Engine.Compile may call. Default the safe set
	// (NewCapabilities(nil)).
	Capabilities *Capabilities
	// Gate gives the exactness gate every bundle Engine.Compile compiles must pass before its decisions
	// take the IR path (gatecorpus.Default in the service). Nil keeps every bundle on topdown.
	Gate func() (*Gate, error)
}

// DefaultEvalTimeout is the evaluation bound used when Config.EvalTimeout is zero.
const DefaultEvalTimeout = 250 * time.Millisecond

// Snapshotter gives a consistent read view of the master data.
type Snapshotter interface {
	Snapshot() *masterdata.Snapshot
}

// Engine evaluates decisions against the active policy bundle. It is safe for concurrent use.
type Engine struct {
	cfg    Config
	md     Snapshotter
	log    zerolog.Logger
	active atomic.Pointer[activation]
	// queue hands decisions to the MaxConcurrent evaluator goroutines. It is unbuffered, so a decision
	// waits in the channel's queue of senders, which Go serves first come, first served. Long-lived
	// evaluators also keep the deep stacks OPA's evaluation grows, instead of every gRPC handler
	// goroutine growing its own.
	queue chan *evaluation
	// recorded hands re-evaluations of recorded decisions (replay, impact analysis) to the same
	// evaluators, which take them only when no live decision is waiting in queue: an analysis of
	// thousands of records shares the evaluators without making a live decision wait its turn behind
	// them.
	recorded  chan *evaluation
	quit      chan struct{}
	closeOnce sync.Once
}

// evaluation is one decision on its way to an evaluator and back.
type evaluation struct {
	ctx  context.Context
	req  *Request
	done chan *Result
	// recorded is set for a re-evaluation of a recorded decision (replay, impact analysis); nil for a
	// live decision.
	recorded *recordedEval
}

// recordedEval is what a re-evaluation runs with instead of the active bundle, the clock and a snapshot.
type recordedEval struct {
	compiled *Compiled
	at       time.Time
	facts    builtins.NDBCache
}

// activation is the active compiled bundle; immutable once built.
type activation struct {
	*Compiled
	activatedAt time.Time
}

// New returns an Engine with no active bundle; every decision is a POLICY_ERROR DENY until Activate
// succeeds.
func New(cfg Config, md Snapshotter, log zerolog.Logger) (*Engine, error) {
	if md == nil {
		return nil, errors.New("engine: master data is required")
	}
	if cfg.EvalTimeout < 0 {
		return nil, fmt.Errorf("engine: eval timeout %s is negative", cfg.EvalTimeout)
	}
	if cfg.EvalTimeout == 0 {
		cfg.EvalTimeout = DefaultEvalTimeout
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.MaxConcurrent < 0 {
		return nil, fmt.Errorf("engine: max concurrent evaluations %d is negative", cfg.MaxConcurrent)
	}
	if cfg.MaxConcurrent == 0 {
		cfg.MaxConcurrent = runtime.GOMAXPROCS(0)
	}
	if cfg.Capabilities == nil {
		cfg.Capabilities = safeCapabilities()
	}
	e := &Engine{cfg: cfg, md: md, log: log.With().Str("component", "engine").Logger(),
		queue: make(chan *evaluation), recorded: make(chan *evaluation), quit: make(chan struct{})}
	for range cfg.MaxConcurrent {
		go e.evaluator()
	}
	return e, nil
}

// Close stops the evaluators; later decisions are DENY with POLICY_ERROR. Decisions being evaluated
// finish first.
func (e *Engine) Close() {
	e.closeOnce.Do(func() { close(e.quit) })
}

// evaluator runs queued decisions one at a time until Close, a waiting live decision before a waiting
// re-evaluation.
func (e *Engine) evaluator() {
	for {
		select {
		case ev := <-e.queue:
			ev.done <- e.evaluate(ev)
			continue
		default:
		}
		select {
		case ev := <-e.queue:
			ev.done <- e.evaluate(ev)
		case ev := <-e.recorded:
			ev.done <- e.evaluate(ev)
		case <-e.quit:
			return
		}
	}
}

// evaluate runs one decision. A panic inside OPA or a builtin is a DENY like every other failure; it
// must not take the evaluator, or the process, down.
func (e *Engine) evaluate(ev *evaluation) (res *Result) {
	defer func() {
		if p := recover(); p != nil {
			res = e.refuse(ev.req, CodePolicyError, "policy evaluation failed", fmt.Errorf("panic: %v", p))
		}
	}()
	if r := ev.recorded; r != nil {
		return e.evaluateRecorded(ev.ctx, r.compiled, ev.req, r.at, r.facts)
	}
	ctx := ev.ctx
	if g, _ := ctx.Value(historyGateKey{}).(HistoryGate); g != nil {
		h, err := g.Acquire(ctx)
		if err != nil {
			return e.refuse(ev.req, CodeEvaluationTimeout, "the request's deadline passed while it waited for another decision on the same history key", err)
		}
		ctx = WithHistory(ctx, h)
	}
	return e.decideAt(ctx, ev.req, e.cfg.Clock().UTC(), e.md.Snapshot())
}

// refuse is the DENY of a decision that was not evaluated to the end.
func (e *Engine) refuse(req *Request, code, msg string, cause error) *Result {
	sn := e.md.Snapshot()
	res := &Result{EvaluatedAt: e.cfg.Clock().UTC(), MasterdataRevision: sn.Revision(), Facts: builtins.NDBCache{}}
	if act := e.active.Load(); act != nil {
		res.BundleRevision = act.revision
	}
	return e.fail(res, req, code, msg, cause)
}

// Prepare compiles a bundle under the safe capabilities and prepares its decision query without
// activating it. It fails when the bundle does not compile, calls a built-in outside the capabilities,
// or does not define the decision rule.
func Prepare(ctx context.Context, b *bundle.Bundle) (rego.PreparedEvalQuery, error) {
	return prepare(ctx, b, safeCapabilities())
}

// ErrNoDecisionRule is returned for a bundle that compiles but has no rule for DecisionQuery: activated,
// every decision would be a POLICY_UNDEFINED DENY.
var ErrNoDecisionRule = errors.New("the bundle defines no rule " + DecisionQuery)

var decisionRef = ast.MustParseRef(DecisionQuery)

// decisionQuery is the rego options of b's decision query under caps, shared by every way the engine
// prepares it (topdown, the IR plan), so both paths compile the same policy. The compiler is ours, not
// rego's, so the compiled rule tree can be asked for the decision rule: a query for an undefined rule
// compiles, and would answer undefined for every input.
func decisionQuery(b *bundle.Bundle, caps *Capabilities) ([]func(*rego.Rego), *ast.Compiler) {
	compiler := ast.NewCompiler().
		WithCapabilities(caps.AST()).
		WithDefaultRegoVersion(ast.RegoV1).
		WithUseTypeCheckAnnotations(true)
	opts := []func(*rego.Rego){
		rego.Query(DecisionQuery),
		rego.Compiler(compiler),
		rego.ParsedBundle("tollgate", b),
		rego.SetRegoVersion(ast.RegoV1),
		// A built-in error (to_number("x"), json.unmarshal of junk) is an evaluation error, so a DENY
		// with POLICY_ERROR, not an undefined expression a policy could fall through to an ALLOW.
		rego.StrictBuiltinErrors(true),
	}
	return append(opts, regoBuiltins()...), compiler
}

func prepare(ctx context.Context, b *bundle.Bundle, caps *Capabilities) (rego.PreparedEvalQuery, error) {
	opts, compiler := decisionQuery(b, caps)
	pq, err := rego.New(append(opts, rego.StoreReadAST(true))...).PrepareForEval(ctx)
	if err != nil {
		return rego.PreparedEvalQuery{}, fmt.Errorf("compile bundle: %w", err)
	}
	if len(compiler.GetRulesForVirtualDocument(decisionRef)) == 0 {
		return rego.PreparedEvalQuery{}, fmt.Errorf("compile bundle: %w", ErrNoDecisionRule)
	}
	return pq, nil
}

// Compile compiles b under the engine's Config.Capabilities (see CompileWith) and starts its exactness
// gate (Config.Gate) in the background: the bundle decides on topdown until the gate passes, then on
// the IR path. A revision's verdict is reached once per process and shared by every later compile of
// it, for replay and impact analysis too.
func (e *Engine) Compile(ctx context.Context, b *bundle.Bundle) (*Compiled, error) {
	c, err := CompileWith(ctx, b, e.cfg.Capabilities)
	if err != nil {
		return nil, err
	}
	e.startGate(c)
	return c, nil
}

// Capabilities returns the built-ins the engine's bundles may call.
func (e *Engine) Capabilities() *Capabilities { return e.cfg.Capabilities }

// Activate makes c the active bundle atomically: decisions already running finish on the bundle they
// started with.
func (e *Engine) Activate(c *Compiled) {
	e.active.Store(&activation{Compiled: c, activatedAt: time.Now().UTC()})
	e.log.Info().Str("bundle_revision", c.revision).Msg("bundle activated")
}

// Active returns the active compiled bundle and when it was activated; nil when none is active.
func (e *Engine) Active() (*Compiled, time.Time) {
	a := e.active.Load()
	if a == nil {
		return nil, time.Time{}
	}
	return a.Compiled, a.activatedAt
}

// Decide evaluates req against the active bundle at the current time over a fresh master-data snapshot.
// It never fails: every error is a DENY with a reason code, logged.
// A decision waits for an evaluator (Config.MaxConcurrent) before it reads the clock and the snapshot;
// one whose ctx ends while it waits is a DENY with EVALUATION_TIMEOUT.
// The snapshot is taken after Decide is called, so a caller that has seen the master data reach a
// revision (a consistency token) gets a Result at that revision or a later one: revisions only grow.
func (e *Engine) Decide(ctx context.Context, req *Request) *Result {
	return e.submit(&evaluation{ctx: ctx, req: req}, e.refuse)
}

// submit queues ev for an evaluator and waits for its result; refuse makes the DENY of one that never
// started.
func (e *Engine) submit(ev *evaluation, refuse func(req *Request, code, msg string, cause error) *Result) *Result {
	select {
	case <-e.quit:
		return refuse(ev.req, CodePolicyError, "the engine is closed", nil)
	default:
	}
	ev.done = make(chan *Result, 1)
	queue := e.queue
	if ev.recorded != nil {
		queue = e.recorded
	}
	select {
	case queue <- ev:
		return <-ev.done
	case <-ev.ctx.Done():
		return refuse(ev.req, CodeEvaluationTimeout, "the request's deadline passed before its evaluation could start", ev.ctx.Err())
	case <-e.quit:
		return refuse(ev.req, CodePolicyError, "the engine is closed", nil)
	}
}

func (e *Engine) decideAt(ctx context.Context, req *Request, now time.Time, sn *masterdata.Snapshot) *Result {
	res := &Result{EvaluatedAt: now, MasterdataRevision: sn.Revision(), Facts: builtins.NDBCache{}}
	act := e.active.Load()
	if act == nil {
		return e.fail(res, req, CodePolicyError, "no policy bundle is active", nil)
	}
	res.BundleRevision = act.revision

	ctx, cancel := context.WithTimeout(withSnapshot(ctx, sn), e.cfg.EvalTimeout)
	defer cancel()
	rs, path, err := act.evalOn(ctx, req, now, res.Facts, "")
	res = e.finish(ctx, res, req, rs, err)
	if path == PathIR && res.Failure == "" {
		e.shadow(ctx, act.Compiled, req, res, sn)
	}
	return res
}

// finish turns an evaluation's outcome into a result, failing closed on every error.
func (e *Engine) finish(ctx context.Context, res *Result, req *Request, rs rego.ResultSet, err error) *Result {
	if code, msg, cause := e.interpret(ctx, res, rs, err); code != "" {
		return e.fail(res, req, code, msg, cause)
	}
	return res
}

// interpret reads an evaluation's outcome into res and returns the fail-closed code, message and cause
// of one that gave no valid decision ("" when it did).
func (e *Engine) interpret(ctx context.Context, res *Result, rs rego.ResultSet, err error) (code, msg string, cause error) {
	return interpret(ctx, res, rs, err, e.cfg.EvalTimeout)
}

func interpret(ctx context.Context, res *Result, rs rego.ResultSet, err error, timeout time.Duration) (code, msg string, cause error) {
	switch {
	case err != nil && (ctx.Err() != nil || topdown.IsCancel(err)):
		return CodeEvaluationTimeout, fmt.Sprintf("policy evaluation did not finish within %s", timeout), err
	case err != nil:
		return CodePolicyError, "policy evaluation failed", err
	case len(rs) == 0 || len(rs[0].Expressions) == 0:
		return CodePolicyUndefined, "the policy gave no decision for this request", nil
	case len(rs) > 1:
		return CodePolicyError, "the policy gave more than one decision", nil
	}
	if err := parseDecision(rs[0].Expressions[0].Value, res); err != nil {
		return CodePolicyError, "the policy gave a malformed decision", err
	}
	return "", "", nil
}

// rawTerm hands the evaluator's result term back unconverted, sparing a JSON round trip per decision.
func rawTerm(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }

// fail turns an evaluation failure into a DENY with code and logs it with the cause.
func (e *Engine) fail(res *Result, req *Request, code, msg string, cause error) *Result {
	res.Effect = Deny
	res.Reasons = []Reason{{Code: code, Message: msg}}
	res.Approvers = nil
	res.Failure = code
	ev := e.log.Error().Str("code", code).Str("action", req.Action).Str("actor_id", req.Actor.ID).
		Str("bundle_revision", res.BundleRevision)
	if cause != nil {
		ev = ev.Err(cause)
	}
	ev.Msg(msg)
	return res
}
