package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/builtins"
)

// Compiled is a bundle compiled and prepared for evaluation outside the live path: replaying a
// recorded decision against the exact policy that made it, or trying a candidate bundle. It is safe for
// concurrent use.
type Compiled struct {
	revision string
	data     []byte
	query    rego.PreparedEvalQuery
}

// Revision is the effective revision of the compiled bundle: its manifest revision followed by "@" and
// the first 12 hex digits of the SHA-256 of its serialized form. Decisions report it, and the audit log
// keeps bundles under it, so a revision names exactly one policy even when someone edits a bundle
// without bumping its manifest revision.
func (c *Compiled) Revision() string { return c.revision }

// Data is the bundle serialized in OPA's format, as the audit log keeps it for replay.
func (c *Compiled) Data() []byte { return c.data }

// Compile compiles b and prepares its decision query. It fails when the bundle does not compile.
func Compile(ctx context.Context, b *bundle.Bundle) (*Compiled, error) {
	pq, err := Prepare(ctx, b)
	if err != nil {
		return nil, err
	}
	data, err := Serialize(b)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	return &Compiled{revision: b.Manifest.Revision + "@" + hex.EncodeToString(sum[:6]), data: data, query: pq}, nil
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
func (e *Engine) EvaluateRecorded(ctx context.Context, c *Compiled, req *Request, at time.Time, facts builtins.NDBCache) *Result {
	res := &Result{EvaluatedAt: at, BundleRevision: c.revision, Facts: facts}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.EvalTimeout)
	defer cancel()
	var builtinErrs []topdown.Error
	rs, err := c.query.Eval(ctx,
		rego.EvalParsedInput(req.inputValue()),
		rego.EvalTime(at),
		rego.EvalNDBuiltinCache(facts),
		rego.EvalBuiltinErrorList(&builtinErrs),
		rego.EvalGenerateJSON(rawTerm),
	)
	if err == nil && len(builtinErrs) > 0 {
		err = &builtinErrs[0]
	}
	return e.finish(ctx, res, req, rs, err)
}
