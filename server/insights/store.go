package insights

import (
	"context"
	"errors"
	"time"
)

// ErrWatermarkMoved is what a Roller's update returns when the chain's
// watermark is no longer the one its delta was folded after: another
// roller (another replica on a shared database) rolled the same records
// up first. The delta is dropped, not applied twice.
var ErrWatermarkMoved = errors.New("insights watermark moved")

// Store keeps the roll-ups. Implementations are safe for concurrent use;
// Update transactions are serialized with each other.
type Store interface {
	// Update runs fn in one write transaction and commits it if fn returns
	// nil: everything fn did through the Tx, or nothing, is durable.
	Update(ctx context.Context, fn func(Tx) error) error
	// Watermarks returns the seq up to which each chain is rolled up.
	Watermarks(ctx context.Context) (map[string]uint64, error)
	// Counts sums the count rows of q.Span, q.Dim and q.Variant with buckets in
	// [q.From, q.To) that match q's filters, grouped by q.Cols (and the
	// bucket when q.ByBucket), in no particular order.
	Counts(ctx context.Context, q CountQuery) ([]CountRow, error)
	// Delays sums the delay histogram over days in [q.From, q.To) matching
	// q's filters, by action, approval action, site and bin.
	Delays(ctx context.Context, q DelayQuery) ([]DelayRow, error)
	// OpenCounts counts the open approvals requested in [q.From, q.To)
	// matching q's filters, by action, approval action and site.
	OpenCounts(ctx context.Context, q DelayQuery) ([]OpenCount, error)
	// OpenApprovals returns up to q.Limit open approvals matching q, oldest
	// request first (then decision id), after the cursor q.After, and how
	// many match q in all.
	OpenApprovals(ctx context.Context, q OpenQuery) ([]Approval, int64, error)
	// AddConflict stores one idempotency conflict, durably.
	AddConflict(ctx context.Context, c Conflict) error
	// Conflicts returns the conflicts at times in [q.From, q.To) matching
	// q's action and site filters.
	Conflicts(ctx context.Context, q DelayQuery) ([]Conflict, error)
	// PolicyChanges returns the bundles activated in [from, to), oldest
	// first.
	PolicyChanges(ctx context.Context, from, to time.Time) ([]PolicyChange, error)
}

// Tx is one write transaction of a Store; valid only inside Update's fn.
type Tx interface {
	// Watermark returns the seq up to which chainID is rolled up (0 for
	// none) and holds it against other transactions until the end of this
	// one.
	Watermark(ctx context.Context, chainID string) (uint64, error)
	// SetWatermark moves chainID's watermark to seq.
	SetWatermark(ctx context.Context, chainID string, seq uint64) error
	// AddCounts adds each row's counts to the stored row of its key,
	// creating it if needed.
	AddCounts(ctx context.Context, rows map[Key]Counts) error
	// OpenApproval stores a as open.
	OpenApproval(ctx context.Context, a Approval) error
	// AddApprovalAllow stores an ALLOW of an approval action.
	AddApprovalAllow(ctx context.Context, a ApprovalAllow) error
	// FirstAllowAfter returns the earliest stored ALLOW of action on the
	// resource strictly after at, if any.
	FirstAllowAfter(ctx context.Context, resourceType, resourceID, action string, at time.Time) (time.Time, bool, error)
	// CloseApprovals removes and returns the open approvals on the resource
	// waiting for approvalAction that were requested strictly before at.
	CloseApprovals(ctx context.Context, resourceType, resourceID, approvalAction string, at time.Time) ([]Approval, error)
	// AddDelays adds counts to histogram bins.
	AddDelays(ctx context.Context, bins map[DelayKey]int64) error
}

// Col is a column a CountQuery groups by.
type Col int

// The columns of a count row.
const (
	ColAction Col = iota
	ColSite
	ColGroup
	ColSub
)

// CountQuery selects count rows for Store.Counts.
type CountQuery struct {
	Span     Span
	Dim      Dim
	Variant  Variant
	From, To time.Time
	// Action and Site filter; empty matches all.
	Action, Site string
	Cols         []Col
	ByBucket     bool
}

// CountRow is one group of a Counts answer; only the columns asked for
// (and Bucket when ByBucket) are set.
type CountRow struct {
	Bucket int64
	Action string
	Site   string
	Group  string
	Sub    string
	Counts Counts
}

// DelayQuery selects by time range, action and site.
type DelayQuery struct {
	From, To     time.Time
	Action, Site string
}

// DelayRow is one histogram bin summed over days.
type DelayRow struct {
	Action, ApprovalAction, Site string
	Bin                          int
	N                            int64
}

// OpenCount counts open approvals of one action at one site.
type OpenCount struct {
	Action, ApprovalAction, Site string
	N                            int64
}

// OpenQuery selects open approvals for Store.OpenApprovals.
type OpenQuery struct {
	// From is inclusive and To exclusive, on the request time.
	From, To     time.Time
	Action, Site string
	// After is the cursor: only approvals after (RequestedAt, DecisionID).
	AfterAt time.Time
	AfterID string
	Limit   int
}
