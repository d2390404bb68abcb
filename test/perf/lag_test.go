package perf_test

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/policies"
	"github.com/tollgate/tollgate/server/audit/postgres/pgtest"
	"github.com/tollgate/tollgate/server/masterdata/feed/natstest"
	"github.com/tollgate/tollgate/test/perf"
)

func TestQuantile(t *testing.T) {
	ms := func(vs ...int) []time.Duration {
		var ds []time.Duration
		for _, v := range vs {
			ds = append(ds, time.Duration(v)*time.Millisecond)
		}
		return ds
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // descending: Quantile sorts a copy
	}
	for _, c := range []struct {
		ds   []time.Duration
		q    float64
		want time.Duration
	}{
		{nil, 0.5, 0},
		{ms(7), 0.5, 7 * time.Millisecond},
		{ms(7), 0.99, 7 * time.Millisecond},
		{ms(3, 1, 2), 0.5, 2 * time.Millisecond},
		{ms(4, 3, 2, 1), 0.5, 2 * time.Millisecond}, // nearest rank: the 2nd of 4
		{ms(hundred...), 0.50, 50 * time.Millisecond},
		{ms(hundred...), 0.99, 99 * time.Millisecond},
		{ms(hundred...), 1, 100 * time.Millisecond},
		{ms(hundred...), 0, 1 * time.Millisecond},
	} {
		in := append([]time.Duration(nil), c.ds...)
		if got := perf.Quantile(c.ds, c.q); got != c.want {
			t.Errorf("Quantile(%v, %v) = %v, want %v", c.ds, c.q, got, c.want)
		}
		for i := range in {
			if in[i] != c.ds[i] {
				t.Fatalf("Quantile reordered its argument: %v", c.ds)
			}
		}
	}
}

