// Command tollgate runs the Tollgate policy decision service and its offline tools.
//
//	tollgate serve [flags]   start the service (see `tollgate serve -h`)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/server/api"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/sqlite"
	"github.com/tollgate/tollgate/server/audit/transparency"
	"github.com/tollgate/tollgate/server/history"
	"github.com/tollgate/tollgate/server/masterdata"
	"github.com/tollgate/tollgate/server/masterdata/feed"
	"github.com/tollgate/tollgate/server/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := status(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// status runs the command and returns the process exit status: 0 on success
// and for -h/--help on any command (the flag package has printed its usage),
// otherwise the error's status after one line on stderr.
func status(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := run(ctx, args, stdout, stderr)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "tollgate: %v\n", err)
	return exitCode(err)
}

const usage = `usage: tollgate <command> [flags]

commands:
  serve       start the decision service (gRPC on --addr, metrics and health on --http-addr)
  bundle      build, sign, inspect and test policy bundles (tollgate bundle -h)
  dev-certs   write a throwaway CA, server and client certificates, a token and callers.json (DIR)
  keygen      write an Ed25519 key pair for signing audit checkpoints (tollgate keygen -h)
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "bundle":
		return bundleCommand(ctx, args[1:], stdout, stderr)
	case "dev-certs":
		return devCerts(args[1:], stdout, stderr)
	case "keygen":
		return keygen(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg app.Config
	fs.StringVar(&cfg.Addr, "addr", app.DefaultAddr, "gRPC listen address")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", app.DefaultHTTPAddr, "HTTP listen address for /metrics, /healthz, the AuthZEN API (/access/v1/*) and the web console (/console/); TLS with --tls-cert, else plaintext, allowed only on loopback unless --insecure")
	fs.StringVar(&cfg.DataDir, "data-dir", app.DefaultDataDir, "directory for the service's files (audit log)")
	fs.StringVar(&cfg.BundleDir, "bundle", "", "policy bundle directory (watched) or bundle archive (.tar.gz) (default: the bundle active before a restart, else the pack embedded in the binary)")
	fs.StringVar(&cfg.MasterdataDir, "masterdata", "", "directory of NDJSON change-event files to load at start (default: embedded demo data; not with --masterdata-stream)")
	fs.StringVar(&cfg.MasterdataStream, "masterdata-stream", "", "NATS `URL` (nats://host:4222): master data comes from that JetStream stream only (no demo data, no --masterdata files; Apply is refused), the revision is the stream sequence, and the service starts answering once it caught up with the stream")
	fs.StringVar(&cfg.MasterdataStreamName, "masterdata-stream-name", feed.DefaultStream, "JetStream stream of master-data change events (created if missing: file storage, no limits, 10m duplicate window)")
	fs.StringVar(&cfg.MasterdataSubject, "masterdata-subject", feed.DefaultSubject, "subject the master-data events are published on")
	fs.DurationVar(&cfg.MasterdataStreamStartTimeout, "masterdata-stream-start-timeout", feed.DefaultStartTimeout, "bound on catching up with the master-data stream at start; the service does not start if it is not caught up by then")
	fs.DurationVar(&cfg.MasterdataRetain, "masterdata-retain", masterdata.DefaultRetain, "how long applied event ids and deleted records' tombstones are remembered, in event time (stream timestamps), to refuse duplicate and stale events; must exceed the source's longest delay (0: the default; negative: forever)")
	fs.DurationVar(&cfg.EvalTimeout, "eval-timeout", 250*time.Millisecond, "bound on one policy evaluation")
	fastPath := fs.Bool("fast-path", true, "decide on the planner-IR evaluator once a bundle passed its exactness gate against OPA's topdown (false: topdown only)")
	fs.IntVar(&cfg.MaxEvaluations, "max-evaluations", 0, "policy evaluations running at once, the rest wait in arrival order (0: one per CPU)")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", app.DefaultShutdownTimeout, "bound on draining in-flight calls at shutdown")
	fs.IntVar(&cfg.Limits.MaxLongAuditReads, "max-long-audit-reads", 0, "audit calls that read much of the log (verify, export, impact) running at once; more wait, and get ResourceExhausted if their deadline passes first (0: half the CPUs, 1 or 2)")
	auditMode := fs.String("audit-mode", string(audit.ModeSync), "audit log mode: sync (answer after the record is durable) or async (answer once queued)")
	fs.StringVar(&cfg.AuditStore, "audit-store", "", "audit store: empty or sqlite for SQLite under --data-dir, or a postgres://user@host:5432/db URL shared by the replicas of a fleet")
	fs.StringVar(&cfg.ReplicaID, "replica-id", "", "this replica's id, the default --audit-chain on PostgreSQL (default: host name plus a hash of the absolute --data-dir)")
	fs.StringVar(&cfg.Audit.ChainID, "audit-chain", "", `this replica's audit hash chain id (default: "default" on SQLite, the replica id on PostgreSQL)`)
	fs.BoolVar(&cfg.Audit.AcceptChainBreak, "audit-accept-chain-break", false, "start even if the audit chain's stored tail does not verify (rows deleted or rewritten): writes a chain-break record naming what was found and who accepted it, then continues the chain")
	fs.StringVar(&cfg.Checkpoints.SigningKeyFile, "audit-signing-key", "", "Ed25519 key `file` that signs the audit checkpoints (tollgate keygen writes one). Without it a loopback service signs with an ephemeral key and logs its verifier key; any other --addr refuses to start")
	fs.DurationVar(&cfg.Checkpoints.Interval, "checkpoint-interval", transparency.DefaultCheckpointInterval, "how often a signed checkpoint of each audit chain that grew is made, off the decision path")
	fs.Var((*stringList)(&cfg.Checkpoints.WitnessFiles), "witness-file", "append every signed checkpoint to this `file` (put it on another volume); repeatable")
	fs.Var((*stringList)(&cfg.Checkpoints.WitnessURLs), "witness-url", "POST every signed checkpoint (text/plain) to this `URL`; repeatable")
	fs.StringVar(&cfg.PayloadKeyFile, "audit-payload-key", "", "file holding the secret (hex, 32+ bytes) the audit log's payload hashes are keyed with; every replica writing to one log needs the same file (default: audit-payload.key in --data-dir, generated on the first start)")
	mask := fs.String("audit-mask", "", "comma-separated request paths masked in the audit log, e.g. resource.attributes.bank_account")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "server certificate (PEM); without it gRPC is plaintext, allowed only on loopback")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "server private key (PEM)")
	fs.StringVar(&cfg.ClientCA, "client-ca", "", "CA bundle (PEM) for client certificates (mTLS)")
	fs.StringVar(&cfg.CallersFile, "callers", "", "callers file (JSON): identities, roles, rate limits; reloaded on SIGHUP. Without it every RPC is open, on loopback only")
	fs.BoolVar(&cfg.Insecure, "insecure", false, "allow plaintext on a non-loopback --addr or --http-addr (logs a warning at every start)")
	fs.DurationVar(&cfg.DecisionTimeout, "decision-timeout", 5*time.Second, "server-side deadline of each decision call")
	fs.DurationVar(&cfg.HistoryTailInterval, "history-tail-interval", history.DefaultTailInterval, "how often the history views read the other replicas' audit chains (a fleet on one PostgreSQL database): the bound on how late one replica's decisions count on another")
	fs.DurationVar(&cfg.ConsistencyWait, "consistency-wait", api.DefaultConsistencyWait, "how long a decision with a min_masterdata_revision waits for this replica's master data to reach it, within the call's deadline, before it fails Unavailable (0: do not wait)")
	bundleFlags := registerBundleFlags(fs, &cfg)
	fs.StringVar(&cfg.Tracing.Endpoint, "otel-endpoint", telemetry.EndpointFromEnv(os.Getenv), "OpenTelemetry collector `host:port` (or http(s):// URL) that receives traces over OTLP/gRPC; empty turns tracing off (default: $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else $OTEL_EXPORTER_OTLP_ENDPOINT)")
	fs.BoolVar(&cfg.Tracing.Insecure, "otel-insecure", false, "send traces in plaintext to a collector that is not on loopback (default TLS there; loopback and http:// endpoints are plaintext)")
	sampleRatio := fs.Float64("otel-sample-ratio", telemetry.DefaultSampleRatio, "share of traces started here that are sampled, 0 to 1; a caller's traceparent decides for its own trace")
	logFormat := fs.String("log-format", "json", "log format: json or console")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	bundleCfg, err := bundleFlags.config()
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	cfg.Bundles = bundleCfg
	cfg.FastPath = *fastPath
	cfg.Tracing.SampleRatio = sampleRatio
	if cfg.ConsistencyWait == 0 {
		cfg.ConsistencyWait = -1 // app.Config's zero means the default; the flag's means do not wait
	} else if cfg.ConsistencyWait < 0 {
		return fmt.Errorf("serve: --consistency-wait %s is negative", cfg.ConsistencyWait)
	}
	if cfg.HistoryTailInterval <= 0 {
		return fmt.Errorf("serve: --history-tail-interval %s must be positive", cfg.HistoryTailInterval)
	}
	cfg.Audit.Mode = audit.Mode(*auditMode)
	if *mask != "" {
		cfg.Audit.MaskPaths = strings.Split(*mask, ",")
	}
	log, err := newLogger(*logFormat, *logLevel, stderr)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	a, err := app.New(ctx, cfg, log)
	var brk *audit.ChainBreakError
	if errors.As(err, &brk) {
		where := filepath.Join(cfg.DataDir, sqlite.FileName)
		if cfg.AuditStore != "" && cfg.AuditStore != app.AuditStoreSQLite {
			where = "chain " + brk.ChainID + " in the audit database"
		}
		return fmt.Errorf("serve: %w; investigate %s first, then start with --audit-accept-chain-break to record the break in the log and continue", err, where)
	}
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer a.Close()
	go reloadOnHangup(ctx, a, log)
	return a.Run(ctx)
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	if v == "" {
		return errors.New("must not be empty")
	}
	*l = append(*l, v)
	return nil
}

// reloadOnHangup re-reads the callers file on SIGHUP, so tokens rotate without a restart; rate-limit
// buckets keep their levels.
func reloadOnHangup(ctx context.Context, a *app.App, log zerolog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := a.ReloadCallers(); err != nil {
				log.Error().Err(err).Msg("reload callers: keeping the previous callers")
			}
		}
	}
}

func newLogger(format, level string, w io.Writer) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		return zerolog.Logger{}, fmt.Errorf("log level %q: %w", level, err)
	}
	switch format {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	default:
		return zerolog.Logger{}, fmt.Errorf("log format %q: want json or console", format)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}
