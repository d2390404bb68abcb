package perf

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Machine describes where a report was measured.
type Machine struct {
	NProc      int
	CPUModel   string
	GoVersion  string
	OPAVersion string
	LoadBefore string // /proc/loadavg when the run started
	LoadAfter  string // and when it ended
}

// The servers a report compares, as Run.Server names them.
const (
	ServerOPA        = "OPA"         // stock OPA's REST server
	ServerTollgate   = "Tollgate"    // tollgate serve, sync audit in SQLite (its default)
	ServerTollgatePG = "Tollgate-PG" // tollgate serve, sync audit in PostgreSQL (--audit-store postgres://…)
	// ServerTollgateNoViews is tollgate serve on the pack with params.history.views removed
	// (WriteWithoutHistoryViews): no history look-ups, locks or observing. The baseline of the history
	// cost; ServerTollgate runs the pack as shipped.
	ServerTollgateNoViews = "Tollgate-no-views"
)

// HistoryTarget is the least decisions/s ratio of Tollgate on the pack as shipped (history views
// declared) over Tollgate on the pack without views: issue 14 lets history look-ups cost at most 5 %.
const HistoryTarget = 0.95

// PostgresTarget is the least Tollgate-on-PostgreSQL ÷ Tollgate-on-SQLite decisions/s ratio issue 13
// asks for on one replica.
const PostgresTarget = 0.8

// Run is one closed-loop run in a report.
type Run struct {
	Server      string // ServerOPA, ServerTollgate, ServerTollgatePG or ServerTollgateNoViews
	Concurrency int
	Rep         int
	Stats       RunStats
}

// Report is everything docs/performance.md shows. WriteMarkdown writes it as a list of sections and
// Targets computes the target rows, so a new measurement (the fleet's event-to-decision lag, say) is a
// field here, one more section writer and its rows in Targets.
type Report struct {
	Date     time.Time
	Command  string
	Source   string // git revision measured, with "+dirty" and the changed files when the tree was dirty
	Machine  Machine
	Corpus   int
	Seed     uint64
	Volume   int
	Families []string
	Reasons  int // distinct primary reasons the corpus reached
	Duration time.Duration
	Reps     int
	Runs     []Run
	Bench    Bench
	// Postgres describes the PostgreSQL server of the ServerTollgatePG runs; nil when they were skipped.
	Postgres *PostgresInfo
	// Lag is the fleet's event-to-decision lag (issue 13); nil when it was not measured (-skip-lag).
	Lag *LagResult
	// LagNATS is the NATS server the lag was measured on, credentials redacted.
	LagNATS string
	// Compared names the Tollgate servers whose answer to every corpus request was checked against
	// stock OPA's before the load.
	Compared []string
	// HistoryViews names the history views the measured pack declares (none: the history rows measure
	// nothing but noise).
	HistoryViews []string
	// HistoryCoverage is, per view, how many corpus requests it counts and on how many keys.
	HistoryCoverage map[string]ViewCoverage
	// Paths is, per Tollgate server, the evaluation path its decisions took and its exactness gate.
	Paths map[string]EvaluationPath
	// Batch is BenchmarkDecideBatch (test/e2e): one DecideBatch of 100 against 100 single calls, sequential
	// and concurrent, over gRPC with the sync audit log in SQLite; empty when not run (-skip-bench).
	Batch Bench
}

// EvaluationPath is a Tollgate server's evaluation path as its policy status reported it.
type EvaluationPath struct {
	Path, Gate, Reason string
	Checked            int
	Elapsed            time.Duration
}

// PostgresInfo is what the report says about the PostgreSQL server measured.
type PostgresInfo struct {
	Server            string // URL of the server, password redacted
	Version           string // server_version
	SynchronousCommit string // synchronous_commit: "on" for the durability sync mode promises
}

// Bench holds the in-process results parsed from `go test -bench` output.
type Bench struct {
	NsPerOp     map[string]float64 // benchmark name without the -GOMAXPROCS suffix → ns/op (wall)
	CPUNsPerOp  map[string]float64 // → cpu-ns/op: process CPU time per op
	AllocsPerOp map[string]float64
	BytesPerOp  map[string]float64
	Values      map[string]string  // the key=value pairs of "PERF" log lines
	Rate        map[string]float64 // → decisions/s, for benchmarks that report it
	Failed      []string           // FAIL lines
}

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

