package engine

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown/builtins"

	"github.com/tollgate/tollgate/server/engine/irvm"
	"github.com/tollgate/tollgate/server/masterdata"
)

// EncodeFactsReference is the encoding EncodeFacts must reproduce byte for byte: every value through
// ast.JSON and encoding/json, the list through json.Marshal. Tests compare the two.
func EncodeFactsReference(cache builtins.NDBCache) ([]byte, error) {
	facts := []Fact{}
	names := make([]string, 0, len(cache))
	for name := range cache {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		err := cache[name].Iter(func(k, v *ast.Term) error {
			args, err := json.Marshal(mustJSON(k.Value))
			if err != nil {
				return err
			}
			result, err := json.Marshal(mustJSON(v.Value))
			if err != nil {
				return err
			}
			facts = append(facts, Fact{Builtin: name, Args: args, Result: result})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return json.Marshal(facts)
}

// TamperIRData makes c's IR path read a data document without the bundle's params,
// so that the two paths decide differently: what a planner or evaluator bug would look like.
func TamperIRData(tb testing.TB, c *Compiled) {
	tb.Helper()
	tampered, err := ast.InterfaceToValue(map[string]any{"params": map[string]any{}})
	if err != nil {
		tb.Fatal(err)
	}
	c.fast.data = tampered
}

// DecideOnTopdown is c's topdown decision of req over sn at at.
func DecideOnTopdown(tb testing.TB, c *Compiled, req *Request, sn *masterdata.Snapshot, at time.Time, hist HistoryReader) *Result {
	tb.Helper()
	return c.decideOn(context.Background(), req, sn, at, hist, PathTopdown).res
}

// PreparePartial prepares b's decision query as prepare does, partially evaluated with the bundle's
// data known and all of input unknown (rego.WithPartialEval): the first route issue 17 asked to measure.
func PreparePartial(ctx context.Context, b *bundle.Bundle) (rego.PreparedEvalQuery, error) {
	opts, _ := decisionQuery(b, safeCapabilities())
	return rego.New(opts...).PrepareForEval(ctx, rego.WithPartialEval())
}

// EvalPrepared evaluates req on pq over sn at at, with history h, recording facts: the engine's call.
func EvalPrepared(ctx context.Context, pq rego.PreparedEvalQuery, req *Request, sn *masterdata.Snapshot, at time.Time, h HistoryReader) (rego.ResultSet, error) {
	ctx = WithHistory(withSnapshot(ctx, sn), h)
	return pq.Eval(ctx, rego.EvalParsedInput(req.inputValue()), rego.EvalTime(at),
		rego.EvalNDBuiltinCache(builtins.NDBCache{}), rego.EvalGenerateJSON(rawTerm))
}

// ReplaceIRProgram makes c's IR path run prog: a test's way to an evaluator that fails.
func ReplaceIRProgram(c *Compiled, prog *irvm.Program) { c.fast.prog = prog }

// ForgetDemotions clears the revisions the live shadow check demoted in this process.
func ForgetDemotions() { demotedRevisions.Clear() }
