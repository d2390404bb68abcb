// Package insightstest is the conformance suite of insights.Store
// implementations: the Roller folds real records from the audit store the
// implementation lives beside, and the Reader's answers are checked
// against a count made directly from those records.
package insightstest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
	"github.com/tollgate/tollgate/server/insights"
)

// Stores is an audit store and the insights.Store kept beside it.
type Stores struct {
	Audit    audit.Store
	Insights insights.Store
}

// Config is the insights config the suite folds with.
var Config = insights.Config{
	ApprovalActions: map[string]string{"PO.SUBMIT": "PO.APPROVE", "INVOICE.POST": "INVOICE.APPROVE"},
	ApprovalSLA:     24 * time.Hour,
}

// Start is the start of the suite's first day; its records span three days.
var Start = time.Date(2026, 5, 4, 0, 0, 0, 0, time.UTC)

// Spec describes one record for Record.
type Spec struct {
	ID       string
	At       time.Time
	Action   string
	Site     string
	Actor    string
	Agent    bool   // actor is an AI agent
	UseCase  string // with Agent
	Execute  bool   // with Agent
	ResType  string
	ResID    string
	Effect   tollgatev1.Effect
	Reasons  []string
	Replay   bool
	Approver []string
}

// Record returns the unsealed record s describes.
func Record(s Spec) *audit.Record {
	attrs := map[string]any{"amount": "100.00"}
	if s.Site != "" {
		attrs["site_id"] = s.Site
	}
	st, _ := structpb.NewStruct(attrs)
	req := &tollgatev1.DecideRequest{
		Actor:    &tollgatev1.Actor{Id: s.Actor, Type: tollgatev1.ActorType_ACTOR_TYPE_HUMAN},
		Action:   s.Action,
		Resource: &tollgatev1.Resource{Type: s.ResType, Id: s.ResID, Attributes: st},
	}
	if s.Agent {
		req.Actor.Type = tollgatev1.ActorType_ACTOR_TYPE_AI_AGENT
		mode := tollgatev1.AIMode_AI_MODE_RECOMMEND
		if s.Execute {
			mode = tollgatev1.AIMode_AI_MODE_EXECUTE
		}
		req.Ai = &tollgatev1.AI{UseCase: s.UseCase, Mode: mode}
	}
	rec := &audit.Record{
		DecisionId:  s.ID,
		EvaluatedAt: timestamppb.New(s.At),
		Caller:      "suite (token)",
		Request:     req,
		Effect:      s.Effect,
		Approvers:   s.Approver,
		Kind:        tollgatev1.RecordKind_RECORD_KIND_DECISION,
	}
	for _, c := range s.Reasons {
		rec.Reasons = append(rec.Reasons, &tollgatev1.Reason{Code: c, Message: "m"})
	}
	if s.Replay {
		rec.Kind = tollgatev1.RecordKind_RECORD_KIND_REPLAY
		rec.ReplayOf = "original"
	}
	return rec
}

// Append seals recs after chain's head in st and appends them.
func Append(tb testing.TB, st audit.Store, chain string, recs ...*audit.Record) {
	tb.Helper()
	ctx := context.Background()
	head, err := st.Head(ctx, chain)
	if err != nil {
		tb.Fatal(err)
	}
	head.ChainID = chain
	sealed, _ := audittest.Sealed(tb, head, recs...)
	if err := st.Append(ctx, head, audittest.Entries(tb, sealed...)); err != nil {
		tb.Fatal(err)
	}
}

var (
	allow    = tollgatev1.Effect_EFFECT_ALLOW
	deny     = tollgatev1.Effect_EFFECT_DENY
	approval = tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL
)

// Mixed returns n varied records starting at Start, one every 37 minutes:
// three actions, two sites and no site, three actors and an AI agent,
// every effect, one or two reasons, and a replay marker every 11th.
func Mixed(n int) []*audit.Record { return MixedEvery(n, 37*time.Minute) }

