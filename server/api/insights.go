package api

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/insights"
)

// Syncer rolls the insights up to the audit log's current heads; *insights.Roller is the
// implementation.
type Syncer interface {
	Sync(ctx context.Context) (int, error)
}

// ConflictCounter keeps the idempotency conflicts the decision path refuses, which are not records;
// an insights.Store is one.
type ConflictCounter interface {
	AddConflict(ctx context.Context, c insights.Conflict) error
}

// InsightsConfig is what an InsightsServer needs besides its reader.
type InsightsConfig struct {
	// Sync, when set, is called before every answer, so the figures include every decision committed
	// before the call.
	Sync Syncer
	// Config returns the active bundle's insights config (its approval SLA). Nil: the zero Config.
	Config func() insights.Config
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// InsightsServer implements tollgatev1.InsightsServiceServer from roll-ups (package insights).
type InsightsServer struct {
	tollgatev1.UnimplementedInsightsServiceServer
	reader *insights.Reader
	cfg    InsightsConfig
	log    zerolog.Logger
}

// NewInsightsServer returns the insights service over reader.
func NewInsightsServer(reader *insights.Reader, cfg InsightsConfig, log zerolog.Logger) *InsightsServer {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Config == nil {
		cfg.Config = func() insights.Config { return insights.Config{} }
	}
	return &InsightsServer{reader: reader, cfg: cfg, log: log}
}

// WithConflicts makes the decision service count the idempotency conflicts it refuses in c, one
// small write each; a conflict that cannot be counted is logged and still refused.
func (s *DecisionServer) WithConflicts(c ConflictCounter) *DecisionServer {
	s.conflicts = c
	return s
}

// countConflict counts err in s.conflicts if it is an idempotency conflict of rec.
func (s *DecisionServer) countConflict(ctx context.Context, rec *audit.Record, err error) {
	var conflict *audit.ConflictError
	if s.conflicts == nil || !errors.As(err, &conflict) {
		return
	}
	if cerr := s.conflicts.AddConflict(context.WithoutCancel(ctx), insights.ConflictOf(rec)); cerr != nil {
		s.log.Warn().Err(cerr).Str("idempotency_key", conflict.Key).Msg("count idempotency conflict")
	}
}

// query validates and normalizes q, syncing the roll-ups first.
func (s *InsightsServer) query(ctx context.Context, q *tollgatev1.InsightsQuery) (insights.Query, error) {
	out := insights.Query{Action: q.GetAction(), Site: q.GetSiteId()}
	if q.GetFrom() != nil {
		if err := q.GetFrom().CheckValid(); err != nil {
			return out, badField("query.from", "%v", err)
		}
		out.From = q.GetFrom().AsTime()
	}
	if q.GetTo() != nil {
		if err := q.GetTo().CheckValid(); err != nil {
			return out, badField("query.to", "%v", err)
		}
		out.To = q.GetTo().AsTime()
	}
	switch q.GetGranularity() {
	case tollgatev1.Granularity_GRANULARITY_UNSPECIFIED, tollgatev1.Granularity_GRANULARITY_DAY:
		out.Granularity = insights.Day
	case tollgatev1.Granularity_GRANULARITY_HOUR:
		out.Granularity = insights.Hour
	default:
		return out, badField("query.granularity", "unknown granularity %d", q.GetGranularity())
	}
	g, ok := groups[q.GetGroupBy()]
	if !ok {
		return out, badField("query.group_by", "unknown group %d", q.GetGroupBy())
	}
	out.Group = g
	out, err := out.Normalize(s.cfg.Now())
	if err != nil {
		field := "query.from"
		if !out.From.Before(out.To) && q.GetTo() != nil && q.GetFrom() == nil {
			field = "query.to"
		}
		return out, badField(field, "%s", strings.TrimSuffix(err.Error(), ": "+insights.ErrInvalidQuery.Error()))
	}
	return out, s.sync(ctx)
}

var groups = map[tollgatev1.InsightsGroup]insights.Group{
	tollgatev1.InsightsGroup_INSIGHTS_GROUP_UNSPECIFIED: insights.GroupNone,
	tollgatev1.InsightsGroup_INSIGHTS_GROUP_ACTION:      insights.GroupAction,
	tollgatev1.InsightsGroup_INSIGHTS_GROUP_SITE:        insights.GroupSite,
	tollgatev1.InsightsGroup_INSIGHTS_GROUP_REASON:      insights.GroupReason,
	tollgatev1.InsightsGroup_INSIGHTS_GROUP_ACTOR:       insights.GroupActor,
	tollgatev1.InsightsGroup_INSIGHTS_GROUP_AGENT:       insights.GroupAgent,
}

func (s *InsightsServer) sync(ctx context.Context) error {
	if s.cfg.Sync == nil {
		return nil
	}
	_, err := s.cfg.Sync.Sync(ctx)
	return err
}

// GetVolume implements tollgatev1.InsightsServiceServer.
func (s *InsightsServer) GetVolume(ctx context.Context, req *tollgatev1.GetVolumeRequest) (*tollgatev1.GetVolumeResponse, error) {
	q, err := s.query(ctx, req.GetQuery())
	if err != nil {
		return nil, toStatus(s.log, err)
	}
	pts, err := s.reader.Volume(ctx, q)
	if err != nil {
		return nil, toStatus(s.log, err)
	}
	resp := &tollgatev1.GetVolumeResponse{}
	for _, p := range pts {
		resp.Points = append(resp.Points, &tollgatev1.VolumePoint{Bucket: timestamppb.New(p.Bucket), Group: p.Group,
			Counts: &tollgatev1.EffectCounts{Allow: p.Counts.Allow, Deny: p.Counts.Deny, RequireApproval: p.Counts.Approval}})
	}
	return resp, nil
}

// GetExceptions implements tollgatev1.InsightsServiceServer.
func (s *InsightsServer) GetExceptions(ctx context.Context, req *tollgatev1.GetExceptionsRequest) (*tollgatev1.GetExceptionsResponse, error) {
	q, err := s.query(ctx, req.GetQuery())
	if err != nil {
		return nil, toStatus(s.log, err)
	}
	pts, top, err := s.reader.Exceptions(ctx, q)
	if err != nil {
		return nil, toStatus(s.log, err)
	}
	resp := &tollgatev1.GetExceptionsResponse{}
	for _, p := range pts {
		resp.Points = append(resp.Points, &tollgatev1.ExceptionPoint{Bucket: timestamppb.New(p.Bucket), Group: p.Group,
			Deny: p.Counts.Deny, RequireApproval: p.Counts.Approval})
	}
	for _, r := range top {
		resp.TopReasons = append(resp.TopReasons, &tollgatev1.ReasonCount{Code: r.Code, Count: r.Count})
	}
	return resp, nil
}

// GetApprovals implements tollgatev1.InsightsServiceServer.
func (s *InsightsServer) GetApprovals(ctx context.Context, req *tollgatev1.GetApprovalsRequest) (*tollgatev1.GetApprovalsResponse, error) {
	q, err := s.query(ctx, req.GetQuery())
	if err != nil {
		return nil, toStatus(s.log, err)
	}
	rates, err := s.reader.Approvals(ctx, q)
	if err != nil {
		return nil, toStatus(s.log, err)
	}
	resp := &tollgatev1.GetApprovalsResponse{}
	for _, r := range rates {
		resp.Rates = append(resp.Rates, &tollgatev1.ApprovalRate{Action: r.Action, Group: r.Group,
			Decisions: r.Decisions, RequireApproval: r.RequireApproval, Rate: r.Rate()})
	}
	return resp, nil
}

// GetAutonomy implements tollgatev1.InsightsServiceServer.
func (s *InsightsServer) GetAutonomy(ctx context.Context, req *tollgatev1.GetAutonomyRequest) (*tollgatev1.GetAutonomyResponse, error) {
	q, err := s.query(ctx, req.GetQuery())
	if err != nil {
		return nil, toStatus(s.log, err)
	}
	rows, err := s.reader.Autonomy(ctx, q)
	if err != nil {
		return nil, toStatus(s.log, err)
	}
	resp := &tollgatev1.GetAutonomyResponse{}
	for _, a := range rows {
		n := float64(a.Execute)
		resp.Agents = append(resp.Agents, &tollgatev1.AgentAutonomy{AgentId: a.AgentID, UseCase: a.UseCase,
			ExecuteRequests: a.Execute, Allowed: a.Allowed, HandedToHuman: a.HandedToHuman, Denied: a.Denied,
			AllowedShare: float64(a.Allowed) / n, HandedToHumanShare: float64(a.HandedToHuman) / n, DeniedShare: float64(a.Denied) / n})
	}
	return resp, nil
}

// GetRetries implements tollgatev1.InsightsServiceServer.
func (s *InsightsServer) GetRetries(ctx context.Context, req *tollgatev1.GetRetriesRequest) (*tollgatev1.GetRetriesResponse, error) {
	q, err := s.query(ctx, req.GetQuery())
	if err != nil {
		return nil, toStatus(s.log, err)
	}
	pts, replays, conflicts, err := s.reader.Retries(ctx, q)
	if err != nil {
		return nil, toStatus(s.log, err)
	}
	resp := &tollgatev1.GetRetriesResponse{Replays: replays, Conflicts: conflicts}
	for _, p := range pts {
		resp.Points = append(resp.Points, &tollgatev1.RetryPoint{Bucket: timestamppb.New(p.Bucket), Group: p.Group,
			Replays: p.Replays, Conflicts: p.Conflicts})
	}
	return resp, nil
}

// GetApprovalDelays implements tollgatev1.InsightsServiceServer.
func (s *InsightsServer) GetApprovalDelays(ctx context.Context, req *tollgatev1.GetApprovalDelaysRequest) (*tollgatev1.GetApprovalDelaysResponse, error) {
	q, err := s.query(ctx, req.GetQuery())
	if err != nil {
		return nil, toStatus(s.log, err)
	}
	rows, err := s.reader.ApprovalDelays(ctx, q)
	if err != nil {
		return nil, toStatus(s.log, err)
	}
	resp := &tollgatev1.GetApprovalDelaysResponse{}
	for _, d := range rows {
		resp.Delays = append(resp.Delays, &tollgatev1.ApprovalDelay{Action: d.Action, ApprovalAction: d.ApprovalAction, SiteId: d.Site,
			Approved: d.Approved, Open: d.Open, P50: durationpb.New(d.P50), P90: durationpb.New(d.P90)})
	}
	return resp, nil
}

// ListSLABreaches implements tollgatev1.InsightsServiceServer: the open approvals requested in the
// range (default: the last 30 days) and older than the active bundle's SLA.
func (s *InsightsServer) ListSLABreaches(ctx context.Context, req *tollgatev1.ListSLABreachesRequest) (*tollgatev1.ListSLABreachesResponse, error) {
	q, err := s.query(ctx, &tollgatev1.InsightsQuery{From: req.GetFrom(), To: req.GetTo(), Action: req.GetAction(), SiteId: req.GetSiteId()})
	if err != nil {
		return nil, toStatus(s.log, err)
	}
	if req.GetPageSize() < 0 {
		return nil, toStatus(s.log, badField("page_size", "must not be negative"))
	}
	sla := s.cfg.Config().SLA()
	page, err := s.reader.SLABreaches(ctx, insights.BreachQuery{From: q.From, To: q.To, Action: q.Action, Site: q.Site,
		SLA: sla, Now: s.cfg.Now(), PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken()})
	if errors.Is(err, insights.ErrInvalidQuery) {
		return nil, toStatus(s.log, badField("page_token", "does not decode"))
	}
	if err != nil {
		return nil, toStatus(s.log, err)
	}
	resp := &tollgatev1.ListSLABreachesResponse{Total: page.Total, NextPageToken: page.NextPageToken, Sla: durationpb.New(sla)}
	now := s.cfg.Now()
	for _, a := range page.Breaches {
		resp.Breaches = append(resp.Breaches, &tollgatev1.SLABreach{DecisionId: a.DecisionID, Action: a.Action, ApprovalAction: a.ApprovalAction,
			ResourceType: a.ResourceType, ResourceId: a.ResourceID, SiteId: a.Site, RequestedAt: timestamppb.New(a.RequestedAt),
			OpenFor: durationpb.New(now.Sub(a.RequestedAt)), Approvers: a.Approvers})
	}
	return resp, nil
}

// ListPolicyChanges implements tollgatev1.InsightsServiceServer.
func (s *InsightsServer) ListPolicyChanges(ctx context.Context, req *tollgatev1.ListPolicyChangesRequest) (*tollgatev1.ListPolicyChangesResponse, error) {
	q, err := s.query(ctx, req.GetQuery())
	if err != nil {
		return nil, toStatus(s.log, err)
	}
	changes, err := s.reader.PolicyChanges(ctx, q)
	if err != nil {
		return nil, toStatus(s.log, err)
	}
	resp := &tollgatev1.ListPolicyChangesResponse{}
	for _, c := range changes {
		resp.Changes = append(resp.Changes, &tollgatev1.PolicyChange{Revision: c.Revision, ActivatedAt: timestamppb.New(c.ActivatedAt)})
	}
	return resp, nil
}
