package engine

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/topdown/builtins"

	"github.com/tollgate/tollgate/server/masterdata"
)

// Gate is the exactness gate a bundle's IR path must pass before it decides anything: every request of
// the corpus, decided on both paths over the same master data at the same instant, must give the same
// effect, reasons (codes and messages), approvers, fail-closed code and recorded facts, byte for byte.
// One difference and the bundle stays on topdown, its PathStatus naming the request that differed.
type Gate struct {
	// Requests is the corpus. The engine's default (package gatecorpus) is the 1,200-request perf
	// corpus, every decision case of the pack's tests and the README's demo requests.
	Requests []*Request
	// Snapshot is the master data the gate decides on: the demo data the corpus was written against,
	// not the live data, so a bundle's verdict does not depend on the day it was activated.
	Snapshot *masterdata.Snapshot
	// At is the evaluation instant of every gate decision.
	At time.Time
	// History answers tollgate.history calls during the gate (an empty index answers zero); nil makes
	// them fail closed on both paths alike.
	History HistoryReader
	// Workers bounds the goroutines comparing requests. Default GOMAXPROCS.
	Workers int
}

// Compare decides req on both paths of c, over sn at the instant at, with fresh fact caches, and
// returns "" when the two results are identical or a description of the first difference.
func (c *Compiled) Compare(ctx context.Context, req *Request, sn *masterdata.Snapshot, at time.Time, hist HistoryReader) string {
	if c.fast == nil || c.fast.prog == nil {
		return "the bundle has no IR path"
	}
	td := c.decideOn(ctx, req, sn, at, hist, PathTopdown)
	fast := c.decideOn(ctx, req, sn, at, hist, PathIR)
	return diffResults(td, fast)
}

// decided is one path's result with its facts encoded, as the audit log would keep them.
type decided struct {
	res   *Result
	facts []byte
	cause error
}

func (c *Compiled) decideOn(ctx context.Context, req *Request, sn *masterdata.Snapshot, at time.Time, hist HistoryReader, path string) decided {
	res := &Result{EvaluatedAt: at, MasterdataRevision: sn.Revision(), Facts: builtins.NDBCache{}, BundleRevision: c.revision}
	ctx = withSnapshot(ctx, sn)
	if hist != nil {
		ctx = WithHistory(ctx, hist)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rs, err := c.eval(ctx, req, at, res.Facts, path)
	code, msg, cause := interpret(ctx, res, rs, err, 10*time.Second)
	if code != "" {
		res.Effect, res.Reasons, res.Approvers, res.Failure = Deny, []Reason{{Code: code, Message: msg}}, nil, code
	}
	facts, ferr := EncodeFacts(res.Facts)
	if ferr != nil {
		facts = []byte("unencodable facts: " + ferr.Error())
	}
	return decided{res: res, facts: facts, cause: cause}
}

func diffResults(td, fast decided) string {
	a, b := td.res, fast.res
	switch {
	case a.Effect != b.Effect:
		return fmt.Sprintf("effect %s on topdown, %s on ir", a.Effect, b.Effect)
	case !slices.Equal(a.Reasons, b.Reasons):
		return fmt.Sprintf("reasons %v on topdown, %v on ir", a.Reasons, b.Reasons)
	case !slices.Equal(a.Approvers, b.Approvers):
		return fmt.Sprintf("approvers %v on topdown, %v on ir", a.Approvers, b.Approvers)
	case a.Failure != b.Failure:
		return fmt.Sprintf("failure %q on topdown (%v), %q on ir (%v)", a.Failure, td.cause, b.Failure, fast.cause)
	case !bytes.Equal(td.facts, fast.facts):
		return fmt.Sprintf("facts %s on topdown, %s on ir", td.facts, fast.facts)
	}
	return ""
}

// RunGate compares c's two paths on every request of g and settles c's PathStatus: PathIR when all
// agree, topdown otherwise. It returns the verdict; a bundle that irvm cannot run keeps its
// "unsupported" verdict.
func (c *Compiled) RunGate(ctx context.Context, g *Gate) PathStatus {
	if c.fast == nil || c.fast.prog == nil {
		return c.PathStatus()
	}
	start := time.Now()
	workers := g.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var (
		next    atomic.Int64
		checked atomic.Int64
		mu      sync.Mutex
		first   = -1
		reason  string
		wg      sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(g.Requests) || ctx.Err() != nil {
					return
				}
				mu.Lock()
				stop := first >= 0 && first < i
				mu.Unlock()
				if stop {
					return
				}
				d := c.Compare(ctx, g.Requests[i], g.Snapshot, g.At, g.History)
				checked.Add(1)
				if d != "" {
					mu.Lock()
					if first < 0 || i < first {
						first, reason = i, fmt.Sprintf("gate request %d (action %q): %s", i, g.Requests[i].Action, d)
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	st := PathStatus{Path: PathIR, Gate: GatePassed, Checked: int(checked.Load()), Elapsed: time.Since(start)}
	switch {
	case first >= 0:
		st.Path, st.Gate, st.Reason = PathTopdown, GateFailed, reason
	case ctx.Err() != nil:
		st.Path, st.Gate, st.Reason = PathTopdown, GateFailed, "the gate was interrupted: "+ctx.Err().Error()
	case len(g.Requests) == 0:
		st.Path, st.Gate, st.Reason = PathTopdown, GateFailed, "the gate corpus is empty"
	}
	c.fast.settle(st)
	return c.PathStatus()
}

// settleOff records that no gate will run: the bundle decides on topdown.
func (c *Compiled) settleOff(reason string) {
	if c.fast == nil || c.fast.prog == nil {
		return
	}
	c.fast.settle(PathStatus{Path: PathTopdown, Gate: GateOff, Reason: reason})
}