// TestWriteMarkdownLag: the lag section shows the all-replica and per-replica quantiles, the mean Decide
// round trip beside them, and its target row; without a measurement it says so and has no row.
func TestWriteMarkdownLag(t *testing.T) {
	r := &perf.Report{Reps: 1, LagNATS: "nats://127.0.0.1:4222"}
	r.Runs = append(r.Runs, run(perf.ServerOPA, 16, 1, 500, 4*time.Millisecond), run(perf.ServerTollgate, 16, 1, 1000, 2*time.Millisecond))
	l := &perf.LagResult{Replicas: 3, Gap: perf.LagGap, Approved: "ALLOW PO_OK", PerReplica: make([][]time.Duration, 3),
		Calls: 400, CallTime: 800 * time.Millisecond, Publish: 100 * time.Millisecond}
	for i := 1; i <= 100; i++ {
		for rep := range 3 {
			l.PerReplica[rep] = append(l.PerReplica[rep], time.Duration(i*(rep+1))*100*time.Microsecond)
		}
		l.All = append(l.All, time.Duration(i*3)*100*time.Microsecond)
	}
	r.Lag = l
	var buf bytes.Buffer
	if err := r.WriteMarkdown(&buf); err != nil {
		t.Fatal(err)
	}
	md := buf.String()
	for _, want := range []string{
		"## Event to decision lag across a fleet\n",
		"`--masterdata-stream nats://127.0.0.1:4222`",
		"Events: 100,",
		"(ALLOW PO_OK while APPROVED, DENY SUPPLIER_BLOCKED while BLOCKED)",
		"Mean Decide round trip while polling in this run: **2.00 ms** (400 calls",
		"acknowledge a publish: 1.00 ms",
		"| **all 3 replicas decided on it** | 15.00 ms | 29.70 ms | 30.00 ms |\n",
		"| replica 1 | 5.00 ms | 9.90 ms | 10.00 ms |\n",
		"| replica 3 | 15.00 ms | 29.70 ms | 30.00 ms |\n",
		"| lag from publishing an event to all 3 replicas deciding on it, reported (p50/p99) | 13 | p50 15.00 ms, p99 29.70 ms over 100 events | yes |\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	// The section sits between the load tables and the targets.
	if i, j, k := strings.Index(md, "## 16 concurrent"), strings.Index(md, "## Event to decision lag"), strings.Index(md, "## Targets"); !(i < j && j < k) {
		t.Errorf("lag section at %d, want between the load (%d) and the targets (%d)", j, i, k)
	}

	r.Lag = nil
	buf.Reset()
	if err := r.WriteMarkdown(&buf); err != nil {
		t.Fatal(err)
	}
	md = buf.String()
	if !strings.Contains(md, "## Event to decision lag across a fleet\n\nNot measured in this report (`-skip-lag`).") {
		t.Errorf("report without lag does not say so:\n%s", md)
	}
	if strings.Contains(md, "replicas deciding on it") {
		t.Errorf("report without lag has its target row:\n%s", md)
	}
}

// TestLagFleet runs the lag measurement as perfrun does, on three replicas and ten events, on the
// machine's PostgreSQL and NATS (skipped without them, as pgtest and natstest say).
func TestLagFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds tollgate and starts three replicas")
	}
	s := natstest.NewStream(t)
	pgURL := pgtest.NewDatabase(t)
	ctx := context.Background()
	work := t.TempDir()
	bin := filepath.Join(work, "tollgate")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/tollgate")
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/tollgate: %v\n%s", err, out)
	}
	noViews := filepath.Join(work, "pack-no-views")
	if _, err := perf.WriteWithoutHistoryViews(noViews, policies.FS); err != nil {
		t.Fatal(err)
	}
	fleet, err := perf.StartLagFleet(ctx, perf.LagFleetConfig{Bin: bin, Work: work, PostgresURL: pgURL,
		Stream: &perf.NATSStream{URL: s.URL, Name: s.Name, Subject: s.Subject}, Bundle: noViews})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()
	const events = 10
	done := 0
	l, err := fleet.Measure(ctx, events, func(n int) { done = n })
	if err != nil {
		t.Fatal(err)
	}
	if done != events || l.Events() != events || l.Replicas != perf.LagReplicas || len(l.PerReplica) != perf.LagReplicas {
		t.Fatalf("measured %d events (progress %d) on %d replicas (%d series), want %d on %d", l.Events(), done, l.Replicas, len(l.PerReplica), events, perf.LagReplicas)
	}
	for e, all := range l.All {
		last := time.Duration(0)
		for r := range l.PerReplica {
			if d := l.PerReplica[r][e]; d <= 0 || d > all {
				t.Errorf("event %d: replica %d lag %v, all-replica lag %v", e, r+1, d, all)
			} else {
				last = max(last, d)
			}
		}
		if last != all {
			t.Errorf("event %d: all-replica lag %v is not the largest replica lag %v", e, all, last)
		}
	}
	// Every event needs at least one answer from each replica.
	if l.Calls < events*perf.LagReplicas || l.MeanDecide() <= 0 || l.MeanPublish() <= 0 {
		t.Errorf("%d calls, mean Decide %v, mean publish %v", l.Calls, l.MeanDecide(), l.MeanPublish())
	}
	if l.Approved == "" || strings.Contains(l.Approved, "SUPPLIER_BLOCKED") {
		t.Errorf("decision on the APPROVED supplier %q", l.Approved)
	}
	t.Logf("approved: %s; lag to all %d: p50 %v p99 %v; mean Decide %v over %d calls", l.Approved, l.Replicas, perf.Quantile(l.All, 0.5), perf.Quantile(l.All, 0.99), l.MeanDecide(), l.Calls)

	// An answer that contradicts the supplier's status at its revision fails the measurement.
	fleet.SetApprovedDecision(perf.Decision{Effect: "REQUIRE_APPROVAL", Primary: "NOT_THE_POLICY"})
	if _, err := fleet.Measure(ctx, 2, nil); err == nil || !strings.Contains(err.Error(), "where the supplier is APPROVED") {
		t.Errorf("Measure with a wrong expected decision: %v, want an error naming the APPROVED supplier", err)
	}
}