// ParseBench reads `go test -v -bench` output.
func ParseBench(r io.Reader) Bench {
	b := Bench{NsPerOp: map[string]float64{}, CPUNsPerOp: map[string]float64{}, AllocsPerOp: map[string]float64{}, BytesPerOp: map[string]float64{}, Values: map[string]string{}}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if m := benchLine.FindStringSubmatch(line); m != nil && strings.Contains(m[2], " ns/op") {
			f := strings.Fields(m[2])
			for i := 0; i+1 < len(f); i += 2 {
				v, _ := strconv.ParseFloat(f[i], 64)
				switch f[i+1] {
				case "decisions/s":
					if b.Rate == nil {
						b.Rate = map[string]float64{}
					}
					b.Rate[m[1]] = v
				case "ns/op":
					b.NsPerOp[m[1]] = v
				case "cpu-ns/op":
					b.CPUNsPerOp[m[1]] = v
				case "B/op":
					b.BytesPerOp[m[1]] = v
				case "allocs/op":
					b.AllocsPerOp[m[1]] = v
				}
			}
			continue
		}
		if _, rest, ok := strings.Cut(line, "PERF "); ok {
			for _, kv := range strings.Fields(rest) {
				if k, v, ok := strings.Cut(kv, "="); ok {
					b.Values[k+suffixOf(rest)] = v
				}
			}
			continue
		}
		if t := strings.TrimSpace(line); strings.HasPrefix(t, "--- FAIL") || strings.HasPrefix(t, "FAIL") {
			b.Failed = append(b.Failed, t)
		}
	}
	return b
}

// suffixOf keys the figures of each scale sub-benchmark by its record count.
func suffixOf(rest string) string {
	if v, ok := strings.CutPrefix(strings.Fields(rest)[0], "load_records="); ok {
		return "@" + v
	}
	return ""
}

// summary is the median, min and max of one metric over the repetitions.
type summary struct{ med, lo, hi float64 }

