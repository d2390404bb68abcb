package authzen_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	tollgate "github.com/tollgate/tollgate/clients/go"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/auth"
	"github.com/tollgate/tollgate/server/authzen"
	"github.com/tollgate/tollgate/test/testserver"
)

// Tokens of the callers file startWithCallers writes.
const (
	pepToken     = "pep-token-0123456789"
	auditToken   = "audit-token-0123456789"
	agentToken   = "agent-token-0123456789"
	agentID      = "agent_alloc"
	agentBurst   = 3
	otherAgentID = "agent_ap"
)

// startWithCallers starts the default pack with callers: pep (decide), auditor (audit) and agent
// (agent:agent_alloc, whose bucket holds agentBurst decisions and barely refills).
func startWithCallers(t *testing.T) *testserver.Server {
	t.Helper()
	cfg := auth.Config{
		Callers: []auth.CallerConfig{
			{Name: "pep", TokenSHA256: []string{auth.HashToken(pepToken)}, Roles: []string{auth.RoleDecide}},
			{Name: "auditor", TokenSHA256: []string{auth.HashToken(auditToken)}, Roles: []string{auth.RoleAudit}},
			{Name: "agent", TokenSHA256: []string{auth.HashToken(agentToken)}, Roles: []string{auth.RoleAgentPrefix + agentID}},
		},
		RateLimits: map[string]auth.RateLimit{auth.RoleAgent: {PerSecond: 0.001, Burst: agentBurst}},
	}
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "callers.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return start(t, app.Config{CallersFile: path})
}

// TestAuthentication: 401 with a Bearer challenge without a token or with an unknown one, 403 for a
// caller no role lets decide, on both endpoints; the decision's audit record names the caller.
func TestAuthentication(t *testing.T) {
	srv := startWithCallers(t)
	for _, path := range []string{authzen.EvaluationPath, authzen.EvaluationsPath} {
		for _, tc := range []struct {
			name, token string
			status      int
			challenge   string
		}{
			{"no token", "", http.StatusUnauthorized, `Bearer realm="tollgate"`},
			{"unknown token", "not-a-token", http.StatusUnauthorized, `Bearer realm="tollgate", error="invalid_token"`},
			{"audit role only", auditToken, http.StatusForbidden, ""},
			{"decide role", pepToken, http.StatusOK, ""},
		} {
			r := newClient(srv, tc.token).post(t, path, poSubmit, "X-Request-ID", "req-"+tc.name)
			if r.status != tc.status || r.header.Get("WWW-Authenticate") != tc.challenge {
				t.Errorf("%s %s: %d WWW-Authenticate %q, want %d %q: %s", path, tc.name, r.status, r.header.Get("WWW-Authenticate"), tc.status, tc.challenge, r.body)
			}
			if got := r.header.Get("X-Request-ID"); got != "req-"+tc.name {
				t.Errorf("%s %s: X-Request-ID %q, want it echoed", path, tc.name, got)
			}
		}
	}

	d := newClient(srv, pepToken).evaluate(t, poSubmit)
	auditor, err := tollgate.Dial(context.Background(), srv.App.Addr().String(), tollgate.WithBearerToken(auditToken))
	if err != nil {
		t.Fatal(err)
	}
	defer auditor.Close()
	rec, err := auditor.GetDecision(context.Background(), d.Context.DecisionID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rec.GetCaller(), "pep (token) from 127.0.0.1:") {
		t.Fatalf("audit record's caller %q, want the pep by token from its address", rec.GetCaller())
	}
	if v, err := auditor.VerifyLog(context.Background(), ""); err != nil || !v.GetOk() {
		t.Fatalf("VerifyLog = %v, %v", v, err)
	}
}

