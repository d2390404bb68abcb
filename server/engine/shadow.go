package engine

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/tollgate/tollgate/server/masterdata"
)

// ShadowEvery is how often the live shadow check samples: one decision on the IR path in ShadowEvery
// is decided again on topdown in the background. The gate's corpus was written for the embedded pack;
// for another bundle, live traffic is the corpus that matters, and this check keeps comparing on it.
const ShadowEvery = 256

// shadow decides res's request again on topdown in the background, over a copy of the facts the IR
// path recorded (the same master-data reads and history answers; a read the IR path did not make is
// answered from sn and the history the decision read), and demotes c to topdown if the answer differs.
// One check runs at a time: a sample that finds one running is skipped, so the check never queues CPU
// work behind live decisions.
func (e *Engine) shadow(ctx context.Context, c *Compiled, req *Request, res *Result, sn *masterdata.Snapshot) {
	f := c.fast
	if f.decided.Add(1)%ShadowEvery != 1 || !f.shadowBusy.CompareAndSwap(false, true) {
		return
	}
	raw, err := EncodeFacts(res.Facts)
	if err != nil {
		f.shadowBusy.Store(false)
		return
	}
	hist, _ := historyFrom(ctx)
	live := *res
	go func() {
		defer f.shadowBusy.Store(false)
		facts, err := DecodeFacts(raw)
		if err != nil {
			return
		}
		sctx := withSnapshot(context.Background(), sn)
		if hist != nil {
			sctx = WithHistory(sctx, hist)
		}
		sctx, cancel := context.WithTimeout(sctx, 10*e.cfg.EvalTimeout)
		defer cancel()
		rs, err := c.query.Eval(sctx, rego.EvalParsedInput(req.inputValue()), rego.EvalTime(live.EvaluatedAt),
			rego.EvalNDBuiltinCache(facts), rego.EvalGenerateJSON(rawTerm))
		td := &Result{}
		if code, msg, _ := interpret(sctx, td, rs, err, e.cfg.EvalTimeout); code != "" {
			td.Effect, td.Reasons, td.Failure = Deny, []Reason{{Code: code, Message: msg}}, code
		}
		f.shadowed.Add(1)
		if d := answerDiff(td, &live); d != "" {
			e.demote(c, fmt.Sprintf("live shadow check: a %s decision at %s differed: %s", req.Action, live.EvaluatedAt.Format(time.RFC3339Nano), d))
		}
	}()
}

// demotedRevisions remembers, for the life of the process, the revisions the live shadow check caught:
// a later compile of one (replay, impact analysis) stays on topdown whatever its gate said.
var demotedRevisions sync.Map // revision -> reason

// demote moves c to topdown for good: its gate becomes "failed" with reason, and the next decision is
// topdown's.
func (e *Engine) demote(c *Compiled, reason string) {
	f := c.fast
	f.mu.Lock()
	f.status.Path, f.status.Gate, f.status.Reason = PathTopdown, GateFailed, reason
	f.mu.Unlock()
	f.demoted.Store(true)
	demotedRevisions.Store(c.revision, reason)
	e.log.Error().Str("bundle_revision", c.revision).Str("reason", reason).
		Msg("the IR path differed from topdown on a live decision: the bundle decides on topdown from now on")
}
