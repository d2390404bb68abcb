package irvm

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/ir"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// Program is a planned policy ready to evaluate. It is immutable and safe for concurrent use.
type Program struct {
	plan    *function
	funcs   map[string]*function
	byPath  map[string]*function // functions by their data path, for CallDynamicStmt
	strings []ast.Value
	// stringTerms and numbers are the plan's constants as terms, shared by every evaluation: nothing
	// modifies a scalar term.
	stringTerms []*ast.Term
	numbers     map[int]*ast.Term
	// memoized is the number of memoized functions, whose function.id index an evaluation's memo.
	memoized int
}

// function is a planned function, or the plan itself (no parameters, no return).
type function struct {
	name    string
	params  []ir.Local
	ret     ir.Local
	blocks  []*block
	nlocals int
	// memo is set for functions of exactly input and data: the complete rules, whose value does not
	// change within one evaluation outside a WithStmt.
	memo bool
	id   int // index into an evaluation's memo; -1 when not memoized
}

// block is an ir.Block with every statement's call resolved and its nested blocks alongside, so an
// evaluation never looks a name up.
type block struct {
	stmts []stmt
}

type stmt struct {
	ir.Stmt
	callee *callee  // a CallStmt's
	sub    []*block // BlockStmt's blocks; the one block of a ScanStmt, NotStmt or WithStmt
}

// callee is what a CallStmt calls: a planned function or a built-in.
type callee struct {
	fn      *function
	builtin *builtin
}

type builtin struct {
	name             string
	f                topdown.BuiltinFunc
	nondeterministic bool
	void             bool // declared without a result
	arity            int
}

// ErrUnsupported is returned by New for a policy the evaluator cannot run; the engine falls back to
// topdown for it.
var ErrUnsupported = errors.New("irvm: unsupported")

