package insights

import (
	"time"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
)

// Span is the width of a roll-up bucket in seconds; buckets are aligned to
// UTC (unix time is).
type Span int64

// The spans kept. Every decision is counted in both, so a day figure is one
// day row instead of 24 hour rows.
const (
	Hour Span = 3600
	Day  Span = 86400
)

// Dim is what a count row is split by besides action and site.
type Dim int

// The dimensions kept. Every row carries action and site, so the action
// and site filters and the action and site groupings read DimBase.
const (
	// DimBase: Group and Sub empty.
	DimBase Dim = iota
	// DimReason: Group is a reason code; a decision counts once per code.
	DimReason
	// DimActor: Group is actor.id.
	DimActor
	// DimAgent: Group is the AI agent's actor.id, Sub its use case; only
	// AI_AGENT actors.
	DimAgent
)

// Variant says which of action and site a count row keeps. Every decision
// is counted in all four, so a query reads the rows that keep only what it
// filters or groups by: without an action or site filter, grouping by reason
// code over 30 days reads one row per code and day instead of one per code,
// action, site and day.
type Variant int

// The variants.
const (
	// KeepBoth keeps action and site.
	KeepBoth Variant = iota
	// KeepAction keeps the action; Site is "".
	KeepAction
	// KeepSite keeps the site; Action is "".
	KeepSite
	// KeepNone keeps neither.
	KeepNone
)

// variantFor is the variant with the fewest rows that still has the action
// (needAction) and the site (needSite).
func variantFor(needAction, needSite bool) Variant {
	switch {
	case needAction && needSite:
		return KeepBoth
	case needAction:
		return KeepAction
	case needSite:
		return KeepSite
	}
	return KeepNone
}

// DimCode is the stored dim column of a dimension and variant: Stores keep
// both in the one column.
func DimCode(d Dim, v Variant) int { return int(d)*4 + int(v) }

// Key names one count row.
type Key struct {
	Span    Span
	Dim     Dim
	Variant Variant
	Bucket  int64 // unix seconds of the bucket's start
	Action  string
	Site    string
	Group   string
	Sub     string
}

// Counts are the figures of one row. Rows only grow.
type Counts struct {
	Allow, Deny, Approval int64
	// Exec* count the AI EXECUTE requests among them (DimAgent only).
	ExecAllow, ExecDeny, ExecApproval int64
	// Replays counts idempotent retries answered with the original.
	Replays int64
}

// Add adds o to c.
func (c *Counts) Add(o Counts) {
	c.Allow += o.Allow
	c.Deny += o.Deny
	c.Approval += o.Approval
	c.ExecAllow += o.ExecAllow
	c.ExecDeny += o.ExecDeny
	c.ExecApproval += o.ExecApproval
	c.Replays += o.Replays
}

// Total is the number of decisions counted.
func (c Counts) Total() int64 { return c.Allow + c.Deny + c.Approval }

// Approval is a REQUIRE_APPROVAL decision on a resource whose approval
// action's ALLOW has not been folded yet.
type Approval struct {
	DecisionID     string
	Action         string
	ApprovalAction string
	ResourceType   string
	ResourceID     string
	Site           string
	RequestedAt    time.Time
	Approvers      []string
}

// ApprovalAllow is an ALLOW of an approval action on a resource.
type ApprovalAllow struct {
	ResourceType string
	ResourceID   string
	Action       string
	At           time.Time
}

// DelayKey names one histogram bin of approval delays: the approvals of
// Action at Site requested on Day (unix seconds of its UTC midnight).
type DelayKey struct {
	Day            int64
	Action         string
	ApprovalAction string
	Site           string
	Bin            int
}

// Conflict is an idempotency key reused with a different payload, refused
// by the decision path; it is not a record, so the API reports it.
type Conflict struct {
	At      time.Time
	Action  string
	Site    string
	ActorID string
	// AgentID and UseCase are set for AI_AGENT actors.
	AgentID string
	UseCase string
}

// ConflictOf describes the refused decision rec as a Conflict.
func ConflictOf(rec *audit.Record) Conflict {
	f := factsOf(rec)
	return Conflict{At: rec.GetEvaluatedAt().AsTime(), Action: f.action, Site: f.site, ActorID: f.actor, AgentID: f.agent, UseCase: f.useCase}
}

// PolicyChange is one bundle activation.
type PolicyChange struct {
	Revision    string
	ActivatedAt time.Time
}

// facts are the parts of a record the roll-ups key on.
type facts struct {
	action, site, actor    string
	agent, useCase         string
	execute                bool
	resourceType, resource string
}

func factsOf(rec *audit.Record) facts {
	req := rec.GetRequest()
	f := facts{
		action:       req.GetAction(),
		site:         req.GetResource().GetAttributes().GetFields()["site_id"].GetStringValue(),
		actor:        req.GetActor().GetId(),
		resourceType: req.GetResource().GetType(),
		resource:     req.GetResource().GetId(),
	}
	if req.GetActor().GetType() == tollgatev1.ActorType_ACTOR_TYPE_AI_AGENT {
		f.agent, f.useCase = f.actor, req.GetAi().GetUseCase()
		f.execute = req.GetAi().GetMode() == tollgatev1.AIMode_AI_MODE_EXECUTE
	}
	return f
}