// TestBadRequests: what cannot be evaluated as sent is 400 with a message naming why; an oversized body
// is 413; unknown fields are ignored.
func TestBadRequests(t *testing.T) {
	srv := startWithCallers(t)
	c := newClient(srv, pepToken)
	for _, tc := range []struct {
		name, body, want string
	}{
		{"empty body", "", "the request body is empty"},
		{"not JSON", "{", "invalid JSON"},
		{"an array", "[]", "want a JSON object"},
		{"two objects", poSubmit + poSubmit, "unexpected data after the JSON object"},
		{"subject of the wrong type", `{"subject": 5}`, "subject: wrong type"},
		{"no subject", strings.Replace(poSubmit, `"subject"`, `"nobody"`, 1), "subject: is required"},
		{"no subject.id", strings.Replace(poSubmit, `"id": "u_buyer1"`, `"name": "u_buyer1"`, 1), "subject.id: is required"},
		{"no action.name", strings.Replace(poSubmit, `"name": "PO.SUBMIT"`, `"verb": "PO.SUBMIT"`, 1), "action.name: is required"},
		{"no resource", strings.Replace(poSubmit, `"resource"`, `"thing"`, 1), "resource: is required"},
		{"unknown subject.type", strings.Replace(poSubmit, `"type": "user"`, `"type": "robot"`, 1), `subject.type: "robot" is not user, identity, service or agent`},
		{"ai block for a human", strings.Replace(poSubmit, `"step": "approve"`, `"ai": {"mode": "EXECUTE"}`, 1), "ai: is allowed only when actor.type is AI_AGENT"},
		{"string over the limit", strings.Replace(poSubmit, `"wf-77"`, `"`+strings.Repeat("x", 5000)+`"`, 1), "context.workflow_id: 5000 bytes exceeds the limit"},
		{"bad evaluations_semantic", `{"options": {"evaluations_semantic": "maybe"}}`, "options.evaluations_semantic"},
	} {
		path := authzen.EvaluationPath
		if strings.Contains(tc.body, "options") {
			path = authzen.EvaluationsPath
		}
		r := c.post(t, path, tc.body, "X-Request-ID", "bad-1")
		if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), tc.want) {
			t.Errorf("%s: %d %q, want 400 saying %q", tc.name, r.status, r.body, tc.want)
		}
		if r.header.Get("X-Request-ID") != "bad-1" {
			t.Errorf("%s: X-Request-ID not echoed on the error", tc.name)
		}
	}

	if r := c.post(t, authzen.EvaluationPath, poSubmit, "Content-Type", "text/plain"); r.status != http.StatusBadRequest {
		t.Errorf("text/plain body: %d %s, want 400", r.status, r.body)
	}
	huge := `{"pad": "` + strings.Repeat("x", 9<<20) + `"}`
	if r := c.post(t, authzen.EvaluationPath, huge); r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("9 MiB body: %d %s, want 413", r.status, r.body)
	}
	extra := strings.Replace(poSubmit, `"subject":`, `"future_field": {"x": 1}, "subject":`, 1)
	if d := c.evaluate(t, extra); d.Context.Effect != "REQUIRE_APPROVAL" {
		t.Errorf("request with an unknown field: %+v, want it ignored", d.Context)
	}
}

// TestItemErrors: an item that cannot be evaluated is a false decision carrying its error inside the
// 200 answer; the others are decided; deny_on_first_deny stops at it.
func TestItemErrors(t *testing.T) {
	srv := startWithCallers(t)
	c := newClient(srv, pepToken)
	var good map[string]any
	if err := json.Unmarshal([]byte(poSubmit), &good); err != nil {
		t.Fatal(err)
	}
	items := []any{
		good,
		map[string]any{"subject": map[string]any{"type": "robot", "id": "r2"}},
		5,
		map[string]any{"resource": map[string]any{"type": "purchase_order", "id": strings.Repeat("P", 5000)}},
		good,
	}
	req := map[string]any{"subject": good["subject"], "action": good["action"], "resource": good["resource"], "evaluations": items}
	got := c.evaluations(t, req)
	wantErrors := []string{"", `evaluations[1]: subject.type: "robot"`, "evaluations[2]: invalid JSON", "evaluations[3]: resource.id: 5000 bytes", ""}
	if len(got) != len(wantErrors) {
		t.Fatalf("%d answers, want %d: %+v", len(got), len(wantErrors), got)
	}
	for i, want := range wantErrors {
		d := got[i]
		switch {
		case want == "" && (d.Context.Error != nil || d.Context.Effect != "REQUIRE_APPROVAL"):
			t.Errorf("item %d: %+v, want decided", i, d.Context)
		case want != "" && (d.Decision || d.Context.Error == nil || d.Context.Error.Status != http.StatusBadRequest || !strings.Contains(d.Context.Error.Message, want)):
			t.Errorf("item %d: %v %+v, want false with a 400 error saying %q", i, d.Decision, d.Context.Error, want)
		}
	}

	req["options"] = map[string]any{"evaluations_semantic": authzen.DenyOnFirstDeny}
	req["evaluations"] = []any{items[1], good}
	if got := c.evaluations(t, req); len(got) != 1 || got[0].Context.Error == nil {
		t.Fatalf("deny_on_first_deny after an item in error: %+v, want the error alone", got)
	}
}

