package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/server/insights"
)

// Insights is the insights.Store of a SQLite audit store: the roll-up
// tables of migration 006, in the same file as the records. Its updates
// run on the store's one write connection, as appends do, and its reads
// on the audit pool.
type Insights struct {
	s *Store
}

var _ insights.Store = (*Insights)(nil)

// Insights returns the insights.Store kept in s's file.
func (s *Store) Insights() *Insights { return &Insights{s: s} }

// Update implements insights.Store with one BEGIN IMMEDIATE transaction.
func (in *Insights) Update(ctx context.Context, fn func(insights.Tx) error) error {
	if err := in.s.check(); err != nil {
		return err
	}
	tx, err := in.s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin insights update: %w", err)
	}
	if err := fn(insightsTx{tx}); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit insights update: %w", err)
	}
	return nil
}

// Watermarks implements insights.Store.
func (in *Insights) Watermarks(ctx context.Context) (map[string]uint64, error) {
	if err := in.s.check(); err != nil {
		return nil, err
	}
	rows, err := in.s.r.QueryContext(ctx, "SELECT chain_id, seq FROM insights_watermarks")
	if err != nil {
		return nil, fmt.Errorf("read insights watermarks: %w", err)
	}
	defer rows.Close()
	out := make(map[string]uint64)
	for rows.Next() {
		var chain string
		var seq uint64
		if err := rows.Scan(&chain, &seq); err != nil {
			return nil, fmt.Errorf("read insights watermarks: %w", err)
		}
		out[chain] = seq
	}
	return out, rows.Err()
}

// countCols are the columns insights.Col names, and the summed counts.
var (
	countCols = map[insights.Col]string{insights.ColAction: "action", insights.ColSite: "site", insights.ColGroup: "grp", insights.ColSub: "sub"}
	countSums = "sum(allow), sum(deny), sum(approval), sum(exec_allow), sum(exec_deny), sum(exec_approval), sum(replays)"
)

