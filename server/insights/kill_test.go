package insights_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/sqlite"
	"github.com/tollgate/tollgate/server/insights"
	"github.com/tollgate/tollgate/server/insights/insightstest"
)

// killConfig maps SO.CREATE to CREDIT_MEMO.ISSUE so killRecords open and close approvals.
var killConfig = insights.Config{ApprovalActions: map[string]string{"SO.CREATE": "CREDIT_MEMO.ISSUE"}}

// killRecords are insightstest.Mixed records where every three share a resource, so SO.CREATE
// approvals are closed by the CREDIT_MEMO.ISSUE ALLOWs that follow them.
func killRecords(n int) []*audit.Record {
	recs := insightstest.Mixed(n)
	for i, r := range recs {
		r.Request.Resource.Id = fmt.Sprintf("t-%d", i/3)
	}
	return recs
}

const childEnv = "TOLLGATE_INSIGHTS_KILL_CHILD"

// TestMain runs the roller child of TestRollerKill when the environment says so.
func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(rollForever(dir))
	}
	os.Exit(m.Run())
}

// rollForever rolls dir's audit log up in small batches, one transaction each, until killed.
func rollForever(dir string) int {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	r := insights.NewRoller(insights.RollerConfig{BatchSize: 3, Config: func() insights.Config { return killConfig }}, s, s.Insights(), zerolog.Nop())
	for {
		if _, err := r.Sync(ctx); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
}

// TestRollerKill kills a rolling process with SIGKILL at several points, restarts it each time, and
// checks that the roll-ups it finishes with are exactly a fresh fold of the log: nothing counted twice,
// nothing lost.
func TestRollerKill(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	recs := killRecords(1500)
	insightstest.Append(t, s, "chain-a", recs[:900]...)
	insightstest.Append(t, s, "chain-b", recs[900:]...)
	rolled := func() uint64 {
		m, err := s.Insights().Watermarks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return m["chain-a"] + m["chain-b"]
	}
	var marks []uint64
	for i := range 3 {
		// Kill once the child has committed something past the last kill, at a different moment each time.
		runAndKill(t, dir, func() bool { return rolled() > prev(marks) }, time.Duration(50+100*i)*time.Millisecond)
		marks = append(marks, rolled())
	}
	t.Logf("records rolled up at each kill: %v of %d", marks, len(recs))
	if marks[0] == uint64(len(recs)) {
		t.Fatal("the child finished before the first kill: nothing was cut short")
	}

	// Restart: finish the roll-up, then compare with a fresh fold of the same log into another file.
	r := insights.NewRoller(insights.RollerConfig{Config: func() insights.Config { return killConfig }}, s, s.Insights(), zerolog.Nop())
	if _, err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	fresh, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if n, err := insights.NewRoller(insights.RollerConfig{Config: func() insights.Config { return killConfig }}, s, fresh.Insights(), zerolog.Nop()).Sync(ctx); err != nil || n != len(recs) {
		t.Fatalf("fresh fold: %d records, %v", n, err)
	}
	want, got := dump(t, fresh.Insights()), dump(t, s.Insights())
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("roll-ups after kills differ from a fresh fold (-fresh +killed):\n%s", diff)
	}
	if len(want.Delays) == 0 || len(want.Open) == 0 || len(want.Counts) == 0 {
		t.Errorf("the fold has %d count rows, %d delay bins, %d open approvals; want some of each", len(want.Counts), len(want.Delays), len(want.Open))
	}
	s.Close()
}

func prev(marks []uint64) uint64 {
	if len(marks) == 0 {
		return 0
	}
	return marks[len(marks)-1]
}

// runAndKill starts the rolling child on dir, waits until progressed reports true, then a little
// longer, and kills it with SIGKILL.
func runAndKill(t *testing.T, dir string, progressed func() bool, after time.Duration) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for !progressed() {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatal("the child rolled nothing up in 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(after)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
}

// rollups is everything a Store answers from, read back whole.
type rollups struct {
	Marks  map[string]uint64
	Counts map[string]insights.Counts
	Delays []insights.DelayRow
	Open   []insights.Approval
}

func dump(t *testing.T, st insights.Store) rollups {
	t.Helper()
	ctx := context.Background()
	from, to := insightstest.Start.Add(-48*time.Hour), insightstest.Start.Add(400*24*time.Hour)
	out := rollups{Counts: map[string]insights.Counts{}}
	var err error
	if out.Marks, err = st.Watermarks(ctx); err != nil {
		t.Fatal(err)
	}
	for _, span := range []insights.Span{insights.Hour, insights.Day} {
		for dim := insights.DimBase; dim <= insights.DimAgent; dim++ {
			for v := insights.KeepBoth; v <= insights.KeepNone; v++ {
				rows, err := st.Counts(ctx, insights.CountQuery{Span: span, Dim: dim, Variant: v, From: from, To: to, ByBucket: true,
					Cols: []insights.Col{insights.ColAction, insights.ColSite, insights.ColGroup, insights.ColSub}})
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range rows {
					out.Counts[fmt.Sprint(span, dim, v, r.Bucket, r.Action, r.Site, r.Group, r.Sub)] = r.Counts
				}
			}
		}
	}
	if out.Delays, err = st.Delays(ctx, insights.DelayQuery{From: from, To: to}); err != nil {
		t.Fatal(err)
	}
	if out.Open, _, err = st.OpenApprovals(ctx, insights.OpenQuery{From: from, To: to, Limit: 100000}); err != nil {
		t.Fatal(err)
	}
	return out
}