// MixedEvery is Mixed with the records every step apart.
func MixedEvery(n int, step time.Duration) []*audit.Record {
	actions := []string{"SO.CREATE", "INVENTORY.ADJUST", "CREDIT_MEMO.ISSUE"}
	sites := []string{"DC-1", "DC-2", ""}
	effects := []tollgatev1.Effect{allow, deny, approval, allow}
	var out []*audit.Record
	for i := range n {
		s := Spec{
			ID:      fmt.Sprintf("m%05d", i),
			At:      Start.Add(time.Duration(i) * step),
			Action:  actions[i%3],
			Site:    sites[i%len(sites)],
			Actor:   fmt.Sprintf("user-%d", i%4),
			ResType: "thing", ResID: fmt.Sprintf("t-%d", i),
			Effect:  effects[i%4],
			Reasons: []string{fmt.Sprintf("CODE_%d", i%5)},
			Replay:  i%11 == 10,
		}
		if i%2 == 0 {
			s.Reasons = append(s.Reasons, "COMMON")
		}
		if i%4 == 3 {
			s.Actor, s.Agent, s.UseCase, s.Execute = "agent-1", true, []string{"case_routing", "backorder_allocation"}[i%2], i%8 != 3
		}
		out = append(out, Record(s))
	}
	return out
}

// Run runs the suite. newStores returns empty stores that live until the
// test ends.
func Run(t *testing.T, newStores func(t *testing.T) Stores) {
	t.Run("counts", func(t *testing.T) { testCounts(t, newStores(t)) })
	t.Run("approvals", func(t *testing.T) { testApprovals(t, newStores(t)) })
	t.Run("watermark", func(t *testing.T) { testWatermark(t, newStores(t)) })
	t.Run("conflicts and policy changes", func(t *testing.T) { testConflictsAndChanges(t, newStores(t)) })
}

func roller(st Stores) *insights.Roller {
	return insights.NewRoller(insights.RollerConfig{BatchSize: 17, Config: func() insights.Config { return Config }},
		st.Audit, st.Insights, zerolog.Nop())
}

func sync(t *testing.T, r *insights.Roller, want int) {
	t.Helper()
	n, err := r.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n != want {
		t.Fatalf("Sync folded %d records, want %d", n, want)
	}
}

// want counts recs directly: per (day bucket, group) for the grouping.
func want(recs []*audit.Record, from, to time.Time, span insights.Span, g insights.Group, action string) map[string]insights.Counts {
	out := make(map[string]insights.Counts)
	for _, r := range recs {
		at := r.GetEvaluatedAt().AsTime()
		if at.Before(from) || !at.Before(to) || (action != "" && r.GetRequest().GetAction() != action) {
			continue
		}
		var c insights.Counts
		if r.GetKind() == tollgatev1.RecordKind_RECORD_KIND_REPLAY {
			c.Replays = 1
		} else {
			switch r.GetEffect() {
			case allow:
				c.Allow = 1
			case deny:
				c.Deny = 1
			case approval:
				c.Approval = 1
			}
		}
		req := r.GetRequest()
		if g == insights.GroupAgent && req.GetAi().GetMode() == tollgatev1.AIMode_AI_MODE_EXECUTE {
			c.ExecAllow, c.ExecDeny, c.ExecApproval = c.Allow, c.Deny, c.Approval
		}
		bucket := at.Truncate(time.Duration(span) * time.Second).Format(time.RFC3339)
		var groups []string
		switch g {
		case insights.GroupNone:
			groups = []string{""}
		case insights.GroupAction:
			groups = []string{req.GetAction()}
		case insights.GroupSite:
			groups = []string{req.GetResource().GetAttributes().GetFields()["site_id"].GetStringValue()}
		case insights.GroupActor:
			groups = []string{req.GetActor().GetId()}
		case insights.GroupAgent:
			if req.GetActor().GetType() == tollgatev1.ActorType_ACTOR_TYPE_AI_AGENT {
				groups = []string{req.GetActor().GetId()}
			}
		case insights.GroupReason:
			for _, rs := range r.GetReasons() {
				groups = append(groups, rs.GetCode())
			}
		}
		for _, grp := range groups {
			k := bucket + " " + grp
			sum := out[k]
			sum.Add(c)
			out[k] = sum
		}
	}
	return out
}

