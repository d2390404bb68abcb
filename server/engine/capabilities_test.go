package engine_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tollgate/tollgate/server/bundles"
	"github.com/tollgate/tollgate/server/engine"
)

// TestSafeCapabilitiesLeaveOutNetworkAndHost checks the default set against OPA's own built-in list:
// nothing that reaches the network or the host, everything else, and the master-data built-ins.
func TestSafeCapabilitiesLeaveOutNetworkAndHost(t *testing.T) {
	safe, err := engine.NewCapabilities(nil)
	if err != nil {
		t.Fatal(err)
	}
	caps := safe.AST()
	have := map[string]bool{}
	for _, b := range caps.Builtins {
		have[b.Name] = true
	}
	for _, b := range ast.CapabilitiesForThisVersion().Builtins {
		unsafe := b.Name == "http.send" || b.Name == "net.lookup_ip_addr" || b.Name == "opa.runtime"
		if have[b.Name] == unsafe {
			t.Errorf("built-in %s in the safe set: %t", b.Name, have[b.Name])
		}
	}
	for _, name := range []string{engine.BuiltinGet, engine.BuiltinLookup} {
		if !have[name] {
			t.Errorf("master-data built-in %s missing", name)
		}
	}
	if caps.AllowNet == nil || len(caps.AllowNet) != 0 {
		t.Errorf("AllowNet = %#v, want an empty list (no host)", caps.AllowNet)
	}
	if _, err := engine.NewCapabilities([]string{"http.sned"}); err == nil {
		t.Error("NewCapabilities accepted an unknown built-in")
	}
}

// TestNetworkBundleIsRefused: a bundle calling http.send and opa.runtime does not compile under the
// default set, and the error names the built-in; allowed explicitly, it compiles and reaches the
// network.
func TestNetworkBundleIsRefused(t *testing.T) {
	ctx := context.Background()
	b, err := bundles.ReadDir("testdata/network", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = engine.Compile(ctx, b)
	if err == nil || !strings.Contains(err.Error(), "undefined function http.send") || !strings.Contains(err.Error(), "undefined function opa.runtime") {
		t.Fatalf("compile under the safe set: %v, want undefined function http.send and opa.runtime", err)
	}

	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	defer srv.Close()
	wide, err := engine.NewCapabilities([]string{"http.send", "opa.runtime"})
	if err != nil {
		t.Fatal(err)
	}
	eng, _, _ := newEngine(t, "ok", engine.Config{Capabilities: wide})
	c, err := eng.Compile(ctx, b)
	if err != nil {
		t.Fatalf("compile with http.send and opa.runtime allowed: %v", err)
	}
	eng.Activate(c)
	res := eng.Decide(ctx, request("FETCH", map[string]any{"url": srv.URL}))
	if res.Effect != engine.Allow || hits.Load() != 1 {
		t.Fatalf("decision %+v with %d requests to the server, want ALLOW after one", outcomeOf(res), hits.Load())
	}
}

// TestBundleWithoutDecisionRuleIsRefused: a bundle that compiles but defines no data.tollgate.decision
// would make every decision POLICY_UNDEFINED; it does not compile.
func TestBundleWithoutDecisionRuleIsRefused(t *testing.T) {
	b, err := bundles.ReadDir("testdata/nodecision", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Compile(context.Background(), b); !errors.Is(err, engine.ErrNoDecisionRule) {
		t.Fatalf("compile: %v, want ErrNoDecisionRule", err)
	}
}

// TestBuiltinErrorsFailClosed: a built-in error is a DENY with POLICY_ERROR, live and in replay, never
// the undefined expression that would let the policy's default ALLOW through.
func TestBuiltinErrorsFailClosed(t *testing.T) {
	ctx := context.Background()
	eng, _, logs := newEngine(t, "builtinerror", engine.Config{})
	active, _ := eng.Active()
	for _, tc := range []struct {
		name string
		req  *engine.Request
	}{
		{"to_number", request("NUMBER.CHECK", map[string]any{"amount": "12abc"})},
		{"json.unmarshal", request("JSON.CHECK", map[string]any{"doc": "{not json"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			live := eng.Decide(ctx, tc.req)
			if live.Effect != engine.Deny || live.Failure != engine.CodePolicyError {
				t.Fatalf("live: %+v, want DENY POLICY_ERROR", outcomeOf(live))
			}
			replayed := eng.EvaluateRecorded(ctx, active, tc.req, live.EvaluatedAt, live.Facts)
			if replayed.Effect != engine.Deny || replayed.Failure != engine.CodePolicyError {
				t.Fatalf("replay: %+v, want DENY POLICY_ERROR", outcomeOf(replayed))
			}
			if !strings.Contains(logs.String(), tc.name) {
				t.Errorf("log does not name the failing built-in %s: %s", tc.name, logs.String())
			}
		})
	}
	// A well-formed request still gets its answer.
	if res := eng.Decide(ctx, request("NUMBER.CHECK", map[string]any{"amount": "500"})); res.Effect != engine.Deny || res.Reasons[0].Code != "TOO_LARGE" {
		t.Fatalf("well-formed: %+v, want DENY TOO_LARGE", outcomeOf(res))
	}
}
