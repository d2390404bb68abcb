package insights

import (
	"context"
	"encoding/base64"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Reader answers the insights figures from a Store's roll-ups. It is safe
// for concurrent use.
type Reader struct {
	store Store
}

// NewReader returns a Reader over store.
func NewReader(store Store) *Reader { return &Reader{store: store} }

// Point is one bucket of one group.
type Point struct {
	Bucket time.Time
	// Group is the group's value; "" without grouping.
	Group  string
	Counts Counts
}

// Series sums the counts (decisions by effect, AI EXECUTE answers with
// GroupAgent, replays) per bucket of q.Granularity and group, ordered by
// bucket then group. q must be normalized.
func (r *Reader) Series(ctx context.Context, q Query) ([]Point, error) {
	dim, cols := q.Group.dimCol()
	rows, err := r.counts(ctx, q, dim, cols, true)
	if err != nil {
		return nil, err
	}
	type key struct {
		bucket int64
		group  string
	}
	sums := make(map[key]Counts)
	for _, row := range rows {
		k := key{row.Bucket - row.Bucket%int64(q.Granularity), groupValue(row, cols)}
		c := sums[k]
		c.Add(row.Counts)
		sums[k] = c
	}
	out := make([]Point, 0, len(sums))
	for k, c := range sums {
		out = append(out, Point{Bucket: time.Unix(k.bucket, 0).UTC(), Group: k.group, Counts: c})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Bucket.Equal(out[j].Bucket) {
			return out[i].Bucket.Before(out[j].Bucket)
		}
		return out[i].Group < out[j].Group
	})
	return out, nil
}

// counts reads dim's rows over q's range, of the variant with just the
// columns needed (see Variant): hour rows only at Hour
// granularity or without whole days in the range, else day rows for the
// whole days and hour rows for the ends.
func (r *Reader) counts(ctx context.Context, q Query, dim Dim, cols []Col, byBucket bool) ([]CountRow, error) {
	ps := []piece{{Hour, q.From, q.To}}
	if q.Granularity == Day || !byBucket {
		ps = pieces(q.From, q.To)
	}
	needAction, needSite := q.Action != "", q.Site != ""
	for _, c := range cols {
		needAction = needAction || c == ColAction
		needSite = needSite || c == ColSite
	}
	variant := variantFor(needAction, needSite)
	var out []CountRow
	for _, p := range ps {
		rows, err := r.store.Counts(ctx, CountQuery{Span: p.span, Dim: dim, Variant: variant, From: p.from, To: p.to,
			Action: q.Action, Site: q.Site, Cols: cols, ByBucket: byBucket})
		if err != nil {
			return nil, fmt.Errorf("read roll-ups: %w", err)
		}
		out = append(out, rows...)
	}
	return out, nil
}

// Volume counts decisions by effect per bucket and group.
func (r *Reader) Volume(ctx context.Context, q Query) ([]Point, error) {
	pts, err := r.Series(ctx, q)
	if err != nil {
		return nil, err
	}
	kept := pts[:0]
	for _, p := range pts {
		if p.Counts.Total() > 0 {
			kept = append(kept, p)
		}
	}
	return kept, nil
}

// ReasonCount counts one reason code.
type ReasonCount struct {
	Code  string
	Count int64
}

// TopReasons is how many reason codes Exceptions ranks.
const TopReasons = 10

// Exceptions returns the DENY and REQUIRE_APPROVAL series (points without
// either are left out) and the reason codes of those decisions over the
// whole range, most frequent first (then by code), at most TopReasons.
func (r *Reader) Exceptions(ctx context.Context, q Query) ([]Point, []ReasonCount, error) {
	pts, err := r.Series(ctx, q)
	if err != nil {
		return nil, nil, err
	}
	kept := pts[:0]
	for _, p := range pts {
		if p.Counts.Deny+p.Counts.Approval > 0 {
			kept = append(kept, p)
		}
	}
	rows, err := r.counts(ctx, q, DimReason, []Col{ColGroup}, false)
	if err != nil {
		return nil, nil, err
	}
	byCode := make(map[string]int64)
	for _, row := range rows {
		byCode[row.Group] += row.Counts.Deny + row.Counts.Approval
	}
	var top []ReasonCount
	for code, n := range byCode {
		if n > 0 {
			top = append(top, ReasonCount{code, n})
		}
	}
	sort.Slice(top, func(i, j int) bool {
		if top[i].Count != top[j].Count {
			return top[i].Count > top[j].Count
		}
		return top[i].Code < top[j].Code
	})
	if len(top) > TopReasons {
		top = top[:TopReasons]
	}
	return kept, top, nil
}

// ApprovalRate is the approval-required rate of one action (and group).
type ApprovalRate struct {
	Action          string
	Group           string
	Decisions       int64
	RequireApproval int64
}

// Rate is RequireApproval / Decisions, 0 without decisions.
func (a ApprovalRate) Rate() float64 { return ratio(a.RequireApproval, a.Decisions) }

func ratio(n, d int64) float64 {
	if d == 0 {
		return 0
	}
	return float64(n) / float64(d)
}

