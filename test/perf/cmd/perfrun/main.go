// Command perfrun is the side-by-side benchmark of Tollgate against stock OPA (issue 6). `make perf` runs
// it from the repository root:
//
//	go run ./test/perf/cmd/perfrun -out docs/performance.md
//
// It builds stock OPA (the OPA module version in go.mod) and tollgate, writes the demo master data plus
// generated volume as NDJSON, exports the same records to OPA's data.json beside the pack (md.rego swapped
// for test/perf/opa/md.rego), starts both servers on loopback, checks that they give the same decision for
// every corpus request, drives each with a closed loop at each concurrency (runs interleaved), runs the
// in-process floor and scale benchmarks, and writes the report. Every process it starts is stopped on
// exit, on error and on interrupt.
//
// A third server, Tollgate with its sync audit log in PostgreSQL (issue 13), runs beside the two on a
// database created for the run on the server -postgres names (the machine's own by default) and dropped
// after it; the report sets its decisions/s against Tollgate on SQLite. -skip-postgres leaves it out; a
// PostgreSQL that cannot be reached is an error otherwise, not a silent omission.
//
// The cost of history look-ups (issue 14) is one more Tollgate beside them, on the pack with its
// params.history.views removed (perf.WriteWithoutHistoryViews, passed with --bundle): its rules look
// nothing up, and the service takes no per-key locks and observes nothing. Stock OPA's twin is built
// from that variant, and once the pack declares views only this server is checked against OPA: the
// others answer from the decisions before, which OPA cannot see. The report sets the decisions/s of
// Tollgate on the pack as shipped against it. -skip-history leaves it out of the load (it is still
// started for the check).
//
// Last, with the servers stopped, it measures the fleet's event-to-decision lag (issue 13): three
// replicas of tollgate on a stream made for the run on the NATS server -nats names and on a database of
// their own on the -postgres server, and -lag-events master-data events, each timed from its publish
// until all three decide on it (see perf.LagFleet). -skip-lag leaves it out; a NATS server that cannot
// be reached is an error at the start otherwise.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tollgate/tollgate/bundles/demo"
	"github.com/tollgate/tollgate/policies"
	"github.com/tollgate/tollgate/server/masterdata"
	"github.com/tollgate/tollgate/test/perf"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "perfrun: %v\n", err)
		os.Exit(1)
	}
}

type options struct {
	out         string
	dur, warmup time.Duration
	reps        int
	conc        []int
	corpus      int
	seed        uint64
	volume      int
	benchtime   string
	skipBench   bool
	keep        bool
	command     string
	postgres    string
	skipPG      bool
	nats        string
	skipLag     bool
	lagEvents   int
	skipHistory bool
}

// parseFlags parses and checks perfrun's flags.
func parseFlags(args []string) (options, error) {
	fset := flag.NewFlagSet("perfrun", flag.ContinueOnError)
	var o options
	var conc string
	fset.StringVar(&o.out, "out", "docs/performance.md", "report file")
	fset.DurationVar(&o.dur, "dur", 10*time.Second, "duration of one run")
	fset.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured warm-up per server before the runs")
	fset.IntVar(&o.reps, "reps", 3, "repetitions of each (server, concurrency) run, interleaved")
	fset.StringVar(&conc, "conc", "16,64", "comma-separated concurrencies")
	fset.IntVar(&o.corpus, "corpus", 1200, "corpus size (at least 1000 for a report)")
	fset.Uint64Var(&o.seed, "seed", 6, "corpus seed")
	fset.IntVar(&o.volume, "volume", 10_000, "generated customers and items beside the demo data")
	fset.StringVar(&o.benchtime, "benchtime", "2s", "-benchtime of the in-process benchmarks")
	fset.BoolVar(&o.skipBench, "skip-bench", false, "skip the in-process floor and scale benchmarks")
	fset.BoolVar(&o.keep, "keep", false, "keep the work directory (binaries, bundle, logs)")
	fset.StringVar(&o.command, "command", "make perf", "the command recorded in the report")
	fset.StringVar(&o.postgres, "postgres", perf.DefaultPostgresURL, "PostgreSQL server URL on which a database is created for the run and dropped after it")
	fset.BoolVar(&o.skipPG, "skip-postgres", false, "leave out Tollgate on PostgreSQL")
	fset.StringVar(&o.nats, "nats", perf.DefaultNATSURL, "NATS JetStream server URL on which a stream is made for the event-to-decision lag and deleted after it")
	fset.BoolVar(&o.skipLag, "skip-lag", false, "leave out the event-to-decision lag of three replicas (needs NATS and PostgreSQL)")
	fset.IntVar(&o.lagEvents, "lag-events", 200, "master-data events whose lag to all three replicas is measured")
	fset.BoolVar(&o.skipHistory, "skip-history", false, "leave Tollgate on the pack without history views out of the load (it is still started to check OPA's answers)")
	if err := fset.Parse(args); err != nil {
		return o, err
	}
	if fset.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fset.Args())
	}
	for _, s := range strings.Split(conc, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || c <= 0 {
			return o, fmt.Errorf("-conc: %q is not a positive integer", s)
		}
		o.conc = append(o.conc, c)
	}
	if o.corpus < 1 || o.reps < 1 || o.dur <= 0 {
		return o, errors.New("-corpus, -reps and -dur must be positive")
	}
	if !o.skipLag {
		if o.lagEvents < 1 {
			return o, fmt.Errorf("-lag-events: %d, want at least 1 (or -skip-lag)", o.lagEvents)
		}
		if !strings.HasPrefix(o.nats, "nats://") {
			return o, fmt.Errorf("-nats: %q, want a nats:// URL (or -skip-lag)", o.nats)
		}
	}
	return o, nil
}

