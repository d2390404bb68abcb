package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown/builtins"

	"github.com/tollgate/tollgate/server/history"
	"github.com/tollgate/tollgate/server/insights"
)

// Compiled is a bundle compiled and prepared for evaluation outside the live path: replaying a
// recorded decision against the exact policy that made it, or trying a candidate bundle. It is safe for
// concurrent use.
type Compiled struct {
	revision string
	data     []byte
	query    rego.PreparedEvalQuery
	views    history.Views
	insights insights.Config
	// fast is the IR path and its exactness gate (fastpath.go).
	fast *fastPath
}

// HistoryViews are the history views the bundle declares (params.history.views): what its rules may
// ask tollgate.history for, and so what the service must maintain before it decides.
func (c *Compiled) HistoryViews() history.Views { return c.views }

// Insights is the insights config the bundle declares (params.insights): which action approves which,
// and the approval SLA.
func (c *Compiled) Insights() insights.Config { return c.insights }

// Revision is the effective revision of the compiled bundle: its manifest revision followed by "@" and
// the first 12 hex digits of the SHA-256 of its serialized form. Decisions report it, and the audit log
// keeps bundles under it, so a revision names exactly one policy even when someone edits a bundle
// without bumping its manifest revision.
func (c *Compiled) Revision() string { return c.revision }

// Data is the bundle serialized in OPA's format, as the audit log keeps it for replay.
func (c *Compiled) Data() []byte { return c.data }

// Compile compiles b under the safe capabilities and prepares its decision query. It fails when the
// bundle does not compile, calls a built-in outside the safe set, does not define the decision rule
// (ErrNoDecisionRule) or declares malformed history views (history.ErrInvalidViews) or a malformed
// insights config (insights.ErrInvalidConfig).
func Compile(ctx context.Context, b *bundle.Bundle) (*Compiled, error) {
	return CompileWith(ctx, b, safeCapabilities())
}

// CompileWith is Compile under caps. A nil caps is the safe set.
func CompileWith(ctx context.Context, b *bundle.Bundle, caps *Capabilities) (*Compiled, error) {
	if caps == nil {
		caps = safeCapabilities()
	}
	pq, err := prepare(ctx, b, caps)
	if err != nil {
		return nil, err
	}
	views, err := bundleViews(b)
	if err != nil {
		return nil, err
	}
	ins, err := bundleInsights(b)
	if err != nil {
		return nil, err
	}
	data, err := Serialize(b)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	return &Compiled{revision: b.Manifest.Revision + "@" + hex.EncodeToString(sum[:6]), data: data, query: pq, views: views,
		insights: ins, fast: newFastPath(ctx, b, caps)}, nil
}

// Serialize writes b in OPA's bundle format (tar.gz); the revision digest is taken over it. The output is
// deterministic for a given bundle. Reading bundles is package bundles' job.
func Serialize(b *bundle.Bundle) ([]byte, error) {
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(*b); err != nil {
		return nil, fmt.Errorf("write bundle: %w", err)
	}
	return buf.Bytes(), nil
}

// EvaluateRecorded evaluates req with c at the instant at, answering master-data reads only from facts
// (a decoded audit record's facts). It reads no live data: a read that was not recorded is an error, so
// the result is a POLICY_ERROR DENY rather than a decision on today's data. With the facts and time of
// a recorded decision it reproduces that decision exactly.
//
// It waits its turn for the same evaluators as live decisions (Config.MaxConcurrent), so replays and
// impact analyses share them with live traffic instead of adding to it, and an evaluator takes it only
// when no live decision is waiting; one whose ctx ends while it waits is a DENY with
// EVALUATION_TIMEOUT.
func (e *Engine) EvaluateRecorded(ctx context.Context, c *Compiled, req *Request, at time.Time, facts builtins.NDBCache) *Result {
	ev := &evaluation{ctx: ctx, req: req, recorded: &recordedEval{compiled: c, at: at, facts: facts}}
	return e.submit(ev, func(req *Request, code, msg string, cause error) *Result {
		return e.fail(&Result{EvaluatedAt: at, BundleRevision: c.revision, Facts: facts}, req, code, msg, cause)
	})
}

func (e *Engine) evaluateRecorded(ctx context.Context, c *Compiled, req *Request, at time.Time, facts builtins.NDBCache) *Result {
	res := &Result{EvaluatedAt: at, BundleRevision: c.revision, Facts: facts}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.EvalTimeout)
	defer cancel()
	// Built-in errors are fatal (StrictBuiltinErrors at prepare), live and here alike.
	rs, err := c.eval(ctx, req, at, facts, "")
	return e.finish(ctx, res, req, rs, err)
}

// bundleViews parses the history views a bundle declares. A rule reading a view that cannot be
// maintained must not decide, so malformed views fail the compile.
func bundleViews(b *bundle.Bundle) (history.Views, error) {
	params, ok := b.Data["params"]
	if !ok {
		return history.Views{}, nil
	}
	data, err := json.Marshal(map[string]any{"params": params})
	if err != nil {
		return history.Views{}, fmt.Errorf("read params for history views: %w", err)
	}
	return history.Parse(data)
}

// bundleInsights parses the insights config a bundle declares. Roll-ups folded with a mapping the
// service misread would report wrong delays for good, so a malformed one fails the compile.
func bundleInsights(b *bundle.Bundle) (insights.Config, error) {
	params, ok := b.Data["params"]
	if !ok {
		return insights.Config{}, nil
	}
	data, err := json.Marshal(params)
	if err != nil {
		return insights.Config{}, fmt.Errorf("read params for insights: %w", err)
	}
	return insights.ParseParams(data)
}
