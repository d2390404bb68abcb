package browser_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/auth"
	"github.com/tollgate/tollgate/test/testserver"
)

const (
	chromium    = "/usr/bin/chromium"
	auditToken  = "browser-test-audit-token"
	decideToken = "browser-test-decide-token"
	// scriptTimeout bounds the browser run; it takes about 20 seconds.
	scriptTimeout = 100 * time.Second
)

// requireTools skips the test when node, Chromium or the npm packages are missing, or fails it when
// TOLLGATE_REQUIRE_BROWSER=1.
func requireTools(t *testing.T) string {
	t.Helper()
	missing := func(what string) {
		msg := what + ": the browser tests need node, " + chromium + " (apt-get install -y chromium) and `npm ci` in test/browser"
		if os.Getenv("TOLLGATE_REQUIRE_BROWSER") == "1" {
			t.Fatal(msg + " (TOLLGATE_REQUIRE_BROWSER=1)")
		}
		t.Skip(msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node not found")
	}
	if _, err := os.Stat(chromium); err != nil {
		missing(chromium + " not found")
	}
	if _, err := os.Stat(filepath.Join("node_modules", "playwright-core")); err != nil {
		missing("playwright-core not installed")
	}
	return node
}

// expected is what the script checks the pages against; it mirrors console.mjs's config.
type expected struct {
	Base        string         `json:"base"`
	AuditToken  string         `json:"audit_token"`
	DecideToken string         `json:"decide_token"`
	Effects     map[string]int `json:"effects"`
	// Replays counts the idempotent retries answered with the original decision.
	Replays int `json:"replays"`
	// SearchActor's decisions, newest first, are what a search by actor must list.
	SearchActor string   `json:"search_actor"`
	SearchIDs   []string `json:"search_ids"`
	Screenshots string   `json:"screenshots"`
}

func TestConsoleInChromium(t *testing.T) {
	node := requireTools(t)
	dir := t.TempDir()
	callers := filepath.Join(dir, "callers.json")
	data, err := json.Marshal(auth.Config{Callers: []auth.CallerConfig{
		{Name: "auditor", TokenSHA256: []string{auth.HashToken(auditToken)}, Roles: []string{auth.RoleAudit}},
		{Name: "orchestrator", TokenSHA256: []string{auth.HashToken(decideToken)}, Roles: []string{auth.RoleDecide}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(callers, data, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := testserver.Start(t, app.Config{CallersFile: callers})

	want := expected{
		Base: "http://" + srv.App.HTTPAddr().String(), AuditToken: auditToken, DecideToken: decideToken,
		Effects: map[string]int{}, SearchActor: "u_buyer1", Screenshots: dir,
	}
	if os.Getenv("TOLLGATE_UPDATE_SCREENSHOTS") == "1" {
		want.Screenshots = filepath.Join("..", "..", "docs")
	}
	for _, resp := range decideAll(t, srv) {
		if resp.replay {
			want.Replays++
			continue
		}
		want.Effects[strings.TrimPrefix(resp.effect.String(), "EFFECT_")]++
		if resp.actor == want.SearchActor {
			want.SearchIDs = append([]string{resp.id}, want.SearchIDs...)
		}
	}
	if want.Replays != 1 {
		t.Fatalf("%d of the requests were answered as idempotent replays, want the 1 retry", want.Replays)
	}
	config := filepath.Join(dir, "config.json")
	data, err = json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(config, data, 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "console.mjs", config)
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	out, err := cmd.CombinedOutput()
	t.Logf("console.mjs:\n%s", out)
	if err != nil {
		t.Fatalf("console.mjs: %v", err)
	}
}

type decided struct {
	id, actor string
	effect    tollgatev1.Effect
	replay    bool
}

// decideAll makes the decisions the pages are checked against: the demo pack's tour requests (every
// effect, a human and AI agents), a few purchase orders of u_buyer1 across the approval tiers, and one
// middleware retry: a request sent twice with its idempotency key.
func decideAll(t *testing.T, srv *testserver.Server) []decided {
	t.Helper()
	ctx := context.Background()
	c, err := tollgate.Dial(ctx, srv.App.Addr().String(), tollgate.WithBearerToken(decideToken))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	files, err := filepath.Glob("../../bundles/demo/requests/0*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("demo requests: %v", err)
	}
	var reqs []*tollgatev1.DecideRequest
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		req, err := tollgate.ParseDecideRequestJSON(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		reqs = append(reqs, req)
	}
	for _, amount := range []string{"120.00", "480.00", "2500.00", "5500.00", "7200.00", "26000.00"} {
		reqs = append(reqs, testserver.POSubmit("u_buyer1", amount))
	}
	retry := testserver.POSubmit("u_buyer2", "300.00")
	retry.IdempotencyKey = "browser-test-retry"
	reqs = append(reqs, retry, retry)
	var out []decided
	for _, req := range reqs {
		resp, err := c.Decide(ctx, req)
		if err != nil {
			t.Fatalf("decide %s: %v", req.GetAction(), err)
		}
		out = append(out, decided{id: resp.GetDecisionId(), actor: req.GetActor().GetId(), effect: resp.GetEffect(), replay: resp.GetReplay()})
	}
	return out
}