func run(ctx context.Context, args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}

	root, err := repoRoot()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "tollgate-perf-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintf(os.Stderr, "work directory: %s\n", work)
	} else {
		defer os.RemoveAll(work)
	}
	rep := &perf.Report{Date: time.Now(), Command: o.command, Corpus: o.corpus, Seed: o.seed, Volume: o.volume,
		Families: perf.Families(), Duration: o.dur, Reps: o.reps}
	rep.Machine = machine(root)
	rep.Source = source(root)

	var pg *perf.PostgresDB
	if !o.skipPG {
		// First, so that an unreachable server fails the run before the builds.
		step("create a PostgreSQL database for the audit log")
		if pg, err = perf.NewPostgresDB(ctx, o.postgres); err != nil {
			return err
		}
		defer func() {
			if err := pg.Drop(ctx); err != nil {
				step("warning: " + err.Error())
			}
		}()
		u, _ := url.Parse(o.postgres)
		rep.Postgres = &perf.PostgresInfo{Server: u.Redacted(), Version: pg.Version, SynchronousCommit: pg.SynchronousCommit}
	}
	var lagDB *perf.PostgresDB
	var lagStream *perf.NATSStream
	if !o.skipLag {
		// Also before the builds: the lag's fleet needs NATS JetStream and a database of its own.
		step("create a NATS stream and a PostgreSQL database for the event-to-decision lag")
		if lagStream, err = perf.NewNATSStream(ctx, o.nats); err != nil {
			return err
		}
		defer func() {
			if err := lagStream.Delete(ctx); err != nil {
				step("warning: " + err.Error())
			}
		}()
		if lagDB, err = perf.NewPostgresDB(ctx, o.postgres); err != nil {
			return fmt.Errorf("event-to-decision lag: %w", err)
		}
		defer func() {
			if err := lagDB.Drop(ctx); err != nil {
				step("warning: " + err.Error())
			}
		}()
		u, _ := url.Parse(o.nats)
		rep.LagNATS = u.Redacted()
	}

	step("build stock OPA and tollgate")
	opaBin, tgBin := filepath.Join(work, "opa"), filepath.Join(work, "tollgate")
	if err := goCmd(ctx, root, nil, "build", "-o", opaBin, "github.com/open-policy-agent/opa"); err != nil {
		return err
	}
	if err := goCmd(ctx, root, nil, "build", "-o", tgBin, "./cmd/tollgate"); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, opaBin, "version").Output(); err == nil {
		rep.Machine.OPAVersion = strings.TrimPrefix(strings.SplitN(string(out), "\n", 2)[0], "Version: ")
	}

	step("write master data, the pack without history views and the stock-OPA bundle")
	mdDir, bundleDir, noViewsDir := filepath.Join(work, "masterdata"), filepath.Join(work, "opa-bundle"), filepath.Join(work, "pack-no-views")
	if rep.HistoryViews, err = perf.WriteWithoutHistoryViews(noViewsDir, policies.FS); err != nil {
		return err
	}
	if err := prepareData(root, mdDir, bundleDir, noViewsDir, o.volume); err != nil {
		return err
	}
	corpus, err := perf.Corpus(o.seed, o.corpus, o.volume)
	if err != nil {
		return err
	}
	packData, err := fs.ReadFile(policies.FS, "data.json")
	if err != nil {
		return err
	}
	if rep.HistoryCoverage, err = perf.HistoryCoverage(packData, corpus); err != nil {
		return err
	}

	step("start the servers on loopback")
	opaAddr, err := perf.FreeLoopbackAddr()
	if err != nil {
		return err
	}
	opa, err := perf.Start(ctx, "opa", opaAddr, filepath.Join(work, "opa.log"), opaBin,
		"run", "--server", "--addr", opaAddr, "--log-level", "error", bundleDir)
	if err != nil {
		return err
	}
	defer opa.Stop()
	maxConc := 0
	for _, c := range o.conc {
		maxConc = max(maxConc, c)
	}
	opaClient, err := perf.NewOPAClient(opaAddr, corpus, maxConc)
	if err != nil {
		return err
	}
	defer opaClient.Close()
	if err := opa.WaitReady(60*time.Second, opaClient.Ready); err != nil {
		return withLog(err, filepath.Join(work, "opa.log"))
	}
	type server struct {
		name string
		d    perf.Decider
		p    *perf.Process
	}
	servers := []server{{perf.ServerOPA, opaClient, opa}}
	// Each Tollgate: report name, its log and data directory under work, and its flags beyond the defaults.
	type tollgate struct {
		name, dir string
		extra     []string
	}
	tollgates := []tollgate{{perf.ServerTollgate, "tollgate", nil}}
	if pg != nil {
		tollgates = append(tollgates, tollgate{perf.ServerTollgatePG, "tollgate-pg", []string{"--audit-store", pg.URL}})
	}
	// The baseline of the history cost, and the server OPA's answers are checked against.
	tollgates = append(tollgates, tollgate{perf.ServerTollgateNoViews, "tollgate-no-views", []string{"--bundle", noViewsDir}})
	for _, t := range tollgates {
		d, p, err := startTollgate(ctx, work, tgBin, t.dir, mdDir, corpus, t.extra...)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		defer p.Stop()
		defer d.Close()
		ev, err := d.Evaluation(ctx, 2*time.Minute)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		step(fmt.Sprintf("%s decides on %s (exactness gate %s: %d requests in %s) %s", t.name, ev.GetPath(), ev.GetGate(),
			ev.GetChecked(), ev.GetElapsed().AsDuration().Round(time.Millisecond), ev.GetReason()))
		if rep.Paths == nil {
			rep.Paths = map[string]perf.EvaluationPath{}
		}
		rep.Paths[t.name] = perf.EvaluationPath{Path: ev.GetPath(), Gate: ev.GetGate(), Reason: ev.GetReason(),
			Checked: int(ev.GetChecked()), Elapsed: ev.GetElapsed().AsDuration()}
		servers = append(servers, server{t.name, d, p})
	}

	// Servers on the pack as shipped answer from the decisions before once it declares history views,
	// which OPA cannot see: then only the server without views is compared.
	compared := servers[1:]
	if len(rep.HistoryViews) > 0 {
		compared = slices.DeleteFunc(slices.Clone(compared), func(s server) bool { return s.name != perf.ServerTollgateNoViews })
	}
	for _, s := range compared {
		step(fmt.Sprintf("check that %s decides all %d requests as stock OPA does", s.name, len(corpus)))
		reasons, err := compare(ctx, corpus, opaClient, s.d, s.name)
		if err != nil {
			return err
		}
		rep.Reasons = reasons
		rep.Compared = append(rep.Compared, s.name)
	}
	if o.skipHistory {
		// Checked against OPA; not loaded. Stopped now so that it leaves the machine to the others.
		last := servers[len(servers)-1]
		last.p.Stop()
		servers = servers[:len(servers)-1]
	}

	for _, s := range servers {
		if _, err := perf.Drive(ctx, s.d, len(corpus), maxConc, o.warmup, s.p.PID()); err != nil {
			return err
		}
	}
	for r := 1; r <= o.reps; r++ {
		for _, c := range o.conc {
			for _, s := range servers {
				var before map[int]time.Duration
				if s.name == perf.ServerTollgatePG {
					if before, err = pg.BackendCPU(ctx); err != nil {
						return err
					}
				}
				st, err := perf.Drive(ctx, s.d, len(corpus), c, o.dur, s.p.PID())
				if err != nil {
					return err
				}
				if s.name == perf.ServerTollgatePG {
					after, err := pg.BackendCPU(ctx)
					if err != nil {
						return err
					}
					st.StoreCPU = perf.CPUSince(before, after)
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				step(fmt.Sprintf("rep %d  %-11s c=%-3d %7.0f decisions/s  p99 %6.2f ms  errors %d", r, s.name, c, st.Rate(),
					float64(st.Quantile(0.99))/1e6, st.Errors))
				rep.Runs = append(rep.Runs, perf.Run{Server: s.name, Concurrency: c, Rep: r, Stats: st})
			}
		}
	}
	for _, s := range servers {
		s.p.Stop()
	}

	if !o.skipLag {
		// After the throughput runs, with their servers stopped: the fleet has the machine to itself.
		step(fmt.Sprintf("event-to-decision lag: start %d replicas on the stream and PostgreSQL", perf.LagReplicas))
		fleet, err := perf.StartLagFleet(ctx, perf.LagFleetConfig{Bin: tgBin, Work: work, PostgresURL: lagDB.URL, Stream: lagStream, Bundle: noViewsDir})
		if err != nil {
			return fmt.Errorf("event-to-decision lag: %w", err)
		}
		step(fmt.Sprintf("event-to-decision lag: %d events", o.lagEvents))
		rep.Lag, err = fleet.Measure(ctx, o.lagEvents, nil)
		fleet.Close()
		if err != nil {
			return fmt.Errorf("event-to-decision lag: %w", err)
		}
		l := rep.Lag
		step(fmt.Sprintf("lag to all %d replicas: p50 %.2f ms  p99 %.2f ms  max %.2f ms  (mean Decide %.2f ms over %d calls)",
			l.Replicas, msf(perf.Quantile(l.All, 0.5)), msf(perf.Quantile(l.All, 0.99)), msf(slices.Max(l.All)), msf(l.MeanDecide()), l.Calls))
	}

	if !o.skipBench {
		step("in-process floor and scale benchmarks")
		var out bytes.Buffer
		err := goCmd(ctx, root, &out, "test", "-count=1", "-v", "-run", "^$", "-bench", "BenchmarkFloor|BenchmarkScale",
			"-benchtime", o.benchtime, "-benchmem", "-timeout", "10m", "./test/perf/")
		if err := os.WriteFile(filepath.Join(work, "bench.txt"), out.Bytes(), 0o644); err != nil {
			return err
		}
		rep.Bench = perf.ParseBench(&out)
		if err != nil {
			rep.Bench.Failed = append(rep.Bench.Failed, err.Error())
		}
		step("DecideBatch of 100 against 100 single calls")
		out.Reset()
		err = goCmd(ctx, root, &out, "test", "-count=1", "-v", "-run", "^$", "-bench", "BenchmarkDecideBatch",
			"-benchtime", "30x", "-timeout", "10m", "./test/e2e/")
		if err := os.WriteFile(filepath.Join(work, "batch.txt"), out.Bytes(), 0o644); err != nil {
			return err
		}
		rep.Batch = perf.ParseBench(&out)
		if err != nil {
			rep.Batch.Failed = append(rep.Batch.Failed, err.Error())
		}
	}
	rep.Machine.LoadAfter = loadavg()

	if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
		return err
	}
	f, err := os.Create(o.out)
	if err != nil {
		return err
	}
	if err := rep.WriteMarkdown(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	step("wrote " + o.out)
	return nil
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func step(msg string) { fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), msg) }

