package irvm

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/ir"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/builtins"
)

// Env is what one evaluation runs on.
type Env struct {
	// Input is the input document; nil when there is none.
	Input ast.Value
	// Data is the data document (the bundle's base documents).
	Data ast.Value
	// Time is the clock built-ins see (time.now_ns), as rego.EvalTime gives topdown.
	Time time.Time
	// NDB records, and answers, the non-deterministic built-in calls; nil records nothing.
	NDB builtins.NDBCache
	// Seed feeds the random built-ins; nil is crypto/rand, as in topdown.
	Seed io.Reader
	// Capabilities are handed to the built-ins that consult them.
	Capabilities *ast.Capabilities
}

// Block outcomes besides an unwind count n >= 0 (leave n more enclosing blocks).
const (
	fellThrough = -1 // every statement was defined
	returned    = -2 // a ReturnLocalStmt ended the function
)

// cancelCheckEvery is how many calls and scan iterations pass between two looks at the context.
const cancelCheckEvery = 256

var noMetrics = metrics.NoOp()

// stackPool recycles the evaluations' stacks (vm.stack).
var stackPool sync.Pool

// vm is the state of one evaluation.
type vm struct {
	p       *Program
	ctx     context.Context
	bctx    topdown.BuiltinContext
	ndb     builtins.NDBCache
	memo    [][]memoSlot
	results []*ast.Term
	// builtinErr is the first built-in error; the evaluation goes on with the call undefined, as
	// topdown's does, and fails at the end (strict built-in errors).
	builtinErr error
	ticks      int
	// stack holds the locals of the active function frames and the arguments of calls being made,
	// last in first out, so a call allocates nothing once the stack has grown to the plan's depth.
	stack []*ast.Term
}

type memoSlot struct {
	done bool
	v    *ast.Term
}

type frame struct {
	locals []*ast.Term
	ret    *ast.Term
}

// InternalError is an evaluation that broke one of the evaluator's own invariants (a statement on a
// value of the wrong kind, a panic): a bug in irvm or the planner, not an answer of the policy. The
// engine answers such a decision on topdown instead.
type InternalError struct{ Msg string }

func (e *InternalError) Error() string { return "irvm: internal error: " + e.Msg }

func internalf(format string, args ...any) error {
	return &InternalError{Msg: fmt.Sprintf(format, args...)}
}

// Eval runs the plan and returns its result set in the order the values were added. The error is a
// built-in's (strict built-in errors), a conflict, ctx's when it ended, or an *InternalError.
func (p *Program) Eval(ctx context.Context, env Env) (_ []*ast.Term, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = internalf("panic: %v", r)
		}
	}()
	m := &vm{p: p, ctx: ctx, ndb: env.NDB}
	if env.Seed == nil {
		env.Seed = rand.Reader // as topdown's default
	}
	m.bctx = topdown.BuiltinContext{
		Context:        ctx,
		Metrics:        noMetrics,
		Seed:           env.Seed,
		Time:           ast.NumberTerm(intToJSONNumber(env.Time.UnixNano())),
		Cache:          builtins.Cache{},
		NDBuiltinCache: env.NDB,
		Capabilities:   env.Capabilities,
	}
	m.memo = [][]memoSlot{make([]memoSlot, p.memoized)}
	if st, ok := stackPool.Get().(*[]*ast.Term); ok {
		m.stack = (*st)[:0]
	}
	defer func() {
		st := m.stack[:cap(m.stack)]
		clear(st) // no evaluation's values outlive it through the pool
		st = st[:0]
		stackPool.Put(&st)
	}()
	fr := &frame{locals: m.push(p.plan.nlocals)}
	if env.Input != nil {
		fr.locals[ir.Input] = ast.NewTerm(env.Input)
	}
	if env.Data != nil {
		fr.locals[ir.Data] = ast.NewTerm(env.Data)
	}
	for _, b := range p.plan.blocks {
		r, err := m.block(fr, b)
		if err != nil {
			return nil, err
		}
		if r == returned {
			break
		}
	}
	if m.builtinErr != nil {
		return nil, m.builtinErr
	}
	return m.results, nil
}

func intToJSONNumber(n int64) json.Number { return json.Number(strconv.FormatInt(n, 10)) }

func (m *vm) tick() error {
	m.ticks++
	if m.ticks%cancelCheckEvery == 0 {
		if err := m.ctx.Err(); err != nil {
			return &topdown.Error{Code: topdown.CancelErr, Message: "caller cancelled query execution"}
		}
	}
	return nil
}

