package api

import (
	"context"

	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/bundles"
)

// PolicyServer implements tollgatev1.PolicyServiceServer over the bundle activation gate.
type PolicyServer struct {
	tollgatev1.UnimplementedPolicyServiceServer
	bundles *bundles.Manager
	log     zerolog.Logger
}

// NewPolicyServer returns the policy service over m.
func NewPolicyServer(m *bundles.Manager, log zerolog.Logger) *PolicyServer {
	return &PolicyServer{bundles: m, log: log}
}

// Status reports the active bundle and the recent candidates, newest first.
func (s *PolicyServer) Status(context.Context, *tollgatev1.PolicyServiceStatusRequest) (*tollgatev1.PolicyServiceStatusResponse, error) {
	st := s.bundles.Status()
	out := &tollgatev1.PolicyServiceStatusResponse{ActiveRevision: st.ActiveRevision, History: make([]*tollgatev1.Candidate, len(st.History))}
	if !st.ActivatedAt.IsZero() {
		out.ActivatedAt = timestamppb.New(st.ActivatedAt)
		ev := st.Evaluation
		out.Evaluation = &tollgatev1.EvaluationPath{Path: ev.Path, Gate: ev.Gate, Reason: ev.Reason,
			Checked: int32(ev.Checked), Elapsed: durationpb.New(ev.Elapsed), Fallbacks: ev.Fallbacks, ShadowChecks: ev.ShadowChecks}
	}
	for i, c := range st.History {
		out.History[i] = candidateProto(c)
	}
	return out, nil
}

// Activate runs a pushed bundle through the gate. A refused bundle is FailedPrecondition with the
// reason; the running bundle stays active.
func (s *PolicyServer) Activate(ctx context.Context, req *tollgatev1.ActivateRequest) (*tollgatev1.ActivateResponse, error) {
	if len(req.GetBundle()) == 0 {
		return nil, toStatus(s.log, badField("bundle", "is required"))
	}
	c := s.bundles.OfferTarball(ctx, "activate", req.GetBundle())
	switch {
	case c.Outcome.Accepted():
		return &tollgatev1.ActivateResponse{Candidate: candidateProto(c)}, nil
	case c.Outcome == bundles.Failed:
		return nil, status.Errorf(codes.Unavailable, "bundle %s not activated: %s", c.Revision, c.Reason)
	default:
		return nil, status.Errorf(codes.FailedPrecondition, "bundle %s refused (%s): %s", c.Revision, c.Outcome, c.Reason)
	}
}

var candidateOutcomes = map[bundles.Outcome]tollgatev1.CandidateOutcome{
	bundles.Activated:           tollgatev1.CandidateOutcome_CANDIDATE_OUTCOME_ACTIVATED,
	bundles.Unchanged:           tollgatev1.CandidateOutcome_CANDIDATE_OUTCOME_UNCHANGED,
	bundles.RefusedVerification: tollgatev1.CandidateOutcome_CANDIDATE_OUTCOME_REFUSED_VERIFICATION,
	bundles.RefusedCompile:      tollgatev1.CandidateOutcome_CANDIDATE_OUTCOME_REFUSED_COMPILE,
	bundles.RefusedTests:        tollgatev1.CandidateOutcome_CANDIDATE_OUTCOME_REFUSED_TESTS,
	bundles.Failed:              tollgatev1.CandidateOutcome_CANDIDATE_OUTCOME_ERROR,
}

func candidateProto(c bundles.Candidate) *tollgatev1.Candidate {
	return &tollgatev1.Candidate{
		Revision: c.Revision,
		Source:   c.Source,
		Outcome:  candidateOutcomes[c.Outcome],
		Reason:   c.Reason,
		At:       timestamppb.New(c.At),
	}
}
