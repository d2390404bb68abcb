package irvm_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/ir"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown/builtins"

	"github.com/tollgate/tollgate/server/engine/irvm"
)

// conformance lists small policies over the constructs the planner emits, each with inputs that take
// every branch; the test decides each input with topdown and with irvm and wants the same answer (or
// an error from both).
var conformance = []struct {
	name   string
	module string
	data   map[string]any
	inputs []string
}{
	{"else and default", `package t
default out := "none"
out := "big" if input.n > 100
else := "mid" if input.n > 10
else := "small" if input.n >= 0`, nil, []string{`{"n": 500}`, `{"n": 50}`, `{"n": 5}`, `{"n": -1}`, `{}`, `{"n": "x"}`}},
	{"comprehensions over every collection", `package t
out := {"arr": [y | some x in input.a; x > 1; y := x * 2], "set": {x | some x in input.s}, "obj": {k: v | some k, v in input.o; v != 0},
  "keys": [k | some k, _ in input.o], "setarr": [x | some x in input.s]}`, nil,
		[]string{`{"a": [1,2,3], "s": ["b","a","c"], "o": {"z": 1, "a": 0, "m": 2}}`, `{"a": [], "s": [], "o": {}}`, `{"a": 1}`}},
	{"negation and functions", `package t
allowed(u) if u.role == "admin"
allowed(u) if u.role == "owner"
out if { not allowed(input.user); input.user.name != "root" }`, nil,
		[]string{`{"user": {"role": "admin", "name": "a"}}`, `{"user": {"role": "x", "name": "a"}}`, `{"user": {"role": "x", "name": "root"}}`, `{}`}},
	{"with on input and data", `package t
inner := input.x + data.params.k
out := [inner, v] if { v := inner with input.x as 10 with data.params.k as 5 }`, map[string]any{"params": map[string]any{"k": 1}},
		[]string{`{"x": 1}`, `{"x": "s"}`, `{}`}},
	{"every, some and membership", `package t
out := {"all": all_pos, "member": "b" in input.s, "idx": [i | some i, x in input.a; x == "b"]}
default all_pos := false
all_pos if every x in input.n { x > 0 }`, nil,
		[]string{`{"n": [1,2], "s": ["a","b"], "a": ["b","c","b"]}`, `{"n": [1,-2], "s": [], "a": []}`, `{"n": []}`}},
	{"partial set and object rules", `package t
import rego.v1
codes contains c if { some r in input.rules; r.on; c := r.code }
by_code[c] := r.level if { some r in input.rules; c := r.code }
out := {"codes": codes, "by": by_code, "n": count(codes)}`, nil,
		[]string{`{"rules": [{"code": "A", "on": true, "level": 1}, {"code": "B", "on": false, "level": 2}]}`, `{"rules": []}`,
			`{"rules": [{"code": "A", "on": true, "level": 1}, {"code": "A", "on": true, "level": 2}]}`}},
	{"conflicting complete rule", `package t
out := 1 if input.a
out := 2 if input.b`, nil, []string{`{"a": true}`, `{"a": true, "b": true}`, `{}`}},
	{"built-in errors are fatal", `package t
out := to_number(input.v) + 1`, nil, []string{`{"v": "41"}`, `{"v": "x"}`, `{}`}},
	{"strings, sorting and objects", `package t
out := {"s": sprintf("%s-%d", [upper(input.a), count(input.b)]), "sorted": sort(input.b), "c": concat("/", input.b),
  "get": object.get(input, ["o", "k"], "dflt"), "arr": array.concat(input.b, ["z"]), "slice": array.slice(input.b, 1, 2)}`, nil,
		[]string{`{"a": "x", "b": ["c", "a", "b"], "o": {"k": 3}}`, `{"a": "y", "b": []}`}},
	{"data lookups with variable keys", `package t
out := [data.params.limits[input.tier], v] if { some k, v in data.params.limits; k == input.tier }`,
		map[string]any{"params": map[string]any{"limits": map[string]any{"gold": 100, "silver": 10}}},
		[]string{`{"tier": "gold"}`, `{"tier": "bronze"}`}},
	{"with input on an evaluation without input", `package t
inner := [input.x, upper(input.s)]
myupper(s) := concat("", [s, "!"])
out := [v, w, z] if { v := inner with input as {"x": 1, "s": "a"}; w := inner with input as {"x": 2, "s": "b"} with upper as myupper; z := count([1 | input.x]) }`,
		nil, []string{"", `{"x": 5, "s": "c"}`}},
	{"rules below a variable reference", `package t.rules
a := 1
b := 2 if input.b
---
package t
out := {k: v | some k; v := data.t.rules[k]}
one := data.t.rules[input.k]`, nil, []string{`{"b": true, "k": "a"}`, `{"k": "b"}`, `{"k": "zz"}`}},
}

