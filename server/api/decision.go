package api

import (
	"context"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/types/known/timestamppb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/engine"
)

// Decider evaluates a normalized request; *engine.Engine is the implementation.
type Decider interface {
	Decide(ctx context.Context, req *engine.Request) *engine.Result
}

// DecisionServer implements tollgatev1.DecisionServiceServer.
type DecisionServer struct {
	tollgatev1.UnimplementedDecisionServiceServer
	engine  Decider
	limits  Limits
	metrics *Metrics
	log     zerolog.Logger
}

// NewDecisionServer returns the decision service over eng.
func NewDecisionServer(eng Decider, limits Limits, metrics *Metrics, log zerolog.Logger) *DecisionServer {
	return &DecisionServer{engine: eng, limits: limits.withDefaults(), metrics: metrics, log: log}
}

// Decide answers one decision request.
func (s *DecisionServer) Decide(ctx context.Context, req *tollgatev1.DecideRequest) (*tollgatev1.DecideResponse, error) {
	in, err := s.limits.normalize(req, "")
	if err != nil {
		return nil, toStatus(s.log, err)
	}
	return s.decide(ctx, in), nil
}

// DecideBatch answers independent requests in order. A structurally bad request fails the whole batch
// with InvalidArgument naming it (requests[i].field), before anything is evaluated.
func (s *DecisionServer) DecideBatch(ctx context.Context, req *tollgatev1.DecideBatchRequest) (*tollgatev1.DecideBatchResponse, error) {
	reqs := req.GetRequests()
	if len(reqs) == 0 {
		return nil, toStatus(s.log, badField("requests", "at least one request is required"))
	}
	if len(reqs) > s.limits.MaxBatch {
		return nil, toStatus(s.log, badField("requests", "%d requests exceed the batch limit of %d", len(reqs), s.limits.MaxBatch))
	}
	ins := make([]*engine.Request, len(reqs))
	for i, r := range reqs {
		in, err := s.limits.normalize(r, fmt.Sprintf("requests[%d].", i))
		if err != nil {
			return nil, toStatus(s.log, err)
		}
		ins[i] = in
	}
	out := &tollgatev1.DecideBatchResponse{Responses: make([]*tollgatev1.DecideResponse, len(ins))}
	for i, in := range ins {
		out.Responses[i] = s.decide(ctx, in)
	}
	return out, nil
}

func (s *DecisionServer) decide(ctx context.Context, in *engine.Request) *tollgatev1.DecideResponse {
	start := time.Now()
	res := s.engine.Decide(ctx, in)
	resp := responseFor(ulid.Make().String(), res)
	s.metrics.observeDecision(in.Action, string(res.Effect), time.Since(start))
	return resp
}

func responseFor(id string, res *engine.Result) *tollgatev1.DecideResponse {
	resp := &tollgatev1.DecideResponse{
		DecisionId:         id,
		Effect:             effects[res.Effect],
		Approvers:          res.Approvers,
		BundleRevision:     res.BundleRevision,
		MasterdataRevision: res.MasterdataRevision,
		EvaluatedAt:        timestamppb.New(res.EvaluatedAt),
		Reasons:            make([]*tollgatev1.Reason, len(res.Reasons)),
	}
	for i, r := range res.Reasons {
		resp.Reasons[i] = &tollgatev1.Reason{Code: r.Code, Message: r.Message}
	}
	return resp
}

var effects = map[engine.Effect]tollgatev1.Effect{
	engine.Allow:           tollgatev1.Effect_EFFECT_ALLOW,
	engine.Deny:            tollgatev1.Effect_EFFECT_DENY,
	engine.RequireApproval: tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL,
}
