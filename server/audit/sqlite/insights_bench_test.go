package sqlite_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/sqlite"
	"github.com/tollgate/tollgate/server/insights"
	"github.com/tollgate/tollgate/server/insights/insightstest"
)

// insightsBound is the bound on one insights query over 30 days of 10,000,000 decisions.
const insightsBound = 200 * time.Millisecond

// skipUnlessAsked skips the long insights benchmarks unless TOLLGATE_PERF=1 or -bench names them.
func skipUnlessAsked(b *testing.B) {
	b.Helper()
	if os.Getenv("TOLLGATE_PERF") == "1" {
		return
	}
	if f := flag.Lookup("test.bench"); f != nil && strings.Contains(f.Value.String(), "Insights") {
		return
	}
	b.Skip("long benchmark: run with -bench Insights or TOLLGATE_PERF=1")
}

// BenchmarkInsights30Days: roll-ups of 10,000,000 synthetic decisions over 30 days in SQLite, folded by
// the roller's own fold and committed one hour per transaction (the records themselves are not
// appended), then every InsightsService query over 30 days (not aligned to days, so both ends are read
// from hour rows) by day and by each grouping. It fails a query slower than 200 ms per op.
//
//	go test -run '^$' -bench Insights30Days -benchtime 20x -timeout 60m ./server/audit/sqlite/
func BenchmarkInsights30Days(b *testing.B) {
	skipUnlessAsked(b)
	ctx := context.Background()
	s, err := sqlite.Open(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	start := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	gen := newSynth(start)
	began := time.Now()
	n := gen.rollUp(b, s.Insights(), 10_000_000)
	b.Logf("rolled up %d synthetic decisions over 30 days in %s; database %s", n, time.Since(began).Round(time.Second), fileSize(s.Path()))

	rd := insights.NewReader(s.Insights())
	from := start.Add(13 * time.Hour)
	q := insights.Query{From: from, To: from.Add(30 * 24 * time.Hour), Granularity: insights.Day}
	groups := []struct {
		name string
		g    insights.Group
	}{{"none", insights.GroupNone}, {"action", insights.GroupAction}, {"site", insights.GroupSite},
		{"reason", insights.GroupReason}, {"actor", insights.GroupActor}, {"agent", insights.GroupAgent}}
	rpcs := []struct {
		name string
		run  func(q insights.Query) error
	}{
		{"Volume", func(q insights.Query) error { _, err := rd.Volume(ctx, q); return err }},
		{"Exceptions", func(q insights.Query) error { _, _, err := rd.Exceptions(ctx, q); return err }},
		{"Approvals", func(q insights.Query) error { _, err := rd.Approvals(ctx, q); return err }},
		{"Autonomy", func(q insights.Query) error { _, err := rd.Autonomy(ctx, q); return err }},
		{"Retries", func(q insights.Query) error { _, _, _, err := rd.Retries(ctx, q); return err }},
		{"ApprovalDelays", func(q insights.Query) error { _, err := rd.ApprovalDelays(ctx, q); return err }},
		{"SLABreaches", func(q insights.Query) error {
			_, err := rd.SLABreaches(ctx, insights.BreachQuery{From: q.From, To: q.To, SLA: 24 * time.Hour, Now: q.To})
			return err
		}},
		{"PolicyChanges", func(q insights.Query) error { _, err := rd.PolicyChanges(ctx, q); return err }},
	}
	for _, rpc := range rpcs {
		for _, g := range groups {
			for _, gran := range []insights.Span{insights.Day, insights.Hour} {
				if gran == insights.Hour && g.g != insights.GroupNone && g.g != insights.GroupAction {
					continue // hourly points over 30 days: measured for the small groupings only
				}
				q := q
				q.Group, q.Granularity = g.g, gran
				name := fmt.Sprintf("%s/by=%s/group=%s", rpc.name, map[insights.Span]string{insights.Day: "day", insights.Hour: "hour"}[gran], g.name)
				b.Run(name, func(b *testing.B) {
					b.ReportAllocs()
					began := time.Now()
					for b.Loop() {
						if err := rpc.run(q); err != nil {
							b.Fatal(err)
						}
					}
					per := time.Since(began) / time.Duration(b.N)
					b.ReportMetric(float64(per.Microseconds())/1000, "ms/query")
					if gran == insights.Day && per > insightsBound {
						b.Errorf("%s: %s per query, bound %s", name, per, insightsBound)
					}
				})
			}
		}
	}
}

func fileSize(path string) string {
	var total int64
	for _, p := range []string{path, path + "-wal"} {
		if fi, err := os.Stat(p); err == nil {
			total += fi.Size()
		}
	}
	return fmt.Sprintf("%.0f MB", float64(total)/1e6)
}

// synth generates a distribution company's decisions: 15 actions at 20 sites, 300 people who each
// work at one site on two actions, 10 AI agents with 4 use cases doing a tenth of the work (70 %
// EXECUTE), 80 % ALLOW, 8 % DENY, 12 % REQUIRE_APPROVAL, six reason codes per action, 2 % replays,
// and PO.SUBMIT approvals that 90 % of the time a PO.APPROVE ALLOWs 5 minutes to 3 days later.
type synth struct {
	rng       *rand.Rand
	start     time.Time
	actions   []string
	sites     []*structpb.Struct
	siteIDs   []string
	people    []person
	agents    []*tollgatev1.Actor
	useCases  []string
	reasons   map[string][][]*tollgatev1.Reason
	scheduled map[int][]*audit.Record // hour → approvals due then
	seq       uint64
	nextID    int
}

type person struct {
	actor   *tollgatev1.Actor
	site    int
	actions [2]string
}

var synthConfig = insights.Config{ApprovalActions: map[string]string{"PO.SUBMIT": "PO.APPROVE", "INVOICE.POST": "INVOICE.APPROVE"}}

func newSynth(start time.Time) *synth {
	g := &synth{rng: rand.New(rand.NewPCG(1, 2)), start: start, scheduled: map[int][]*audit.Record{}, reasons: map[string][][]*tollgatev1.Reason{}}
	g.actions = []string{"PO.SUBMIT", "PO.APPROVE", "INVOICE.MATCH", "INVOICE.POST", "INVOICE.APPROVE", "PAYMENT.RELEASE",
		"SO.CREATE", "SO.RELEASE", "ALLOCATION.CREATE", "DELIVERY.CREATE", "GOODS_ISSUE.POST", "CREDIT_MEMO.ISSUE",
		"INVENTORY.ADJUST", "ASN.RECEIVE", "CASE.ROUTE"}
	for i := range 20 {
		id := fmt.Sprintf("DC%02d", i)
		st, _ := structpb.NewStruct(map[string]any{"site_id": id, "amount": "100.00"})
		g.sites, g.siteIDs = append(g.sites, st), append(g.siteIDs, id)
	}
	for i := range 300 {
		p := person{actor: &tollgatev1.Actor{Id: fmt.Sprintf("u%03d", i), Type: tollgatev1.ActorType_ACTOR_TYPE_HUMAN}, site: i % 20}
		p.actions = [2]string{g.actions[i%15], g.actions[(i*7+3)%15]}
		g.people = append(g.people, p)
	}
	for i := range 10 {
		g.agents = append(g.agents, &tollgatev1.Actor{Id: fmt.Sprintf("agent-%d", i), Type: tollgatev1.ActorType_ACTOR_TYPE_AI_AGENT})
	}
	g.useCases = []string{"backorder_allocation", "invoice_discrepancy", "supplier_message", "case_routing"}
	for _, a := range g.actions {
		for e := range 3 {
			var sets [][]*tollgatev1.Reason
			for k := range 6 {
				sets = append(sets, []*tollgatev1.Reason{{Code: fmt.Sprintf("%s_%d_%d", strings.ReplaceAll(a, ".", "_"), e, k)}})
			}
			g.reasons[a+fmt.Sprint(e)] = sets
		}
	}
	return g
}

var synthEffects = []tollgatev1.Effect{tollgatev1.Effect_EFFECT_ALLOW, tollgatev1.Effect_EFFECT_DENY, tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL}

// record returns one synthetic decision at at.
func (g *synth) record(at time.Time) *audit.Record {
	g.seq++
	g.nextID++
	rec := &audit.Record{DecisionId: fmt.Sprintf("s%09d", g.nextID), Seq: g.seq, EvaluatedAt: timestamppb.New(at), Kind: tollgatev1.RecordKind_RECORD_KIND_DECISION}
	req := &tollgatev1.DecideRequest{}
	var site int
	if g.rng.IntN(10) == 0 {
		req.Actor = g.agents[g.rng.IntN(len(g.agents))]
		uc := g.rng.IntN(len(g.useCases))
		mode := tollgatev1.AIMode_AI_MODE_RECOMMEND
		if g.rng.IntN(10) < 7 {
			mode = tollgatev1.AIMode_AI_MODE_EXECUTE
		}
		req.Ai = &tollgatev1.AI{UseCase: g.useCases[uc], Mode: mode}
		req.Action = []string{"ALLOCATION.CREATE", "INVOICE.MATCH", "PO.SUBMIT", "CASE.ROUTE"}[uc]
		site = g.rng.IntN(len(g.sites))
	} else {
		p := g.people[g.rng.IntN(len(g.people))]
		req.Actor, req.Action, site = p.actor, p.actions[g.rng.IntN(2)], p.site
	}
	req.Resource = &tollgatev1.Resource{Type: "doc", Id: fmt.Sprintf("r%d", g.nextID), Attributes: g.sites[site]}
	rec.Request = req
	e := 0
	switch x := g.rng.IntN(100); {
	case x < 8:
		e = 1
	case x < 20 || (req.Action == "PO.SUBMIT" && x < 45):
		e = 2
	}
	rec.Effect = synthEffects[e]
	sets := g.reasons[req.Action+fmt.Sprint(e)]
	rec.Reasons = sets[g.rng.IntN(len(sets))]
	if g.rng.IntN(50) == 0 {
		rec.Kind = tollgatev1.RecordKind_RECORD_KIND_REPLAY
	}
	if rec.Kind == tollgatev1.RecordKind_RECORD_KIND_DECISION && e == 2 && (req.Action == "PO.SUBMIT" || req.Action == "INVOICE.POST") && g.rng.IntN(10) < 9 {
		delay := 5*time.Minute + time.Duration(g.rng.Int64N(int64(3*24*time.Hour)))
		approveAt := at.Add(delay)
		approval := synthConfig.ApprovalActions[req.Action]
		appr := &audit.Record{Kind: tollgatev1.RecordKind_RECORD_KIND_DECISION, EvaluatedAt: timestamppb.New(approveAt), Effect: tollgatev1.Effect_EFFECT_ALLOW,
			Request: &tollgatev1.DecideRequest{Actor: g.people[site].actor, Action: approval,
				Resource: &tollgatev1.Resource{Type: "doc", Id: req.Resource.Id, Attributes: g.sites[site]}},
			Reasons: g.reasons[approval+"0"][0]}
		h := int(approveAt.Sub(g.start) / time.Hour)
		g.scheduled[h] = append(g.scheduled[h], appr)
	}
	return rec
}

// rollUp folds about total decisions spread evenly over 30 days into st, one hour per transaction,
// and returns how many it folded.
func (g *synth) rollUp(b *testing.B, st insights.Store, total int) int {
	ctx := context.Background()
	const hours = 30 * 24
	perHour := total / hours
	folded := 0
	var mark uint64
	for h := range hours {
		hourStart := g.start.Add(time.Duration(h) * time.Hour)
		d := insights.NewDelta()
		var due []*audit.Record
		for i := range perHour - len(g.scheduled[h]) {
			at := hourStart.Add(time.Duration(i) * time.Hour / time.Duration(perHour))
			d.Fold(g.record(at), synthConfig)
		}
		// Approvals due this hour, in time order after the hour's own records (the fold only needs
		// each approval after its request).
		due = g.scheduled[h]
		delete(g.scheduled, h)
		for _, r := range due {
			g.seq++
			g.nextID++
			r.DecisionId, r.Seq = fmt.Sprintf("s%09d", g.nextID), g.seq
			d.Fold(r, synthConfig)
		}
		folded += perHour
		from := mark
		mark = d.LastSeq
		if err := st.Update(ctx, func(tx insights.Tx) error { return insights.Commit(ctx, tx, "synthetic", from, d) }); err != nil {
			b.Fatal(err)
		}
	}
	return folded
}

// BenchmarkInsightsRoller measures the roller's throughput on real records: 20,000 decisions
// appended to a SQLite audit log, then rolled up from scratch (read, decode, fold, commit). dense has
// 10,000 decisions an hour, so a batch's rows aggregate as in production; sparse has one decision
// every 37 minutes, the worst case, where every decision is rows of its own.
//
//	go test -run '^$' -bench InsightsRoller -benchtime 3x ./server/audit/sqlite/
func BenchmarkInsightsRoller(b *testing.B) {
	skipUnlessAsked(b)
	ctx := context.Background()
	const n = 20_000
	for _, c := range []struct {
		name string
		step time.Duration
	}{{"dense", 360 * time.Millisecond}, {"sparse", 37 * time.Minute}} {
		b.Run(c.name, func(b *testing.B) {
			src, err := sqlite.Open(ctx, b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer src.Close()
			recs := insightstest.MixedEvery(n, c.step)
			for i := 0; i < n; i += 1000 {
				insightstest.Append(b, src, "default", recs[i:i+1000]...)
			}
			benchRoller(b, src, n)
		})
	}
}

func benchRoller(b *testing.B, src *sqlite.Store, n int) {
	ctx := context.Background()
	b.ReportAllocs()
	var elapsed time.Duration
	for b.Loop() {
		b.StopTimer()
		dst, err := sqlite.Open(ctx, b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		r := insights.NewRoller(insights.RollerConfig{Config: func() insights.Config { return insightstest.Config }}, src, dst.Insights(), zerolog.Nop())
		b.StartTimer()
		began := time.Now()
		if got, err := r.Sync(ctx); err != nil || got != n {
			b.Fatalf("rolled up %d, %v", got, err)
		}
		elapsed += time.Since(began)
		b.StopTimer()
		dst.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/elapsed.Seconds(), "records/s")
}