// Approvals returns the approval-required rate per action and group over
// the whole range, ordered by action then group.
func (r *Reader) Approvals(ctx context.Context, q Query) ([]ApprovalRate, error) {
	dim, cols := q.Group.dimCol()
	if q.Group == GroupAction {
		cols = nil // the action is the row already
	}
	rows, err := r.counts(ctx, q, dim, append([]Col{ColAction}, cols...), false)
	if err != nil {
		return nil, err
	}
	type key struct{ action, group string }
	sums := make(map[key]ApprovalRate)
	for _, row := range rows {
		k := key{row.Action, groupValue(row, cols)}
		a := sums[k]
		a.Action, a.Group = k.action, k.group
		a.Decisions += row.Counts.Total()
		a.RequireApproval += row.Counts.Approval
		sums[k] = a
	}
	out := make([]ApprovalRate, 0, len(sums))
	for _, a := range sums {
		if a.Decisions > 0 {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Action != out[j].Action {
			return out[i].Action < out[j].Action
		}
		return out[i].Group < out[j].Group
	})
	return out, nil
}

// AgentAutonomy is how one AI agent's EXECUTE requests for one use case
// were answered.
type AgentAutonomy struct {
	AgentID, UseCase string
	Execute          int64
	Allowed          int64
	HandedToHuman    int64
	Denied           int64
}

// Autonomy returns one row per agent and use case with EXECUTE requests
// in the range, ordered by agent then use case. q's grouping is not used.
func (r *Reader) Autonomy(ctx context.Context, q Query) ([]AgentAutonomy, error) {
	rows, err := r.counts(ctx, q, DimAgent, []Col{ColGroup, ColSub}, false)
	if err != nil {
		return nil, err
	}
	out := make([]AgentAutonomy, 0, len(rows))
	for _, row := range rows {
		c := row.Counts
		if n := c.ExecAllow + c.ExecDeny + c.ExecApproval; n > 0 {
			out = append(out, AgentAutonomy{AgentID: row.Group, UseCase: row.Sub, Execute: n,
				Allowed: c.ExecAllow, HandedToHuman: c.ExecApproval, Denied: c.ExecDeny})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].AgentID != out[j].AgentID {
			return out[i].AgentID < out[j].AgentID
		}
		return out[i].UseCase < out[j].UseCase
	})
	return out, nil
}

// RetryPoint is one bucket of one group of retries.
type RetryPoint struct {
	Bucket    time.Time
	Group     string
	Replays   int64
	Conflicts int64
}

// Retries returns idempotent replays and conflicts per bucket and group,
// ordered by bucket then group, and their totals. A conflict has no
// reason codes: grouped by reason, conflicts are in group "".
func (r *Reader) Retries(ctx context.Context, q Query) (pts []RetryPoint, replays, conflicts int64, err error) {
	series, err := r.Series(ctx, q)
	if err != nil {
		return nil, 0, 0, err
	}
	type key struct {
		bucket int64
		group  string
	}
	sums := make(map[key]RetryPoint)
	for _, p := range series {
		if p.Counts.Replays > 0 {
			sums[key{p.Bucket.Unix(), p.Group}] = RetryPoint{Bucket: p.Bucket, Group: p.Group, Replays: p.Counts.Replays}
		}
	}
	cs, err := r.store.Conflicts(ctx, DelayQuery{From: q.From, To: q.To, Action: q.Action, Site: q.Site})
	if err != nil {
		return nil, 0, 0, fmt.Errorf("read conflicts: %w", err)
	}
	for _, c := range cs {
		g, ok := conflictGroup(c, q.Group)
		if !ok {
			continue
		}
		b := c.At.Unix() - c.At.Unix()%int64(q.Granularity)
		k := key{b, g}
		p := sums[k]
		p.Bucket, p.Group = time.Unix(b, 0).UTC(), g
		p.Conflicts++
		sums[k] = p
	}
	for _, p := range sums {
		pts = append(pts, p)
		replays += p.Replays
		conflicts += p.Conflicts
	}
	sort.Slice(pts, func(i, j int) bool {
		if !pts[i].Bucket.Equal(pts[j].Bucket) {
			return pts[i].Bucket.Before(pts[j].Bucket)
		}
		return pts[i].Group < pts[j].Group
	})
	return pts, replays, conflicts, nil
}

// conflictGroup is a conflict's group value; false when the grouping
// leaves it out (GroupAgent and a conflict of another kind of actor).
func conflictGroup(c Conflict, g Group) (string, bool) {
	switch g {
	case GroupAction:
		return c.Action, true
	case GroupSite:
		return c.Site, true
	case GroupActor:
		return c.ActorID, true
	case GroupAgent:
		return c.AgentID, c.AgentID != ""
	}
	return "", true
}

// DelaySummary summarizes the approvals of one action at one site
// requested in the range.
type DelaySummary struct {
	Action, ApprovalAction, Site string
	Approved, Open               int64
	// P50 and P90 of the approved ones' delays, from the histogram.
	P50, P90 time.Duration
}