func (m *vm) operand(fr *frame, o ir.Operand) *ast.Term {
	switch v := o.Value.(type) {
	case ir.Local:
		return fr.locals[v]
	case ir.StringIndex:
		return m.p.stringTerms[v]
	case ir.Bool:
		return ast.InternedTerm(bool(v))
	}
	return nil
}

// block runs b's statements and tells how it ended: fellThrough, returned, or the number of further
// enclosing blocks to leave (0: only this one, because a statement was undefined).
func (m *vm) block(fr *frame, b *block) (int, error) {
	for i := range b.stmts {
		st := &b.stmts[i]
		switch s := st.Stmt.(type) {
		case *ir.ReturnLocalStmt:
			fr.ret = fr.locals[s.Source]
			return returned, nil
		case *ir.CallStmt:
			v, err := m.callStmt(fr, s, st.callee)
			if err != nil {
				return 0, err
			}
			if v == nil {
				return 0, nil
			}
			fr.locals[s.Result] = v
		case *ir.CallDynamicStmt:
			fn := m.dynamicTarget(fr, s)
			if fn == nil {
				return 0, nil
			}
			args := make([]*ast.Term, len(s.Args))
			for i, a := range s.Args {
				args[i] = fr.locals[a]
			}
			v, err := m.call(fn, args)
			if err != nil {
				return 0, err
			}
			if v == nil {
				// Found but undefined: the planner's layout (see planner.planRefData) leaves the
				// whole reference, three blocks out.
				return 3, nil
			}
			fr.locals[s.Result] = v
		case *ir.BlockStmt:
			for _, child := range st.sub {
				r, err := m.block(fr, child)
				if err != nil || r == returned {
					return r, err
				}
				if r >= 1 {
					return r - 1, nil
				}
			}
		case *ir.BreakStmt:
			return int(s.Index), nil
		case *ir.DotStmt:
			v := dot(m.operand(fr, s.Source), m.operand(fr, s.Key))
			if v == nil {
				return 0, nil
			}
			fr.locals[s.Target] = v
		case *ir.LenStmt:
			n, ok := length(m.operand(fr, s.Source))
			if !ok {
				return 0, nil
			}
			fr.locals[s.Target] = ast.InternedTerm(n)
		case *ir.ScanStmt:
			r, err := m.scan(fr, s, st.sub[0])
			if err != nil || r != fellThrough {
				return r, err
			}
		case *ir.NotStmt:
			r, err := m.block(fr, st.sub[0])
			switch {
			case err != nil || r == returned:
				return r, err
			case r == fellThrough: // the negated block held: not is undefined
				return 0, nil
			case r >= 1:
				return r - 1, nil
			}
		case *ir.AssignIntStmt:
			fr.locals[s.Target] = ast.InternedTerm(int(s.Value))
		case *ir.AssignVarStmt:
			// A copy, undefined included: the planner saves an input that was never given this way
			// before a `with input as …`, to restore it after.
			fr.locals[s.Target] = m.operand(fr, s.Source)
		case *ir.AssignVarOnceStmt:
			v := m.operand(fr, s.Source)
			if v == nil {
				return 0, nil
			}
			if old := fr.locals[s.Target]; old != nil && ast.Compare(old.Value, v.Value) != 0 {
				return 0, &topdown.Error{Code: topdown.ConflictErr, Message: "complete rules must not produce multiple outputs"}
			}
			fr.locals[s.Target] = v
		case *ir.ResetLocalStmt:
			fr.locals[s.Target] = nil
		case *ir.MakeNullStmt:
			fr.locals[s.Target] = ast.InternedNullTerm
		case *ir.MakeNumberIntStmt:
			fr.locals[s.Target] = ast.InternedTerm(int(s.Value))
		case *ir.MakeNumberRefStmt:
			fr.locals[s.Target] = m.p.numbers[s.Index]
		case *ir.MakeArrayStmt:
			fr.locals[s.Target] = ast.NewTerm(ast.NewArray(make([]*ast.Term, 0, s.Capacity)...))
		case *ir.MakeObjectStmt:
			fr.locals[s.Target] = ast.NewTerm(ast.NewObject())
		case *ir.MakeSetStmt:
			fr.locals[s.Target] = ast.NewTerm(ast.NewSet())
		case *ir.EqualStmt:
			a, b := m.operand(fr, s.A), m.operand(fr, s.B)
			if a == nil || b == nil || ast.Compare(a.Value, b.Value) != 0 {
				return 0, nil
			}
		case *ir.NotEqualStmt:
			a, b := m.operand(fr, s.A), m.operand(fr, s.B)
			if a == nil || b == nil || ast.Compare(a.Value, b.Value) == 0 {
				return 0, nil
			}
		case *ir.IsArrayStmt:
			if v := m.operand(fr, s.Source); v == nil || !isArray(v) {
				return 0, nil
			}
		case *ir.IsObjectStmt:
			if v := m.operand(fr, s.Source); v == nil || !isObject(v) {
				return 0, nil
			}
		case *ir.IsSetStmt:
			if v := m.operand(fr, s.Source); v == nil || !isSet(v) {
				return 0, nil
			}
		case *ir.IsDefinedStmt:
			if fr.locals[s.Source] == nil {
				return 0, nil
			}
		case *ir.IsUndefinedStmt:
			if fr.locals[s.Source] != nil {
				return 0, nil
			}
		case *ir.ArrayAppendStmt:
			arr, ok := termArray(fr.locals[s.Array])
			v := m.operand(fr, s.Value)
			if !ok || v == nil {
				return 0, internalf("array append to %s", kind(fr.locals[s.Array]))
			}
			// In place, as the Wasm runtime appends: every local holding the array sees it.
			fr.locals[s.Array].Value = arr.Append(v)
		case *ir.ObjectInsertStmt:
			obj, ok := termObject(fr.locals[s.Object])
			k, v := m.operand(fr, s.Key), m.operand(fr, s.Value)
			if !ok || k == nil || v == nil {
				return 0, internalf("object insert into %s", kind(fr.locals[s.Object]))
			}
			obj.Insert(k, v)
		case *ir.ObjectInsertOnceStmt:
			obj, ok := termObject(fr.locals[s.Object])
			k, v := m.operand(fr, s.Key), m.operand(fr, s.Value)
			if !ok || k == nil || v == nil {
				return 0, internalf("object insert into %s", kind(fr.locals[s.Object]))
			}
			if old := obj.Get(k); old != nil {
				if ast.Compare(old.Value, v.Value) != 0 {
					return 0, &topdown.Error{Code: topdown.ConflictErr, Message: "object keys must be unique"}
				}
				continue
			}
			obj.Insert(k, v)
		case *ir.ObjectMergeStmt:
			v, err := merge(fr.locals[s.A], fr.locals[s.B])
			if err != nil {
				return 0, err
			}
			fr.locals[s.Target] = v
		case *ir.SetAddStmt:
			set, ok := termSet(fr.locals[s.Set])
			v := m.operand(fr, s.Value)
			if !ok || v == nil {
				return 0, internalf("set add to %s", kind(fr.locals[s.Set]))
			}
			set.Add(v)
		case *ir.WithStmt:
			r, err := m.with(fr, s, st.sub[0])
			if err != nil || r == returned {
				return r, err
			}
			if r == 0 {
				return 0, nil
			}
			if r >= 1 {
				return r - 1, nil
			}
		case *ir.NopStmt:
		case *ir.ResultSetAddStmt:
			v := fr.locals[s.Value]
			if v == nil {
				return 0, nil
			}
			m.addResult(v)
		default:
			return 0, internalf("statement %T", st.Stmt)
		}
	}
	return fellThrough, nil
}

