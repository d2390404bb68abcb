package e2e_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/app"
)

func TestDecideOverGRPC(t *testing.T) {
	srv := startServer(t, app.Config{})
	ctx := context.Background()

	tests := []struct {
		name      string
		req       *tollgatev1.DecideRequest
		effect    tollgatev1.Effect
		primary   string
		approvers []string
	}{
		{"PO within buyer limit", poSubmit("u_buyer1", "100.00"), tollgatev1.Effect_EFFECT_ALLOW, "PO_WITHIN_BUYER_LIMIT", nil},
		{"PO needing a manager", poSubmit("u_buyer1", "8000.00"), tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL, "PO_TIER_2_APPROVAL", []string{"PROCUREMENT_MANAGER"}},
		{"malformed amount", poSubmit("u_buyer1", "12abc"), tollgatev1.Effect_EFFECT_DENY, "INVALID_AMOUNT_FORMAT", nil},
		{"unknown user", poSubmit("u_nobody", "100.00"), tollgatev1.Effect_EFFECT_DENY, "UNKNOWN_USER", nil},
		{"unknown action", func() *tollgatev1.DecideRequest {
			r := poSubmit("u_buyer1", "1.00")
			r.Action = "PO.TELEPORT"
			return r
		}(),
			tollgatev1.Effect_EFFECT_DENY, "UNKNOWN_ACTION", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := srv.Client.Decide(ctx, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetEffect() != tt.effect || resp.GetReasons()[0].GetCode() != tt.primary {
				t.Fatalf("got %s %v, want %s %s", resp.GetEffect(), resp.GetReasons(), tt.effect, tt.primary)
			}
			if strings.Join(resp.GetApprovers(), ",") != strings.Join(tt.approvers, ",") {
				t.Errorf("approvers = %v, want %v", resp.GetApprovers(), tt.approvers)
			}
			if len(resp.GetDecisionId()) != 26 || resp.GetBundleRevision() == "" || resp.GetMasterdataRevision() == 0 || resp.GetEvaluatedAt() == nil {
				t.Errorf("incomplete response: %v", resp)
			}
		})
	}
}