// ApprovalDelays returns, per action and site, the delay quantiles of the
// approvals requested on the days of the range (the histogram is kept per
// day, so the range is rounded out to whole UTC days) and the open ones
// requested in the range, ordered by action then site.
func (r *Reader) ApprovalDelays(ctx context.Context, q Query) ([]DelaySummary, error) {
	days := DelayQuery{From: q.From.Truncate(24 * time.Hour), To: ceilDay(q.To), Action: q.Action, Site: q.Site}
	bins, err := r.store.Delays(ctx, days)
	if err != nil {
		return nil, fmt.Errorf("read delays: %w", err)
	}
	open, err := r.store.OpenCounts(ctx, DelayQuery{From: q.From, To: q.To, Action: q.Action, Site: q.Site})
	if err != nil {
		return nil, fmt.Errorf("read open approvals: %w", err)
	}
	type key struct{ action, approval, site string }
	hists := make(map[key]map[int]int64)
	sums := make(map[key]*DelaySummary)
	at := func(k key) *DelaySummary {
		if s, ok := sums[k]; ok {
			return s
		}
		s := &DelaySummary{Action: k.action, ApprovalAction: k.approval, Site: k.site}
		sums[k], hists[k] = s, make(map[int]int64)
		return s
	}
	for _, b := range bins {
		k := key{b.Action, b.ApprovalAction, b.Site}
		at(k).Approved += b.N
		hists[k][b.Bin] += b.N
	}
	for _, o := range open {
		at(key{o.Action, o.ApprovalAction, o.Site}).Open += o.N
	}
	out := make([]DelaySummary, 0, len(sums))
	for k, s := range sums {
		s.P50, s.P90 = quantile(hists[k], 0.5), quantile(hists[k], 0.9)
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Action != out[j].Action {
			return out[i].Action < out[j].Action
		}
		if out[i].Site != out[j].Site {
			return out[i].Site < out[j].Site
		}
		return out[i].ApprovalAction < out[j].ApprovalAction
	})
	return out, nil
}

func ceilDay(t time.Time) time.Time {
	d := t.Truncate(24 * time.Hour)
	if d.Before(t) {
		d = d.Add(24 * time.Hour)
	}
	return d
}

// BreachQuery selects SLA breaches: approvals requested in [From, To)
// and still open at Now after more than SLA.
type BreachQuery struct {
	From, To     time.Time
	Action, Site string
	SLA          time.Duration
	Now          time.Time
	// PageSize defaults to DefaultPageSize, at most MaxPageSize.
	PageSize  int
	PageToken string
}

// Paging limits of SLABreaches.
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
)

// BreachPage is one page of SLA breaches, oldest request first.
type BreachPage struct {
	Breaches      []Approval
	Total         int64
	NextPageToken string
}

// SLABreaches returns a page of the open approvals past q.SLA. A page
// token that does not decode is an error wrapping ErrInvalidQuery.
func (r *Reader) SLABreaches(ctx context.Context, q BreachQuery) (BreachPage, error) {
	size := q.PageSize
	if size <= 0 {
		size = DefaultPageSize
	}
	size = min(size, MaxPageSize)
	to := q.To
	if deadline := q.Now.Add(-q.SLA); to.IsZero() || deadline.Before(to) {
		to = deadline
	}
	oq := OpenQuery{From: q.From, To: to, Action: q.Action, Site: q.Site, Limit: size + 1}
	if q.PageToken != "" {
		at, id, err := decodeCursor(q.PageToken)
		if err != nil {
			return BreachPage{}, err
		}
		oq.AfterAt, oq.AfterID = at, id
	}
	if !oq.From.Before(oq.To) {
		return BreachPage{}, nil
	}
	as, total, err := r.store.OpenApprovals(ctx, oq)
	if err != nil {
		return BreachPage{}, fmt.Errorf("read open approvals: %w", err)
	}
	page := BreachPage{Breaches: as, Total: total}
	if len(as) > size {
		page.Breaches = as[:size]
		last := as[size-1]
		page.NextPageToken = encodeCursor(last.RequestedAt, last.DecisionID)
	}
	return page, nil
}

func encodeCursor(at time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at.UnixNano(), 10) + ":" + id))
}

func decodeCursor(tok string) (time.Time, string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err == nil {
		if ns, id, ok := strings.Cut(string(raw), ":"); ok {
			if n, err := strconv.ParseInt(ns, 10, 64); err == nil && id != "" {
				return time.Unix(0, n).UTC(), id, nil
			}
		}
	}
	return time.Time{}, "", fmt.Errorf("page_token: does not decode: %w", ErrInvalidQuery)
}

// PolicyChanges returns the bundle revisions activated in q's range,
// oldest first.
func (r *Reader) PolicyChanges(ctx context.Context, q Query) ([]PolicyChange, error) {
	pcs, err := r.store.PolicyChanges(ctx, q.From, q.To)
	if err != nil {
		return nil, fmt.Errorf("read policy changes: %w", err)
	}
	return pcs, nil
}