// TestAgentCaller: an agent:<id> caller asks only for itself (403 otherwise, inside evaluations too)
// and pays from the agent bucket; past its burst it is answered 429 with Retry-After.
func TestAgentCaller(t *testing.T) {
	srv := startWithCallers(t)
	c := newClient(srv, agentToken)
	alloc := func(id string) string {
		return `{"subject": {"type": "agent", "id": "` + id + `"},
		  "action": {"name": "ALLOCATION.CREATE"},
		  "resource": {"type": "allocation", "id": "AL-2005", "properties": {"customer_id": "C1", "item_id": "I1",
		     "site_id": "DC1", "qty": 10, "value": "125.00", "currency": "USD"}},
		  "context": {"workflow_id": "wf-agent", "ai": {"use_case": "backorder_allocation", "mode": "EXECUTE",
		     "confidence": 0.95, "explanation": "oldest backorder", "model_version": "alloc-2026.11"}}}`
	}
	spent := 0
	if d := c.evaluate(t, alloc(agentID)); !d.Decision || d.Context.Reasons[0].Code != "AI_WITHIN_AUTONOMY" {
		t.Fatalf("agent for itself: %v %+v, want ALLOW AI_WITHIN_AUTONOMY", d.Decision, d.Context)
	}
	spent++
	if r := c.post(t, authzen.EvaluationPath, alloc(otherAgentID)); r.status != http.StatusForbidden || !strings.Contains(string(r.body), "may only ask for itself") {
		t.Fatalf("agent for another agent: %d %s, want 403", r.status, r.body)
	}
	var mine, theirs map[string]any
	if err := json.Unmarshal([]byte(alloc(agentID)), &mine); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(alloc(otherAgentID)), &theirs); err != nil {
		t.Fatal(err)
	}
	got := c.evaluations(t, map[string]any{"evaluations": []any{mine, theirs}})
	if len(got) != 2 || !got[0].Decision || got[1].Context.Error == nil || got[1].Context.Error.Status != http.StatusForbidden {
		t.Fatalf("evaluations for itself and another: %+v, want ALLOW then a 403 item", got)
	}
	spent++
	for ; spent < agentBurst; spent++ {
		c.evaluate(t, alloc(agentID))
	}
	r := c.post(t, authzen.EvaluationPath, alloc(agentID))
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("call %d of a burst of %d: %d %s, want 429", spent+1, agentBurst, r.status, r.body)
	}
	if secs, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || secs < 1 {
		t.Fatalf("429 with Retry-After %q, want whole seconds", r.header.Get("Retry-After"))
	}
}

// TestMetadata: the PDP metadata document names the endpoints by absolute URL on the address asked,
// without credentials; the endpoints answer only their method.
func TestMetadata(t *testing.T) {
	srv := startWithCallers(t)
	c := newClient(srv, "")
	req, err := http.NewRequest(http.MethodGet, c.base+authzen.MetadataPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	var m authzen.Metadata
	c.do(t, req).decode(t, http.StatusOK, &m)
	want := authzen.Metadata{PolicyDecisionPoint: c.base, AccessEvaluationEndpoint: c.base + "/access/v1/evaluation", AccessEvaluationsEndpoint: c.base + "/access/v1/evaluations"}
	if m != want {
		t.Fatalf("metadata %+v, want %+v", m, want)
	}
	get, err := http.NewRequest(http.MethodGet, c.base+authzen.EvaluationPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := c.do(t, get); r.status != http.StatusMethodNotAllowed {
		t.Fatalf("GET %s: %d, want 405", authzen.EvaluationPath, r.status)
	}
}
