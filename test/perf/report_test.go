package perf_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/test/perf"
)

// run is one run of server at concurrency c answering rate decisions in one second, with every latency
// lat.
func run(server string, c, rep int, rate int, lat time.Duration) perf.Run {
	ls := make([]time.Duration, rate)
	for i := range ls {
		ls[i] = lat
	}
	return perf.Run{Server: server, Concurrency: c, Rep: rep,
		Stats: perf.RunStats{Decisions: rate, Elapsed: time.Second, Latencies: ls}}
}

// pgTargets returns the report's issue-13 rows.
func pgTargets(r *perf.Report) []perf.Target {
	var ts []perf.Target
	for _, t := range r.Targets() {
		if t.Issue == 13 {
			ts = append(ts, t)
		}
	}
	return ts
}

func TestPostgresTarget(t *testing.T) {
	for _, tc := range []struct {
		name      string
		sqlite    []int // decisions/s per rep
		pg        []int
		wantRatio float64
		wantMet   bool
	}{
		{"at the target", []int{1000}, []int{800}, 0.8, true},
		{"just below", []int{1000}, []int{799}, 0.799, false},
		{"faster than SQLite", []int{1000}, []int{1500}, 1.5, true},
		// Medians: SQLite (900+1100)/2 = 1000 against PostgreSQL's 700, though its best rep beats
		// SQLite's worst.
		{"medians, not best runs", []int{900, 1100}, []int{650, 750}, 0.7, false},
		{"odd number of reps", []int{1000, 5000, 1200}, []int{100, 960, 990}, 0.8, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &perf.Report{}
			for i := range tc.sqlite {
				r.Runs = append(r.Runs, run(perf.ServerOPA, 16, i+1, 500, time.Millisecond),
					run(perf.ServerTollgate, 16, i+1, tc.sqlite[i], time.Millisecond),
					run(perf.ServerTollgatePG, 16, i+1, tc.pg[i], time.Millisecond))
			}
			ts := pgTargets(r)
			if len(ts) != 1 {
				t.Fatalf("issue-13 targets: got %d, want 1: %+v", len(ts), ts)
			}
			got := ts[0]
			if d := got.Ratio - tc.wantRatio; d > 1e-9 || d < -1e-9 {
				t.Errorf("ratio: got %v, want %v", got.Ratio, tc.wantRatio)
			}
			if got.Met != tc.wantMet {
				t.Errorf("met: got %v, want %v (ratio %v, target %v)", got.Met, tc.wantMet, got.Ratio, perf.PostgresTarget)
			}
			if !strings.Contains(got.Name, "at 16") {
				t.Errorf("name %q does not say the concurrency", got.Name)
			}
		})
	}
}

func TestPostgresTargetWithoutFigures(t *testing.T) {
	// PostgreSQL skipped: no row at all, rather than a row that is not met.
	r := &perf.Report{Runs: []perf.Run{run(perf.ServerOPA, 16, 1, 500, time.Millisecond), run(perf.ServerTollgate, 16, 1, 900, time.Millisecond)}}
	if ts := pgTargets(r); len(ts) != 0 {
		t.Errorf("without PostgreSQL runs: got targets %+v, want none", ts)
	}
	// PostgreSQL answered nothing: the row is there and not met.
	r.Runs = append(r.Runs, run(perf.ServerTollgatePG, 16, 1, 0, 0))
	ts := pgTargets(r)
	if len(ts) != 1 || ts[0].Met || ts[0].Measured != "no figure" {
		t.Errorf("with a PostgreSQL run of no decisions: got %+v, want one row, not met, with no figure", ts)
	}
}

