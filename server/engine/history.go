package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/types"

	"github.com/tollgate/tollgate/server/history"
)

// BuiltinHistory is the name of the history built-in as policies call it:
//
//	tollgate.history(view, key) → {"count": n, "sums": {"USD": "8000.00"}, "decision_ids": [...], "unvalued": [...]}
//
// view names a view the bundle declares under params.history.views; key is the array of the view's key
// field values in declaration order (the built-in normalizes them as the view does). The answer covers
// the decisions recorded before this one in the view's window relative to the evaluation time
// (docs/history.md). It is non-deterministic, so its arguments and answer are recorded in the
// decision's facts and a replay reads them back instead of today's index.
const BuiltinHistory = "tollgate.history"

// errNoHistory is returned by the history built-in evaluated without an index in its context: during a
// replay whose facts do not hold the call (replay must not read today's history), or on a decision path
// that did not take the view keys' locks first.
var errNoHistory = errors.New("no decision history for this evaluation")

var historyDecl = &rego.Function{
	Name:        BuiltinHistory,
	Description: "Returns the decisions recorded before this one in a history view's window for a key: count, exact sums per currency, decision ids.",
	Decl: types.NewFunction(
		types.Args(types.Named("view", types.S), types.Named("key", types.NewArray(nil, types.S))),
		types.NewObject(nil, types.NewDynamicProperty(types.S, types.A)),
	),
	Nondeterministic: true,
}

// HistoryReader answers history queries; *history.Index is the implementation.
type HistoryReader interface {
	Views() history.Views
	Query(view, key string, t time.Time) (history.Result, error)
}

type historyKey struct{}

// HistoryGate is what a live decision needs before its history reads: the locks of its view keys and
// the index to read. The engine acquires it on the evaluator, once the decision's turn has come, so a
// decision waiting for an evaluator holds no key; a gate that cannot be acquired before the decision's
// deadline makes it a DENY with EVALUATION_TIMEOUT.
type HistoryGate interface {
	Acquire(ctx context.Context) (HistoryReader, error)
}

type historyGateKey struct{}

// WithHistoryGate returns a context whose live decisions acquire g before evaluation and read the
// history it gives.
func WithHistoryGate(ctx context.Context, g HistoryGate) context.Context {
	return context.WithValue(ctx, historyGateKey{}, g)
}

// WithHistory returns a context whose decisions read history from h. The decision path sets it after it
// has taken the locks of the request's view keys (history.Locks), so that the answer cannot go stale
// before the decision is recorded.
func WithHistory(ctx context.Context, h HistoryReader) context.Context {
	return context.WithValue(ctx, historyKey{}, h)
}

func historyFrom(ctx context.Context) (HistoryReader, error) {
	h, _ := ctx.Value(historyKey{}).(HistoryReader)
	if h == nil {
		return nil, errNoHistory
	}
	return h, nil
}

var (
	keyCount       = ast.InternedTerm("count")
	keySums        = ast.InternedTerm("sums")
	keyDecisionIDs = ast.InternedTerm("decision_ids")
	keyUnvalued    = ast.InternedTerm("unvalued")
)

func historyBuiltin(bctx rego.BuiltinContext, viewTerm, keyTerm *ast.Term) (*ast.Term, error) {
	view, err := stringOperand(viewTerm, "view")
	if err != nil {
		return nil, err
	}
	arr, ok := keyTerm.Value.(*ast.Array)
	if !ok {
		return nil, fmt.Errorf("key: want array of strings, got %s", ast.ValueName(keyTerm.Value))
	}
	values := make([]string, arr.Len())
	for i := range arr.Len() {
		s, ok := arr.Elem(i).Value.(ast.String)
		if !ok {
			return nil, fmt.Errorf("key[%d]: want string, got %s", i, ast.ValueName(arr.Elem(i).Value))
		}
		values[i] = string(s)
	}
	h, err := historyFrom(bctx.Context)
	if err != nil {
		return nil, err
	}
	key, err := h.Views().KeyFromValues(view, values)
	if err != nil {
		return nil, err
	}
	at, err := evalTime(bctx)
	if err != nil {
		return nil, err
	}
	res, err := h.Query(view, key, at)
	if err != nil {
		return nil, err
	}
	return ast.NewTerm(historyValue(res)), nil
}

// evalTime is the decision's evaluation time as the built-in context carries it (rego.EvalTime).
func evalTime(bctx rego.BuiltinContext) (time.Time, error) {
	if bctx.Time == nil {
		return time.Time{}, errors.New("no evaluation time")
	}
	n, ok := bctx.Time.Value.(ast.Number)
	if !ok {
		return time.Time{}, errors.New("evaluation time is not a number")
	}
	ns, ok := n.Int64()
	if !ok {
		return time.Time{}, errors.New("evaluation time is out of range")
	}
	return time.Unix(0, ns).UTC(), nil
}

// historyValue is a Result as policies read it; unvalued is always present, so a rule can test
// count(h.unvalued) without guarding for a missing field.
func historyValue(res history.Result) ast.Value {
	sums := make([][2]*ast.Term, 0, len(res.Sums))
	curs := make([]string, 0, len(res.Sums))
	for c := range res.Sums {
		curs = append(curs, c)
	}
	slices.Sort(curs)
	for _, c := range curs {
		sums = append(sums, [2]*ast.Term{ast.StringTerm(c), ast.StringTerm(res.Sums[c])})
	}
	return ast.NewObject(
		[2]*ast.Term{keyCount, ast.InternedTerm(res.Count)},
		[2]*ast.Term{keySums, ast.NewTerm(ast.NewObject(sums...))},
		[2]*ast.Term{keyDecisionIDs, stringArray(res.DecisionIDs)},
		[2]*ast.Term{keyUnvalued, stringArray(res.Unvalued)},
	)
}

func stringArray(ss []string) *ast.Term {
	terms := make([]*ast.Term, len(ss))
	for i, s := range ss {
		terms[i] = ast.StringTerm(s)
	}
	return ast.ArrayTerm(terms...)
}