func got(pts []insights.Point) map[string]insights.Counts {
	out := make(map[string]insights.Counts)
	for _, p := range pts {
		out[p.Bucket.Format(time.RFC3339)+" "+p.Group] = p.Counts
	}
	return out
}

func testCounts(t *testing.T, st Stores) {
	ctx := context.Background()
	a, b := Mixed(90), Mixed(150)[90:]
	Append(t, st.Audit, "chain-a", a...)
	Append(t, st.Audit, "chain-b", b...)
	r := roller(st)
	sync(t, r, len(a)+len(b))
	all := append(append([]*audit.Record{}, a...), b...)
	rd := insights.NewReader(st.Insights)
	// A range with partial days at both ends, so day figures come from day
	// rows and hour rows alike.
	from, to := Start.Add(7*time.Hour), Start.Add(3*24*time.Hour+5*time.Hour)
	for _, g := range []insights.Group{insights.GroupNone, insights.GroupAction, insights.GroupSite, insights.GroupReason, insights.GroupActor, insights.GroupAgent} {
		for _, span := range []insights.Span{insights.Hour, insights.Day} {
			for _, action := range []string{"", "SO.CREATE"} {
				q, err := insights.Query{From: from, To: to, Granularity: span, Group: g, Action: action}.Normalize(time.Now())
				if err != nil {
					t.Fatal(err)
				}
				pts, err := rd.Series(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want(all, from, to, span, g, action), got(pts)); diff != "" {
					t.Errorf("group %d span %d action %q (-want +got):\n%s", g, span, action, diff)
				}
			}
		}
	}
	q, _ := insights.Query{From: Start, To: Start.Add(7 * 24 * time.Hour)}.Normalize(time.Now())
	auto, err := rd.Autonomy(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	wantAuto := map[string]insights.AgentAutonomy{}
	for _, rec := range all {
		req := rec.GetRequest()
		if req.GetAi().GetMode() != tollgatev1.AIMode_AI_MODE_EXECUTE || rec.GetKind() != tollgatev1.RecordKind_RECORD_KIND_DECISION {
			continue
		}
		k := req.GetAi().GetUseCase()
		w := wantAuto[k]
		w.AgentID, w.UseCase = req.GetActor().GetId(), k
		w.Execute++
		switch rec.GetEffect() {
		case allow:
			w.Allowed++
		case deny:
			w.Denied++
		case approval:
			w.HandedToHuman++
		}
		wantAuto[k] = w
	}
	gotAuto := map[string]insights.AgentAutonomy{}
	for _, a := range auto {
		gotAuto[a.UseCase] = a
	}
	if diff := cmp.Diff(wantAuto, gotAuto); diff != "" || len(wantAuto) == 0 {
		t.Errorf("autonomy (-want +got):\n%s", diff)
	}
	rates, err := rd.Approvals(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	for _, rate := range rates {
		w := want(all, q.From, q.To, insights.Day, insights.GroupAction, rate.Action)
		var dec, ra int64
		for _, c := range w {
			dec += c.Total()
			ra += c.Approval
		}
		if rate.Decisions != dec || rate.RequireApproval != ra {
			t.Errorf("approvals of %s: %d of %d, want %d of %d", rate.Action, rate.RequireApproval, rate.Decisions, ra, dec)
		}
	}
	if len(rates) != 3 {
		t.Errorf("approval rates for %d actions, want 3", len(rates))
	}
	_, top, err := rd.Exceptions(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	wantTop := map[string]int64{}
	for _, rec := range all {
		if rec.GetKind() == tollgatev1.RecordKind_RECORD_KIND_DECISION && rec.GetEffect() != allow {
			for _, rs := range rec.GetReasons() {
				wantTop[rs.GetCode()]++
			}
		}
	}
	gotTop := map[string]int64{}
	for _, rc := range top {
		gotTop[rc.Code] = rc.Count
	}
	if diff := cmp.Diff(wantTop, gotTop); diff != "" {
		t.Errorf("top reasons (-want +got):\n%s", diff)
	}
	if top[0].Code != "COMMON" {
		t.Errorf("top reason %q, want COMMON first", top[0].Code)
	}
}

func testApprovals(t *testing.T, st Stores) {
	ctx := context.Background()
	submit := func(id string, at time.Time, res, site string) *audit.Record {
		return Record(Spec{ID: id, At: at, Action: "PO.SUBMIT", Site: site, Actor: "buyer", ResType: "purchase_order", ResID: res,
			Effect: approval, Reasons: []string{"PO_TIER_2_APPROVAL"}, Approver: []string{"PROCUREMENT_MANAGER"}})
	}
	approve := func(id string, at time.Time, res string, e tollgatev1.Effect) *audit.Record {
		return Record(Spec{ID: id, At: at, Action: "PO.APPROVE", Site: "DC-1", Actor: "manager", ResType: "purchase_order", ResID: res, Effect: e})
	}
	t0 := Start.Add(9 * time.Hour)
	// chain-a: po-1 approved after 2h (a denied approval first does not
	// count); po-2 never; po-3 approved after 30m. chain-b (folded after
	// chain-a) holds po-4's request, older than its ALLOW in chain-a.
	Append(t, st.Audit, "chain-a",
		submit("s1", t0, "po-1", "DC-1"),
		submit("s2", t0.Add(time.Minute), "po-2", "DC-1"),
		approve("x1", t0.Add(time.Hour), "po-1", deny),
		submit("s3", t0.Add(2*time.Hour), "po-3", "DC-1"),
		approve("a1", t0.Add(2*time.Hour), "po-1", allow),
		approve("a3", t0.Add(150*time.Minute), "po-3", allow),
		approve("a4", t0.Add(5*time.Hour), "po-4", allow),
		submit("s5", t0.Add(6*time.Hour), "po-5", "DC-2"),
	)
	Append(t, st.Audit, "chain-b", submit("s4", t0.Add(4*time.Hour), "po-4", "DC-1"))
	sync(t, roller(st), 9)
	rd := insights.NewReader(st.Insights)
	q, _ := insights.Query{From: Start, To: Start.Add(48 * time.Hour)}.Normalize(time.Now())
	delays, err := rd.ApprovalDelays(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(delays) != 2 {
		t.Fatalf("delays %+v, want DC-1 and DC-2", delays)
	}
	d1, d2 := delays[0], delays[1]
	if d1.Site != "DC-1" || d1.Approved != 3 || d1.Open != 1 || d1.ApprovalAction != "PO.APPROVE" {
		t.Errorf("DC-1: %+v, want 3 approved (2h, 30m, 1h), 1 open", d1)
	}
	near := func(got, want time.Duration) bool { return got > want*9/10 && got < want*11/10 }
	if !near(d1.P50, time.Hour) || !near(d1.P90, 2*time.Hour) {
		t.Errorf("DC-1 p50 %s p90 %s, want about 1h and 2h", d1.P50, d1.P90)
	}
	if d2.Site != "DC-2" || d2.Approved != 0 || d2.Open != 1 {
		t.Errorf("DC-2: %+v, want 1 open", d2)
	}
	// At t0+25h po-2 (requested t0+1m) is past the 24h SLA, po-5 (t0+6h) not yet.
	page, err := rd.SLABreaches(ctx, insights.BreachQuery{From: Start, To: Start.Add(72 * time.Hour), SLA: 24 * time.Hour, Now: t0.Add(25 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if page.Total != 1 || len(page.Breaches) != 1 || page.Breaches[0].DecisionID != "s2" || page.Breaches[0].Approvers[0] != "PROCUREMENT_MANAGER" {
		t.Fatalf("breaches %+v, want s2", page)
	}
	// Later both are; one page each.
	var ids []string
	tok := ""
	for range 3 {
		page, err = rd.SLABreaches(ctx, insights.BreachQuery{From: Start, To: Start.Add(72 * time.Hour), SLA: 24 * time.Hour, Now: t0.Add(48 * time.Hour), PageSize: 1, PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range page.Breaches {
			ids = append(ids, b.DecisionID)
		}
		if tok = page.NextPageToken; tok == "" {
			break
		}
	}
	if diff := cmp.Diff([]string{"s2", "s5"}, ids); diff != "" || page.Total != 2 {
		t.Errorf("breaches by page (-want +got):\n%s (total %d)", diff, page.Total)
	}
	if _, err := rd.SLABreaches(ctx, insights.BreachQuery{SLA: time.Hour, Now: t0, PageToken: "!!"}); !errors.Is(err, insights.ErrInvalidQuery) {
		t.Errorf("bad page token: %v, want ErrInvalidQuery", err)
	}
}

func testWatermark(t *testing.T, st Stores) {
	ctx := context.Background()
	recs := Mixed(40)
	Append(t, st.Audit, "chain-a", recs[:25]...)
	r := roller(st)
	sync(t, r, 25)
	sync(t, r, 0)
	Append(t, st.Audit, "chain-a", recs[25:]...)
	sync(t, r, 15)
	marks, err := st.Insights.Watermarks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if marks["chain-a"] != 40 {
		t.Errorf("watermark %d, want 40", marks["chain-a"])
	}
	// A delta folded after an old watermark is refused whole.
	d := insights.NewDelta()
	d.Fold(recs[30], Config)
	err = st.Insights.Update(ctx, func(tx insights.Tx) error { return insights.Commit(ctx, tx, "chain-a", 30, d) })
	if !errors.Is(err, insights.ErrWatermarkMoved) {
		t.Fatalf("stale commit: %v, want ErrWatermarkMoved", err)
	}
	q, _ := insights.Query{From: Start, To: Start.Add(3 * 24 * time.Hour)}.Normalize(time.Now())
	pts, err := insights.NewReader(st.Insights).Series(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want(recs, q.From, q.To, insights.Day, insights.GroupNone, ""), got(pts)); diff != "" {
		t.Errorf("after resyncs and a stale commit (-want +got):\n%s", diff)
	}
}

func testConflictsAndChanges(t *testing.T, st Stores) {
	ctx := context.Background()
	at := Start.Add(3 * time.Hour)
	for _, c := range []insights.Conflict{
		{At: at, Action: "SO.CREATE", Site: "DC-1", ActorID: "u1"},
		{At: at.Add(time.Minute), Action: "SO.CREATE", Site: "DC-2", ActorID: "agent-1", AgentID: "agent-1", UseCase: "case_routing"},
		{At: at.Add(30 * time.Hour), Action: "PO.SUBMIT", Site: "DC-1", ActorID: "u2"},
	} {
		if err := st.Insights.AddConflict(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	rd := insights.NewReader(st.Insights)
	q, _ := insights.Query{From: Start, To: Start.Add(48 * time.Hour), Group: insights.GroupAgent}.Normalize(time.Now())
	pts, replays, conflicts, err := rd.Retries(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if replays != 0 || conflicts != 1 || len(pts) != 1 || pts[0].Group != "agent-1" {
		t.Errorf("retries by agent: %+v, %d replays, %d conflicts; want agent-1's one conflict", pts, replays, conflicts)
	}
	q, _ = insights.Query{From: Start, To: Start.Add(48 * time.Hour), Site: "DC-1"}.Normalize(time.Now())
	if _, _, conflicts, err = rd.Retries(ctx, q); err != nil || conflicts != 2 {
		t.Errorf("conflicts at DC-1: %d (%v), want 2", conflicts, err)
	}
	for i, rev := range []string{"r1", "r2", "r3"} {
		if err := st.Audit.PutBundle(ctx, audit.Bundle{Revision: rev, Data: []byte(rev), ActivatedAt: Start.Add(time.Duration(i) * 20 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	changes, err := rd.PolicyChanges(ctx, insights.Query{From: Start.Add(time.Hour), To: Start.Add(41 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	wantChanges := []insights.PolicyChange{{Revision: "r2", ActivatedAt: Start.Add(20 * time.Hour)}, {Revision: "r3", ActivatedAt: Start.Add(40 * time.Hour)}}
	if diff := cmp.Diff(wantChanges, changes); diff != "" {
		t.Errorf("policy changes (-want +got):\n%s", diff)
	}
}