func TestWriteMarkdownPostgres(t *testing.T) {
	r := &perf.Report{Reps: 1, Postgres: &perf.PostgresInfo{Server: "postgres://postgres@127.0.0.1:5432/postgres", Version: "15.8", SynchronousCommit: "on"}}
	for _, c := range []int{16, 64} {
		r.Runs = append(r.Runs, run(perf.ServerOPA, c, 1, 500, 4*time.Millisecond),
			run(perf.ServerTollgate, c, 1, 1000, 2*time.Millisecond),
			run(perf.ServerTollgatePG, c, 1, 700+200*(c/64), 3*time.Millisecond))
		// 1 s of server CPU and 0.35 s of PostgreSQL CPU (c=16: 700 decisions), 500 µs/decision each.
		for i := range r.Runs[len(r.Runs)-3:] {
			r.Runs[len(r.Runs)-3+i].Stats.ServerCPU = time.Second
		}
		r.Runs[len(r.Runs)-1].Stats.StoreCPU = 350 * time.Millisecond
	}
	var buf bytes.Buffer
	if err := r.WriteMarkdown(&buf); err != nil {
		t.Fatal(err)
	}
	md := buf.String()
	for _, want := range []string{
		"| metric | stock OPA | Tollgate (SQLite, sync audit) | Tollgate (PostgreSQL, sync audit) | Tollgate / OPA | PostgreSQL / SQLite |\n|---|---|---|---|---|---|\n",
		"| decisions/s | 500 [500 – 500] | 1000 [1000 – 1000] | 700 [700 – 700] | 2.00× | 0.70× |",
		"| p99 latency | 4.00 ms [4.00 ms – 4.00 ms] | 2.00 ms [2.00 ms – 2.00 ms] | 3.00 ms [3.00 ms – 3.00 ms] | 0.50× | 1.50× |",
		"| Tollgate on PostgreSQL ≥ 0.8× Tollgate on SQLite decisions/s at 16 | 13 | 0.70× (700 vs 1000 decisions/s) | **no** |",
		"| Tollgate on PostgreSQL ≥ 0.8× Tollgate on SQLite decisions/s at 64 | 13 | 0.90× (900 vs 1000 decisions/s) | yes |",
		"PostgreSQL 15.8, synchronous_commit=on",
		"| server CPU / decision | 2000 µs [2000 µs – 2000 µs] | 1000 µs [1000 µs – 1000 µs] | 1429 µs [1429 µs – 1429 µs] | 0.50× | 1.43× |",
		"| PostgreSQL CPU / decision | — | — | 500 µs [500 µs – 500 µs] | — | — |",
		"| server + PostgreSQL CPU / decision | 2000 µs [2000 µs – 2000 µs] | 1000 µs [1000 µs – 1000 µs] | 1929 µs [1929 µs – 1929 µs] | 0.50× | 1.93× |",
		"| 1 | 16 | Tollgate-PG | 700 | 3.00 ms | 3.00 ms | 3.00 ms | 1429 µs | 500 µs | 0 µs | 0 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}

	// Without PostgreSQL the tables keep their two servers and one ratio.
	r.Postgres = nil
	var kept []perf.Run
	for _, run := range r.Runs {
		if run.Server != perf.ServerTollgatePG {
			kept = append(kept, run)
		}
	}
	r.Runs = kept
	buf.Reset()
	if err := r.WriteMarkdown(&buf); err != nil {
		t.Fatal(err)
	}
	md = buf.String()
	if !strings.Contains(md, "| metric | stock OPA | Tollgate (SQLite, sync audit) | Tollgate / OPA |\n|---|---|---|---|\n") {
		t.Errorf("report without PostgreSQL: wrong table header:\n%s", md)
	}
	if !strings.Contains(md, "| 1 | 16 | Tollgate | 1000 | 2.00 ms | 2.00 ms | 2.00 ms | 1000 µs | 0 µs | 0 |\n") {
		t.Errorf("report without PostgreSQL: wrong run row:\n%s", md)
	}
	if strings.Contains(md, "PostgreSQL") {
		t.Errorf("report without PostgreSQL mentions it:\n%s", md)
	}
}

func TestCPUSince(t *testing.T) {
	before := map[int]time.Duration{10: time.Second, 11: 2 * time.Second, 12: time.Second}
	after := map[int]time.Duration{
		10: 3 * time.Second,        // ran 2 s
		11: 2 * time.Second,        // idle
		13: 500 * time.Millisecond, // started during the run: counts whole
		// 12 ended during the run: lost
	}
	if got, want := perf.CPUSince(before, after), 2500*time.Millisecond; got != want {
		t.Errorf("CPUSince: got %v, want %v", got, want)
	}
}

// historyTargets returns the report's issue-14 rows.
func historyTargets(r *perf.Report) []perf.Target {
	var ts []perf.Target
	for _, t := range r.Targets() {
		if t.Issue == 14 {
			ts = append(ts, t)
		}
	}
	return ts
}

func TestHistoryTarget(t *testing.T) {
	views := []string{"po_split"}
	for _, tc := range []struct {
		name      string
		views     []string
		on, off   []int // decisions/s per rep, with and without views
		wantRatio float64
		wantMet   bool
		wantNote  string // part of Measured
	}{
		{"at the target", views, []int{950}, []int{1000}, 0.95, true, "950 vs 1000"},
		{"just below", views, []int{949}, []int{1000}, 0.949, false, ""},
		{"faster with views (noise)", views, []int{1020}, []int{1000}, 1.02, true, ""},
		// Medians: with views (900+1000)/2 = 950 against 1000, though its best rep is the best of all.
		{"medians, not best runs", views, []int{900, 1000}, []int{990, 1010}, 0.95, true, ""},
		{"median below", views, []int{800, 1100, 900}, []int{1000, 1000, 1000}, 0.9, false, ""},
		// A pack without views measured two identical servers: no evidence either way.
		{"no views declared", nil, []int{1000}, []int{1000}, 1, false, "declares no views"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &perf.Report{HistoryViews: tc.views}
			for i := range tc.on {
				r.Runs = append(r.Runs, run(perf.ServerOPA, 16, i+1, 500, time.Millisecond),
					run(perf.ServerTollgate, 16, i+1, tc.on[i], time.Millisecond),
					run(perf.ServerTollgateNoViews, 16, i+1, tc.off[i], time.Millisecond))
			}
			ts := historyTargets(r)
			if len(ts) != 1 {
				t.Fatalf("issue-14 targets: got %d, want 1: %+v", len(ts), ts)
			}
			got := ts[0]
			if d := got.Ratio - tc.wantRatio; d > 1e-9 || d < -1e-9 {
				t.Errorf("ratio: got %v, want %v", got.Ratio, tc.wantRatio)
			}
			if got.Met != tc.wantMet {
				t.Errorf("met: got %v, want %v (ratio %v, target %v)", got.Met, tc.wantMet, got.Ratio, perf.HistoryTarget)
			}
			if !strings.Contains(got.Name, "at 16") || !strings.Contains(got.Measured, tc.wantNote) {
				t.Errorf("row %q / %q: want the concurrency in the name and %q in the figure", got.Name, got.Measured, tc.wantNote)
			}
		})
	}
}

