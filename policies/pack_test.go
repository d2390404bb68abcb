package policies_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/types"

	"github.com/tollgate/tollgate/server/engine"
	"github.com/tollgate/tollgate/server/masterdata"
)

// packDir is the directory of this file: the bundle root.
func packDir(tb testing.TB) string {
	tb.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		tb.Fatal("locate policies dir: runtime.Caller failed")
	}
	return filepath.Dir(file)
}

// loadPack loads policies/ as an OPA bundle (manifest, data.json, Rego with
// annotations, Rego v1), the way the engine loads it.
func loadPack(tb testing.TB) *bundle.Bundle {
	tb.Helper()
	dir := packDir(tb)
	if _, err := os.Stat(filepath.Join(dir, ".manifest")); err != nil {
		tb.Fatalf("stat manifest: %v", err)
	}
	b, err := loader.NewFileLoader().
		WithProcessAnnotation(true).
		WithRegoVersion(ast.RegoV1).
		WithSkipBundleVerification(true).
		AsBundle(dir)
	if err != nil {
		tb.Fatalf("load pack: %v", err)
	}
	return b
}

// Declarations of the engine's master-data builtins (policy-pack contract):
// md.get(kind, key) => any (null when absent); md.lookup(kind, index, value) => array.
// The engine's own are unexported behind Engine; these are identical.
var (
	mdGet = &rego.Function{
		Name:             "md.get",
		Decl:             types.NewFunction(types.Args(types.S, types.S), types.A),
		Nondeterministic: true,
	}
	mdLookup = &rego.Function{
		Name:             "md.lookup",
		Decl:             types.NewFunction(types.Args(types.S, types.S, types.S), types.NewArray(nil, types.A)),
		Nondeterministic: true,
	}
)

// newStore returns a real master-data store (go-memdb) loaded with the shared
// fixture testdata/fixture/*.ndjson and then extra events, records prepared
// as the engine prepares them.
func newStore(tb testing.TB, extra []masterdata.Event) *masterdata.Store {
	tb.Helper()
	st, err := masterdata.New(masterdata.Config{Prepare: engine.PrepareRecord})
	if err != nil {
		tb.Fatalf("new store: %v", err)
	}
	if _, err := st.LoadDir(os.DirFS(filepath.Join(packDir(tb), "testdata", "fixture"))); err != nil {
		tb.Fatalf("load fixture: %v", err)
	}
	if len(extra) > 0 {
		res := st.Apply(extra)
		for _, r := range res.Results {
			if r.Outcome != masterdata.OutcomeApplied {
				tb.Fatalf("apply case master data %s: %s %v", r.EventID, r.Outcome, r.Err)
			}
		}
	}
	return st
}

// recordTerm is the OPA value of a record: the engine's prepared value.
func recordTerm(rec *masterdata.Record) (*ast.Term, error) {
	if v, ok := rec.Prepared.(ast.Value); ok {
		return ast.NewTerm(v), nil
	}
	v, err := ast.InterfaceToValue(rec.Fields)
	if err != nil {
		return nil, fmt.Errorf("convert record %s/%s: %w", rec.Kind, rec.Key, err)
	}
	return ast.NewTerm(v), nil
}

// snapshotOptions registers md.get and md.lookup reading sn, the way the
// engine's builtins read the snapshot of a decision.
func snapshotOptions(sn *masterdata.Snapshot) []func(*rego.Rego) {
	return []func(*rego.Rego){
		rego.Function2(mdGet, func(_ rego.BuiltinContext, a, b *ast.Term) (*ast.Term, error) {
			kind, ok1 := a.Value.(ast.String)
			key, ok2 := b.Value.(ast.String)
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("md.get: want strings, got %v, %v", a, b)
			}
			rec, ok := sn.Get(masterdata.Kind(kind), string(key))
			if !ok {
				return ast.NullTerm(), nil
			}
			return recordTerm(rec)
		}),
		rego.Function3(mdLookup, func(_ rego.BuiltinContext, a, b, c *ast.Term) (*ast.Term, error) {
			kind, _ := a.Value.(ast.String)
			index, _ := b.Value.(ast.String)
			value, _ := c.Value.(ast.String)
			recs := sn.Lookup(masterdata.Kind(kind), string(index), string(value))
			terms := make([]*ast.Term, 0, len(recs))
			for _, rec := range recs {
				t, err := recordTerm(rec)
				if err != nil {
					return nil, err
				}
				terms = append(terms, t)
			}
			return ast.ArrayTerm(terms...), nil
		}),
	}
}

// prepare compiles the pack and prepares data.tollgate.decision with the
// master-data builtins reading sn.
func prepare(tb testing.TB, b *bundle.Bundle, sn *masterdata.Snapshot) rego.PreparedEvalQuery {
	tb.Helper()
	opts := []func(*rego.Rego){
		rego.Query("data.tollgate.decision"),
		rego.ParsedBundle("policies", b),
		rego.StrictBuiltinErrors(true),
	}
	opts = append(opts, snapshotOptions(sn)...)
	pq, err := rego.New(opts...).PrepareForEval(context.Background())
	if err != nil {
		tb.Fatalf("prepare decision query: %v", err)
	}
	return pq
}