func (m *vm) addResult(v *ast.Term) {
	for _, r := range m.results {
		if ast.Compare(r.Value, v.Value) == 0 {
			return
		}
	}
	m.results = append(m.results, v)
}

// scan runs s's body once per element of its source, in the order topdown iterates (arrays by index,
// objects and sets by sorted key). The body is a loop body: leaving it (0) goes on with the next
// element, leaving one more ends the scan, and more leave blocks around the scan.
func (m *vm) scan(fr *frame, s *ir.ScanStmt, body *block) (int, error) {
	src := fr.locals[s.Source]
	if src == nil {
		return fellThrough, nil
	}
	outcome := fellThrough
	var stop = errStopScan
	visit := func(k, v *ast.Term) error {
		if err := m.tick(); err != nil {
			return err
		}
		fr.locals[s.Key], fr.locals[s.Value] = k, v
		r, err := m.block(fr, body)
		switch {
		case err != nil:
			return err
		case r == returned:
			outcome = returned
			return stop
		case r == 1:
			return stop
		case r >= 2:
			outcome = r - 2
			return stop
		}
		return nil
	}
	var err error
	switch c := src.Value.(type) {
	case *ast.Array:
		for i := 0; i < c.Len(); i++ {
			if err = visit(ast.InternedTerm(i), c.Elem(i)); err != nil {
				break
			}
		}
	case ast.Object:
		err = c.Iter(visit)
	case ast.Set:
		err = c.Iter(func(t *ast.Term) error { return visit(t, t) })
	}
	if err != nil && err != stop {
		return 0, err
	}
	return outcome, nil
}

