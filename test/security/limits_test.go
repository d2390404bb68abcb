package security_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/auth"
)

func listDecisions(c *tollgate.Client) error {
	_, err := c.Audit().ListDecisions(context.Background(), &tollgatev1.ListDecisionsRequest{})
	return err
}

// setRoles gives the named caller roles.
func setRoles(c *auth.Config, name string, roles ...string) {
	for i := range c.Callers {
		if c.Callers[i].Name == name {
			c.Callers[i].Roles = roles
		}
	}
}

func TestRateLimitIsPerRoleClass(t *testing.T) {
	s := startSecure(t, func(c *auth.Config) {
		setRoles(c, "auditor", auth.RoleDecide, auth.RoleAudit)
		c.RateLimits = map[string]auth.RateLimit{"audit": {PerSecond: 0.01, Burst: 2}}
	})
	auditor := s.as(t, "auditor")
	for i := range 2 {
		if err := listDecisions(auditor); err != nil {
			t.Fatalf("audit call %d within the audit burst: %v", i, err)
		}
	}
	err := listDecisions(auditor)
	wantCode(t, err, codes.ResourceExhausted)
	if !strings.Contains(err.Error(), "audit rate limit of auditor") {
		t.Errorf("refusal does not name the class and caller: %v", err)
	}
	// The drained audit bucket does not stop the same caller's decisions, which pay from decide.
	if _, err := auditor.Decide(context.Background(), decideReq(tollgatev1.ActorType_ACTOR_TYPE_HUMAN, "u_buyer1")); err != nil {
		t.Errorf("Decide after the audit bucket drained: %v", err)
	}
}

func TestDecideBatchCostsOneTokenPerDecision(t *testing.T) {
	s := startSecure(t, func(c *auth.Config) {
		c.RateLimits = map[string]auth.RateLimit{"decide": {PerSecond: 0.01, Burst: 5}}
	})
	ctx := context.Background()
	orchestrator := s.as(t, "orchestrator")
	req := decideReq(tollgatev1.ActorType_ACTOR_TYPE_HUMAN, "u_buyer1")
	_, err := orchestrator.DecideBatch(ctx, []*tollgatev1.DecideRequest{req, req, req, req, req, req})
	wantCode(t, err, codes.ResourceExhausted)
	if !strings.Contains(err.Error(), "exceeds the decide rate-limit burst") {
		t.Errorf("a batch above the burst: %v, want a refusal saying so", err)
	}
	if _, err := orchestrator.DecideBatch(ctx, []*tollgatev1.DecideRequest{req, req, req, req}); err != nil {
		t.Fatalf("batch of 4 within a burst of 5: %v", err)
	}
	if _, err := orchestrator.Decide(ctx, req); err != nil {
		t.Fatalf("fifth decision: %v", err)
	}
	_, err = orchestrator.Decide(ctx, req)
	wantCode(t, err, codes.ResourceExhausted)
}

func TestReloadKeepsDrainedBucketsDrained(t *testing.T) {
	s := startSecure(t, func(c *auth.Config) {
		c.RateLimits = map[string]auth.RateLimit{"audit": {PerSecond: 0.01, Burst: 2}}
	})
	auditor := s.as(t, "auditor")
	for range 2 {
		if err := listDecisions(auditor); err != nil {
			t.Fatal(err)
		}
	}
	wantCode(t, listDecisions(auditor), codes.ResourceExhausted)

	// A reload with the same limits, and one that raises the burst, refills nothing.
	if err := s.app.ReloadCallers(); err != nil {
		t.Fatal(err)
	}
	wantCode(t, listDecisions(auditor), codes.ResourceExhausted)
	path := filepath.Join(s.certs, "callers.json")
	cfg, err := auth.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RateLimits["audit"] = auth.RateLimit{PerSecond: 0.01, Burst: 10}
	writeCallers(t, path, cfg)
	if err := s.app.ReloadCallers(); err != nil {
		t.Fatal(err)
	}
	wantCode(t, listDecisions(auditor), codes.ResourceExhausted)
}

func TestAgentWithDecideIsRefusedAtLoad(t *testing.T) {
	s := startSecure(t, nil)
	path := filepath.Join(s.certs, "callers.json")
	cfg, err := auth.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	setRoles(cfg, "agent_alloc", "agent:agent_alloc", auth.RoleDecide)
	writeCallers(t, path, cfg)
	err = s.app.ReloadCallers()
	if err == nil || !strings.Contains(err.Error(), "(agent_alloc).roles: agent:agent_alloc cannot be combined with decide") {
		t.Fatalf("reload: %v, want a refusal naming the caller", err)
	}
	// The previous callers stay: the agent still may not ask for a human.
	agent := s.as(t, "agent_alloc")
	_, err = agent.Decide(context.Background(), decideReq(tollgatev1.ActorType_ACTOR_TYPE_HUMAN, "u_buyer1"))
	wantCode(t, err, codes.PermissionDenied)

	if _, err := startWith(t, s.certs); err == nil || !strings.Contains(err.Error(), "agent_alloc") {
		t.Errorf("start with an agent holding decide: %v, want refused naming the caller", err)
	}
}