// New readies policy for evaluation. custom holds the built-ins the policy may call beyond OPA's own
// (the engine's rego.Function built-ins); each call site is resolved here, so a plan that calls an
// unknown function or built-in, or holds a statement this package does not know, fails now rather
// than during a decision.
func New(policy *ir.Policy, custom map[string]*topdown.Builtin) (*Program, error) {
	if policy == nil || policy.Plans == nil || len(policy.Plans.Plans) != 1 {
		return nil, fmt.Errorf("%w: want exactly one plan", ErrUnsupported)
	}
	p := &Program{numbers: map[int]*ast.Term{}, funcs: map[string]*function{}, byPath: map[string]*function{}}
	if policy.Static != nil {
		for _, s := range policy.Static.Strings {
			p.strings = append(p.strings, ast.String(s.Value))
			p.stringTerms = append(p.stringTerms, ast.StringTerm(s.Value))
		}
	}
	if policy.Funcs != nil {
		for _, f := range policy.Funcs.Funcs {
			fn := &function{name: f.Name, params: f.Params, ret: f.Return, memo: len(f.Params) == 2, id: -1}
			if fn.memo {
				fn.id = p.memoized
				p.memoized++
			}
			fn.nlocals = maxLocal(f.Blocks, f.Params, f.Return) + 1
			p.funcs[f.Name] = fn
			if len(f.Path) > 0 {
				p.byPath[pathKey(f.Path)] = fn
			}
		}
	}
	pl := policy.Plans.Plans[0]
	p.plan = &function{name: pl.Name, ret: -1, id: -1}
	p.plan.nlocals = maxLocal(pl.Blocks, nil, ir.Data) + 1

	decls := map[string]*ir.BuiltinFunc{}
	if policy.Static != nil {
		for _, b := range policy.Static.BuiltinFuncs {
			decls[b.Name] = b
		}
	}
	var err error
	if p.plan.blocks, err = p.compile(pl.Blocks, decls, custom); err != nil {
		return nil, err
	}
	if policy.Funcs != nil {
		for _, f := range policy.Funcs.Funcs {
			if p.funcs[f.Name].blocks, err = p.compile(f.Blocks, decls, custom); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

// compile checks every statement of blocks and mirrors them with their calls resolved.
func (p *Program) compile(blocks []*ir.Block, decls map[string]*ir.BuiltinFunc, custom map[string]*topdown.Builtin) ([]*block, error) {
	out := make([]*block, len(blocks))
	for i, b := range blocks {
		if b == nil {
			out[i] = &block{}
			continue
		}
		cb := &block{stmts: make([]stmt, len(b.Stmts))}
		for j, s := range b.Stmts {
			st := stmt{Stmt: s}
			var err error
			if st.callee, err = p.check(s, decls, custom); err != nil {
				return nil, err
			}
			var nested []*ir.Block
			switch s := s.(type) {
			case *ir.BlockStmt:
				nested = s.Blocks
			case *ir.ScanStmt:
				nested = []*ir.Block{s.Block}
			case *ir.NotStmt:
				nested = []*ir.Block{s.Block}
			case *ir.WithStmt:
				nested = []*ir.Block{s.Block}
			}
			if nested != nil {
				if st.sub, err = p.compile(nested, decls, custom); err != nil {
					return nil, err
				}
			}
			cb.stmts[j] = st
		}
		out[i] = cb
	}
	return out, nil
}

// check verifies that the evaluator knows stmt and resolves a CallStmt's callee.
func (p *Program) check(stmt ir.Stmt, decls map[string]*ir.BuiltinFunc, custom map[string]*topdown.Builtin) (*callee, error) {
	switch s := stmt.(type) {
	case *ir.CallStmt:
		if fn, ok := p.funcs[s.Func]; ok {
			if len(s.Args) != len(fn.params) {
				return nil, fmt.Errorf("%w: call of %s with %d arguments, want %d", ErrUnsupported, s.Func, len(s.Args), len(fn.params))
			}
			return &callee{fn: fn}, nil
		}
		b, err := resolveBuiltin(s.Func, decls[s.Func], custom)
		if err != nil {
			return nil, err
		}
		return &callee{builtin: b}, nil
	case *ir.MakeNumberRefStmt:
		if s.Index < 0 || s.Index >= len(p.strings) {
			return nil, fmt.Errorf("%w: number constant %d out of range", ErrUnsupported, s.Index)
		}
		t, err := ast.ParseTerm(string(p.strings[s.Index].(ast.String)))
		if err != nil {
			return nil, fmt.Errorf("%w: number constant %q: %v", ErrUnsupported, p.strings[s.Index], err)
		}
		if _, ok := t.Value.(ast.Number); !ok {
			return nil, fmt.Errorf("%w: number constant %q is a %s", ErrUnsupported, p.strings[s.Index], ast.ValueName(t.Value))
		}
		p.numbers[s.Index] = t
	case *ir.ReturnLocalStmt, *ir.CallDynamicStmt, *ir.BlockStmt, *ir.BreakStmt, *ir.DotStmt, *ir.LenStmt,
		*ir.ScanStmt, *ir.NotStmt, *ir.AssignIntStmt, *ir.AssignVarStmt, *ir.AssignVarOnceStmt,
		*ir.ResetLocalStmt, *ir.MakeNullStmt, *ir.MakeNumberIntStmt, *ir.MakeArrayStmt,
		*ir.MakeObjectStmt, *ir.MakeSetStmt, *ir.EqualStmt, *ir.NotEqualStmt, *ir.IsArrayStmt, *ir.IsObjectStmt,
		*ir.IsSetStmt, *ir.IsDefinedStmt, *ir.IsUndefinedStmt, *ir.ArrayAppendStmt, *ir.ObjectInsertStmt,
		*ir.ObjectInsertOnceStmt, *ir.ObjectMergeStmt, *ir.SetAddStmt, *ir.WithStmt, *ir.NopStmt,
		*ir.ResultSetAddStmt:
	default:
		var buf bytes.Buffer
		_ = ir.Pretty(&buf, stmt)
		return nil, fmt.Errorf("%w: statement %s", ErrUnsupported, buf.String())
	}
	return nil, nil
}

func resolveBuiltin(name string, decl *ir.BuiltinFunc, custom map[string]*topdown.Builtin) (*builtin, error) {
	b := &builtin{name: name}
	if c, ok := custom[name]; ok && c != nil && c.Func != nil {
		b.f = c.Func
		if c.Decl != nil {
			b.nondeterministic = c.Decl.Nondeterministic
		}
	} else {
		b.f = topdown.GetBuiltin(name)
		if bi, ok := ast.BuiltinMap[name]; ok {
			b.nondeterministic = bi.Nondeterministic
		}
	}
	if b.f == nil {
		return nil, fmt.Errorf("%w: no implementation of built-in %s", ErrUnsupported, name)
	}
	if decl == nil || decl.Decl == nil {
		return nil, fmt.Errorf("%w: built-in %s is not declared by the plan", ErrUnsupported, name)
	}
	b.arity = len(decl.Decl.FuncArgs().Args)
	if decl.Decl.FuncArgs().Variadic != nil {
		return nil, fmt.Errorf("%w: variadic built-in %s", ErrUnsupported, name)
	}
	b.void = decl.Decl.Result() == nil
	return b, nil
}

func pathKey(path []string) string {
	var buf bytes.Buffer
	for _, s := range path {
		buf.WriteString(s)
		buf.WriteByte(0)
	}
	return buf.String()
}

// walkStmts calls f for every statement in blocks, nested ones included.
func walkStmts(blocks []*ir.Block, f func(ir.Stmt)) {
	for _, b := range blocks {
		if b == nil {
			continue
		}
		for _, s := range b.Stmts {
			f(s)
			switch s := s.(type) {
			case *ir.BlockStmt:
				walkStmts(s.Blocks, f)
			case *ir.ScanStmt:
				walkStmts([]*ir.Block{s.Block}, f)
			case *ir.NotStmt:
				walkStmts([]*ir.Block{s.Block}, f)
			case *ir.WithStmt:
				walkStmts([]*ir.Block{s.Block}, f)
			}
		}
	}
}

// maxLocal is the highest local index blocks, params or ret mention, so a frame's size.
func maxLocal(blocks []*ir.Block, params []ir.Local, ret ir.Local) int {
	m := int(ir.Data)
	see := func(l ir.Local) {
		if int(l) > m {
			m = int(l)
		}
	}
	seeOp := func(o ir.Operand) {
		if l, ok := o.Value.(ir.Local); ok {
			see(l)
		}
	}
	for _, l := range params {
		see(l)
	}
	see(ret)
	walkStmts(blocks, func(stmt ir.Stmt) {
		switch s := stmt.(type) {
		case *ir.ReturnLocalStmt:
			see(s.Source)
		case *ir.CallStmt:
			for _, a := range s.Args {
				seeOp(a)
			}
			see(s.Result)
		case *ir.CallDynamicStmt:
			for _, a := range s.Args {
				see(a)
			}
			for _, a := range s.Path {
				seeOp(a)
			}
			see(s.Result)
		case *ir.DotStmt:
			seeOp(s.Source)
			seeOp(s.Key)
			see(s.Target)
		case *ir.LenStmt:
			seeOp(s.Source)
			see(s.Target)
		case *ir.ScanStmt:
			see(s.Source)
			see(s.Key)
			see(s.Value)
		case *ir.AssignIntStmt:
			see(s.Target)
		case *ir.AssignVarStmt:
			seeOp(s.Source)
			see(s.Target)
		case *ir.AssignVarOnceStmt:
			seeOp(s.Source)
			see(s.Target)
		case *ir.ResetLocalStmt:
			see(s.Target)
		case *ir.MakeNullStmt:
			see(s.Target)
		case *ir.MakeNumberIntStmt:
			see(s.Target)
		case *ir.MakeNumberRefStmt:
			see(s.Target)
		case *ir.MakeArrayStmt:
			see(s.Target)
		case *ir.MakeObjectStmt:
			see(s.Target)
		case *ir.MakeSetStmt:
			see(s.Target)
		case *ir.EqualStmt:
			seeOp(s.A)
			seeOp(s.B)
		case *ir.NotEqualStmt:
			seeOp(s.A)
			seeOp(s.B)
		case *ir.IsArrayStmt:
			seeOp(s.Source)
		case *ir.IsObjectStmt:
			seeOp(s.Source)
		case *ir.IsSetStmt:
			seeOp(s.Source)
		case *ir.IsDefinedStmt:
			see(s.Source)
		case *ir.IsUndefinedStmt:
			see(s.Source)
		case *ir.ArrayAppendStmt:
			seeOp(s.Value)
			see(s.Array)
		case *ir.ObjectInsertStmt:
			seeOp(s.Key)
			seeOp(s.Value)
			see(s.Object)
		case *ir.ObjectInsertOnceStmt:
			seeOp(s.Key)
			seeOp(s.Value)
			see(s.Object)
		case *ir.ObjectMergeStmt:
			see(s.A)
			see(s.B)
			see(s.Target)
		case *ir.SetAddStmt:
			seeOp(s.Value)
			see(s.Set)
		case *ir.WithStmt:
			see(s.Local)
			seeOp(s.Value)
		case *ir.ResultSetAddStmt:
			see(s.Value)
		}
	})
	return m
}

// Functions lists the planned functions' names, sorted; for diagnostics and tests.
func (p *Program) Functions() []string {
	names := make([]string, 0, len(p.funcs))
	for n := range p.funcs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