var errStopScan = fmt.Errorf("irvm: scan stopped")

func (m *vm) with(fr *frame, s *ir.WithStmt, body *block) (int, error) {
	save := fr.locals[s.Local]
	v := m.operand(fr, s.Value)
	if len(s.Path) == 0 {
		// An undefined value is a value here: the planner restores an input that was never given this
		// way for the rest of a body after `with input as …`.
		fr.locals[s.Local] = v
	} else {
		if v == nil {
			return 0, nil
		}
		keys := make([]*ast.Term, len(s.Path))
		for i, idx := range s.Path {
			keys[i] = ast.NewTerm(m.p.strings[idx])
		}
		fr.locals[s.Local] = upsert(save, keys, v)
	}
	m.memo = append(m.memo, make([]memoSlot, m.p.memoized))
	r, err := m.block(fr, body)
	m.memo = m.memo[:len(m.memo)-1]
	fr.locals[s.Local] = save
	if r == fellThrough {
		return fellThrough, err
	}
	return r, err
}

// upsert returns a copy of doc with v at path, creating the objects on the way.
func upsert(doc *ast.Term, path []*ast.Term, v *ast.Term) *ast.Term {
	var obj ast.Object
	if doc != nil {
		if o, ok := doc.Value.(ast.Object); ok {
			obj = o.Copy()
		}
	}
	if obj == nil {
		obj = ast.NewObject()
	}
	if len(path) == 1 {
		obj.Insert(path[0], v)
	} else {
		obj.Insert(path[0], upsert(obj.Get(path[0]), path[1:], v))
	}
	return ast.NewTerm(obj)
}

func (m *vm) callStmt(fr *frame, s *ir.CallStmt, c *callee) (*ast.Term, error) {
	if c.fn != nil {
		// A function's arguments live on the stack: the callee copies them into its frame.
		base := len(m.stack)
		args := m.push(len(s.Args))
		for i, a := range s.Args {
			args[i] = m.operand(fr, a)
		}
		v, err := m.call(c.fn, args)
		m.stack = m.stack[:base]
		return v, err
	}
	// A built-in's operands are its own: some keep the slice (the NDB cache key does).
	args := make([]*ast.Term, len(s.Args))
	for i, a := range s.Args {
		args[i] = m.operand(fr, a)
	}
	return m.callBuiltin(c.builtin, args)
}

// push reserves n cleared slots on the stack. A slice handed out earlier stays valid when the stack
// grows: it keeps the old backing array, which nothing else uses any more.
func (m *vm) push(n int) []*ast.Term {
	base := len(m.stack)
	if cap(m.stack)-base < n {
		m.stack = slices.Grow(m.stack, max(n, cap(m.stack)))
	}
	m.stack = m.stack[:base+n]
	s := m.stack[base : base+n : base+n]
	clear(s)
	return s
}

// call runs a planned function; nil is undefined.
func (m *vm) call(fn *function, args []*ast.Term) (*ast.Term, error) {
	if err := m.tick(); err != nil {
		return nil, err
	}
	memo := m.memo[len(m.memo)-1]
	if fn.memo && memo[fn.id].done {
		return memo[fn.id].v, nil
	}
	base := len(m.stack)
	defer func() { m.stack = m.stack[:base] }()
	fr := &frame{locals: m.push(fn.nlocals)}
	for i, p := range fn.params {
		fr.locals[p] = args[i]
	}
	ended := false
	for _, b := range fn.blocks {
		r, err := m.block(fr, b)
		if err != nil {
			return nil, err
		}
		if r == returned {
			ended = true
			break
		}
		if r >= 1 { // leaving the function's own body: it ends with what it holds
			break
		}
	}
	v := fr.ret
	if !ended {
		v = fr.locals[fn.ret]
	}
	if fn.memo {
		// The memo of the frame the call started in: a WithStmt inside the function pushed and popped
		// its own.
		m.memo[len(m.memo)-1][fn.id] = memoSlot{done: true, v: v}
	}
	return v, nil
}

