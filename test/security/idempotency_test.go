package security_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/auth"
)

// TestIdempotencyKeyScopedToCaller: over real TLS, a second decide caller sending another caller's
// idempotency key gets its own decision, never the first caller's replayed, and a conflict names only
// the caller's own decision. One caller shares its keys across its certificate and its token.
func TestIdempotencyKeyScopedToCaller(t *testing.T) {
	const orchToken = "orchestrator-dev-token"
	s := startSecure(t, func(cfg *auth.Config) {
		for i := range cfg.Callers {
			if cfg.Callers[i].Name == "orchestrator" {
				cfg.Callers[i].TokenSHA256 = append(cfg.Callers[i].TokenSHA256, auth.HashToken(orchToken))
			}
		}
	})
	ctx := context.Background()
	orchMTLS := s.as(t, "orchestrator")
	orchViaToken := s.as(t, "", tollgate.WithBearerToken(orchToken))
	other := s.as(t, "", tollgate.WithBearerToken(s.token)) // token-client, another decide caller

	req := decideReq(tollgatev1.ActorType_ACTOR_TYPE_HUMAN, "u_buyer1")
	req.IdempotencyKey = "evt-shared-1"
	first, err := orchMTLS.Decide(ctx, req)
	if err != nil || first.GetReplay() {
		t.Fatalf("orchestrator's decision: replay %v, err %v", first.GetReplay(), err)
	}

	theirs, err := other.Decide(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if theirs.GetReplay() || theirs.GetDecisionId() == first.GetDecisionId() {
		t.Errorf("token-client with orchestrator's key got decision %s (replay %v); want its own, not %s",
			theirs.GetDecisionId(), theirs.GetReplay(), first.GetDecisionId())
	}

	changed := decideReq(tollgatev1.ActorType_ACTOR_TYPE_HUMAN, "u_buyer1")
	changed.IdempotencyKey = req.IdempotencyKey
	changed.Resource.Id = "PO-10"
	_, err = other.Decide(ctx, changed)
	if status.Code(err) != codes.AlreadyExists || strings.Contains(err.Error(), first.GetDecisionId()) ||
		!strings.Contains(err.Error(), theirs.GetDecisionId()) {
		t.Errorf("token-client's conflicting payload: %v; want AlreadyExists naming %s and not orchestrator's %s",
			err, theirs.GetDecisionId(), first.GetDecisionId())
	}

	// The orchestrator over its token is the same caller: its retry replays its decision.
	again, err := orchViaToken.Decide(ctx, req)
	if err != nil || !again.GetReplay() || again.GetDecisionId() != first.GetDecisionId() {
		t.Errorf("orchestrator's retry over its token: %s replay %v, err %v; want a replay of %s",
			again.GetDecisionId(), again.GetReplay(), err, first.GetDecisionId())
	}
}
