package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

func insightsCommand() *command {
	return &command{
		name:    "insights",
		summary: "process figures over time: volumes, exceptions, approvals, autonomy, retries, delays, SLA",
		help: `Asks the InsightsService (role audit) for process figures over a time range,
from roll-ups the service keeps of its committed decisions: the default range
is the last 30 days, in daily buckets (UTC). --by hour gives hourly buckets;
--group splits by action, site, reason code, actor or AI agent; --action and
--site filter. --json prints the response as JSON.`,
		subs: []*command{
			insightsLeaf("volume", "decision counts by effect per bucket", insightsVolume),
			insightsLeaf("exceptions", "DENY and REQUIRE_APPROVAL per bucket, with the top reason codes", insightsExceptions),
			insightsLeaf("approvals", "the approval-required rate per action", insightsApprovals),
			insightsLeaf("autonomy", "per AI agent and use case: EXECUTE requests allowed, handed to humans, denied", insightsAutonomy),
			insightsLeaf("retries", "idempotent replays and idempotency conflicts per bucket", insightsRetries),
			insightsLeaf("delays", "approval delay p50 and p90 per action and site, and approvals still open", insightsDelays),
			insightsSLACommand(),
			insightsLeaf("changes", "policy revisions activated in the range", insightsChanges),
		},
	}
}

// insightsFlags are the query flags every insights command takes.
type insightsFlags struct {
	from, to, by, group, action, site string
	asJSON                            bool
}

func (f *insightsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.from, "from", "", "start `TIME` (RFC 3339; default: 30 days before --to)")
	fs.StringVar(&f.to, "to", "", "end `TIME` (RFC 3339; default: now)")
	fs.StringVar(&f.by, "by", "day", "bucket width: `hour` or day")
	fs.StringVar(&f.group, "group", "", "split by `G`: action, site, reason, actor or agent")
	fs.StringVar(&f.action, "action", "", "only this `ACTION`")
	fs.StringVar(&f.site, "site", "", "only this `SITE` (resource.attributes.site_id)")
	fs.BoolVar(&f.asJSON, "json", false, "print the response as JSON")
}

func (f *insightsFlags) query() (*tollgatev1.InsightsQuery, error) {
	q := &tollgatev1.InsightsQuery{Action: f.action, SiteId: f.site}
	var err error
	if q.From, err = parseTime("--from", f.from); err != nil {
		return nil, err
	}
	if q.To, err = parseTime("--to", f.to); err != nil {
		return nil, err
	}
	switch f.by {
	case "day":
		q.Granularity = tollgatev1.Granularity_GRANULARITY_DAY
	case "hour":
		q.Granularity = tollgatev1.Granularity_GRANULARITY_HOUR
	default:
		return nil, usagef("--by: want hour or day, got %q", f.by)
	}
	if f.group != "" {
		v, ok := tollgatev1.InsightsGroup_value["INSIGHTS_GROUP_"+strings.ToUpper(f.group)]
		if !ok || v == 0 {
			return nil, usagef("--group: want action, site, reason, actor or agent, got %q", f.group)
		}
		q.GroupBy = tollgatev1.InsightsGroup(v)
	}
	return q, nil
}

// insightsRun calls one RPC and returns its response and the table rows that show it.
type insightsRun func(ctx context.Context, c tollgatev1.InsightsServiceClient, q *tollgatev1.InsightsQuery) (proto.Message, [][]string, error)

func insightsLeaf(name, summary string, run insightsRun) *command {
	return &command{
		name:    name,
		args:    "[--from TIME] [--to TIME] [--by hour|day] [--group action|site|reason|actor|agent] [--action A] [--site S] [--json]",
		summary: summary,
		help:    "Prints " + summary + ", as a table or, with --json, as the InsightsService response.",
		setup: func(fs *flag.FlagSet) runFunc {
			var f insightsFlags
			f.register(fs)
			return func(ctx context.Context, a *app, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				q, err := f.query()
				if err != nil {
					return err
				}
				c, err := a.dial(ctx)
				if err != nil {
					return err
				}
				defer c.Close()
				resp, rows, err := run(ctx, tollgatev1.NewInsightsServiceClient(c.Conn()), q)
				if err != nil {
					return err
				}
				if f.asJSON {
					return a.writeMessage(resp)
				}
				return a.table(rows)
			}
		},
	}
}

