package api

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/peer"
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
	Ticket(req *tollgatev1.DecideRequest) *history.Ticket
}

// WithHistory makes decisions read and feed the history views (policy-pack §6): each takes the locks
// of its view keys on its evaluator, before evaluation (a wait that outlasts the call's deadline is a DENY
// with EVALUATION_TIMEOUT), reads the ticket's index through tollgate.history, and is
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
//
// The decisions are made one after the other, each under its history keys as in Decide, and their
// records queued as one audit.Group: in sync mode the batch waits for one group commit (one
// transaction for up to the audit writer's MaxBatch records), not one per decision, and no answer
// leaves before every record committed. A decision that fails (or whose record the log refuses) fails
// the batch with the first such request's error, wrapped as "requests[i]: ..."; the decisions made
// before it, and those made after it whose records were queued with it, stay recorded.
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
	// Every decision's record is queued as it is made, into one group: the batch waits for one commit,
	// not one per decision, and each decision's history keys are released at once, as in decide.
	enqueue := s.enqueuer()
	if g, ok := s.audit.(groupWriter); ok {
		enqueue = g.Group().Enqueue
	}
	type made struct {
		ctx  context.Context // the decision's span's
		span trace.Span
		d    *decision
	}
	done := make([]made, 0, len(ins))
	// awaitAll waits for the decisions made, ending their spans: each is recorded (sync mode) or queued
	// whatever the batch's outcome. It returns the first failure, naming its request.
	awaitAll := func() error {
		var first error
		for i, m := range done {
			resp, rec, err := s.await(m.ctx, m.d)
			endDecisionSpan(m.span, err)
			if err != nil && first == nil {
				first = fmt.Errorf("requests[%d]: %w", i, err)
			}
			out.Responses[i], recs[i] = resp, rec
		}
		return first
	}
	for i, in := range ins {
		dctx, span := s.startSpan(ctx, SpanDecision)
		d, err := s.evaluate(dctx, reqs[i], in, enqueue)
		if err != nil {
			endDecisionSpan(span, err)
			// Decisions before this one are recorded; the caller learns which failed by its index (an
			// earlier one's, if its record failed).
			err = fmt.Errorf("requests[%d]: %w", i, err)
			if werr := awaitAll(); werr != nil {
				err = werr
			}
			return nil, toStatus(s.log, err)
		}
		done = append(done, made{dctx, span, d})
	}
	if err := awaitAll(); err != nil {
		return nil, toStatus(s.log, err)
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
	d, err := s.evaluate(ctx, req, in, s.enqueuer())
	if err != nil {
		return nil, nil, err
	}
	return s.await(ctx, d)
}

// decision is one decision between its two halves: evaluate made it and handed its record to the
// audit log; await waits for the log's answer and settles its history ticket.
type decision struct {
	start  time.Time
	in     *engine.Request
	res    *engine.Result
	resp   *tollgatev1.DecideResponse
	rec    *audit.Record // nil without an audit log
	ticket *history.Ticket
	// early is the queued record, masked as stored, once observed early (see evaluate's queued).
	early     *audit.Record
	auditSpan trace.Span
	queued    *audit.Queued // the record in the log's queue; nil if it was written already:
	written   struct {
		stored, original *audit.Record
		err              error
	}
}

// enqueueFunc hands a decision's record to the audit log: audit.Writer.Enqueue, or audit.Group.Enqueue
// in a batch.
type enqueueFunc func(ctx context.Context, rec *audit.Record, queued func(*audit.Record)) (*audit.Queued, error)

// enqueuer is the audit log's Enqueue, or nil if it has none (it is written with Write).
func (s *DecisionServer) enqueuer() enqueueFunc {
	if e, ok := s.audit.(queueingLog); ok {
		return e.Enqueue
	}
	return nil
}

