package policies_test

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/rs/zerolog"

	tollgate "github.com/tollgate/tollgate/clients/go"
	"github.com/tollgate/tollgate/policies"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/api"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/bundles"
	"github.com/tollgate/tollgate/server/engine"
	"github.com/tollgate/tollgate/server/engine/gatecorpus"
	"github.com/tollgate/tollgate/server/history"
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

// loadPack loads policies/ from disk as an OPA bundle with file paths, as the
// Rego test runner needs them for coverage.
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

// compilePack compiles the embedded pack (policies.FS) the way `tollgate
// serve` does.
func compilePack(tb testing.TB) *engine.Compiled {
	tb.Helper()
	b, err := bundles.ReadFS(policies.FS, nil)
	if err != nil {
		tb.Fatalf("load embedded pack: %v", err)
	}
	c, err := engine.Compile(context.Background(), b)
	if err != nil {
		tb.Fatalf("compile pack: %v", err)
	}
	return c
}

// packViews returns the history views the embedded pack declares.
func packViews(tb testing.TB) history.Views {
	tb.Helper()
	raw, err := fs.ReadFile(policies.FS, "data.json")
	if err != nil {
		tb.Fatalf("read pack data: %v", err)
	}
	views, err := history.Parse(raw)
	if err != nil {
		tb.Fatalf("parse history views: %v", err)
	}
	return views
}

// withHistory returns a context whose decisions read the decision history
// of records: a real index of views that has observed them, as the decision
// path observes committed records.
func withHistory(views history.Views, records ...*audit.Record) context.Context {
	return engine.WithHistory(context.Background(), historyIndex(views, records...))
}

// historyIndex is a history index of views that has observed records.
func historyIndex(views history.Views, records ...*audit.Record) *history.Index {
	ix := history.New(views)
	for _, r := range records {
		ix.Observe(r)
	}
	return ix
}

// engineRequest is the engine's form of the JSON request raw, as the exactness gate builds it.
func engineRequest(tb testing.TB, raw []byte) *engine.Request {
	tb.Helper()
	var in map[string]any
	if err := json.Unmarshal(raw, &in); err != nil {
		tb.Fatalf("decode request: %v", err)
	}
	r, err := gatecorpus.NewRequest("case", in)
	if err != nil {
		tb.Fatalf("request: %v", err)
	}
	return r.Engine
}

// emptyHistory returns a context whose decisions read an empty decision
// history of the embedded pack's views: the history-aware rules
// (policy-pack §6) find no prior decision. Without a history in its context a
// decision that reads history fails closed.
func emptyHistory(tb testing.TB) context.Context {
	tb.Helper()
	return withHistory(packViews(tb))
}

// newStore returns a real master-data store (go-memdb) loaded with the
// NDJSON change events of fsys and then extra events, records prepared as the
// engine prepares them.
func newStore(tb testing.TB, fsys fs.FS, extra []masterdata.Event) *masterdata.Store {
	tb.Helper()
	st, err := masterdata.New(masterdata.Config{Prepare: engine.PrepareRecord})
	if err != nil {
		tb.Fatalf("new store: %v", err)
	}
	if _, err := st.LoadDir(fsys); err != nil {
		tb.Fatalf("load master data: %v", err)
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

// newServer returns the real decision service (unaudited) over an engine
// running compiled on store with its clock fixed at now.
func newServer(tb testing.TB, compiled *engine.Compiled, store *masterdata.Store, now time.Time) *api.DecisionServer {
	tb.Helper()
	// A generous evaluation bound: these tests check what the policy decides, and under -race on a busy
	// machine the default 250ms would turn a slow evaluation into an EVALUATION_TIMEOUT DENY.
	eng, err := engine.New(engine.Config{Clock: func() time.Time { return now }, EvalTimeout: time.Minute}, store, zerolog.Nop())
	if err != nil {
		tb.Fatalf("new engine: %v", err)
	}
	eng.Activate(compiled)
	return api.NewDecisionServer(eng, nil, api.Limits{}, nil, zerolog.Nop())
}

// outcome is what a decision case checks: effect, primary reason, approvers.
type outcome struct {
	Effect    string   `json:"effect"`
	Primary   string   `json:"primary"`
	Approvers []string `json:"approvers"`
}

// parseRequest reads a request in policy-pack §2 JSON form, as `tollgatectl
// decide -f` does.
func parseRequest(tb testing.TB, raw []byte) *tollgatev1.DecideRequest {
	tb.Helper()
	req, err := tollgate.ParseDecideRequestJSON(raw)
	if err != nil {
		tb.Fatalf("parse request: %v", err)
	}
	return req
}

// decide sends the JSON request raw to srv under ctx (which carries the
// decision history, emptyHistory) and returns the outcome and every reason
// code, primary first.
func decide(tb testing.TB, ctx context.Context, srv *api.DecisionServer, raw []byte) (outcome, []string) {
	tb.Helper()
	resp, err := srv.Decide(ctx, parseRequest(tb, raw))
	if err != nil {
		tb.Fatalf("decide: %v", err)
	}
	if len(resp.GetReasons()) == 0 {
		tb.Fatalf("decision without reasons: %v", resp)
	}
	codes := make([]string, len(resp.GetReasons()))
	for i, r := range resp.GetReasons() {
		codes[i] = r.GetCode()
	}
	got := outcome{
		Effect:    strings.TrimPrefix(resp.GetEffect().String(), "EFFECT_"),
		Primary:   codes[0],
		Approvers: resp.GetApprovers(),
	}
	return got, codes
}