// table prints rows (the first is the header) aligned.
func (a *app) table(rows [][]string) error {
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(w, strings.Join(r, "\t"))
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

func bucket(ts *timestamppb.Timestamp, q *tollgatev1.InsightsQuery) string {
	if q.GetGranularity() == tollgatev1.Granularity_GRANULARITY_HOUR {
		return ts.AsTime().UTC().Format("2006-01-02 15:04")
	}
	return ts.AsTime().UTC().Format("2006-01-02")
}

func groupHeader(q *tollgatev1.InsightsQuery) string {
	if q.GetGroupBy() == tollgatev1.InsightsGroup_INSIGHTS_GROUP_UNSPECIFIED {
		return "-"
	}
	return strings.ToUpper(strings.TrimPrefix(q.GetGroupBy().String(), "INSIGHTS_GROUP_"))
}

func n(v int64) string { return fmt.Sprint(v) }

func pct(v float64) string { return fmt.Sprintf("%.1f%%", 100*v) }

func insightsVolume(ctx context.Context, c tollgatev1.InsightsServiceClient, q *tollgatev1.InsightsQuery) (proto.Message, [][]string, error) {
	resp, err := c.GetVolume(ctx, &tollgatev1.GetVolumeRequest{Query: q})
	rows := [][]string{{"BUCKET", groupHeader(q), "ALLOW", "DENY", "REQUIRE_APPROVAL"}}
	for _, p := range resp.GetPoints() {
		cs := p.GetCounts()
		rows = append(rows, []string{bucket(p.GetBucket(), q), p.GetGroup(), n(cs.GetAllow()), n(cs.GetDeny()), n(cs.GetRequireApproval())})
	}
	return resp, rows, err
}

func insightsExceptions(ctx context.Context, c tollgatev1.InsightsServiceClient, q *tollgatev1.InsightsQuery) (proto.Message, [][]string, error) {
	resp, err := c.GetExceptions(ctx, &tollgatev1.GetExceptionsRequest{Query: q})
	rows := [][]string{{"BUCKET", groupHeader(q), "DENY", "REQUIRE_APPROVAL"}}
	for _, p := range resp.GetPoints() {
		rows = append(rows, []string{bucket(p.GetBucket(), q), p.GetGroup(), n(p.GetDeny()), n(p.GetRequireApproval())})
	}
	rows = append(rows, []string{""}, []string{"TOP REASON", "COUNT"})
	for _, r := range resp.GetTopReasons() {
		rows = append(rows, []string{r.GetCode(), n(r.GetCount())})
	}
	return resp, rows, err
}

func insightsApprovals(ctx context.Context, c tollgatev1.InsightsServiceClient, q *tollgatev1.InsightsQuery) (proto.Message, [][]string, error) {
	resp, err := c.GetApprovals(ctx, &tollgatev1.GetApprovalsRequest{Query: q})
	rows := [][]string{{"ACTION", groupHeader(q), "DECISIONS", "REQUIRE_APPROVAL", "RATE"}}
	for _, r := range resp.GetRates() {
		rows = append(rows, []string{r.GetAction(), r.GetGroup(), n(r.GetDecisions()), n(r.GetRequireApproval()), pct(r.GetRate())})
	}
	return resp, rows, err
}

func insightsAutonomy(ctx context.Context, c tollgatev1.InsightsServiceClient, q *tollgatev1.InsightsQuery) (proto.Message, [][]string, error) {
	resp, err := c.GetAutonomy(ctx, &tollgatev1.GetAutonomyRequest{Query: q})
	rows := [][]string{{"AGENT", "USE CASE", "EXECUTE", "ALLOWED", "TO HUMAN", "DENIED"}}
	for _, r := range resp.GetAgents() {
		rows = append(rows, []string{r.GetAgentId(), r.GetUseCase(), n(r.GetExecuteRequests()),
			pct(r.GetAllowedShare()), pct(r.GetHandedToHumanShare()), pct(r.GetDeniedShare())})
	}
	return resp, rows, err
}

func insightsRetries(ctx context.Context, c tollgatev1.InsightsServiceClient, q *tollgatev1.InsightsQuery) (proto.Message, [][]string, error) {
	resp, err := c.GetRetries(ctx, &tollgatev1.GetRetriesRequest{Query: q})
	rows := [][]string{{"BUCKET", groupHeader(q), "REPLAYS", "CONFLICTS"}}
	for _, p := range resp.GetPoints() {
		rows = append(rows, []string{bucket(p.GetBucket(), q), p.GetGroup(), n(p.GetReplays()), n(p.GetConflicts())})
	}
	rows = append(rows, []string{"total", "", n(resp.GetReplays()), n(resp.GetConflicts())})
	return resp, rows, err
}

func insightsDelays(ctx context.Context, c tollgatev1.InsightsServiceClient, q *tollgatev1.InsightsQuery) (proto.Message, [][]string, error) {
	resp, err := c.GetApprovalDelays(ctx, &tollgatev1.GetApprovalDelaysRequest{Query: q})
	rows := [][]string{{"ACTION", "APPROVAL", "SITE", "APPROVED", "OPEN", "P50", "P90"}}
	for _, d := range resp.GetDelays() {
		rows = append(rows, []string{d.GetAction(), d.GetApprovalAction(), d.GetSiteId(), n(d.GetApproved()), n(d.GetOpen()),
			d.GetP50().AsDuration().Round(time.Second).String(), d.GetP90().AsDuration().Round(time.Second).String()})
	}
	return resp, rows, err
}

func insightsChanges(ctx context.Context, c tollgatev1.InsightsServiceClient, q *tollgatev1.InsightsQuery) (proto.Message, [][]string, error) {
	resp, err := c.ListPolicyChanges(ctx, &tollgatev1.ListPolicyChangesRequest{Query: q})
	rows := [][]string{{"ACTIVATED", "REVISION"}}
	for _, ch := range resp.GetChanges() {
		rows = append(rows, []string{ch.GetActivatedAt().AsTime().UTC().Format(time.RFC3339), ch.GetRevision()})
	}
	return resp, rows, err
}

func insightsSLACommand() *command {
	return &command{
		name:    "sla",
		args:    "[--from TIME] [--to TIME] [--action A] [--site S] [--limit N] [--page-token T] [--json]",
		summary: "approvals still open past the SLA, oldest first",
		help: `Lists the approvals requested in the range (default: the last 30 days) that
are still open after the active bundle's SLA (params.insights.approval_sla),
oldest first, one page at a time. When there are more, the last line is
"next page: --page-token TOKEN".`,
		setup: func(fs *flag.FlagSet) runFunc {
			var f insightsFlags
			fs.StringVar(&f.from, "from", "", "requested at or after `TIME` (RFC 3339)")
			fs.StringVar(&f.to, "to", "", "requested before `TIME` (RFC 3339)")
			fs.StringVar(&f.action, "action", "", "only this requesting `ACTION`")
			fs.StringVar(&f.site, "site", "", "only this `SITE`")
			fs.BoolVar(&f.asJSON, "json", false, "print the response as JSON")
			limit := fs.Int("limit", 0, "page size `N`, at most 1000 (0: the server's default, 50)")
			token := fs.String("page-token", "", "continue from the next page `TOKEN`")
			return func(ctx context.Context, a *app, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				req := &tollgatev1.ListSLABreachesRequest{Action: f.action, SiteId: f.site, PageToken: *token}
				var err error
				if req.From, err = parseTime("--from", f.from); err != nil {
					return err
				}
				if req.To, err = parseTime("--to", f.to); err != nil {
					return err
				}
				if *limit < 0 || *limit > exportPageSize {
					return usagef("--limit must be 1 to %d (0: the server's default), got %d", exportPageSize, *limit)
				}
				req.PageSize = int32(*limit)
				c, err := a.dial(ctx)
				if err != nil {
					return err
				}
				defer c.Close()
				resp, err := tollgatev1.NewInsightsServiceClient(c.Conn()).ListSLABreaches(ctx, req)
				if err != nil {
					return err
				}
				if f.asJSON {
					return a.writeMessage(resp)
				}
				rows := [][]string{{"REQUESTED", "OPEN FOR", "DECISION", "ACTION", "RESOURCE", "SITE", "APPROVERS"}}
				for _, b := range resp.GetBreaches() {
					rows = append(rows, []string{b.GetRequestedAt().AsTime().UTC().Format(time.RFC3339), b.GetOpenFor().AsDuration().Round(time.Minute).String(),
						b.GetDecisionId(), b.GetAction() + " → " + b.GetApprovalAction(), b.GetResourceType() + "/" + b.GetResourceId(), b.GetSiteId(),
						strings.Join(b.GetApprovers(), ",")})
				}
				rows = append(rows, []string{fmt.Sprintf("%d open past the SLA of %s", resp.GetTotal(), resp.GetSla().AsDuration())})
				if next := resp.GetNextPageToken(); next != "" {
					rows = append(rows, []string{"next page: --page-token " + next})
				}
				return a.table(rows)
			}
		},
	}
}