func summarize(vs []float64) summary {
	if len(vs) == 0 {
		return summary{}
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return summary{med, s[0], s[len(s)-1]}
}

type metric struct {
	name   string
	value  func(RunStats) float64
	format func(float64) string
	// withPG marks a row shown only when Tollgate on PostgreSQL was measured; pgOnly a figure only it
	// has (the other servers show "—").
	withPG, pgOnly bool
}

func ms(v float64) string  { return fmt.Sprintf("%.2f ms", v) }
func us(v float64) string  { return fmt.Sprintf("%.0f µs", v) }
func num(v float64) string { return fmt.Sprintf("%.0f", v) }

var metrics = []metric{
	{"decisions/s", RunStats.Rate, num, false, false},
	{"p50 latency", func(s RunStats) float64 { return msOf(s.Quantile(0.50)) }, ms, false, false},
	{"p99 latency", func(s RunStats) float64 { return msOf(s.Quantile(0.99)) }, ms, false, false},
	{"p99.9 latency", func(s RunStats) float64 { return msOf(s.Quantile(0.999)) }, ms, false, false},
	{"server CPU / decision", func(s RunStats) float64 { return usOf(s.ServerCPUPerDecision()) }, us, false, false},
	{"PostgreSQL CPU / decision", func(s RunStats) float64 { return usOf(s.StoreCPUPerDecision()) }, us, true, true},
	{"server + PostgreSQL CPU / decision", func(s RunStats) float64 { return usOf(s.ServerCPUPerDecision() + s.StoreCPUPerDecision()) }, us, true, false},
	{"client CPU / decision", func(s RunStats) float64 { return usOf(s.ClientCPUPerDecision()) }, us, false, false},
	{"errors", func(s RunStats) float64 { return float64(s.Errors) }, num, false, false},
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func usOf(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// Summary returns the median of metric name ("decisions/s", "p99 latency", …) for server at concurrency.
func (r *Report) Summary(server string, concurrency int, name string) float64 {
	for _, m := range metrics {
		if m.name == name {
			return summarize(r.values(server, concurrency, m)).med
		}
	}
	return 0
}

func (r *Report) values(server string, concurrency int, m metric) []float64 {
	var vs []float64
	for _, run := range r.Runs {
		if run.Server == server && run.Concurrency == concurrency {
			vs = append(vs, m.value(run.Stats))
		}
	}
	return vs
}

func (r *Report) concurrencies() []int {
	var cs []int
	for _, run := range r.Runs {
		if !slices.Contains(cs, run.Concurrency) {
			cs = append(cs, run.Concurrency)
		}
	}
	return cs
}

// servers returns the servers the report has runs of, in the order they ran.
func (r *Report) servers() []string {
	var ss []string
	for _, s := range []string{ServerOPA, ServerTollgate, ServerTollgatePG} {
		if slices.ContainsFunc(r.Runs, func(run Run) bool { return run.Server == s }) {
			ss = append(ss, s)
		}
	}
	return ss
}

var serverTitles = map[string]string{
	ServerOPA:             "stock OPA",
	ServerTollgate:        "Tollgate (SQLite, sync audit)",
	ServerTollgatePG:      "Tollgate (PostgreSQL, sync audit)",
	ServerTollgateNoViews: "Tollgate (SQLite, sync audit), pack without history views",
}

// Target is one row of the report's targets table.
type Target struct {
	Issue    int     // the issue that sets the target
	Name     string  // what is asked, e.g. "Tollgate on PostgreSQL ≥ 0.8× SQLite decisions/s at 16"
	Measured string  // the figure, formatted
	Ratio    float64 // the measured ratio, where the target is one (0 otherwise)
	Met      bool
}

// Targets computes every target row the report's figures allow, in the order the report shows them.
func (r *Report) Targets() []Target {
	var ts []Target
	cs := r.concurrencies()
	for _, c := range cs {
		ratio := r.Summary(ServerTollgate, c, "decisions/s") / r.Summary(ServerOPA, c, "decisions/s")
		ts = append(ts, Target{17, fmt.Sprintf("Tollgate ≥ 2× OPA decisions/s at %d (sync audit on)", c), fmt.Sprintf("%.2f×", ratio), ratio, ratio >= 2})
	}
	if slices.Contains(cs, 64) {
		ratio := r.Summary(ServerTollgate, 64, "p99 latency") / r.Summary(ServerOPA, 64, "p99 latency")
		ts = append(ts, Target{17, "Tollgate p99 at 64 ≤ ¼ of OPA's", fmt.Sprintf("%.2f× of OPA's", ratio), ratio, ratio <= 0.25})
	}
	b := r.Bench
	opaNs, tgNs := b.CPUNsPerOp["BenchmarkFloor/opa-prepared"], b.CPUNsPerOp["BenchmarkFloor/tollgate-engine"]
	opaWall, tgWall := b.NsPerOp["BenchmarkFloor/opa-prepared"], b.NsPerOp["BenchmarkFloor/tollgate-engine"]
	if opaNs > 0 && tgNs > 0 && tgWall > 0 {
		ts = append(ts, Target{17, "engine floor ≥ 2× OPA's prepared eval rate (BenchmarkFloor)",
			fmt.Sprintf("%.2f× by CPU per decision (%.2f× by wall time)", opaNs/tgNs, opaWall/tgWall), opaNs / tgNs, opaNs/tgNs >= 2})
	}
	small, large := b.CPUNsPerOp["BenchmarkScale/records=10000"], b.CPUNsPerOp["BenchmarkScale/records=1000000"]
	if small > 0 && large > 0 {
		d := large/small - 1
		ts = append(ts, Target{6, "decision cost at 1,000,000 vs 10,000 customer and item records within 10 %",
			fmt.Sprintf("%+.1f %% (CPU per decision)", 100*d), 0, d <= 0.10 && d >= -0.10})
	}
	if n, sec, cpu, ok := b.largestLoad(); ok {
		ts = append(ts, Target{6, "1,000,000 master-data records load in ≤ 10 s",
			fmt.Sprintf("%d records in %.2f s (%.2f s CPU)", n, sec, cpu), 0, n >= 1_000_000 && sec <= 10})
	}
	if slices.Contains(r.servers(), ServerTollgatePG) {
		for _, c := range cs {
			ts = append(ts, r.postgresTarget(c))
		}
	}
	if slices.ContainsFunc(r.Runs, func(run Run) bool { return run.Server == ServerTollgateNoViews }) {
		for _, c := range cs {
			ts = append(ts, r.historyTarget(c))
		}
	}
	if l := r.Lag; l != nil {
		// Issue 13 asks for the figures, not a bound: the row is met when they were measured.
		ts = append(ts, Target{13, fmt.Sprintf("lag from publishing an event to all %d replicas deciding on it, reported (p50/p99)", l.Replicas),
			fmt.Sprintf("p50 %s, p99 %s over %d events", ms(msOf(Quantile(l.All, 0.50))), ms(msOf(Quantile(l.All, 0.99))), l.Events()), 0, l.Events() > 0})
	}
	return ts
}

// postgresTarget is issue 13's row at concurrency c: the median decisions/s of Tollgate on PostgreSQL
// over that of Tollgate on SQLite, met at PostgresTarget or above. A run without a SQLite figure (or
// without PostgreSQL runs) does not meet it.
func (r *Report) postgresTarget(c int) Target {
	t := Target{Issue: 13, Name: fmt.Sprintf("Tollgate on PostgreSQL ≥ %.1f× Tollgate on SQLite decisions/s at %d", PostgresTarget, c)}
	pg, sq := r.Summary(ServerTollgatePG, c, "decisions/s"), r.Summary(ServerTollgate, c, "decisions/s")
	if sq <= 0 || pg <= 0 {
		t.Measured = "no figure"
		return t
	}
	t.Ratio = pg / sq
	t.Measured = fmt.Sprintf("%.2f× (%.0f vs %.0f decisions/s)", t.Ratio, pg, sq)
	t.Met = t.Ratio >= PostgresTarget
	return t
}

// historyTarget is issue 14's row at concurrency c: the median decisions/s of Tollgate on the pack as
// shipped over that of Tollgate on the pack without history views, met at HistoryTarget or above. A
// pack that declares no views is not met whatever the ratio: nothing was looked up, so the cost of
// history was not measured.
func (r *Report) historyTarget(c int) Target {
	t := Target{Issue: 14, Name: fmt.Sprintf("history look-ups cost ≤ 5 %%: Tollgate with the pack's history views ≥ %.2f× without, decisions/s at %d", HistoryTarget, c)}
	on, off := r.Summary(ServerTollgate, c, "decisions/s"), r.Summary(ServerTollgateNoViews, c, "decisions/s")
	if on <= 0 || off <= 0 {
		t.Measured = "no figure"
		return t
	}
	t.Ratio = on / off
	t.Measured = fmt.Sprintf("%.2f× (%.0f vs %.0f decisions/s)", t.Ratio, on, off)
	if len(r.HistoryViews) == 0 {
		t.Measured += "; the pack declares no views, so nothing was looked up"
		return t
	}
	t.Met = t.Ratio >= HistoryTarget
	return t
}

// printer writes formatted text; the section writers share one.
type printer func(format string, args ...any)

// WriteMarkdown writes the report as docs/performance.md, one section after another.
func (r *Report) WriteMarkdown(w io.Writer) error {
	bw := bufio.NewWriter(w)
	p := printer(func(format string, args ...any) { fmt.Fprintf(bw, format, args...) })
	for _, section := range []func(printer){r.writeRun, r.writeLoad, r.writePaths, r.writeHistory, r.writeLag, r.writeTargets, r.writeBench, r.writeBatch, r.writeRuns} {
		section(p)
	}
	return bw.Flush()
}

func (r *Report) writeRun(p printer) {
	hasPG := slices.Contains(r.servers(), ServerTollgatePG)
	title := "# Performance: Tollgate beside stock OPA\n\n"
	if hasPG {
		title = "# Performance: Tollgate on SQLite and on PostgreSQL beside stock OPA\n\n"
	}
	p("%s", title)
	p("Written by the harness in `test/perf` (`make perf`); every figure below was measured by the run described here.\n")
	p("Re-run it to measure your machine; figures from a different machine or load are not comparable.\n\n")
	p("## Run\n\n")
	p("- Date: %s\n", r.Date.UTC().Format(time.RFC3339))
	p("- Command: `%s`\n", r.Command)
	p("- Source measured: %s\n", r.Source)
	p("- Machine: %d CPUs (`nproc`), %s; %s; OPA %s\n", r.Machine.NProc, r.Machine.CPUModel, r.Machine.GoVersion, r.Machine.OPAVersion)
	p("- Load average (1, 5, 15 min) before: %s; after: %s. The machine is shared: a load above the CPU count means other\n  work competed with the servers and the load tool.\n", r.Machine.LoadBefore, r.Machine.LoadAfter)
	p("- Stock OPA: `opa run --server --addr 127.0.0.1:PORT --log-level error BUNDLEDIR`, decision logs off, built from the\n  OPA module in go.mod; the pack with `tollgate/md.rego` replaced by `test/perf/opa/md.rego` (reads `data.masterdata`),\n  master data exported from the same records to `data.json`. REST `POST /v1/data/tollgate/decision`, keep-alive\n  connections (one per worker).\n")
	p("- Tollgate: `tollgate serve` with its defaults (sync durable hash-chained audit log in SQLite in a temp data dir,\n  the pack embedded in the binary, %s),\n  `--masterdata DIR` with the same records as NDJSON change events. gRPC with the Go client, one connection.\n", r.viewsClause())
	if pg := r.Postgres; pg != nil && hasPG {
		p("- Tollgate on PostgreSQL: the same, with `--audit-store postgres://…/DB` (sync mode, the default) on a database\n  created for the run and dropped after it, on the server at `%s` (PostgreSQL %s, synchronous_commit=%s,\n  loopback). Its server CPU is the tollgate process's; PostgreSQL CPU is that of the database's backend processes\n  (pg_stat_activity, /proc/PID/stat) over the same run, shown apart and added in the row below it.\n",
			pg.Server, pg.Version, pg.SynchronousCommit)
	}
	p("- Master data: the demo data plus %d generated customers, %d items and their inventory rows.\n", r.Volume, r.Volume)
	p("- Corpus: %d requests from seed %d, cycling through %d generators (%s); they reach %d distinct primary reasons.\n",
		r.Corpus, r.Seed, len(r.Families), strings.Join(r.Families, ", "), r.Reasons)
	var order []string
	for _, c := range r.concurrencies() {
		for _, s := range append(r.servers(), ServerTollgateNoViews) {
			if slices.ContainsFunc(r.Runs, func(run Run) bool { return run.Server == s && run.Concurrency == c }) {
				order = append(order, fmt.Sprintf("%s %d", s, c))
			}
		}
	}
	p("  Before any load, every request was sent to stock OPA and to %s: same effect, primary reason and approvers for\n  all %d.", r.comparedNames(), r.Corpus)
	if len(r.HistoryViews) > 0 && !slices.Contains(r.Compared, ServerTollgate) {
		p(" Tollgate on the pack as shipped is not compared: its history-aware rules answer from the decisions before (a\n  split purchase, an invoice already posted), which stock OPA cannot see; it runs the same binary and rules with the\n  views declared (see History look-ups).")
	}
	p("\n")
	p("- Load: closed loop, %s per run, %d repetitions interleaved (%s, and again). Latency is\n  per answered request (all samples, sorted); CPU is user+system time of the server process (/proc/PID/stat) and of\n  the load process (getrusage) divided by decisions answered.\n\n", r.Duration, r.Reps, strings.Join(order, ", "))
}

// viewsClause says which history views the measured pack declares.
func (r *Report) viewsClause() string {
	if len(r.HistoryViews) == 0 {
		return "declaring no history views"
	}
	return fmt.Sprintf("declaring %d history views: %s", len(r.HistoryViews), strings.Join(r.HistoryViews, ", "))
}

// comparedNames lists the servers compared with stock OPA as the report titles them.
func (r *Report) comparedNames() string {
	if len(r.Compared) == 0 {
		return "no Tollgate server"
	}
	names := make([]string, len(r.Compared))
	for i, s := range r.Compared {
		names[i] = serverTitles[s]
	}
	return strings.Join(names, ", ")
}

func (r *Report) writeLoad(p printer) {
	servers := r.servers()
	hasPG := slices.Contains(servers, ServerTollgatePG)
	for _, c := range r.concurrencies() {
		p("## %d concurrent requests\n\n", c)
		p("Median of %d runs, [min – max].\n\n", r.Reps)
		p("| metric |")
		for _, s := range servers {
			p(" %s |", serverTitles[s])
		}
		p(" Tollgate / OPA |")
		if hasPG {
			p(" PostgreSQL / SQLite |")
		}
		cols := len(servers) + 1
		if hasPG {
			cols++
		}
		p("\n|---|%s\n", strings.Repeat("---|", cols))
		for _, m := range metrics {
			if m.withPG && !hasPG {
				continue
			}
			p("| %s |", m.name)
			for _, s := range servers {
				if m.pgOnly && s != ServerTollgatePG {
					p(" — |")
					continue
				}
				v := summarize(r.values(s, c, m))
				p(" %s [%s – %s] |", m.format(v.med), m.format(v.lo), m.format(v.hi))
			}
			p(" %s |", r.ratio(m, c, ServerTollgate, ServerOPA))
			if hasPG {
				p(" %s |", r.ratio(m, c, ServerTollgatePG, ServerTollgate))
			}
			p("\n")
		}
		p("\n")
	}
}

// ratio formats the median of m for server a over that of server b at concurrency c.
func (r *Report) ratio(m metric, c int, a, b string) string {
	va, vb := summarize(r.values(a, c, m)).med, summarize(r.values(b, c, m)).med
	if vb == 0 || m.name == "errors" || m.pgOnly {
		return "—"
	}
	return fmt.Sprintf("%.2f×", va/vb)
}

// historyMetrics are the rows of the history section: throughput, latency and the server's CPU.
var historyMetrics = []string{"decisions/s", "p50 latency", "p99 latency", "server CPU / decision"}

// writeHistory is the cost of history look-ups: Tollgate on the pack as shipped beside Tollgate on the
// pack without its history views.
func (r *Report) writeHistory(p printer) {
	p("## History look-ups (issue 14)\n\n")
	if !slices.ContainsFunc(r.Runs, func(run Run) bool { return run.Server == ServerTollgateNoViews }) {
		p("Not measured in this report (`-skip-history`). The start-up rebuild from 1,000,000 postings: `make perf-history`,\n")
		p("figures in [history.md](history.md#rebuild).\n\n")
		return
	}
	p("- With views: the Tollgate rows above, `tollgate serve` on the pack as shipped,\n  %s. For a request of an\n", r.viewsClause())
	p("  action a view counts, the decision path takes the locks of its view keys before evaluating, the rules call\n")
	p("  `tollgate.history`, and the record is observed into the index after its audit write.\n")
	p("- Without views: the same binary with `--bundle DIR`, DIR the same pack with `params.history.views` removed from its\n")
	p("  data.json (`perf.WriteWithoutHistoryViews`; its Rego tests, which test the views, left out): the rules make no\n")
	p("  look-ups, and the service takes no locks and observes nothing. Stock OPA's twin is built from this variant; the\n")
	p("  exactness check above compares OPA with it.\n")
	if len(r.HistoryCoverage) > 0 {
		var cov []string
		for _, v := range slices.Sorted(maps.Keys(r.HistoryCoverage)) {
			c := r.HistoryCoverage[v]
			cov = append(cov, fmt.Sprintf("`%s` %d on %d keys", v, c.Requests, c.Keys))
		}
		p("- Corpus requests each view counts (of %d, before effects: the keys locked and looked up): %s. The load cycles\n", r.Corpus, strings.Join(cov, ", "))
		p("  through the corpus, so every pass adds its counted decisions to the same keys again: later runs look up keys\n")
		p("  holding more prior decisions (up to each view's window).\n")
	}
	p("- Same load as above (closed loop, %s per run, %d repetitions interleaved with the other servers); command `%s`\n", r.Duration, r.Reps, r.Command)
	p("  (`-skip-history` leaves the server without views out of the load). Target: with ÷ without ≥ %.2f in decisions/s\n", HistoryTarget)
	p("  at each concurrency (issue 14: history look-ups cost at most 5 %% of decisions/s). When the load average exceeds\n")
	p("  the CPU count, read the server CPU per decision beside it: the work a decision costs, whatever the neighbours do.\n")
	p("- Not measured here: the start-up rebuild of the index from 1,000,000 postings in the audit store and the heap per\n")
	p("  tracked decision, which `make perf-history` measures on its own (figures in [history.md](history.md#rebuild)).\n\n")
	p("| concurrency | metric | with views | without views | with ÷ without |\n|---|---|---|---|---|\n")
	for _, c := range r.concurrencies() {
		for _, name := range historyMetrics {
			for _, m := range metrics {
				if m.name != name {
					continue
				}
				on, off := summarize(r.values(ServerTollgate, c, m)), summarize(r.values(ServerTollgateNoViews, c, m))
				p("| %d | %s | %s [%s – %s] | %s [%s – %s] | %s |\n", c, m.name, m.format(on.med), m.format(on.lo), m.format(on.hi),
					m.format(off.med), m.format(off.lo), m.format(off.hi), r.ratio(m, c, ServerTollgate, ServerTollgateNoViews))
			}
		}
	}
	p("\n")
}

// writeLag is the fleet's event-to-decision lag, with how it was measured.
func (r *Report) writeLag(p printer) {
	p("## Event to decision lag across a fleet\n\n")
	l := r.Lag
	if l == nil {
		p("Not measured in this report (`-skip-lag`).\n\n")
		return
	}
	p("- Fleet: %d replicas of `tollgate serve` as processes on loopback, each with\n", l.Replicas)
	p("  `--masterdata-stream %s` on a stream made for the run and deleted after it, and a sync audit log on\n", r.LagNATS)
	p("  one PostgreSQL database made for the run (one shared `--audit-payload-key`). The demo master data is published\n")
	p("  to the stream before they start; they load nothing else. They run the pack without history views (as the\n")
	p("  baseline of History look-ups): the probe below repeats one PO, which the pack's TH-7 would count as a split\n")
	p("  purchase, and the lag of a master-data event does not depend on the views.\n")
	p("- Events: %d, each an UPSERT of supplier `%s` flipping it between APPROVED and BLOCKED. The next event is published\n", l.Events(), lagSupplier)
	p("  %s after every replica decided on the previous one, so each is measured on a settled, idle fleet.\n", l.Gap)
	p("- Probe: from just before each publish, one goroutine per replica sends the same `PO.SUBMIT` (u_buyer1, DC1, MRO,\n")
	p("  120.00 USD, supplier `%s`) back to back, without a consistency token, until the replica answers at a\n", lagSupplier)
	p("  `masterdata_revision` at or past the event's stream sequence. Every answer is checked against the supplier's\n")
	p("  status at the revision it reports (%s while APPROVED, DENY SUPPLIER_BLOCKED while BLOCKED):\n", l.Approved)
	p("  a wrong one fails the run. A replica's lag is the time from just before the publish to the end of that answer;\n")
	p("  the event's lag is that of the last of the %d replicas.\n", l.Replicas)
	p("- Resolution: a sample includes up to one Decide round trip of polling (the event may land just after a call was\n")
	p("  evaluated). Mean Decide round trip while polling in this run: **%s** (%d calls, each a sync audit commit on\n", ms(msOf(l.MeanDecide())), l.Calls)
	p("  PostgreSQL). Mean time for JetStream to acknowledge a publish: %s (inside the lag).\n\n", ms(msOf(l.MeanPublish())))
	p("| lag after publish | p50 | p99 | max |\n|---|---|---|---|\n")
	row := func(name string, ds []time.Duration) {
		if len(ds) == 0 {
			p("| %s | — | — | — |\n", name)
			return
		}
		p("| %s | %s | %s | %s |\n", name, ms(msOf(Quantile(ds, 0.50))), ms(msOf(Quantile(ds, 0.99))), ms(msOf(slices.Max(ds))))
	}
	row(fmt.Sprintf("**all %d replicas decided on it**", l.Replicas), l.All)
	for i, ds := range l.PerReplica {
		row(fmt.Sprintf("replica %d", i+1), ds)
	}
	p("\n")
}

// writePaths says which evaluator each Tollgate server decided with (issue 17): the planner-IR
// evaluator once the bundle's exactness gate passed, else OPA's topdown.
func (r *Report) writePaths(p printer) {
	if len(r.Paths) == 0 {
		return
	}
	p("## Evaluation paths (issue 17)\n\n| server | path | exactness gate | requests compared | gate time |\n|---|---|---|---|---|\n")
	for _, s := range slices.Sorted(maps.Keys(r.Paths)) {
		e := r.Paths[s]
		gate := e.Gate
		if e.Reason != "" {
			gate += ": " + e.Reason
		}
		p("| %s | %s | %s | %d | %s |\n", s, e.Path, gate, e.Checked, e.Elapsed.Round(time.Millisecond))
	}
	p("\nEach server waited for its gate's verdict before the load: until then a bundle decides on topdown. The gate decides\n")
	p("every request of `server/engine/gatecorpus` (the 1,200-request perf corpus, every decision case, the demo requests)\n")
	p("on both paths and requires the same effect, reasons, approvers and recorded facts (docs/evaluation.md).\n\n")
}

// writeBatch reports BenchmarkDecideBatch (issue 17): a batch of 100 is one group commit.
func (r *Report) writeBatch(p printer) {
	b := r.Batch
	if len(b.Rate) == 0 && len(b.Failed) == 0 {
		return
	}
	p("## DecideBatch: one group commit (issue 17)\n\n")
	p("`go test -run '^$' -bench BenchmarkDecideBatch -benchtime 30x ./test/e2e/`: one server (IR path, sync audit log\n")
	p("in SQLite), 100 decisions per op over gRPC: one `DecideBatch` of 100, 100 `Decide` calls one after another,\n")
	p("and 100 `Decide` calls at once.\n\n| how | decisions/s | ÷ sequential |\n|---|---|---|\n")
	seq := b.Rate["BenchmarkDecideBatch/sequential"]
	for _, name := range []string{"batch", "sequential", "concurrent"} {
		v := b.Rate["BenchmarkDecideBatch/"+name]
		ratio := "—"
		if seq > 0 && v > 0 {
			ratio = fmt.Sprintf("%.2f×", v/seq)
		}
		p("| %s | %.0f | %s |\n", name, v, ratio)
	}
	if len(b.Failed) > 0 {
		p("\n**Failures:** %s\n", strings.Join(b.Failed, "; "))
	}
	p("\n")
}

func (r *Report) writeTargets(p printer) {
	p("## Targets\n\n| target | issue | measured | met |\n|---|---|---|---|\n")
	for _, t := range r.Targets() {
		p("| %s | %d | %s | %s |\n", t.Name, t.Issue, t.Measured, yes(t.Met))
	}
	p("\n")
}

func (r *Report) writeBench(p printer) {
	b := r.Bench
	p("## In-process floor and scale (`go test -bench`, TOLLGATE_PERF=1)\n\n")
	if len(b.NsPerOp) == 0 && len(b.Failed) == 0 {
		p("Not run in this report (`-skip-bench`).\n\n")
		return
	}
	p("| benchmark | CPU ns/op | decisions per CPU-second | wall ns/op | B/op | allocs/op |\n|---|---|---|---|---|---|\n")
	for _, name := range slices.Sorted(maps.Keys(b.NsPerOp)) {
		cpu := b.CPUNsPerOp[name]
		p("| %s | %.0f | %.0f | %.0f | %.0f | %.0f |\n", name, cpu, 1e9/cpu, b.NsPerOp[name], b.BytesPerOp[name], b.AllocsPerOp[name])
	}
	p("\n")
	p("- `BenchmarkFloor/opa-prepared`: stock OPA `PreparedEvalQuery.Eval` with `EvalParsedInput` (input values built\n  outside the loop), the stock-OPA bundle, master data in OPA's in-memory store. `BenchmarkFloor/tollgate-engine`:\n  `engine.Decide` over go-memdb (input built from the request, md.get builtins, every fact recorded, result parsed) on\n  the path the service settles on: the planner-IR evaluator, after the exactness gate passed.\n  `BenchmarkFloor/tollgate-engine-topdown`: the same on OPA's topdown evaluator (`--fast-path=false`).\n  Same 1,200-request corpus, one decision per op.\n")
	p("- `BenchmarkScale`: the engine path over the same requests (a corpus over 5,000 generated ids, present at both\n  sizes) with N records, half customers and half items, loaded from NDJSON by `LoadDir` (figures below).\n  CPU includes the collector, whose share shrinks as the live heap grows: over 1,000,000 records collections are\n  rarer, so a decision there can cost less CPU than over 10,000. Equal B/op and allocs/op show the work is the same.\n")
	p("- CPU ns/op is the benchmark process's CPU time (GC included) per decision; it is the comparison to trust when\n  the load average exceeds the CPU count, since wall ns/op then includes time spent waiting for a CPU.\n")
	for _, k := range slices.Sorted(maps.Keys(b.Values)) {
		p("- %s = %s\n", k, b.Values[k])
	}
	if len(b.Failed) > 0 {
		p("\n**In-process benchmark failures:** %s\n", strings.Join(b.Failed, "; "))
	}
	p("\n")
}

func (r *Report) writeRuns(p printer) {
	hasPG := slices.Contains(r.servers(), ServerTollgatePG)
	p("## Every run\n\n| rep | concurrency | server | decisions/s | p50 | p99 | p99.9 | server CPU/dec |")
	if hasPG {
		p(" PostgreSQL CPU/dec |")
	}
	p(" client CPU/dec | errors |\n|---|---|---|---|---|---|---|---|---|---|")
	if hasPG {
		p("---|")
	}
	p("\n")
	for _, run := range r.Runs {
		s := run.Stats
		p("| %d | %d | %s | %.0f | %s | %s | %s | %s |", run.Rep, run.Concurrency, run.Server, s.Rate(),
			ms(msOf(s.Quantile(0.5))), ms(msOf(s.Quantile(0.99))), ms(msOf(s.Quantile(0.999))), us(usOf(s.ServerCPUPerDecision())))
		switch {
		case hasPG && run.Server == ServerTollgatePG:
			p(" %s |", us(usOf(s.StoreCPUPerDecision())))
		case hasPG:
			p(" — |")
		}
		p(" %s | %d |\n", us(usOf(s.ClientCPUPerDecision())), s.Errors)
	}
	for _, run := range r.Runs {
		if run.Stats.FirstError != "" {
			p("\nFirst error of %s at %d (rep %d): `%s`\n", run.Server, run.Concurrency, run.Rep, run.Stats.FirstError)
		}
	}
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// largestLoad is the biggest LoadDir the scale benchmark logged: records, wall and CPU seconds.
func (b Bench) largestLoad() (n int, sec, cpu float64, ok bool) {
	for k, v := range b.Values {
		rest, found := strings.CutPrefix(k, "load_seconds@")
		if !found {
			continue
		}
		if m, _ := strconv.Atoi(rest); m > n {
			n, ok = m, true
			sec, _ = strconv.ParseFloat(v, 64)
			cpu, _ = strconv.ParseFloat(b.Values["load_cpu_seconds@"+rest], 64)
		}
	}
	return n, sec, cpu, ok
}
