package api

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/engine"
)

// Span names of a decision's steps, children of the call's server span (or, in a batch, of its
// tollgate.decision span).
const (
	SpanDecision    = "tollgate.decision"     // one decision of a DecideBatch
	SpanEvaluate    = "tollgate.evaluate"     // policy evaluation
	SpanAuditCommit = "tollgate.audit.commit" // from handing the record to the audit log until it is durable (sync) or queued (async)
)

// Span attributes. Only identifiers and outcomes: never the request's payload, which may hold
// personal data the audit log masks.
const (
	AttrDecisionID         = attribute.Key("tollgate.decision_id")
	AttrAction             = attribute.Key("tollgate.action")
	AttrEffect             = attribute.Key("tollgate.effect")
	AttrBundleRevision     = attribute.Key("tollgate.bundle_revision")
	AttrMasterdataRevision = attribute.Key("tollgate.masterdata_revision")
	AttrReplay             = attribute.Key("tollgate.replay")
	AttrReplicaID          = attribute.Key("tollgate.replica_id")
	AttrAuditChain         = attribute.Key("tollgate.audit.chain")
	AttrAuditSeq           = attribute.Key("tollgate.audit.seq")
	AttrFailure            = attribute.Key("tollgate.failure")
	AttrBatchSize          = attribute.Key("tollgate.batch_size")
)

// decisionTracing is what the decision service adds to traces; the zero value traces nothing.
type decisionTracing struct {
	tracer           trace.Tracer
	replicaID, chain string
}

// WithTracing makes the decision service add its steps (SpanEvaluate, SpanAuditCommit) to the
// caller's trace, and the decision's identity and outcome to the call's span. tracer comes from the
// server's tracer provider; replicaID and chain name this replica and the audit chain it writes.
// Without it, or with a no-op tracer, decisions are not traced.
func (s *DecisionServer) WithTracing(tracer trace.Tracer, replicaID, chain string) *DecisionServer {
	if _, off := tracer.(noop.Tracer); off {
		tracer = nil // see startSpan
	}
	s.tracing = decisionTracing{tracer: tracer, replicaID: replicaID, chain: chain}
	return s
}

// startSpan starts a child span of ctx's. Without tracing it returns ctx itself and a span that
// records nothing, so an untraced decision does not even pay for a no-op tracer's context.
func (s *DecisionServer) startSpan(ctx context.Context, name string) (context.Context, trace.Span) {
	if s.tracing.tracer == nil {
		return ctx, trace.SpanFromContext(context.Background()) // the no-op span, never ctx's own
	}
	return s.tracing.tracer.Start(ctx, name)
}

// endEvaluate ends an evaluation's span. A fail-closed DENY (the policy could not be evaluated) is an
// error of the span, though the caller is answered.
func endEvaluate(span trace.Span, res *engine.Result) {
	if span.IsRecording() {
		span.SetAttributes(
			AttrEffect.String(string(res.Effect)),
			AttrBundleRevision.String(res.BundleRevision),
			AttrMasterdataRevision.Int64(int64(res.MasterdataRevision)),
		)
		if res.Failure != "" {
			span.SetAttributes(AttrFailure.String(res.Failure))
			span.SetStatus(codes.Error, res.Failure)
		}
	}
	span.End()
}

// endAuditCommit ends an audit write's span; stored carries the chain position in sync mode.
func (s *DecisionServer) endAuditCommit(span trace.Span, stored *audit.Record, err error) {
	if span.IsRecording() {
		span.SetAttributes(AttrAuditChain.String(s.tracing.chain))
		if seq := stored.GetSeq(); seq > 0 {
			span.SetAttributes(AttrAuditSeq.Int64(int64(seq)))
		}
		if err != nil {
			// A fixed description: a store's error text may quote what it refused.
			span.SetStatus(codes.Error, "audit log did not take the record")
		}
	}
	span.End()
}

// annotateDecision puts the answered decision on the span in ctx: the call's server span for Decide,
// the decision's own span in a batch.
func (s *DecisionServer) annotateDecision(ctx context.Context, in *engine.Request, resp *tollgatev1.DecideResponse) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(
		AttrDecisionID.String(resp.GetDecisionId()),
		AttrAction.String(in.Action),
		AttrEffect.String(strings.TrimPrefix(resp.GetEffect().String(), "EFFECT_")),
		AttrBundleRevision.String(resp.GetBundleRevision()),
		AttrMasterdataRevision.Int64(int64(resp.GetMasterdataRevision())),
		AttrReplay.Bool(resp.GetReplay()),
		AttrReplicaID.String(s.tracing.replicaID),
		AttrAuditChain.String(s.tracing.chain),
	)
}

// annotateBatch puts a DecideBatch's size on the call's span.
func annotateBatch(ctx context.Context, n int) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(AttrBatchSize.Int(n))
	}
}

// endDecisionSpan ends one batch decision's span, an error when the decision failed.
func endDecisionSpan(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, "decision not answered")
	}
	span.End()
}