func TestHistoryTargetWithoutFigures(t *testing.T) {
	// -skip-history: no row at all.
	r := &perf.Report{HistoryViews: []string{"po_split"}, Runs: []perf.Run{run(perf.ServerOPA, 16, 1, 500, time.Millisecond), run(perf.ServerTollgate, 16, 1, 900, time.Millisecond)}}
	if ts := historyTargets(r); len(ts) != 0 {
		t.Errorf("without runs of the pack without views: got targets %+v, want none", ts)
	}
	// The baseline answered nothing: the row is there and not met.
	r.Runs = append(r.Runs, run(perf.ServerTollgateNoViews, 16, 1, 0, 0))
	ts := historyTargets(r)
	if len(ts) != 1 || ts[0].Met || ts[0].Measured != "no figure" {
		t.Errorf("with a baseline run of no decisions: got %+v, want one row, not met, with no figure", ts)
	}
}

func TestWriteMarkdownHistory(t *testing.T) {
	r := &perf.Report{Reps: 3, Corpus: 1200, Command: "make perf", Duration: 10 * time.Second,
		HistoryViews:    []string{"invoice_posted", "po_split"},
		HistoryCoverage: map[string]perf.ViewCoverage{"po_split": {Requests: 66, Keys: 56}, "invoice_posted": {Requests: 83, Keys: 20}},
		Compared:        []string{perf.ServerTollgateNoViews}}
	for _, c := range []int{16, 64} {
		r.Runs = append(r.Runs, run(perf.ServerOPA, c, 1, 500, 4*time.Millisecond),
			run(perf.ServerTollgate, c, 1, 960, 2*time.Millisecond),
			run(perf.ServerTollgateNoViews, c, 1, 1000+200*(c/64), time.Millisecond))
	}
	var buf bytes.Buffer
	if err := r.WriteMarkdown(&buf); err != nil {
		t.Fatal(err)
	}
	md := buf.String()
	for _, want := range []string{
		"## History look-ups (issue 14)\n",
		"the pack embedded in the binary, declaring 2 history views: invoice_posted, po_split)",
		"3 repetitions interleaved (OPA 16, Tollgate 16, Tollgate-no-views 16, OPA 64, Tollgate 64, Tollgate-no-views 64, and again)",
		"`invoice_posted` 83 on 20 keys, `po_split` 66 on 56 keys",
		"| concurrency | metric | with views | without views | with ÷ without |\n|---|---|---|---|---|\n",
		"| 16 | decisions/s | 960 [960 – 960] | 1000 [1000 – 1000] | 0.96× |\n",
		"| 16 | p99 latency | 2.00 ms [2.00 ms – 2.00 ms] | 1.00 ms [1.00 ms – 1.00 ms] | 2.00× |\n",
		"| 64 | decisions/s | 960 [960 – 960] | 1200 [1200 – 1200] | 0.80× |\n",
		"| history look-ups cost ≤ 5 %: Tollgate with the pack's history views ≥ 0.95× without, decisions/s at 16 | 14 | 0.96× (960 vs 1000 decisions/s) | yes |",
		"| history look-ups cost ≤ 5 %: Tollgate with the pack's history views ≥ 0.95× without, decisions/s at 64 | 14 | 0.80× (960 vs 1200 decisions/s) | **no** |",
		"every request was sent to stock OPA and to Tollgate (SQLite, sync audit), pack without history views: same effect",
		"Tollgate on the pack as shipped is not compared",
		"| 1 | 16 | Tollgate-no-views | 1000 |",
		"`make perf-history` measures on its own (figures in [history.md](history.md#rebuild))",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	// The per-concurrency tables stay Tollgate against OPA: the baseline is not a column there.
	if !strings.Contains(md, "| metric | stock OPA | Tollgate (SQLite, sync audit) | Tollgate / OPA |\n") {
		t.Errorf("load tables changed:\n%s", md)
	}

	// -skip-history: the section says so and no issue-14 row is shown.
	var kept []perf.Run
	for _, run := range r.Runs {
		if run.Server != perf.ServerTollgateNoViews {
			kept = append(kept, run)
		}
	}
	r.Runs = kept
	buf.Reset()
	if err := r.WriteMarkdown(&buf); err != nil {
		t.Fatal(err)
	}
	md = buf.String()
	if !strings.Contains(md, "## History look-ups (issue 14)\n\nNot measured in this report (`-skip-history`).") || strings.Contains(md, "| 14 |") ||
		!strings.Contains(md, "`make perf-history`") {
		t.Errorf("report without the history runs:\n%s", md)
	}
}
