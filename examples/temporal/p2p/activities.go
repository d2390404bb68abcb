package p2p

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// ActivityDecide is the name [Activities.Decide] is registered under.
const ActivityDecide = "Decide"

// Decision is Tollgate's answer as the workflow keeps it.
type Decision struct {
	DecisionID string   `json:"decision_id"`
	Effect     string   `json:"effect"`
	Reasons    []Reason `json:"reasons"`
	Approvers  []string `json:"approvers,omitempty"`
	// Replay is true when Tollgate answered a retry with the original
	// decision.
	Replay bool `json:"replay,omitempty"`
}

// Reason is one reason of a decision.
type Reason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Activities holds what the activities need. Register a pointer with the
// worker; it is safe for concurrent use once built.
type Activities struct {
	Tollgate *tollgate.Client
	// FailAfterDecide, when set and true for an idempotency key, makes the
	// first attempt of that Decide fail after Tollgate has answered, as a
	// worker that crashes between the answer and its acknowledgement would:
	// the retry must get the same decision back. For tests and the demo.
	FailAfterDecide func(key string) bool
}

// errInjected marks a failure FailAfterDecide asked for.
var errInjected = errors.New("injected failure after the decision was answered")

// Decide asks Tollgate one question. It fails, and Temporal retries it with
// the same idempotency key, when Tollgate cannot be reached or answers
// Unavailable; a request Tollgate refuses (InvalidArgument, an idempotency
// key reused with another payload, no permission) fails for good. Every
// answer, DENY included, is a result.
func (a *Activities) Decide(ctx context.Context, ask Ask) (Decision, error) {
	req, err := ask.request()
	if err != nil {
		return Decision{}, temporal.NewNonRetryableApplicationError("build request "+ask.Key, "BadRequest", err)
	}
	resp, err := a.Tollgate.Decide(ctx, req)
	if err != nil {
		switch status.Code(err) {
		case codes.InvalidArgument, codes.AlreadyExists, codes.PermissionDenied, codes.Unauthenticated:
			return Decision{}, temporal.NewNonRetryableApplicationError("decide "+ask.Key, status.Code(err).String(), err)
		}
		return Decision{}, fmt.Errorf("decide %s: %w", ask.Key, err)
	}
	d := decisionOf(resp)
	if a.FailAfterDecide != nil && activity.GetInfo(ctx).Attempt == 1 && a.FailAfterDecide(ask.Key) {
		return Decision{}, fmt.Errorf("decide %s (decision %s): %w", ask.Key, d.DecisionID, errInjected)
	}
	return d, nil
}

// request builds the gRPC request: context.workflow_id is the Temporal
// workflow id, and the idempotency key makes a retry a replay.
func (ask Ask) request() (*tollgatev1.DecideRequest, error) {
	actorType, ok := tollgatev1.ActorType_value["ACTOR_TYPE_"+ask.ActorType]
	if !ok {
		return nil, fmt.Errorf("unknown actor type %q", ask.ActorType)
	}
	attrs, err := structpb.NewStruct(ask.Attributes)
	if err != nil {
		return nil, fmt.Errorf("attributes: %w", err)
	}
	req := &tollgatev1.DecideRequest{
		Actor:          &tollgatev1.Actor{Id: ask.Actor, Type: tollgatev1.ActorType(actorType)},
		Action:         ask.Action,
		Resource:       &tollgatev1.Resource{Type: ask.ResourceType, Id: ask.ResourceID, Attributes: attrs},
		Context:        map[string]string{"workflow_id": ask.WorkflowID, "step": ask.Step},
		IdempotencyKey: ask.Key,
	}
	if ai := ask.AI; ai != nil {
		mode, ok := tollgatev1.AIMode_value["AI_MODE_"+ai.Mode]
		if !ok {
			return nil, fmt.Errorf("unknown ai mode %q", ai.Mode)
		}
		req.Ai = &tollgatev1.AI{UseCase: ai.UseCase, Mode: tollgatev1.AIMode(mode), Confidence: ai.Confidence,
			Explanation: ai.Explanation, ModelVersion: ai.ModelVersion}
	}
	return req, nil
}

func decisionOf(resp *tollgatev1.DecideResponse) Decision {
	d := Decision{
		DecisionID: resp.GetDecisionId(),
		Effect:     strings.TrimPrefix(resp.GetEffect().String(), "EFFECT_"),
		Approvers:  resp.GetApprovers(),
		Replay:     resp.GetReplay(),
	}
	for _, r := range resp.GetReasons() {
		d.Reasons = append(d.Reasons, Reason{Code: r.GetCode(), Message: r.GetMessage()})
	}
	return d
}
