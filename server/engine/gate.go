package engine

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/topdown/builtins"

	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/history"
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
	// Prior are earlier decisions the gate's history index holds, so the history-aware rules are decided
	// over real answers: every run builds an index of the bundle's own views and observes them.
	Prior []*audit.Record
	// Workers bounds the goroutines comparing requests. Default 1: the gate runs beside live traffic,
	// which it must not starve; it takes one CPU at most.
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
	if d := answerDiff(a, b); d != "" {
		return d
	}
	switch {
	case a.Failure != b.Failure:
		return fmt.Sprintf("failure %q on topdown (%v), %q on ir (%v)", a.Failure, td.cause, b.Failure, fast.cause)
	case !bytes.Equal(td.facts, fast.facts):
		return fmt.Sprintf("facts %s on topdown, %s on ir", td.facts, fast.facts)
	}
	return ""
}

// answerDiff describes the first difference between what topdown (td) and the IR path (fast) answered:
// effect, reasons, approvers; "" when they agree.
func answerDiff(td, fast *Result) string {
	switch {
	case td.Effect != fast.Effect:
		return fmt.Sprintf("effect %s on topdown, %s on ir", td.Effect, fast.Effect)
	case !slices.Equal(td.Reasons, fast.Reasons):
		return fmt.Sprintf("reasons %v on topdown, %v on ir", td.Reasons, fast.Reasons)
	case !slices.Equal(td.Approvers, fast.Approvers):
		return fmt.Sprintf("approvers %v on topdown, %v on ir", td.Approvers, fast.Approvers)
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
	hist := history.New(c.HistoryViews())
	for _, r := range g.Prior {
		hist.Observe(r)
	}
	workers := g.Workers
	if workers <= 0 {
		workers = 1
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
				d := c.Compare(ctx, g.Requests[i], g.Snapshot, g.At, hist)
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

// gateRuns shares one gate run per compiled revision and gate within the process: the service compiles
// the same revision again for replay and impact analysis, and tests compile the embedded pack many
// times over.
var gateRuns sync.Map // gateRunKey -> *gateRun

type gateRunKey struct {
	revision string
	gate     *Gate
}

type gateRun struct {
	once   sync.Once
	done   chan struct{}
	status PathStatus
}

// startGate settles c's path: off without a gate, else from the revision's shared gate run, started
// in the background by its first compile.
func (e *Engine) startGate(c *Compiled) {
	if c.fast == nil || c.fast.prog == nil {
		st := c.PathStatus()
		e.log.Info().Str("bundle_revision", c.revision).Str("path", st.Path).Str("gate", st.Gate).
			Str("reason", st.Reason).Msg("bundle decides on topdown: the IR evaluator cannot run it")
		return
	}
	if e.cfg.Gate == nil {
		c.settleOff("no exactness gate is configured")
		return
	}
	if reason, ok := demotedRevisions.Load(c.revision); ok {
		c.fast.demoted.Store(true)
		c.fast.settle(PathStatus{Path: PathTopdown, Gate: GateFailed, Reason: reason.(string)})
		return
	}
	g, err := e.cfg.Gate()
	if err != nil {
		e.log.Error().Err(err).Str("bundle_revision", c.revision).Msg("exactness gate unavailable: the bundle decides on topdown")
		c.fast.settle(PathStatus{Path: PathTopdown, Gate: GateFailed, Reason: "the gate corpus could not be built: " + err.Error()})
		return
	}
	v, _ := gateRuns.LoadOrStore(gateRunKey{c.revision, g}, &gateRun{done: make(chan struct{})})
	run := v.(*gateRun)
	run.once.Do(func() {
		go func() {
			defer close(run.done)
			run.status = c.RunGate(context.Background(), g)
			ev := e.log.Info()
			if run.status.Gate != GatePassed {
				ev = e.log.Warn()
			}
			ev.Str("bundle_revision", c.revision).Str("path", run.status.Path).Str("gate", run.status.Gate).
				Int("checked", run.status.Checked).Dur("elapsed", run.status.Elapsed).Str("reason", run.status.Reason).
				Msg("exactness gate")
		}()
	})
	go func() {
		<-run.done
		c.fast.settle(run.status)
	}()
}
