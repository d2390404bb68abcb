package api

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/engine"
	"github.com/tollgate/tollgate/server/history"
)

// Decider evaluates a normalized request; *engine.Engine is the implementation.
type Decider interface {
	Decide(ctx context.Context, req *engine.Request) *engine.Result
}

// AuditLog records a decision before it is answered; *audit.Writer is the implementation. Write returns
// replayOf when the request's idempotency key belongs to an earlier decision with the same payload.
type AuditLog interface {
	Write(ctx context.Context, rec *audit.Record) (stored, replayOf *audit.Record, err error)
}

// DecisionServer implements tollgatev1.DecisionServiceServer.
type DecisionServer struct {
	tollgatev1.UnimplementedDecisionServiceServer
	engine  Decider
	audit   AuditLog
	limits  Limits
	metrics *Metrics
	log     zerolog.Logger

	receipts    *Transparency // see WithReceipts
	asyncAudit  bool
	tracing     decisionTracing // see WithTracing
	consistency Consistency     // see WithConsistency
	history     HistoryKeeper   // see WithHistory
	conflicts   ConflictCounter // see WithConflicts
}

// HistoryKeeper serializes decisions per history view key and keeps the index they read;
// *history.Tracker is the implementation.
type HistoryKeeper interface {
	Begin(ctx context.Context, req *tollgatev1.DecideRequest) (*history.Ticket, error)
}

// WithHistory makes decisions read and feed the history views (policy-pack §6): each takes the locks
// of its view keys before evaluation, reads the ticket's index through tollgate.history, and is
// observed once the audit log returned its record; the keys are released after. Without it a policy
// calling tollgate.history fails closed (POLICY_ERROR).
func (s *DecisionServer) WithHistory(h HistoryKeeper) *DecisionServer {
	s.history = h
	return s
}

// NewDecisionServer returns the decision service over eng. Every decision is written to log before it
// is answered; a nil log answers unrecorded, which only in-process benchmarks and tests may want.
func NewDecisionServer(eng Decider, log AuditLog, limits Limits, metrics *Metrics, logger zerolog.Logger) *DecisionServer {
	return &DecisionServer{engine: eng, audit: log, limits: limits.withDefaults(), metrics: metrics, log: logger}
}

// Decide answers one decision request. With want_receipt (see WithReceipts) the answer waits for a
// signed checkpoint covering the decision's record and carries its receipt; a receipt not had in
// time leaves the decision, made and recorded, answered without it and ReceiptErrorTrailer saying why.
func (s *DecisionServer) Decide(ctx context.Context, req *tollgatev1.DecideRequest) (*tollgatev1.DecideResponse, error) {
	in, err := s.limits.normalize(req, "")
	if err != nil {
		return nil, toStatus(s.log, err)
	}
	if err := s.checkWantReceipt(req, ""); err != nil {
		return nil, err
	}
	if err := s.awaitRevision(ctx, req.GetMinMasterdataRevision(), ""); err != nil {
		return nil, toStatus(s.log, err)
	}
	resp, rec, err := s.decide(ctx, req, in)
	if err != nil {
		return nil, toStatus(s.log, err)
	}
	if req.GetWantReceipt() {
		if err := s.attachReceipt(ctx, resp, rec); err != nil {
			s.reportReceiptErrors(ctx, []string{receiptMessage(resp.GetDecisionId(), err)})
		}
	}
	return resp, nil
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
	var minRevision uint64
	newest := -1 // the request with the highest consistency token
	for i, r := range reqs {
		in, err := s.limits.normalize(r, fmt.Sprintf("requests[%d].", i))
		if err != nil {
			return nil, toStatus(s.log, err)
		}
		ins[i] = in
		if err := s.checkWantReceipt(r, fmt.Sprintf("requests[%d].", i)); err != nil {
			return nil, err
		}
		if r.GetMinMasterdataRevision() > minRevision {
			minRevision, newest = r.GetMinMasterdataRevision(), i
		}
	}
	// One wait for the highest token serves every request's: revisions only grow. A replica still behind
	// refuses the whole batch before deciding any of it.
	if newest >= 0 {
		if err := s.awaitRevision(ctx, minRevision, fmt.Sprintf("requests[%d]", newest)); err != nil {
			return nil, toStatus(s.log, err)
		}
	}
	out := &tollgatev1.DecideBatchResponse{Responses: make([]*tollgatev1.DecideResponse, len(ins))}
	recs := make([]*audit.Record, len(ins))
	annotateBatch(ctx, len(ins))
	for i, in := range ins {
		dctx, span := s.startSpan(ctx, SpanDecision)
		resp, rec, err := s.decide(dctx, reqs[i], in)
		endDecisionSpan(span, err)
		if err != nil {
			// Decisions before this one are recorded; the caller learns which failed by its index.
			return nil, toStatus(s.log, fmt.Errorf("requests[%d]: %w", i, err))
		}
		out.Responses[i], recs[i] = resp, rec
	}
	// Receipts after every decision: the first wait's checkpoint covers the whole batch.
	var missing []string
	for i, r := range reqs {
		if !r.GetWantReceipt() {
			continue
		}
		if err := s.attachReceipt(ctx, out.Responses[i], recs[i]); err != nil {
			missing = append(missing, fmt.Sprintf("requests[%d]: %s", i, receiptMessage(out.Responses[i].GetDecisionId(), err)))
		}
	}
	s.reportReceiptErrors(ctx, missing)
	return out, nil
}

