package policies_test

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/types"
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
var (
	mdGetDecl = &ast.Builtin{
		Name:             "md.get",
		Decl:             types.NewFunction(types.Args(types.S, types.S), types.A),
		Nondeterministic: true,
	}
	mdLookupDecl = &ast.Builtin{
		Name:             "md.lookup",
		Decl:             types.NewFunction(types.Args(types.S, types.S, types.S), types.NewArray(nil, types.A)),
		Nondeterministic: true,
	}
)

// masterData is an in-test master-data source keyed kind → key → record.
type masterData map[string]map[string]any

func (m masterData) get(kind, key string) any {
	if r, ok := m[kind][key]; ok {
		return r
	}
	return nil
}

// lookup implements the one secondary index of the contract: delegation by
// "pair" = "<delegator_id>/<delegate_id>". It scans, which is fine in tests.
func (m masterData) lookup(kind, index, value string) []any {
	out := []any{}
	if kind != "delegation" || index != "pair" {
		return out
	}
	for _, r := range m["delegation"] {
		rec, ok := r.(map[string]any)
		if !ok {
			continue
		}
		if rec["delegator_id"].(string)+"/"+rec["delegate_id"].(string) == value {
			out = append(out, rec)
		}
	}
	return out
}

// mdOptions are the rego options declaring md.get and md.lookup backed by m.
func mdOptions(m masterData) []func(*rego.Rego) {
	return []func(*rego.Rego){
		rego.Function2(&rego.Function{Name: mdGetDecl.Name, Decl: mdGetDecl.Decl, Nondeterministic: true},
			func(_ rego.BuiltinContext, a, b *ast.Term) (*ast.Term, error) {
				kind, ok1 := a.Value.(ast.String)
				key, ok2 := b.Value.(ast.String)
				if !ok1 || !ok2 {
					return ast.NullTerm(), nil
				}
				v := m.get(string(kind), string(key))
				if v == nil {
					return ast.NullTerm(), nil
				}
				val, err := ast.InterfaceToValue(v)
				if err != nil {
					return nil, err
				}
				return ast.NewTerm(val), nil
			}),
		rego.Function3(&rego.Function{Name: mdLookupDecl.Name, Decl: mdLookupDecl.Decl, Nondeterministic: true},
			func(_ rego.BuiltinContext, a, b, c *ast.Term) (*ast.Term, error) {
				kind, _ := a.Value.(ast.String)
				index, _ := b.Value.(ast.String)
				value, _ := c.Value.(ast.String)
				val, err := ast.InterfaceToValue(m.lookup(string(kind), string(index), string(value)))
				if err != nil {
					return nil, err
				}
				return ast.NewTerm(val), nil
			}),
	}
}
