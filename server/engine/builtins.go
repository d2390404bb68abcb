package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/types"

	"github.com/tollgate/tollgate/server/masterdata"
)

// Names of the master-data builtins as policies call them.
const (
	BuiltinGet    = "md.get"
	BuiltinLookup = "md.lookup"
)

// errNoSnapshot is returned by a builtin evaluated without a master-data snapshot in its context. That
// happens during replay when a fact was not recorded: replay must not read today's data.
var errNoSnapshot = errors.New("no master-data snapshot for this evaluation")

var (
	getDecl = &rego.Function{
		Name:             BuiltinGet,
		Description:      "Returns the master-data record of kind with key, or null when it does not exist.",
		Decl:             types.NewFunction(types.Args(types.Named("kind", types.S), types.Named("key", types.S)), types.A),
		Nondeterministic: true,
	}
	lookupDecl = &rego.Function{
		Name:             BuiltinLookup,
		Description:      "Returns the master-data records of kind whose secondary index has value.",
		Decl:             types.NewFunction(types.Args(types.Named("kind", types.S), types.Named("index", types.S), types.Named("value", types.S)), types.NewArray(nil, types.A)),
		Nondeterministic: true,
	}
)

type snapshotKey struct{}

// withSnapshot returns a context carrying the master-data snapshot the builtins read.
func withSnapshot(ctx context.Context, sn *masterdata.Snapshot) context.Context {
	return context.WithValue(ctx, snapshotKey{}, sn)
}

func snapshotFrom(ctx context.Context) (*masterdata.Snapshot, error) {
	sn, _ := ctx.Value(snapshotKey{}).(*masterdata.Snapshot)
	if sn == nil {
		return nil, errNoSnapshot
	}
	return sn, nil
}

func mdGet(bctx rego.BuiltinContext, kindTerm, keyTerm *ast.Term) (*ast.Term, error) {
	kind, err := stringOperand(kindTerm, "kind")
	if err != nil {
		return nil, err
	}
	key, err := stringOperand(keyTerm, "key")
	if err != nil {
		return nil, err
	}
	sn, err := snapshotFrom(bctx.Context)
	if err != nil {
		return nil, err
	}
	rec, ok := sn.Get(masterdata.Kind(kind), key)
	if !ok {
		return ast.InternedNullTerm, nil
	}
	return ast.NewTerm(recordValue(rec)), nil
}

func mdLookup(bctx rego.BuiltinContext, kindTerm, indexTerm, valueTerm *ast.Term) (*ast.Term, error) {
	kind, err := stringOperand(kindTerm, "kind")
	if err != nil {
		return nil, err
	}
	index, err := stringOperand(indexTerm, "index")
	if err != nil {
		return nil, err
	}
	value, err := stringOperand(valueTerm, "value")
	if err != nil {
		return nil, err
	}
	sn, err := snapshotFrom(bctx.Context)
	if err != nil {
		return nil, err
	}
	recs := sn.Lookup(masterdata.Kind(kind), index, value)
	terms := make([]*ast.Term, 0, len(recs))
	for _, rec := range recs {
		terms = append(terms, ast.NewTerm(recordValue(rec)))
	}
	return ast.ArrayTerm(terms...), nil
}

func stringOperand(t *ast.Term, name string) (string, error) {
	s, ok := t.Value.(ast.String)
	if !ok {
		return "", fmt.Errorf("%s: want string, got %s", name, ast.ValueName(t.Value))
	}
	return string(s), nil
}

// recordValue returns the OPA value of a record, precomputed by PrepareRecord when the record was applied.
func recordValue(rec *masterdata.Record) ast.Value {
	if v, ok := rec.Prepared.(ast.Value); ok {
		return v
	}
	// Records applied without the engine's Prepare hook are converted on each read; correct, only slower.
	v, err := ast.InterfaceToValue(rec.Fields)
	if err != nil {
		return ast.Null{}
	}
	return v
}

// PrepareRecord converts a master-data record to its OPA value once, when it is applied, so decisions
// never convert records. Pass it as masterdata.Config.Prepare. It is a pure conversion, safe for
// concurrent use (masterdata.LoadDir calls it from several goroutines), and neither keeps nor modifies
// fields.
func PrepareRecord(_ masterdata.Kind, _ string, fields map[string]any) (any, error) {
	v, err := recordObject(fields)
	if err != nil {
		return nil, fmt.Errorf("convert record: %w", err)
	}
	return v, nil
}

// recordObject is ast.InterfaceToValue(fields), the record's object, made with one slice for the value
// terms of all its fields and the shared key terms of fieldKeys. InterfaceToValue also makes a slice of
// pointers per object, garbage at once, and a key term per field per record.
func recordObject(fields map[string]any) (ast.Value, error) {
	values := make([]ast.Term, len(fields))
	items := make([][2]*ast.Term, len(fields))
	i := 0
	for k, v := range fields {
		val, err := ast.InterfaceToValue(v)
		if err != nil {
			return nil, err
		}
		key := fieldKeys[k]
		if key == nil {
			key = ast.StringTerm(k)
		}
		values[i].Value = val
		items[i] = [2]*ast.Term{key, &values[i]}
		i++
	}
	return ast.NewObject(items...), nil
}

// fieldKeys holds the key term of every master-data field name, shared by the objects of all prepared
// records: a term per field per record was about a sixth of the heap a million-record load keeps. It is
// built once and never modified; OPA shares its interned terms between objects the same way.
var fieldKeys = func() map[string]*ast.Term {
	keys := make(map[string]*ast.Term)
	for _, kind := range masterdata.Kinds() {
		for _, name := range masterdata.FieldNames(kind) {
			keys[name] = ast.StringTerm(name)
		}
	}
	return keys
}()

// regoBuiltins returns the options that register the master-data builtins with a rego object.
func regoBuiltins() []func(*rego.Rego) {
	return []func(*rego.Rego){
		rego.Function2(getDecl, mdGet),
		rego.Function3(lookupDecl, mdLookup),
		rego.Function2(historyDecl, historyBuiltin),
	}
}

// TesterBuiltins returns the master-data and history builtins for OPA's test runner, so Rego unit tests compile with
// the same declarations the engine uses. Tests mock them with `with md.get as ...`; unmocked calls read
// the snapshot in the test's context, and fail when there is none.
func TesterBuiltins() []*tester.Builtin {
	return []*tester.Builtin{
		{
			Decl: &ast.Builtin{Name: getDecl.Name, Decl: getDecl.Decl, Nondeterministic: true},
			Func: rego.Function2(getDecl, mdGet),
		},
		{
			Decl: &ast.Builtin{Name: lookupDecl.Name, Decl: lookupDecl.Decl, Nondeterministic: true},
			Func: rego.Function3(lookupDecl, mdLookup),
		},
		{
			Decl: &ast.Builtin{Name: historyDecl.Name, Decl: historyDecl.Decl, Nondeterministic: true},
			Func: rego.Function2(historyDecl, historyBuiltin),
		},
	}
}