// decide evaluates one request and records it. The answer leaves only once the audit log holds the
// record (sync mode) or has queued it (async mode); if the log refuses, the caller gets an error and
// no decision. It also returns the record the answer's decision_id names, a receipt's subject: the
// stored record, or for an idempotent retry the original's (committed in sync mode).
//
// A request with a consistency token must have waited (awaitRevision) before: the engine takes its
// snapshot after decide is called, and revisions only grow, so the evaluation sees at least the token's
// revision. decide checks it all the same, and refuses (unaudited) a result evaluated on older data.
// An idempotent retry is answered with the original decision even when the original was evaluated
// on data older than the retry's token: a key names one decision, made once (docs/consistency.md).
func (s *DecisionServer) decide(ctx context.Context, req *tollgatev1.DecideRequest, in *engine.Request) (*tollgatev1.DecideResponse, *audit.Record, error) {
	start := time.Now()
	ticket, err := s.beginHistory(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	defer ticket.Release()
	evalCtx, evalSpan := s.startSpan(ctx, SpanEvaluate)
	if idx := ticket.Index(); idx != nil {
		evalCtx = engine.WithHistory(evalCtx, idx)
	}
	res := s.engine.Decide(evalCtx, in)
	endEvaluate(evalSpan, res)
	latency := time.Since(start)
	if min := req.GetMinMasterdataRevision(); res.MasterdataRevision < min {
		return nil, nil, s.refuseBehind("", res.MasterdataRevision, min, 0)
	}
	resp := responseFor(ulid.Make().String(), res)
	var subject *audit.Record
	if s.audit != nil {
		rec, err := decisionRecord(ctx, req, resp, res, latency)
		if err != nil {
			return nil, nil, err
		}
		auditCtx, auditSpan := s.startSpan(ctx, SpanAuditCommit)
		// Once the record is queued as a decision of its own, it counts for its history keys and they
		// are released: the next decision on them reads it while its commit is still in flight, so
		// decisions on one key are serialized for their evaluation, not for their disk writes too.
		var early *audit.Record // the queued record, masked as stored, once observed early
		queued := func(q *audit.Record) {
			early = q
			ticket.Observe(q)
			ticket.Release()
		}
		stored, original, err := s.writeAudit(auditCtx, rec, queued)
		s.endAuditCommit(auditSpan, stored, err)
		if err != nil {
			if early != nil && errors.Is(err, audit.ErrUnavailable) {
				// The commit failed: not a decision after all. A commit whose outcome is unknown (the
				// call's deadline passed first) stays counted: more approvals, never fewer.
				ticket.Forget(early)
			}
			s.countConflict(ctx, rec, err)
			return nil, nil, err
		}
		subject = stored
		if original != nil {
			if early != nil {
				// Another replica stored this idempotency key first: rec became a replay marker.
				ticket.Forget(early)
			}
			resp = responseFromRecord(original)
			resp.Replay = true
			subject = original
		} else if early == nil {
			// A writer without WriteQueued: observed once written (queued, in async mode).
			ticket.Observe(stored)
		}
	}
	s.metrics.observeDecision(in.Action, string(res.Effect), res.Reasons, time.Since(start))
	s.annotateDecision(ctx, in, resp)
	return resp, subject, nil
}

// decisionRecord is the audit record of one answered decision. The writer masks sensitive request
// fields before it hashes and stores the record. Its caller field also scopes the idempotency key
// (audit.IdempotencyScope): a key is one decision per authenticated caller name, so another caller
// sending the same key gets its own decision, and a conflict names only the caller's own decision.
func decisionRecord(ctx context.Context, req *tollgatev1.DecideRequest, resp *tollgatev1.DecideResponse, res *engine.Result, latency time.Duration) (*audit.Record, error) {
	facts, err := engine.EncodeFacts(res.Facts)
	if err != nil {
		return nil, fmt.Errorf("record decision %s: %w", resp.GetDecisionId(), err)
	}
	return &audit.Record{
		DecisionId:         resp.GetDecisionId(),
		EvaluatedAt:        resp.GetEvaluatedAt(),
		Caller:             callerOf(ctx),
		Request:            req,
		Effect:             resp.GetEffect(),
		Reasons:            resp.GetReasons(),
		Approvers:          resp.GetApprovers(),
		BundleRevision:     resp.GetBundleRevision(),
		MasterdataRevision: resp.GetMasterdataRevision(),
		FactsJson:          string(facts),
		Kind:               tollgatev1.RecordKind_RECORD_KIND_DECISION,
		IdempotencyKey:     req.GetIdempotencyKey(),
		Latency:            durationpb.New(latency),
	}, nil
}

// callerOf is the caller's identity as the audit record keeps it: the authenticated caller and how it
// authenticated, and the peer address, e.g. "orchestrator (mtls) from 10.0.0.7:51234".
func callerOf(ctx context.Context) string {
	var who, from string
	if c, ok := CallerFrom(ctx); ok {
		who = c.String()
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		from = p.Addr.String()
	}
	switch {
	case who == "":
		return from
	case from == "":
		return who
	}
	return who + " from " + from
}

// responseFromRecord is the answer a recorded decision gave.
func responseFromRecord(rec *audit.Record) *tollgatev1.DecideResponse {
	return &tollgatev1.DecideResponse{
		DecisionId:         rec.GetDecisionId(),
		Effect:             rec.GetEffect(),
		Reasons:            rec.GetReasons(),
		Approvers:          rec.GetApprovers(),
		BundleRevision:     rec.GetBundleRevision(),
		MasterdataRevision: rec.GetMasterdataRevision(),
		EvaluatedAt:        rec.GetEvaluatedAt(),
	}
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

// queuedWriter is an AuditLog that reports when a record is queued as a decision of its own;
// *audit.Writer is one (WriteQueued).
type queuedWriter interface {
	WriteQueued(ctx context.Context, rec *audit.Record, queued func(*audit.Record)) (stored, replayOf *audit.Record, err error)
}

// writeAudit writes rec, calling queued once it is queued as a decision of its own when the audit log
// can say so.
func (s *DecisionServer) writeAudit(ctx context.Context, rec *audit.Record, queued func(*audit.Record)) (stored, replayOf *audit.Record, err error) {
	if qw, ok := s.audit.(queuedWriter); ok {
		return qw.WriteQueued(ctx, rec, queued)
	}
	return s.audit.Write(ctx, rec)
}

// beginHistory takes the decision's history view keys (HistoryKeeper.Begin). Without a keeper it
// returns a ticket that holds nothing. A wait that outlasts the call's deadline makes no decision: the
// caller gets DeadlineExceeded (or Canceled), and nothing is recorded.
func (s *DecisionServer) beginHistory(ctx context.Context, req *tollgatev1.DecideRequest) (*history.Ticket, error) {
	if s.history == nil {
		return &history.Ticket{}, nil
	}
	tk, err := s.history.Begin(ctx, req)
	if err != nil {
		code := codes.DeadlineExceeded
		if errors.Is(err, context.Canceled) {
			code = codes.Canceled
		}
		return nil, status.Errorf(code, "waiting for another decision on the same history key: %v", err)
	}
	return tk, nil
}
