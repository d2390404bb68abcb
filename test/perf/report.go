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

// Run is one closed-loop run in a report.
type Run struct {
	Server      string // "OPA" or "Tollgate"
	Concurrency int
	Rep         int
	Stats       RunStats
}

// Report is everything docs/performance.md shows.
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
}

// Bench holds the in-process results parsed from `go test -bench` output.
type Bench struct {
	NsPerOp     map[string]float64 // benchmark name without the -GOMAXPROCS suffix → ns/op (wall)
	CPUNsPerOp  map[string]float64 // → cpu-ns/op: process CPU time per op
	AllocsPerOp map[string]float64
	BytesPerOp  map[string]float64
	Values      map[string]string // the key=value pairs of "PERF" log lines
	Failed      []string          // FAIL lines
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
}

func ms(v float64) string  { return fmt.Sprintf("%.2f ms", v) }
func us(v float64) string  { return fmt.Sprintf("%.0f µs", v) }
func num(v float64) string { return fmt.Sprintf("%.0f", v) }

var metrics = []metric{
	{"decisions/s", RunStats.Rate, num},
	{"p50 latency", func(s RunStats) float64 { return msOf(s.Quantile(0.50)) }, ms},
	{"p99 latency", func(s RunStats) float64 { return msOf(s.Quantile(0.99)) }, ms},
	{"p99.9 latency", func(s RunStats) float64 { return msOf(s.Quantile(0.999)) }, ms},
	{"server CPU / decision", func(s RunStats) float64 { return usOf(s.ServerCPUPerDecision()) }, us},
	{"client CPU / decision", func(s RunStats) float64 { return usOf(s.ClientCPUPerDecision()) }, us},
	{"errors", func(s RunStats) float64 { return float64(s.Errors) }, num},
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

// WriteMarkdown writes the report as docs/performance.md.
func (r *Report) WriteMarkdown(w io.Writer) error {
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	p("# Performance: Tollgate beside stock OPA\n\n")
	p("Written by the harness in `test/perf` (`make perf`); every figure below was measured by the run described here.\n")
	p("Re-run it to measure your machine; figures from a different machine or load are not comparable.\n\n")
	p("## Run\n\n")
	p("- Date: %s\n", r.Date.UTC().Format(time.RFC3339))
	p("- Command: `%s`\n", r.Command)
	p("- Source measured: %s\n", r.Source)
	p("- Machine: %d CPUs (`nproc`), %s; %s; OPA %s\n", r.Machine.NProc, r.Machine.CPUModel, r.Machine.GoVersion, r.Machine.OPAVersion)
	p("- Load average (1, 5, 15 min) before: %s; after: %s. The machine is shared: a load above the CPU count means other\n  work competed with both servers and the load tool.\n", r.Machine.LoadBefore, r.Machine.LoadAfter)
	p("- Stock OPA: `opa run --server --addr 127.0.0.1:PORT --log-level error BUNDLEDIR`, decision logs off, built from the\n  OPA module in go.mod; the pack with `tollgate/md.rego` replaced by `test/perf/opa/md.rego` (reads `data.masterdata`),\n  master data exported from the same records to `data.json`. REST `POST /v1/data/tollgate/decision`, keep-alive\n  connections (one per worker).\n")
	p("- Tollgate: `tollgate serve` with its defaults (sync durable hash-chained audit log in SQLite in a temp data dir),\n  `--masterdata DIR` with the same records as NDJSON change events. gRPC with the Go client, one connection.\n")
	p("- Master data: the demo data plus %d generated customers, %d items and their inventory rows.\n", r.Volume, r.Volume)
	p("- Corpus: %d requests from seed %d, cycling through %d generators (%s); they reach %d distinct primary reasons.\n",
		r.Corpus, r.Seed, len(r.Families), strings.Join(r.Families, ", "), r.Reasons)
	p("  Before any load, every request was sent to both servers: same effect, primary reason and approvers for all %d.\n", r.Corpus)
	p("- Load: closed loop, %s per run, %d repetitions interleaved (OPA 16, Tollgate 16, OPA 64, Tollgate 64, …). Latency is\n  per answered request (all samples, sorted); CPU is user+system time of the server process (/proc/PID/stat) and of\n  the load process (getrusage) divided by decisions answered.\n\n", r.Duration, r.Reps)

	for _, c := range r.concurrencies() {
		p("## %d concurrent requests\n\n", c)
		p("Median of %d runs, [min – max].\n\n", r.Reps)
		p("| metric | stock OPA | Tollgate (sync audit) | Tollgate / OPA |\n|---|---|---|---|\n")
		for _, m := range metrics {
			o, t := summarize(r.values("OPA", c, m)), summarize(r.values("Tollgate", c, m))
			ratio := "—"
			if o.med != 0 && m.name != "errors" {
				ratio = fmt.Sprintf("%.2f×", t.med/o.med)
			}
			p("| %s | %s [%s – %s] | %s [%s – %s] | %s |\n", m.name, m.format(o.med), m.format(o.lo), m.format(o.hi),
				m.format(t.med), m.format(t.lo), m.format(t.hi), ratio)
		}
		p("\n")
	}

	p("## Targets (issue 6)\n\n| target | measured | met |\n|---|---|---|\n")
	for _, c := range r.concurrencies() {
		ratio := r.Summary("Tollgate", c, "decisions/s") / r.Summary("OPA", c, "decisions/s")
		p("| Tollgate ≥ 2× OPA decisions/s at %d | %.2f× | %s |\n", c, ratio, yes(ratio >= 2))
	}
	if slices.Contains(r.concurrencies(), 64) {
		ratio := r.Summary("Tollgate", 64, "p99 latency") / r.Summary("OPA", 64, "p99 latency")
		p("| Tollgate p99 at 64 ≤ ¼ of OPA's | %.2f× of OPA's | %s |\n", ratio, yes(ratio <= 0.25))
	}
	b := r.Bench
	opaNs, tgNs := b.CPUNsPerOp["BenchmarkFloor/opa-prepared"], b.CPUNsPerOp["BenchmarkFloor/tollgate-engine"]
	opaWall, tgWall := b.NsPerOp["BenchmarkFloor/opa-prepared"], b.NsPerOp["BenchmarkFloor/tollgate-engine"]
	if opaNs > 0 && tgNs > 0 && tgWall > 0 {
		p("| engine path ≥ 0.85× raw prepared eval rate | %.2f× by CPU per decision (%.2f× by wall time) | %s |\n", opaNs/tgNs, opaWall/tgWall, yes(opaNs/tgNs >= 0.85))
	}
	small, large := b.CPUNsPerOp["BenchmarkScale/records=10000"], b.CPUNsPerOp["BenchmarkScale/records=1000000"]
	if small > 0 && large > 0 {
		d := large/small - 1
		p("| decision cost at 1,000,000 vs 10,000 customer and item records within 10 %% | %+.1f %% (CPU per decision) | %s |\n", 100*d, yes(d <= 0.10 && d >= -0.10))
	}
	if n, sec, cpu, ok := b.largestLoad(); ok {
		p("| 1,000,000 master-data records load in ≤ 10 s | %d records in %.2f s (%.2f s CPU) | %s |\n", n, sec, cpu, yes(n >= 1_000_000 && sec <= 10))
	}
	p("\n")

	p("## In-process floor and scale (`go test -bench`, TOLLGATE_PERF=1)\n\n")
	p("| benchmark | CPU ns/op | decisions per CPU-second | wall ns/op | B/op | allocs/op |\n|---|---|---|---|---|---|\n")
	for _, name := range slices.Sorted(maps.Keys(b.NsPerOp)) {
		cpu := b.CPUNsPerOp[name]
		p("| %s | %.0f | %.0f | %.0f | %.0f | %.0f |\n", name, cpu, 1e9/cpu, b.NsPerOp[name], b.BytesPerOp[name], b.AllocsPerOp[name])
	}
	p("\n")
	p("- `BenchmarkFloor/opa-prepared`: stock OPA `PreparedEvalQuery.Eval` with `EvalParsedInput` (input values built\n  outside the loop), the stock-OPA bundle, master data in OPA's in-memory store. `BenchmarkFloor/tollgate-engine`:\n  `engine.Decide` over go-memdb (input built from the request, md.get builtins, every fact recorded, result parsed).\n  Same 1,200-request corpus, one decision per op.\n")
	p("- `BenchmarkScale`: the engine path over the same requests (a corpus over 5,000 generated ids, present at both\n  sizes) with N records, half customers and half items, loaded from NDJSON by `LoadDir` (figures below).\n  CPU includes the collector, whose share shrinks as the live heap grows: over 1,000,000 records collections are\n  rarer, so a decision there can cost less CPU than over 10,000. Equal B/op and allocs/op show the work is the same.\n")
	p("- CPU ns/op is the benchmark process's CPU time (GC included) per decision; it is the comparison to trust when\n  the load average exceeds the CPU count, since wall ns/op then includes time spent waiting for a CPU.\n")
	for _, k := range slices.Sorted(maps.Keys(b.Values)) {
		p("- %s = %s\n", k, b.Values[k])
	}
	if len(b.Failed) > 0 {
		p("\n**In-process benchmark failures:** %s\n", strings.Join(b.Failed, "; "))
	}

	p("\n## Every run\n\n| rep | concurrency | server | decisions/s | p50 | p99 | p99.9 | server CPU/dec | client CPU/dec | errors |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, run := range r.Runs {
		s := run.Stats
		p("| %d | %d | %s | %.0f | %s | %s | %s | %s | %s | %d |\n", run.Rep, run.Concurrency, run.Server, s.Rate(),
			ms(msOf(s.Quantile(0.5))), ms(msOf(s.Quantile(0.99))), ms(msOf(s.Quantile(0.999))),
			us(usOf(s.ServerCPUPerDecision())), us(usOf(s.ClientCPUPerDecision())), s.Errors)
	}
	for _, run := range r.Runs {
		if run.Stats.FirstError != "" {
			p("\nFirst error of %s at %d (rep %d): `%s`\n", run.Server, run.Concurrency, run.Rep, run.Stats.FirstError)
		}
	}
	return bw.Flush()
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
