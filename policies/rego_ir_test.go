package policies_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/tollgate/tollgate/server/engine"
	"github.com/tollgate/tollgate/server/engine/irvm"
)

// TestRegoTestsOnTheIRPath runs every Rego unit test of the pack (the *_test.rego rules, with their
// fixture's mocks of md.get, md.lookup, tollgate.history and time.now_ns) on the IR path as well as on
// topdown: one query collects every test's outcome, planned and evaluated by irvm, and the two
// outcomes must be equal test by test. It is the exactness gate's "every Rego test case".
func TestRegoTestsOnTheIRPath(t *testing.T) {
	b := loadPack(t)
	var tests []string
	for _, m := range b.Modules {
		for _, r := range m.Parsed.Rules {
			name := r.Head.Name.String()
			if strings.HasPrefix(name, "test_") {
				tests = append(tests, m.Parsed.Package.Path.String()+"."+name)
			}
		}
	}
	sort.Strings(tests)
	tests = slices.Compact(tests)
	if len(tests) < 150 {
		t.Fatalf("found %d Rego tests, want the pack's (at least 150)", len(tests))
	}
	// {"data.pkg.test_x": [true] | [] , ...}: a test that is undefined (fails) gives [], so one failing
	// test does not make the whole query undefined.
	var q strings.Builder
	q.WriteString("x := {")
	for i, name := range tests {
		if i > 0 {
			q.WriteString(", ")
		}
		fmt.Fprintf(&q, "%q: [true | %s]", name, name)
	}
	q.WriteString("}")
	opts := []func(*rego.Rego){
		rego.Query(q.String()), rego.ParsedBundle("pack", b), rego.SetRegoVersion(ast.RegoV1),
		rego.StrictBuiltinErrors(true),
	}
	for _, tb := range engine.TesterBuiltins() {
		opts = append(opts, tb.Func)
	}
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

	pq, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		t.Fatalf("prepare on topdown: %v", err)
	}
	raw := func(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }
	rs, err := pq.Eval(ctx, rego.EvalTime(now), rego.EvalGenerateJSON(raw))
	if err != nil || len(rs) != 1 {
		t.Fatalf("topdown: %v, %d results", err, len(rs))
	}
	want := rs[0].Bindings["x"].(*ast.Term).Value.(ast.Object)

	prog, err := irvm.Compile(ctx, opts...)
	if err != nil {
		t.Fatalf("irvm: %v", err)
	}
	data, err := ast.InterfaceToValue(b.Data)
	if err != nil {
		t.Fatal(err)
	}
	out, err := prog.Eval(ctx, irvm.Env{Data: data, Time: now})
	if err != nil || len(out) != 1 {
		t.Fatalf("irvm: %v, %d results", err, len(out))
	}
	got := out[0].Value.(ast.Object).Get(ast.StringTerm("x")).Value.(ast.Object)

	passed := 0
	for _, name := range tests {
		w, g := want.Get(ast.StringTerm(name)), got.Get(ast.StringTerm(name))
		if w == nil || g == nil || !w.Equal(g) {
			t.Errorf("%s: topdown %v, ir %v", name, w, g)
			continue
		}
		if w.Value.(*ast.Array).Len() == 1 {
			passed++
		}
	}
	if passed != len(tests) {
		t.Errorf("%d of %d Rego tests pass on both paths; every one should (TestRego runs them on topdown)", passed, len(tests))
	}
}