func TestConformanceWithTopdown(t *testing.T) {
	for _, c := range conformance {
		t.Run(c.name, func(t *testing.T) {
			modules := splitModules(c.module)
			for _, query := range []string{"data.t.out", "data.t.one"} {
				if query == "data.t.one" && c.name != "rules below a variable reference" {
					continue
				}
				for _, in := range c.inputs {
					want, wantErr := topdown(t, modules, c.data, query, in)
					got, gotErr := plan(t, modules, c.data, query, in)
					if (wantErr != nil) != (gotErr != nil) {
						t.Fatalf("%s on %s: topdown error %v, irvm error %v (topdown %v, irvm %v)", query, in, wantErr, gotErr, want, got)
					}
					if wantErr == nil && fmt.Sprint(want) != fmt.Sprint(got) {
						t.Fatalf("%s on %s: topdown %v, irvm %v", query, in, want, got)
					}
				}
			}
		})
	}
}

func splitModules(src string) []string {
	var out []string
	cur := ""
	for _, line := range splitLines(src) {
		if line == "---" {
			out = append(out, cur)
			cur = ""
			continue
		}
		cur += line + "\n"
	}
	return append(out, cur)
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := range len(s) {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func regoOpts(modules []string, data map[string]any, query string) []func(*rego.Rego) {
	opts := []func(*rego.Rego){rego.Query(query), rego.StrictBuiltinErrors(true), rego.SetRegoVersion(ast.RegoV1)}
	for i, m := range modules {
		opts = append(opts, rego.Module(fmt.Sprintf("m%d.rego", i), m))
	}
	if data != nil {
		opts = append(opts, rego.Store(inmemStore(data)))
	}
	return opts
}

// topdown answers query with OPA's evaluator: nil for undefined.
func topdown(t *testing.T, modules []string, data map[string]any, query, input string) ([]string, error) {
	t.Helper()
	pq, err := rego.New(regoOpts(modules, data, query)...).PrepareForEval(context.Background())
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	raw := func(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }
	opts := []rego.EvalOption{rego.EvalGenerateJSON(raw)}
	if input != "" { // "" is an evaluation without input
		opts = append(opts, rego.EvalParsedInput(ast.MustParseTerm(input).Value))
	}
	rs, err := pq.Eval(context.Background(), opts...)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range rs {
		out = append(out, r.Expressions[0].Value.(*ast.Term).Value.String())
	}
	return out, nil
}

// plan answers query with irvm on the planner's IR of the same modules.
func plan(t *testing.T, modules []string, data map[string]any, query, input string) ([]string, error) {
	t.Helper()
	prog, err := irvm.Compile(context.Background(), regoOpts(modules, data, query)...)
	if err != nil {
		t.Fatalf("irvm: %v", err)
	}
	var dv ast.Value = ast.NewObject()
	if data != nil {
		dv = ast.MustInterfaceToValue(data)
	}
	env := irvm.Env{Data: dv, Time: time.Now()}
	if input != "" {
		env.Input = ast.MustParseTerm(input).Value
	}
	rs, err := prog.Eval(context.Background(), env)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range rs {
		obj := r.Value.(ast.Object)
		obj.Foreach(func(_, v *ast.Term) { out = append(out, v.Value.String()) })
	}
	return out, nil
}

// TestNondeterministicBuiltinsGoThroughTheCache: a non-deterministic built-in's call is recorded in
// the NDB cache, and answered from it when the cache already holds it, as topdown does for replay.
func TestNondeterministicBuiltinsGoThroughTheCache(t *testing.T) {
	modules := []string{"package t\nout := rand.intn(\"k\", 1000000)\n"}
	prog, err := irvm.Compile(context.Background(), regoOpts(modules, nil, "data.t.out")...)
	if err != nil {
		t.Fatal(err)
	}
	cache := builtins.NDBCache{}
	cache.Put("rand.intn", ast.NewArray(ast.StringTerm("k"), ast.IntNumberTerm(1000000)), ast.IntNumberTerm(42).Value)
	rs, err := prog.Eval(context.Background(), irvm.Env{Data: ast.NewObject(), NDB: cache, Time: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].Value.(ast.Object).Len() != 1 || !rs[0].Value.(ast.Object).Until(func(_, v *ast.Term) bool { return v.Value.String() == "42" }) {
		t.Fatalf("result %v, want the recorded 42", rs)
	}
	fresh := builtins.NDBCache{}
	if _, err := prog.Eval(context.Background(), irvm.Env{Data: ast.NewObject(), NDB: fresh, Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, ok := fresh.Get("rand.intn", ast.NewArray(ast.StringTerm("k"), ast.IntNumberTerm(1000000))); !ok {
		t.Fatalf("the call was not recorded: %v", fresh)
	}
}

// TestCancelled: an evaluation whose context ended stops with a cancellation error.
func TestCancelled(t *testing.T) {
	modules := []string{"package t\nout := count([x | some x in numbers.range(1, 100000); x % 7 == 0])\n"}
	prog, err := irvm.Compile(context.Background(), regoOpts(modules, nil, "data.t.out")...)
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = prog.Eval(cctx, irvm.Env{Data: ast.NewObject(), Time: time.Now()})
	if err == nil {
		t.Fatal("a cancelled evaluation finished")
	}
}

// TestUnsupportedPlans: New refuses what it cannot run instead of failing during a decision.
func TestUnsupportedPlans(t *testing.T) {
	if _, err := irvm.New(&ir.Policy{}, nil); !errors.Is(err, irvm.ErrUnsupported) {
		t.Fatalf("empty policy: %v", err)
	}
	p := &ir.Policy{Static: &ir.Static{}, Plans: &ir.Plans{Plans: []*ir.Plan{{Name: "x", Blocks: []*ir.Block{{Stmts: []ir.Stmt{
		&ir.CallStmt{Func: "no.such.builtin", Result: 2},
	}}}}}}}
	if _, err := irvm.New(p, nil); !errors.Is(err, irvm.ErrUnsupported) {
		t.Fatalf("unknown built-in: %v", err)
	}
}

// TestInternalErrors: a plan that breaks the evaluator's invariants fails with an *InternalError, a
// panic included, never with an answer.
func TestInternalErrors(t *testing.T) {
	for name, stmts := range map[string][]ir.Stmt{
		"append to null": {&ir.MakeNullStmt{Target: 2}, &ir.ArrayAppendStmt{Array: 2, Value: ir.Operand{Value: ir.Local(2)}}},
		"string out of range (panic)": {&ir.DotStmt{Source: ir.Operand{Value: ir.Local(ir.Data)}, Key: ir.Operand{Value: ir.StringIndex(99)}, Target: 2},
			&ir.ResultSetAddStmt{Value: 2}},
	} {
		p := &ir.Policy{Static: &ir.Static{}, Plans: &ir.Plans{Plans: []*ir.Plan{{Name: "x", Blocks: []*ir.Block{{Stmts: stmts}}}}}}
		prog, err := irvm.New(p, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		rs, err := prog.Eval(context.Background(), irvm.Env{Data: ast.NewObject(), Time: time.Now()})
		var internal *irvm.InternalError
		if !errors.As(err, &internal) {
			t.Fatalf("%s: result %v, error %v, want an internal error", name, rs, err)
		}
	}
}

func inmemStore(data map[string]any) storage.Store { return inmem.NewFromObject(data) }