// prepareData writes the master data directory Tollgate loads and the OPA bundle with the same records,
// the twin of the pack in packDir.
func prepareData(root, mdDir, bundleDir, packDir string, volume int) error {
	demoFiles := map[string][]byte{}
	names, err := fs.Glob(demo.FS, "*.ndjson")
	if err != nil {
		return err
	}
	for _, n := range names {
		if demoFiles[n], err = fs.ReadFile(demo.FS, n); err != nil {
			return err
		}
	}
	for _, d := range []string{mdDir, bundleDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := perf.WriteMasterdataDir(mdDir, demoFiles, volume); err != nil {
		return err
	}
	// Load the directory exactly as `tollgate serve --masterdata` will, and export what was stored.
	store, err := masterdata.New(masterdata.Config{})
	if err != nil {
		return err
	}
	if _, err := store.LoadDir(os.DirFS(mdDir)); err != nil {
		return fmt.Errorf("load master data: %w", err)
	}
	twins := os.DirFS(filepath.Join(root, "test", "perf", "opa"))
	return perf.WriteOPABundle(bundleDir, os.DirFS(packDir), twins, perf.ExportMasterdata(store.Snapshot()))
}

// startTollgate starts `tollgate serve` on loopback with its data under work/dir, the master data of
// mdDir and the extra flags, and waits until it answers.
func startTollgate(ctx context.Context, work, bin, dir, mdDir string, corpus []perf.Request, extra ...string) (*perf.TollgateClient, *perf.Process, error) {
	addr, err := perf.FreeLoopbackAddr()
	if err != nil {
		return nil, nil, err
	}
	httpAddr, err := perf.FreeLoopbackAddr()
	if err != nil {
		return nil, nil, err
	}
	logPath := filepath.Join(work, dir+".log")
	args := append([]string{"serve", "--addr", addr, "--http-addr", httpAddr, "--data-dir", filepath.Join(work, dir+"-data"),
		"--masterdata", mdDir, "--log-level", "warn"}, extra...)
	p, err := perf.Start(ctx, dir, addr, logPath, bin, args...)
	if err != nil {
		return nil, nil, err
	}
	client, err := perf.DialTollgate(ctx, addr, corpus)
	if err != nil {
		p.Stop()
		return nil, nil, err
	}
	if err := p.WaitReady(60*time.Second, client.Ready); err != nil {
		client.Close()
		p.Stop()
		return nil, nil, withLog(err, logPath)
	}
	return client, p, nil
}

// compare sends every request to stock OPA (a) and to the Tollgate server named name (b) and fails on
// the first differences.
func compare(ctx context.Context, corpus []perf.Request, a, b perf.Decider, name string) (int, error) {
	var diffs []string
	reasons := map[string]bool{}
	for i, r := range corpus {
		da, err := a.Decide(ctx, i)
		if err != nil {
			return 0, fmt.Errorf("opa, request %d: %w", i, err)
		}
		db, err := b.Decide(ctx, i)
		// An evaluation that ran out of its time budget on a starved machine is the engine failing
		// closed, not the policy disagreeing: ask again (bounded) before judging.
		for retry := 0; err == nil && db.Primary == "EVALUATION_TIMEOUT" && retry < 5; retry++ {
			time.Sleep(200 * time.Millisecond)
			db, err = b.Decide(ctx, i)
		}
		if err != nil {
			return 0, fmt.Errorf("%s, request %d: %w", name, i, err)
		}
		reasons[db.Primary] = true
		if !da.Equal(db) && len(diffs) < 20 {
			diffs = append(diffs, fmt.Sprintf("request %d (%s) %v: OPA %s, %s %s", i, r.Family, r.Input, da, name, db))
		}
	}
	if len(diffs) > 0 {
		return 0, fmt.Errorf("OPA and %s disagree, so they do not run the same policy:\n%s", name, strings.Join(diffs, "\n"))
	}
	return len(reasons), nil
}

func goCmd(ctx context.Context, dir string, out *bytes.Buffer, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TOLLGATE_PERF=1")
	if out != nil {
		cmd.Stdout, cmd.Stderr = out, out
	} else {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find the module root: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run from inside the tollgate module")
	}
	return filepath.Dir(gomod), nil
}

func machine(root string) perf.Machine {
	m := perf.Machine{NProc: runtime.NumCPU(), GoVersion: runtime.Version(), LoadBefore: loadavg()}
	if out, err := exec.Command("nproc").Output(); err == nil {
		m.NProc, _ = strconv.Atoi(strings.TrimSpace(string(out)))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if out, err := exec.Command("go", "version").Output(); err == nil {
		m.GoVersion = strings.TrimSpace(string(out))
	}
	_ = root
	return m
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// source names the revision measured and, when the tree differs from it, the changed files: the
// binaries are built from the working tree.
func source(root string) string {
	rev, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown (not a git checkout)"
	}
	s := "commit " + strings.TrimSpace(string(rev))
	out, _ := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output()
	var dirty []string
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if len(line) > 3 {
			dirty = append(dirty, "`"+strings.TrimSpace(line[3:])+"`")
		}
	}
	if len(dirty) > 0 {
		s += " plus uncommitted changes in " + strings.Join(dirty, ", ")
	}
	return s
}

func withLog(err error, path string) error {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return fmt.Errorf("%w\n--- %s ---\n%s", err, filepath.Base(path), b)
}