// Counts implements insights.Store: one range scan of the primary key
// from (span, dim, from) to (span, dim, to).
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
	where := "span = ? AND dim = ? AND bucket >= ? AND bucket < ?"
	args := []any{int64(q.Span), insights.DimCode(q.Dim, q.Variant), q.From.Unix(), q.To.Unix()}
	if q.Action != "" {
		where += " AND action = ?"
		args = append(args, q.Action)
	}
	if q.Site != "" {
		where += " AND site = ?"
		args = append(args, q.Site)
	}
	query := "SELECT " + strings.Join(append(keys, countSums), ", ") + " FROM insights_counts WHERE " + where
	if len(keys) > 0 {
		query += " GROUP BY " + strings.Join(keys, ", ")
	}
	rows, err := in.s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read insights counts: %w", err)
	}
	defer rows.Close()
	var out []insights.CountRow
	for rows.Next() {
		var r insights.CountRow
		dest := []any{}
		if q.ByBucket {
			dest = append(dest, &r.Bucket)
		}
		for _, c := range q.Cols {
			dest = append(dest, colDest(&r, c))
		}
		var sums [7]sql.NullInt64
		for i := range sums {
			dest = append(dest, &sums[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("read insights counts: %w", err)
		}
		c := &r.Counts
		for i, p := range []*int64{&c.Allow, &c.Deny, &c.Approval, &c.ExecAllow, &c.ExecDeny, &c.ExecApproval, &c.Replays} {
			*p = sums[i].Int64
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

// filter appends the action and site conditions of q.
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

// Delays implements insights.Store.
func (in *Insights) Delays(ctx context.Context, q insights.DelayQuery) ([]insights.DelayRow, error) {
	if err := in.s.check(); err != nil {
		return nil, err
	}
	where, args := filter("day >= ? AND day < ?", []any{q.From.Unix(), q.To.Unix()}, q.Action, q.Site)
	rows, err := in.s.r.QueryContext(ctx, "SELECT action, approval_action, site, bin, sum(n) FROM insights_delays WHERE "+where+
		" GROUP BY action, approval_action, site, bin", args...)
	if err != nil {
		return nil, fmt.Errorf("read insights delays: %w", err)
	}
	defer rows.Close()
	var out []insights.DelayRow
	for rows.Next() {
		var r insights.DelayRow
		if err := rows.Scan(&r.Action, &r.ApprovalAction, &r.Site, &r.Bin, &r.N); err != nil {
			return nil, fmt.Errorf("read insights delays: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// OpenCounts implements insights.Store.
func (in *Insights) OpenCounts(ctx context.Context, q insights.DelayQuery) ([]insights.OpenCount, error) {
	if err := in.s.check(); err != nil {
		return nil, err
	}
	where, args := filter("requested_at >= ? AND requested_at < ?", []any{q.From.UnixNano(), q.To.UnixNano()}, q.Action, q.Site)
	rows, err := in.s.r.QueryContext(ctx, "SELECT action, approval_action, site, count(*) FROM insights_open_approvals WHERE "+where+
		" GROUP BY action, approval_action, site", args...)
	if err != nil {
		return nil, fmt.Errorf("read open approvals: %w", err)
	}
	defer rows.Close()
	var out []insights.OpenCount
	for rows.Next() {
		var r insights.OpenCount
		if err := rows.Scan(&r.Action, &r.ApprovalAction, &r.Site, &r.N); err != nil {
			return nil, fmt.Errorf("read open approvals: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

const openCols = "decision_id, action, approval_action, resource_type, resource_id, site, requested_at, approvers"

// OpenApprovals implements insights.Store, walking the requested_at index.
func (in *Insights) OpenApprovals(ctx context.Context, q insights.OpenQuery) ([]insights.Approval, int64, error) {
	if err := in.s.check(); err != nil {
		return nil, 0, err
	}
	where, args := filter("requested_at >= ? AND requested_at < ?", []any{q.From.UnixNano(), q.To.UnixNano()}, q.Action, q.Site)
	var total int64
	if err := in.s.r.QueryRowContext(ctx, "SELECT count(*) FROM insights_open_approvals WHERE "+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count open approvals: %w", err)
	}
	if q.AfterID != "" {
		where += " AND (requested_at > ? OR (requested_at = ? AND decision_id > ?))"
		args = append(args, q.AfterAt.UnixNano(), q.AfterAt.UnixNano(), q.AfterID)
	}
	rows, err := in.s.r.QueryContext(ctx, "SELECT "+openCols+" FROM insights_open_approvals WHERE "+where+
		" ORDER BY requested_at, decision_id LIMIT "+strconv.Itoa(max(q.Limit, 1)), args...)
	if err != nil {
		return nil, 0, fmt.Errorf("read open approvals: %w", err)
	}
	defer rows.Close()
	out, err := scanApprovals(rows)
	return out, total, err
}

func scanApprovals(rows *sql.Rows) ([]insights.Approval, error) {
	var out []insights.Approval
	for rows.Next() {
		var a insights.Approval
		var at int64
		var approvers string
		if err := rows.Scan(&a.DecisionID, &a.Action, &a.ApprovalAction, &a.ResourceType, &a.ResourceID, &a.Site, &at, &approvers); err != nil {
			return nil, fmt.Errorf("read open approvals: %w", err)
		}
		a.RequestedAt = time.Unix(0, at).UTC()
		if err := json.Unmarshal([]byte(approvers), &a.Approvers); err != nil {
			return nil, fmt.Errorf("read open approval %s: approvers: %w", a.DecisionID, err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// AddConflict implements insights.Store: one insert on the write connection.
func (in *Insights) AddConflict(ctx context.Context, c insights.Conflict) error {
	if err := in.s.check(); err != nil {
		return err
	}
	if _, err := in.s.w.ExecContext(ctx, "INSERT INTO insights_conflicts (at, action, site, actor_id, agent_id, use_case) VALUES (?,?,?,?,?,?)",
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
	rows, err := in.s.r.QueryContext(ctx, "SELECT at, action, site, actor_id, agent_id, use_case FROM insights_conflicts WHERE "+where+" ORDER BY at, id", args...)
	if err != nil {
		return nil, fmt.Errorf("read idempotency conflicts: %w", err)
	}
	defer rows.Close()
	var out []insights.Conflict
	for rows.Next() {
		var c insights.Conflict
		var at int64
		if err := rows.Scan(&at, &c.Action, &c.Site, &c.ActorID, &c.AgentID, &c.UseCase); err != nil {
			return nil, fmt.Errorf("read idempotency conflicts: %w", err)
		}
		c.At = time.Unix(0, at).UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}

// PolicyChanges implements insights.Store from the bundles table.
func (in *Insights) PolicyChanges(ctx context.Context, from, to time.Time) ([]insights.PolicyChange, error) {
	if err := in.s.check(); err != nil {
		return nil, err
	}
	rows, err := in.s.r.QueryContext(ctx, "SELECT revision, activated_at FROM bundles WHERE activated_at >= ? AND activated_at < ? ORDER BY activated_at, revision",
		from.UnixNano(), to.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("read bundles: %w", err)
	}
	defer rows.Close()
	var out []insights.PolicyChange
	for rows.Next() {
		var p insights.PolicyChange
		var at int64
		if err := rows.Scan(&p.Revision, &at); err != nil {
			return nil, fmt.Errorf("read bundles: %w", err)
		}
		p.ActivatedAt = time.Unix(0, at).UTC()
		out = append(out, p)
	}
	return out, rows.Err()
}

// insightsTx is an insights.Tx on the write connection's transaction.
type insightsTx struct{ tx *sql.Tx }

func (t insightsTx) Watermark(ctx context.Context, chainID string) (uint64, error) {
	var seq uint64
	err := t.tx.QueryRowContext(ctx, "SELECT seq FROM insights_watermarks WHERE chain_id = ?", chainID).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read insights watermark: %w", err)
	}
	return seq, nil
}

func (t insightsTx) SetWatermark(ctx context.Context, chainID string, seq uint64) error {
	if _, err := t.tx.ExecContext(ctx, "INSERT INTO insights_watermarks (chain_id, seq) VALUES (?, ?) ON CONFLICT (chain_id) DO UPDATE SET seq = excluded.seq",
		chainID, seq); err != nil {
		return fmt.Errorf("move insights watermark: %w", err)
	}
	return nil
}

// countsChunk bounds the rows of one multi-row upsert (14 parameters a row).
const countsChunk = 64

const upsertCounts = `INSERT INTO insights_counts (span, dim, bucket, action, site, grp, sub,
	allow, deny, approval, exec_allow, exec_deny, exec_approval, replays) VALUES %s
	ON CONFLICT (span, dim, bucket, action, site, grp, sub) DO UPDATE SET
	allow = allow + excluded.allow, deny = deny + excluded.deny, approval = approval + excluded.approval,
	exec_allow = exec_allow + excluded.exec_allow, exec_deny = exec_deny + excluded.exec_deny,
	exec_approval = exec_approval + excluded.exec_approval, replays = replays + excluded.replays`

func (t insightsTx) AddCounts(ctx context.Context, rows map[insights.Key]insights.Counts) error {
	args := make([]any, 0, 14*countsChunk)
	n := 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		q := fmt.Sprintf(upsertCounts, strings.TrimSuffix(strings.Repeat("(?,?,?,?,?,?,?,?,?,?,?,?,?,?),", n), ","))
		if _, err := t.tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("add insights counts: %w", err)
		}
		args, n = args[:0], 0
		return nil
	}
	for k, c := range rows {
		args = append(args, int64(k.Span), insights.DimCode(k.Dim, k.Variant), k.Bucket, k.Action, k.Site, k.Group, k.Sub,
			c.Allow, c.Deny, c.Approval, c.ExecAllow, c.ExecDeny, c.ExecApproval, c.Replays)
		if n++; n == countsChunk {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

func (t insightsTx) OpenApproval(ctx context.Context, a insights.Approval) error {
	approvers, err := json.Marshal(nonNil(a.Approvers))
	if err != nil {
		return fmt.Errorf("open approval %s: %w", a.DecisionID, err)
	}
	if _, err := t.tx.ExecContext(ctx, "INSERT INTO insights_open_approvals ("+openCols+") VALUES (?,?,?,?,?,?,?,?)",
		a.DecisionID, a.Action, a.ApprovalAction, a.ResourceType, a.ResourceID, a.Site, a.RequestedAt.UnixNano(), string(approvers)); err != nil {
		return fmt.Errorf("open approval %s: %w", a.DecisionID, err)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (t insightsTx) AddApprovalAllow(ctx context.Context, a insights.ApprovalAllow) error {
	if _, err := t.tx.ExecContext(ctx, "INSERT OR IGNORE INTO insights_approval_allows (resource_type, resource_id, action, at) VALUES (?,?,?,?)",
		a.ResourceType, a.ResourceID, a.Action, a.At.UnixNano()); err != nil {
		return fmt.Errorf("store approval allow: %w", err)
	}
	return nil
}

func (t insightsTx) FirstAllowAfter(ctx context.Context, resourceType, resourceID, action string, at time.Time) (time.Time, bool, error) {
	var first sql.NullInt64
	if err := t.tx.QueryRowContext(ctx, "SELECT min(at) FROM insights_approval_allows WHERE resource_type = ? AND resource_id = ? AND action = ? AND at > ?",
		resourceType, resourceID, action, at.UnixNano()).Scan(&first); err != nil {
		return time.Time{}, false, fmt.Errorf("read approval allows: %w", err)
	}
	if !first.Valid {
		return time.Time{}, false, nil
	}
	return time.Unix(0, first.Int64).UTC(), true, nil
}

func (t insightsTx) CloseApprovals(ctx context.Context, resourceType, resourceID, approvalAction string, at time.Time) ([]insights.Approval, error) {
	rows, err := t.tx.QueryContext(ctx, "DELETE FROM insights_open_approvals WHERE resource_type = ? AND resource_id = ? AND approval_action = ? AND requested_at < ? RETURNING "+openCols,
		resourceType, resourceID, approvalAction, at.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("close approvals: %w", err)
	}
	defer rows.Close()
	return scanApprovals(rows)
}

func (t insightsTx) AddDelays(ctx context.Context, bins map[insights.DelayKey]int64) error {
	for k, n := range bins {
		if _, err := t.tx.ExecContext(ctx, `INSERT INTO insights_delays (day, action, approval_action, site, bin, n) VALUES (?,?,?,?,?,?)
			ON CONFLICT (day, action, approval_action, site, bin) DO UPDATE SET n = n + excluded.n`,
			k.Day, k.Action, k.ApprovalAction, k.Site, k.Bin, n); err != nil {
			return fmt.Errorf("add approval delays: %w", err)
		}
	}
	return nil
}