func (m *vm) dynamicTarget(fr *frame, s *ir.CallDynamicStmt) *function {
	path := make([]string, len(s.Path))
	for i, o := range s.Path {
		t := m.operand(fr, o)
		if t == nil {
			return nil
		}
		str, ok := t.Value.(ast.String)
		if !ok {
			return nil
		}
		path[i] = string(str)
	}
	return m.p.byPath[pathKey(path)]
}

// callBuiltin calls b as topdown does: through the NDB cache for a non-deterministic built-in, and with
// a built-in error making the call undefined while the evaluation goes on to fail at its end.
func (m *vm) callBuiltin(b *builtin, args []*ast.Term) (*ast.Term, error) {
	for _, a := range args {
		if a == nil {
			return nil, nil
		}
	}
	if len(args) != b.arity {
		return nil, internalf("built-in %s called with %d arguments, want %d", b.name, len(args), b.arity)
	}
	var key ast.Value
	if b.nondeterministic && m.ndb != nil {
		key = ast.NewArray(args...)
		if v, ok := m.ndb.Get(b.name, key); ok {
			if b.void {
				return ast.InternedTerm(true), nil
			}
			return ast.NewTerm(v), nil
		}
	}
	var out *ast.Term
	err := b.f(m.bctx, args, func(t *ast.Term) error {
		if out == nil {
			out = t
		}
		return nil
	})
	if err != nil {
		if h, ok := err.(topdown.Halt); ok {
			return nil, h.Err
		}
		if m.builtinErr == nil {
			m.builtinErr = err
		}
		return nil, nil
	}
	if out == nil {
		return nil, nil
	}
	if key != nil {
		m.ndb.Put(b.name, key, out.Value)
	}
	if b.void {
		return ast.InternedTerm(true), nil
	}
	return out, nil
}

func dot(src, key *ast.Term) *ast.Term {
	if src == nil || key == nil {
		return nil
	}
	switch c := src.Value.(type) {
	case ast.Object:
		return c.Get(key)
	case *ast.Array:
		n, ok := key.Value.(ast.Number)
		if !ok {
			return nil
		}
		i, ok := n.Int()
		if !ok || i < 0 || i >= c.Len() {
			return nil
		}
		return c.Elem(i)
	case ast.Set:
		if c.Contains(key) {
			return key
		}
	}
	return nil
}

func length(t *ast.Term) (int, bool) {
	if t == nil {
		return 0, false
	}
	switch c := t.Value.(type) {
	case *ast.Array:
		return c.Len(), true
	case ast.Object:
		return c.Len(), true
	case ast.Set:
		return c.Len(), true
	case ast.String:
		return utf8.RuneCountInString(string(c)), true
	}
	return 0, false
}

func merge(a, b *ast.Term) (*ast.Term, error) {
	switch {
	case a == nil:
		return b, nil
	case b == nil:
		return a, nil
	}
	oa, ok1 := a.Value.(ast.Object)
	ob, ok2 := b.Value.(ast.Object)
	if !ok1 || !ok2 {
		return nil, &topdown.Error{Code: topdown.ConflictErr, Message: "cannot merge a non-object value"}
	}
	o, ok := oa.Merge(ob)
	if !ok {
		return nil, &topdown.Error{Code: topdown.ConflictErr, Message: "merge of conflicting objects"}
	}
	return ast.NewTerm(o), nil
}

func isArray(t *ast.Term) bool  { _, ok := t.Value.(*ast.Array); return ok }
func isObject(t *ast.Term) bool { _, ok := t.Value.(ast.Object); return ok }
func isSet(t *ast.Term) bool    { _, ok := t.Value.(ast.Set); return ok }

func termArray(t *ast.Term) (*ast.Array, bool) {
	if t == nil {
		return nil, false
	}
	a, ok := t.Value.(*ast.Array)
	return a, ok
}

func termObject(t *ast.Term) (ast.Object, bool) {
	if t == nil {
		return nil, false
	}
	o, ok := t.Value.(ast.Object)
	return o, ok
}

func termSet(t *ast.Term) (ast.Set, bool) {
	if t == nil {
		return nil, false
	}
	s, ok := t.Value.(ast.Set)
	return s, ok
}

func kind(t *ast.Term) string {
	if t == nil {
		return "undefined"
	}
	return ast.ValueName(t.Value)
}