// evaluate is decide's first half: it evaluates the request under its history ticket and hands the
// record to the audit log with enqueue (nil: writes it with Write), and returns without waiting for
// the commit. The ticket's keys are released when it returns, or as soon as the record is queued as a
// decision of its own. An error is one decide returns, before any record was handed to the log; an
// error of the log itself comes from await.
func (s *DecisionServer) evaluate(ctx context.Context, req *tollgatev1.DecideRequest, in *engine.Request, enqueue enqueueFunc) (*decision, error) {
	d := &decision{start: time.Now(), in: in, ticket: s.historyTicket(req)}
	defer d.ticket.Release()
	evalCtx, evalSpan := s.startSpan(ctx, SpanEvaluate)
	if s.history != nil {
		evalCtx = engine.WithHistoryGate(evalCtx, historyGate{d.ticket})
	}
	d.res = s.engine.Decide(evalCtx, in)
	endEvaluate(evalSpan, d.res)
	latency := time.Since(d.start)
	if min := req.GetMinMasterdataRevision(); d.res.MasterdataRevision < min {
		return nil, s.refuseBehind("", d.res.MasterdataRevision, min, 0)
	}
	d.resp = responseFor(ulid.Make().String(), d.res)
	if s.audit == nil {
		return d, nil
	}
	rec, err := decisionRecord(ctx, req, d.resp, d.res, latency)
	if err != nil {
		return nil, err
	}
	d.rec = rec
	auditCtx, span := s.startSpan(ctx, SpanAuditCommit)
	d.auditSpan = span
	if enqueue == nil {
		// A log without Enqueue: written here, and observed once written (queued, in async mode).
		w := &d.written
		w.stored, w.original, w.err = s.audit.Write(auditCtx, rec)
		if w.err == nil && w.original == nil {
			d.ticket.Observe(w.stored)
		}
		return d, nil
	}
	// Once the record is queued as a decision of its own, it counts for its history keys and they
	// are released: the next decision on them reads it while its commit is still in flight, so
	// decisions on one key are serialized for their evaluation, not for their disk writes too.
	queued := func(q *audit.Record) {
		d.early = q
		d.ticket.Observe(q)
		d.ticket.Release()
	}
	d.queued, d.written.err = enqueue(auditCtx, rec, queued)
	return d, nil
}

// await is decide's second half: it waits for the audit log's answer on d's record (in sync mode, its
// commit) and returns what decide returns.
func (s *DecisionServer) await(ctx context.Context, d *decision) (*tollgatev1.DecideResponse, *audit.Record, error) {
	resp := d.resp
	var subject *audit.Record
	if d.rec != nil {
		stored, original, err := d.written.stored, d.written.original, d.written.err
		if d.queued != nil {
			stored, original, err = d.queued.Wait(ctx)
		}
		s.endAuditCommit(d.auditSpan, stored, err)
		if err != nil {
			if d.early != nil && errors.Is(err, audit.ErrUnavailable) {
				// The commit failed: not a decision after all. A commit whose outcome is unknown (the
				// call's deadline passed first) stays counted: more approvals, never fewer.
				d.ticket.Forget(d.early)
			}
			s.countConflict(ctx, d.rec, err)
			return nil, nil, err
		}
		subject = stored
		if original != nil {
			if d.early != nil {
				// Another replica stored this idempotency key first: rec became a replay marker.
				d.ticket.Forget(d.early)
			}
			resp = responseFromRecord(original)
			resp.Replay = true
			subject = original
		}
	}
	s.metrics.observeDecision(d.in.Action, string(d.res.Effect), d.res.Reasons, time.Since(d.start))
	s.annotateDecision(ctx, d.in, resp)
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

// queueingLog is an AuditLog that can queue a record and be waited for later, reporting when the
// record is queued as a decision of its own; *audit.Writer is one (Enqueue, WriteQueued).
type queueingLog interface {
	Enqueue(ctx context.Context, rec *audit.Record, queued func(*audit.Record)) (*audit.Queued, error)
}

// groupWriter is an AuditLog that commits several records as one (audit.Group); *audit.Writer is one.
type groupWriter interface {
	Group() *audit.Group
}

// historyTicket is the decision's history ticket (HistoryKeeper.Ticket); without a keeper, one that
// holds nothing.
func (s *DecisionServer) historyTicket(req *tollgatev1.DecideRequest) *history.Ticket {
	if s.history == nil {
		return &history.Ticket{}
	}
	return s.history.Ticket(req)
}

// historyGate lets the engine take a ticket's keys once the decision has an evaluator
// (engine.HistoryGate): a decision waiting its turn holds up no decision on its keys.
type historyGate struct{ ticket *history.Ticket }

func (g historyGate) Acquire(ctx context.Context) (engine.HistoryReader, error) {
	if err := g.ticket.Lock(ctx); err != nil {
		return nil, err
	}
	return g.ticket.Index(), nil
}
