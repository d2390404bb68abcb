package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/server/insights"
)

// Insights is the insights.Store of a PostgreSQL audit store: the roll-up
// tables of migration 004, in the same database as the records, shared by
// the replicas. Every replica's Roller folds every chain; the watermark row
// a transaction locks (SELECT … FOR UPDATE) makes the second to fold a
// batch find the watermark moved and drop its delta.
type Insights struct {
	s *Store
}

var _ insights.Store = (*Insights)(nil)

// Insights returns the insights.Store kept in s's database.
func (s *Store) Insights() *Insights { return &Insights{s: s} }

// bind turns the ? placeholders of q into $1, $2, ….
func bind(q string) string {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Update implements insights.Store with one transaction on the write pool.
func (in *Insights) Update(ctx context.Context, fn func(insights.Tx) error) error {
	if err := in.s.check(); err != nil {
		return err
	}
	tx, err := in.s.w.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin insights update: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := fn(insightsTx{tx}); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit insights update: %w", err)
	}
	return nil
}

// Watermarks implements insights.Store.
func (in *Insights) Watermarks(ctx context.Context) (map[string]uint64, error) {
	if err := in.s.check(); err != nil {
		return nil, err
	}
	rows, err := in.s.r.Query(ctx, "SELECT chain_id, seq FROM insights_watermarks")
	if err != nil {
		return nil, fmt.Errorf("read insights watermarks: %w", err)
	}
	out := make(map[string]uint64)
	var chain string
	var seq int64
	_, err = pgx.ForEachRow(rows, []any{&chain, &seq}, func() error {
		out[chain] = uint64(seq)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read insights watermarks: %w", err)
	}
	return out, nil
}

var (
	countCols = map[insights.Col]string{insights.ColAction: "action", insights.ColSite: "site", insights.ColGroup: "grp", insights.ColSub: "sub"}
	countSums = "coalesce(sum(allow), 0)::bigint, coalesce(sum(deny), 0)::bigint, coalesce(sum(approval), 0)::bigint, " +
		"coalesce(sum(exec_allow), 0)::bigint, coalesce(sum(exec_deny), 0)::bigint, coalesce(sum(exec_approval), 0)::bigint, coalesce(sum(replays), 0)::bigint"
)

// filter appends the action and site conditions.
func filter(where string, args []any, action, site string) (string, []any) {
	if action != "" {
		where += " AND action = ?"
		args = append(args, action)
	}
	if site != "" {
		where += " AND site = ?"
		args = append(args, site)
	}
	return where, args
}

// Counts implements insights.Store: one range scan of the primary key.
func (in *Insights) Counts(ctx context.Context, q insights.CountQuery) ([]insights.CountRow, error) {
	if err := in.s.check(); err != nil {
		return nil, err
	}
	var keys []string
	if q.ByBucket {
		keys = append(keys, "bucket")
	}
	for _, c := range q.Cols {
		keys = append(keys, countCols[c])
	}
	where, args := filter("span = ? AND dim = ? AND bucket >= ? AND bucket < ?",
		[]any{int64(q.Span), int64(insights.DimCode(q.Dim, q.Variant)), q.From.Unix(), q.To.Unix()}, q.Action, q.Site)
	query := "SELECT " + strings.Join(append(keys, countSums), ", ") + " FROM insights_counts WHERE " + where
	if len(keys) > 0 {
		query += " GROUP BY " + strings.Join(keys, ", ")
	}
	rows, err := in.s.r.Query(ctx, bind(query), args...)
	if err != nil {
		return nil, fmt.Errorf("read insights counts: %w", err)
	}
	defer rows.Close()
	var out []insights.CountRow
	for rows.Next() {
		var r insights.CountRow
		var dest []any
		if q.ByBucket {
			dest = append(dest, &r.Bucket)
		}
		for _, c := range q.Cols {
			dest = append(dest, colDest(&r, c))
		}
		c := &r.Counts
		dest = append(dest, &c.Allow, &c.Deny, &c.Approval, &c.ExecAllow, &c.ExecDeny, &c.ExecApproval, &c.Replays)
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("read insights counts: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func colDest(r *insights.CountRow, c insights.Col) *string {
	switch c {
	case insights.ColAction:
		return &r.Action
	case insights.ColSite:
		return &r.Site
	case insights.ColSub:
		return &r.Sub
	}
	return &r.Group
}

// Delays implements insights.Store.
func (in *Insights) Delays(ctx context.Context, q insights.DelayQuery) ([]insights.DelayRow, error) {
	if err := in.s.check(); err != nil {
		return nil, err
	}
	where, args := filter("day >= ? AND day < ?", []any{q.From.Unix(), q.To.Unix()}, q.Action, q.Site)
	rows, err := in.s.r.Query(ctx, bind("SELECT action, approval_action, site, bin, sum(n)::bigint FROM insights_delays WHERE "+where+
		" GROUP BY action, approval_action, site, bin"), args...)
	if err != nil {
		return nil, fmt.Errorf("read insights delays: %w", err)
	}
	var out []insights.DelayRow
	var r insights.DelayRow
	var bin int64
	_, err = pgx.ForEachRow(rows, []any{&r.Action, &r.ApprovalAction, &r.Site, &bin, &r.N}, func() error {
		r.Bin = int(bin)
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read insights delays: %w", err)
	}
	return out, nil
}

// OpenCounts implements insights.Store.
func (in *Insights) OpenCounts(ctx context.Context, q insights.DelayQuery) ([]insights.OpenCount, error) {
	if err := in.s.check(); err != nil {
		return nil, err
	}
	where, args := filter("requested_at >= ? AND requested_at < ?", []any{q.From.UnixNano(), q.To.UnixNano()}, q.Action, q.Site)
	rows, err := in.s.r.Query(ctx, bind("SELECT action, approval_action, site, count(*) FROM insights_open_approvals WHERE "+where+
		" GROUP BY action, approval_action, site"), args...)
	if err != nil {
		return nil, fmt.Errorf("read open approvals: %w", err)
	}
	var out []insights.OpenCount
	var r insights.OpenCount
	_, err = pgx.ForEachRow(rows, []any{&r.Action, &r.ApprovalAction, &r.Site, &r.N}, func() error {
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read open approvals: %w", err)
	}
	return out, nil
}

const openCols = "decision_id, action, approval_action, resource_type, resource_id, site, requested_at, approvers"

// OpenApprovals implements insights.Store, walking the requested_at index.
func (in *Insights) OpenApprovals(ctx context.Context, q insights.OpenQuery) ([]insights.Approval, int64, error) {
	if err := in.s.check(); err != nil {
		return nil, 0, err
	}
	where, args := filter("requested_at >= ? AND requested_at < ?", []any{q.From.UnixNano(), q.To.UnixNano()}, q.Action, q.Site)
	var total int64
	if err := in.s.r.QueryRow(ctx, bind("SELECT count(*) FROM insights_open_approvals WHERE "+where), args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count open approvals: %w", err)
	}
	if q.AfterID != "" {
		where += " AND (requested_at, decision_id) > (?, ?)"
		args = append(args, q.AfterAt.UnixNano(), q.AfterID)
	}
	rows, err := in.s.r.Query(ctx, bind("SELECT "+openCols+" FROM insights_open_approvals WHERE "+where+
		" ORDER BY requested_at, decision_id LIMIT "+strconv.Itoa(max(q.Limit, 1))), args...)
	if err != nil {
		return nil, 0, fmt.Errorf("read open approvals: %w", err)
	}
	out, err := scanApprovals(rows)
	return out, total, err
}

func scanApprovals(rows pgx.Rows) ([]insights.Approval, error) {
	var out []insights.Approval
	var a insights.Approval
	var at int64
	var approvers string
	_, err := pgx.ForEachRow(rows, []any{&a.DecisionID, &a.Action, &a.ApprovalAction, &a.ResourceType, &a.ResourceID, &a.Site, &at, &approvers}, func() error {
		a.RequestedAt = time.Unix(0, at).UTC()
		a.Approvers = nil
		if err := json.Unmarshal([]byte(approvers), &a.Approvers); err != nil {
			return fmt.Errorf("approval %s: approvers: %w", a.DecisionID, err)
		}
		out = append(out, a)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read open approvals: %w", err)
	}
	return out, nil
}

// AddConflict implements insights.Store: one insert.
func (in *Insights) AddConflict(ctx context.Context, c insights.Conflict) error {
	if err := in.s.check(); err != nil {
		return err
	}
	if _, err := in.s.w.Exec(ctx, "INSERT INTO insights_conflicts (at, action, site, actor_id, agent_id, use_case) VALUES ($1, $2, $3, $4, $5, $6)",
		c.At.UnixNano(), c.Action, c.Site, c.ActorID, c.AgentID, c.UseCase); err != nil {
		return fmt.Errorf("store idempotency conflict: %w", err)
	}
	return nil
}

// Conflicts implements insights.Store.
func (in *Insights) Conflicts(ctx context.Context, q insights.DelayQuery) ([]insights.Conflict, error) {
	if err := in.s.check(); err != nil {
		return nil, err
	}
	where, args := filter("at >= ? AND at < ?", []any{q.From.UnixNano(), q.To.UnixNano()}, q.Action, q.Site)
	rows, err := in.s.r.Query(ctx, bind("SELECT at, action, site, actor_id, agent_id, use_case FROM insights_conflicts WHERE "+where+" ORDER BY at, id"), args...)
	if err != nil {
		return nil, fmt.Errorf("read idempotency conflicts: %w", err)
	}
	var out []insights.Conflict
	var c insights.Conflict
	var at int64
	_, err = pgx.ForEachRow(rows, []any{&at, &c.Action, &c.Site, &c.ActorID, &c.AgentID, &c.UseCase}, func() error {
		c.At = time.Unix(0, at).UTC()
		out = append(out, c)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read idempotency conflicts: %w", err)
	}
	return out, nil
}

// PolicyChanges implements insights.Store from the bundles table.
func (in *Insights) PolicyChanges(ctx context.Context, from, to time.Time) ([]insights.PolicyChange, error) {
	if err := in.s.check(); err != nil {
		return nil, err
	}
	rows, err := in.s.r.Query(ctx, "SELECT revision, activated_at FROM bundles WHERE activated_at >= $1 AND activated_at < $2 ORDER BY activated_at, revision",
		from.UnixNano(), to.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("read bundles: %w", err)
	}
	var out []insights.PolicyChange
	var p insights.PolicyChange
	var at int64
	_, err = pgx.ForEachRow(rows, []any{&p.Revision, &at}, func() error {
		p.ActivatedAt = time.Unix(0, at).UTC()
		out = append(out, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read bundles: %w", err)
	}
	return out, nil
}

// insightsTx is an insights.Tx on a write-pool transaction.
type insightsTx struct{ tx pgx.Tx }

func (t insightsTx) Watermark(ctx context.Context, chainID string) (uint64, error) {
	// The row must exist to be locked; a first roll-up creates it, and of
	// two first roll-ups the second waits on the insert's unique key.
	if _, err := t.tx.Exec(ctx, "INSERT INTO insights_watermarks (chain_id, seq) VALUES ($1, 0) ON CONFLICT (chain_id) DO NOTHING", chainID); err != nil {
		return 0, fmt.Errorf("create insights watermark: %w", err)
	}
	var seq int64
	err := t.tx.QueryRow(ctx, "SELECT seq FROM insights_watermarks WHERE chain_id = $1 FOR UPDATE", chainID).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read insights watermark: %w", err)
	}
	return uint64(seq), nil
}

func (t insightsTx) SetWatermark(ctx context.Context, chainID string, seq uint64) error {
	if _, err := t.tx.Exec(ctx, "UPDATE insights_watermarks SET seq = $2 WHERE chain_id = $1", chainID, int64(seq)); err != nil {
		return fmt.Errorf("move insights watermark: %w", err)
	}
	return nil
}

// upsertCounts adds a batch of rows given as column arrays.
const upsertCounts = `INSERT INTO insights_counts AS c (span, dim, bucket, action, site, grp, sub,
	allow, deny, approval, exec_allow, exec_deny, exec_approval, replays)
	SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[],
	$8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[])
	ON CONFLICT (span, dim, bucket, action, site, grp, sub) DO UPDATE SET
	allow = c.allow + excluded.allow, deny = c.deny + excluded.deny, approval = c.approval + excluded.approval,
	exec_allow = c.exec_allow + excluded.exec_allow, exec_deny = c.exec_deny + excluded.exec_deny,
	exec_approval = c.exec_approval + excluded.exec_approval, replays = c.replays + excluded.replays`

func (t insightsTx) AddCounts(ctx context.Context, rows map[insights.Key]insights.Counts) error {
	if len(rows) == 0 {
		return nil
	}
	var span, dim, bucket, allow, deny, approval, execAllow, execDeny, execApproval, replays []int64
	var action, site, grp, sub []string
	for k, c := range rows {
		span, dim, bucket = append(span, int64(k.Span)), append(dim, int64(insights.DimCode(k.Dim, k.Variant))), append(bucket, k.Bucket)
		action, site, grp, sub = append(action, k.Action), append(site, k.Site), append(grp, k.Group), append(sub, k.Sub)
		allow, deny, approval = append(allow, c.Allow), append(deny, c.Deny), append(approval, c.Approval)
		execAllow, execDeny, execApproval = append(execAllow, c.ExecAllow), append(execDeny, c.ExecDeny), append(execApproval, c.ExecApproval)
		replays = append(replays, c.Replays)
	}
	if _, err := t.tx.Exec(ctx, upsertCounts, span, dim, bucket, action, site, grp, sub,
		allow, deny, approval, execAllow, execDeny, execApproval, replays); err != nil {
		return fmt.Errorf("add insights counts: %w", err)
	}
	return nil
}

func (t insightsTx) OpenApproval(ctx context.Context, a insights.Approval) error {
	approvers := a.Approvers
	if approvers == nil {
		approvers = []string{}
	}
	js, err := json.Marshal(approvers)
	if err != nil {
		return fmt.Errorf("open approval %s: %w", a.DecisionID, err)
	}
	if _, err := t.tx.Exec(ctx, "INSERT INTO insights_open_approvals ("+openCols+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
		a.DecisionID, a.Action, a.ApprovalAction, a.ResourceType, a.ResourceID, a.Site, a.RequestedAt.UnixNano(), string(js)); err != nil {
		return fmt.Errorf("open approval %s: %w", a.DecisionID, err)
	}
	return nil
}

func (t insightsTx) AddApprovalAllow(ctx context.Context, a insights.ApprovalAllow) error {
	if _, err := t.tx.Exec(ctx, "INSERT INTO insights_approval_allows (resource_type, resource_id, action, at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
		a.ResourceType, a.ResourceID, a.Action, a.At.UnixNano()); err != nil {
		return fmt.Errorf("store approval allow: %w", err)
	}
	return nil
}

func (t insightsTx) FirstAllowAfter(ctx context.Context, resourceType, resourceID, action string, at time.Time) (time.Time, bool, error) {
	var first *int64
	if err := t.tx.QueryRow(ctx, "SELECT min(at) FROM insights_approval_allows WHERE resource_type = $1 AND resource_id = $2 AND action = $3 AND at > $4",
		resourceType, resourceID, action, at.UnixNano()).Scan(&first); err != nil {
		return time.Time{}, false, fmt.Errorf("read approval allows: %w", err)
	}
	if first == nil {
		return time.Time{}, false, nil
	}
	return time.Unix(0, *first).UTC(), true, nil
}

func (t insightsTx) CloseApprovals(ctx context.Context, resourceType, resourceID, approvalAction string, at time.Time) ([]insights.Approval, error) {
	rows, err := t.tx.Query(ctx, "DELETE FROM insights_open_approvals WHERE resource_type = $1 AND resource_id = $2 AND approval_action = $3 AND requested_at < $4 RETURNING "+openCols,
		resourceType, resourceID, approvalAction, at.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("close approvals: %w", err)
	}
	return scanApprovals(rows)
}

func (t insightsTx) AddDelays(ctx context.Context, bins map[insights.DelayKey]int64) error {
	for k, n := range bins {
		if _, err := t.tx.Exec(ctx, `INSERT INTO insights_delays AS d (day, action, approval_action, site, bin, n) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (day, action, approval_action, site, bin) DO UPDATE SET n = d.n + excluded.n`,
			k.Day, k.Action, k.ApprovalAction, k.Site, int64(k.Bin), n); err != nil {
			return fmt.Errorf("add approval delays: %w", err)
		}
	}
	return nil
}