// TestEmptyAIBlockIsAbsent sends the request of policy-pack §2 verbatim: a human with an all-empty ai
// block is an ordinary request.
func TestEmptyAIBlockIsAbsent(t *testing.T) {
	srv := startServer(t, app.Config{})
	req := poSubmit("u_buyer1", "100.00")
	req.Ai = &tollgatev1.AI{}
	resp, err := srv.Client.Decide(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetReasons()[0].GetCode() != "PO_WITHIN_BUYER_LIMIT" {
		t.Errorf("got %v", resp.GetReasons())
	}
}

func TestDecisionIDsAreUniqueAndTimeSortable(t *testing.T) {
	srv := startServer(t, app.Config{})
	var prev string
	for i := range 50 {
		resp, err := srv.Client.Decide(context.Background(), poSubmit("u_buyer1", "1.00"))
		if err != nil {
			t.Fatal(err)
		}
		if id := resp.GetDecisionId(); id <= prev {
			t.Fatalf("decision %d id %s does not sort after %s", i, id, prev)
		} else {
			prev = id
		}
	}
}

func TestDecideBatchAnswersInOrder(t *testing.T) {
	srv := startServer(t, app.Config{})
	reqs := []*tollgatev1.DecideRequest{poSubmit("u_buyer1", "1.00"), poSubmit("u_nobody", "1.00"), poSubmit("u_buyer1", "8000.00")}
	resps, err := srv.Client.DecideBatch(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range resps {
		got = append(got, r.GetReasons()[0].GetCode())
	}
	if want := "PO_WITHIN_BUYER_LIMIT,UNKNOWN_USER,PO_TIER_2_APPROVAL"; strings.Join(got, ",") != want {
		t.Errorf("batch primaries = %v, want %s", got, want)
	}
}

// TestStructurallyBadRequestsAreInvalidArgument checks that requests the service cannot even evaluate
// are refused with InvalidArgument and a field violation naming the field.
func TestStructurallyBadRequestsAreInvalidArgument(t *testing.T) {
	srv := startServer(t, app.Config{})
	ctx := context.Background()
	mutate := func(f func(r *tollgatev1.DecideRequest)) *tollgatev1.DecideRequest {
		r := poSubmit("u_buyer1", "1.00")
		f(r)
		return r
	}
	deep := map[string]any{"leaf": "x"}
	for range 10 {
		deep = map[string]any{"n": deep}
	}
	many := map[string]any{}
	for i := range 600 {
		many[strings.Repeat("k", 1+i%50)+string(rune('a'+i%26))+strings.Repeat("z", i/26)] = "v"
	}
	tests := []struct {
		name  string
		req   *tollgatev1.DecideRequest
		field string
	}{
		{"no action", mutate(func(r *tollgatev1.DecideRequest) { r.Action = "" }), "action"},
		{"no actor", mutate(func(r *tollgatev1.DecideRequest) { r.Actor = nil }), "actor"},
		{"unknown actor type", mutate(func(r *tollgatev1.DecideRequest) { r.Actor.Type = tollgatev1.ActorType(42) }), "actor.type"},
		{"unspecified actor type", mutate(func(r *tollgatev1.DecideRequest) { r.Actor.Type = tollgatev1.ActorType_ACTOR_TYPE_UNSPECIFIED }), "actor.type"},
		{"ai block for a human", mutate(func(r *tollgatev1.DecideRequest) { r.Ai = &tollgatev1.AI{UseCase: "case_routing"} }), "ai"},
		{"ai mode out of range", mutate(func(r *tollgatev1.DecideRequest) {
			r.Actor.Type = tollgatev1.ActorType_ACTOR_TYPE_AI_AGENT
			r.Ai = &tollgatev1.AI{UseCase: "case_routing", Mode: tollgatev1.AIMode(9)}
		}), "ai.mode"},
		{"oversize string", mutate(func(r *tollgatev1.DecideRequest) { r.Resource.Id = strings.Repeat("x", 5000) }), "resource.id"},
		{"oversize request", mutate(func(r *tollgatev1.DecideRequest) {
			for i := range 20 {
				r.Context[string(rune('a'+i))] = strings.Repeat("x", 4000)
			}
		}), "request"},
		{"deep attributes", mutate(func(r *tollgatev1.DecideRequest) { r.Resource.Attributes, _ = structpb.NewStruct(deep) }), "resource.attributes"},
		{"too many attributes", mutate(func(r *tollgatev1.DecideRequest) { r.Resource.Attributes, _ = structpb.NewStruct(many) }), "resource.attributes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := srv.Client.Decide(ctx, tt.req)
			assertFieldViolation(t, err, tt.field)
		})
	}

	t.Run("batch too large", func(t *testing.T) {
		reqs := make([]*tollgatev1.DecideRequest, 101)
		for i := range reqs {
			reqs[i] = poSubmit("u_buyer1", "1.00")
		}
		_, err := srv.Client.DecideBatch(ctx, reqs)
		assertFieldViolation(t, err, "requests")
	})
	t.Run("bad request inside a batch", func(t *testing.T) {
		bad := poSubmit("u_buyer1", "1.00")
		bad.Action = ""
		_, err := srv.Client.DecideBatch(ctx, []*tollgatev1.DecideRequest{poSubmit("u_buyer1", "1.00"), bad})
		assertFieldViolation(t, err, "requests[1].action")
	})
}

func assertFieldViolation(t testing.TB, err error, field string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		t.Fatalf("got %v, want InvalidArgument", err)
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				if strings.HasPrefix(v.GetField(), field) {
					return
				}
			}
		}
	}
	t.Errorf("InvalidArgument %q names no field %q", st.Message(), field)
}
