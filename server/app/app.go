// Package app wires Tollgate's components into one running service: it owns the configuration, the
// listeners and the lifetime of everything it starts. cmd/tollgate and the end-to-end tests both start
// the service through it.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	stdlog "log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gofrs/flock"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tollgate/tollgate/bundles/demo"
	"github.com/tollgate/tollgate/policies"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/api"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/transparency"
	"github.com/tollgate/tollgate/server/auth"
	"github.com/tollgate/tollgate/server/authzen"
	"github.com/tollgate/tollgate/server/bundles"
	"github.com/tollgate/tollgate/server/console"
	"github.com/tollgate/tollgate/server/engine"
	"github.com/tollgate/tollgate/server/engine/gatecorpus"
	"github.com/tollgate/tollgate/server/history"
	"github.com/tollgate/tollgate/server/insights"
	"github.com/tollgate/tollgate/server/masterdata"
	"github.com/tollgate/tollgate/server/masterdata/feed"
	"github.com/tollgate/tollgate/server/telemetry"
)

// Config configures the service. The zero value of every field has a working default.
type Config struct {
	// Addr is the gRPC listen address. Default 127.0.0.1:7070; use port 0 for any free port.
	Addr string
	// HTTPAddr serves /metrics, /healthz, the AuthZEN endpoints (server/authzen) and the web console at
	// /console/ (server/console), over TLS with TLSCert when it is given, else plaintext, which like
	// Addr is allowed only on loopback or with Insecure. Default 127.0.0.1:7071.
	HTTPAddr string
	// DataDir holds the service's files (the audit log). Default ./tollgate-data; created if missing.
	DataDir string
	// AuditStore selects the audit store: "" or "sqlite" is SQLite under DataDir; a postgres:// (or
	// postgresql://) URL is PostgreSQL, shared by the replicas of a fleet (server/audit/postgres).
	AuditStore string
	// ReplicaID names this service among the replicas sharing an audit database; it is the default
	// audit chain id on PostgreSQL. Default DefaultReplicaID(DataDir).
	ReplicaID string
	// BundleDir is a policy bundle directory (watched) or bundle archive (.tar.gz); "" restores the
	// bundle active before the restart, or uses the pack embedded in the binary (see activateBundle).
	BundleDir string
	// MasterdataDir is a directory of NDJSON change-event files loaded at start; "" loads the embedded
	// demo data. Not with MasterdataStream.
	MasterdataDir string
	// MasterdataStream is a NATS URL (nats://host:4222). With it master data comes from that NATS
	// JetStream stream only (server/masterdata/feed): no demo data and no files are loaded, New returns
	// once the replica caught up with the stream (bounded by MasterdataStreamStartTimeout), the revision
	// is the stream sequence, and MasterDataService.Apply is refused with FailedPrecondition.
	MasterdataStream string
	// MasterdataStreamName and MasterdataSubject name the stream and subject. Defaults
	// feed.DefaultStream and feed.DefaultSubject.
	MasterdataStreamName, MasterdataSubject string
	// MasterdataStreamStartTimeout bounds the catch-up at start. Default feed.DefaultStartTimeout.
	MasterdataStreamStartTimeout time.Duration
	// MasterdataRetain is how long seen event ids and tombstones are remembered (masterdata.Config.Retain).
	// Default masterdata.DefaultRetain; negative keeps them forever.
	MasterdataRetain time.Duration
	// EvalTimeout bounds one policy evaluation. Default engine.DefaultEvalTimeout.
	EvalTimeout time.Duration
	// FastPath lets a bundle decide on the planner-IR evaluator once its exactness gate
	// (gatecorpus.Default) passed; the gate runs in the background after every compile. The zero value
	// keeps every bundle on OPA's topdown evaluator; `tollgate serve` sets it unless --fast-path=false.
	FastPath bool
	// MaxEvaluations bounds the policy evaluations running at once; more wait their turn in arrival
	// order. Default GOMAXPROCS.
	MaxEvaluations int
	// Limits bounds request sizes; zero fields take api's defaults.
	Limits api.Limits
	// ShutdownTimeout bounds the graceful drain of in-flight calls at shutdown. Default 10s.
	ShutdownTimeout time.Duration
	// TLSCert and TLSKey are the server's certificate and key files (PEM). Without them the service
	// speaks plaintext, which it allows only on loopback or with Insecure.
	TLSCert, TLSKey string
	// ClientCA is a PEM bundle of CAs whose client certificates authenticate callers (mTLS). Callers
	// without a certificate may still authenticate with a bearer token.
	ClientCA string
	// CallersFile configures callers, roles and rate limits (auth.Config as JSON). Without it every RPC
	// is open, which the service allows only on loopback.
	CallersFile string
	// Insecure allows plaintext on a non-loopback Addr or HTTPAddr. It logs a warning at every start.
	Insecure bool
	// DecisionTimeout is the server-side deadline of each decision call. Default api.DefaultDecisionTimeout.
	DecisionTimeout time.Duration
	// ConsistencyWait bounds how long a decision with a min_masterdata_revision waits for the master data
	// to reach it (and never past the call's deadline). Default api.DefaultConsistencyWait; negative:
	// do not wait, refuse at once when behind.
	ConsistencyWait time.Duration
	// HistoryTailInterval paces the reading of other replicas' audit chains into the history views
	// (history.Tail). Default history.DefaultTailInterval.
	HistoryTailInterval time.Duration
	// MaxConcurrentStreams bounds concurrent calls per client connection. Default 256.
	MaxConcurrentStreams uint32
	// Audit configures the decision log writer: mode (sync, the default, or async), chain id, masked
	// request paths, batching, whether to accept a broken chain tail (AcceptChainBreak). Its Registry
	// is set by the app; its DeadLetterFile defaults to DataDir/audit-rejected.ndjson.
	Audit audit.Config
	// PayloadKeyFile holds the secret the audit log's payload hashes are keyed with (hex, at least 32
	// bytes; see audit.PayloadKey), and must exist. "" uses DataDir/audit-payload.key, generated (mode
	// 0600) on the first start. Every replica writing to one audit log needs the same key, and a start
	// with another key than the log was written with, or without the default file once the log is
	// bound to it, is refused. Audit.PayloadKey is set from it.
	PayloadKeyFile string
	// AllowBuiltins names unsafe OPA built-ins (engine.UnsafeBuiltins: network and host access) bundles
	// may call; none by default.
	AllowBuiltins []string
	// AllowUnsignedBundles accepts pushed and fetched bundles without a verification key on a
	// non-loopback address; without it they are refused there.
	AllowUnsignedBundles bool
	// ImpactTimeout is the server-side deadline of one impact analysis. Default api.DefaultImpactTimeout.
	ImpactTimeout time.Duration
	// WrapAuditStore, for tests only, wraps the audit store the decision writer and the health check
	// use, e.g. in an audittest.FaultStore to make it fail on purpose. Nil in production.
	WrapAuditStore func(audit.Store) audit.Store
	// Checkpoints configures the signed checkpoints of the audit log: signing key, interval, witnesses.
	Checkpoints CheckpointConfig
	// Bundles configures the policy bundle gate and its sources (bundle server URL and polling,
	// signature verification, required tests). Its Dir is BundleDir and its Registry is set by the app.
	Bundles bundles.Config
	// Tracing configures OpenTelemetry tracing; off (the zero value) unless it names a collector. Its
	// ReplicaID is set by the app, and its Version defaults to the binary's.
	Tracing telemetry.Config
}

// Defaults for Config.
const (
	DefaultAddr            = "127.0.0.1:7070"
	DefaultHTTPAddr        = "127.0.0.1:7071"
	DefaultDataDir         = "tollgate-data"
	DefaultShutdownTimeout = 10 * time.Second
	// DeadLetterFileName is the file under DataDir where async mode keeps answered records the audit
	// store refused (audit.Config.DeadLetterFile).
	DeadLetterFileName = "audit-rejected.ndjson"
)

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	return c
}

// AuditChain returns the audit chain id this service writes.
func (a *App) AuditChain() string { return a.chainID }

// App is one running Tollgate service.
type App struct {
	cfg      Config
	auth     *auth.Authenticator
	log      zerolog.Logger
	store    audit.Store
	chainID  string
	writer   *audit.Writer
	md       *masterdata.Store
	feed     *feed.Feed // nil unless MasterdataStream
	engine   *engine.Engine
	bundles  *bundles.Manager
	grpc     *grpc.Server
	health   *health.Server
	http     *http.Server
	grpcLis  net.Listener
	httpLis  net.Listener
	registry *prometheus.Registry
	dataLock *flock.Flock // held from New until Close

	checkpointer  *transparency.Checkpointer
	fileWitnesses []*transparency.FileWitness
	verifierKey   string
	tracing       *telemetry.Tracing
	history       *history.Tracker
	historyTail   *history.Tail
	roller        *insights.Roller
	recent        *insights.Recent // the writer's store, remembering its last appends for the roller
}

// New loads the master data and the policy bundle, builds the services and binds both listeners, so the
// addresses are known (port 0 included) before Run. Close releases what New acquired if Run is never
// called.
func New(ctx context.Context, cfg Config, log zerolog.Logger) (*App, error) {
	cfg = cfg.withDefaults()
	if cfg.ReplicaID == "" {
		id, err := DefaultReplicaID(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		cfg.ReplicaID = id
	}
	a := &App{cfg: cfg, log: log, registry: prometheus.NewRegistry()}
	serverOpts, httpTLS, err := a.security()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	if a.dataLock, err = lockDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	built := false
	defer func() {
		if !built {
			a.closeFeed()
			a.stopTracing()
			a.unlockDataDir()
		}
	}()
	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	metrics, err := api.NewMetrics(a.registry)
	if err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	md, err := masterdata.New(masterdata.Config{Prepare: engine.PrepareRecord, Retain: cfg.MasterdataRetain})
	if err != nil {
		return nil, fmt.Errorf("create master data: %w", err)
	}
	a.md = md
	if cfg.MasterdataStream != "" {
		err = a.startFeed(ctx, metrics)
	} else {
		err = a.loadMasterdata(metrics)
	}
	if err != nil {
		return nil, err
	}

	caps, err := engine.NewCapabilities(cfg.AllowBuiltins)
	if err != nil {
		return nil, fmt.Errorf("allowed built-ins: %w", err)
	}
	engCfg := engine.Config{EvalTimeout: cfg.EvalTimeout, MaxConcurrent: cfg.MaxEvaluations, Capabilities: caps}
	if cfg.FastPath {
		engCfg.Gate = gatecorpus.Default
	}
	eng, err := engine.New(engCfg, md, log)
	if err != nil {
		return nil, err
	}
	a.engine = eng

	if a.store, err = openAuditStore(ctx, cfg); err != nil {
		return nil, err
	}
	auditCfg := cfg.Audit
	auditCfg.Registry = a.registry
	if auditCfg.ChainID == "" {
		auditCfg.ChainID = defaultChainID(cfg)
	}
	a.chainID = auditCfg.ChainID
	if auditCfg.PayloadKey, err = a.payloadKey(ctx); err != nil {
		a.store.Close()
		return nil, err
	}
	if auditCfg.DeadLetterFile == "" {
		auditCfg.DeadLetterFile = filepath.Join(cfg.DataDir, DeadLetterFileName)
	}
	var writerStore audit.Store = a.store
	if cfg.WrapAuditStore != nil {
		writerStore = cfg.WrapAuditStore(a.store)
	}
	// The roller folds the records this replica just committed from memory, not by reading them back.
	a.recent = insights.NewRecent(writerStore, 0)
	writerStore = a.recent
	if a.writer, err = audit.NewWriter(auditCfg, writerStore, log); err != nil {
		a.store.Close()
		return nil, fmt.Errorf("start audit writer: %w", err)
	}
	receipts, err := a.startCheckpointer()
	if err != nil {
		a.closeAudit()
		return nil, err
	}
	if err := a.startHistory(ctx); err != nil {
		a.closeAudit()
		return nil, err
	}
	bundleCfg := cfg.Bundles
	bundleCfg.Dir, bundleCfg.Registry = cfg.BundleDir, a.registry
	bundleCfg.CheckViews = checkMaskedViews(auditCfg.MaskPaths)
	// The startup bundle's activation rebuilds the history index from the audit store, so the service
	// serves only once its views hold every decision their windows reach.
	bundleCfg.PrepareViews = a.history.Prepare
	bundleCfg.StateFile = filepath.Join(cfg.DataDir, bundles.StateFileName)
	bundleCfg.RefuseUnverified = !cfg.AllowUnsignedBundles && !isLoopback(cfg.Addr)
	if a.bundles, err = bundles.New(bundleCfg, eng, a.store, log); err != nil {
		a.closeAudit()
		return nil, err
	}
	if err := a.activateBundle(ctx); err != nil {
		a.closeAudit()
		return nil, err
	}

	if err := a.startTelemetry(); err != nil {
		a.closeAudit()
		return nil, err
	}
	serverOpts = append(serverOpts, a.tracing.ServerOptions()...)

	auditServer := api.NewAuditServer(a.store, eng, cfg.Limits, log).WithImpact(api.ImpactConfig{Gate: a.bundles, Timeout: cfg.ImpactTimeout}).
		WithTransparency(receipts)
	if cfg.Checkpoints.SigningKeyFile != "" {
		// Only a lasting key: an ephemeral key changes at every start, so the checkpoints of earlier
		// runs would all fail verify's signature check.
		auditServer.WithCheckpointVerifier(receipts.Verifier, "")
	}
	mdServer := api.NewMasterDataServer(md, cfg.Limits, metrics, log)
	consistency := api.Consistency{Store: md, Wait: cfg.ConsistencyWait}
	if a.feed != nil {
		mdServer.WithStream(a.feed)
		consistency.Head = a.feed // a replica that is behind names the stream head it is behind
	}
	// Insights: roll-ups of the committed records, kept in the audit store's database.
	rollups, err := insightsStore(a.store)
	if err != nil {
		a.closeAudit()
		return nil, err
	}
	a.roller = insights.NewRoller(insights.RollerConfig{Config: activeInsights(eng)}, a.recent, rollups, log)
	insightsServer := api.NewInsightsServer(insights.NewReader(rollups), api.InsightsConfig{Sync: a.roller, Config: activeInsights(eng)}, log)
	decisions := api.NewDecisionServer(eng, a.writer, cfg.Limits, metrics, log).WithReceipts(receipts, a.writer.Mode() == audit.ModeAsync).
		WithTracing(a.tracing.Tracer(), cfg.ReplicaID, a.chainID).
		WithConsistency(consistency).
		WithHistory(a.history).
		WithConflicts(rollups)
	guard := api.NewGuard(a.auth, cfg.DecisionTimeout, log)
	a.grpc, a.health = api.NewServer(api.Services{
		Decisions:  decisions,
		MasterData: mdServer,
		Audit:      auditServer,
		Insights:   insightsServer,
	}, guard, log, serverOpts...)
	policyServer := api.NewPolicyServer(a.bundles, log)
	tollgatev1.RegisterPolicyServiceServer(a.grpc, policyServer)

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{Registry: a.registry}))
	mux.HandleFunc("/healthz", a.serveHealth)
	// AuthZEN's endpoints decide through the same decision server and Guard as gRPC Decide.
	azHandler, err := authzen.New(authzen.Config{
		Decisions: decisions, Guard: guard, Auth: a.auth, DecisionTimeout: cfg.DecisionTimeout,
		MaxEvaluations: cfg.Limits.MaxBatch, Log: log.With().Str("listener", "authzen").Logger(),
	})
	if err != nil {
		a.closeAudit()
		return nil, err
	}
	azHandler.Register(mux)
	// The web console calls the same server implementations in process, behind the same authenticator.
	webConsole, err := console.New(console.Config{Auth: a.auth, Audit: auditServer, Policy: policyServer,
		Insights: insightsServer, SecureCookies: httpTLS != nil}, log)
	if err != nil {
		a.closeAudit()
		return nil, fmt.Errorf("console: %w", err)
	}
	mux.Handle(console.Prefix, webConsole)
	// The server's own errors (a plaintext request to the TLS port, say) go to the service log as JSON.
	httpLog := stdlog.New(a.log.With().Str("listener", "http").Logger(), "", 0)
	a.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: httpLog}

	if a.grpcLis, err = net.Listen("tcp", cfg.Addr); err != nil {
		a.closeAudit()
		return nil, fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	if a.httpLis, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		a.grpcLis.Close()
		a.closeAudit()
		return nil, fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
	}
	if httpTLS != nil {
		a.httpLis = tls.NewListener(a.httpLis, httpTLS)
	}
	built = true
	return a, nil
}

// activateBundle runs the startup bundle through the activation gate: verified, compiled, its Rego
// tests passed, kept in the audit log under its revision (so every decision it makes can be replayed),
// and only then activated. The service does not start without it. The startup bundle is
//
//   - BundleDir when given: the operator's explicit choice wins;
//   - else the bundle that was active before the restart when it was pushed, fetched or read from a
//     path (the gate's state file in DataDir names it; it is reactivated from the audit log), so a
//     restart does not silently roll a policy change back;
//   - else the pack embedded in the binary, the one this binary ships (an upgrade rolls it forward).
func (a *App) activateBundle(ctx context.Context) error {
	c, why := a.startupCandidate(ctx)
	if !c.Outcome.Accepted() {
		err := fmt.Errorf("activate bundle %s from %s: %s: %s", c.Revision, c.Source, c.Outcome, c.Reason)
		if strings.HasPrefix(c.Source, "restore") {
			err = fmt.Errorf("%w (start with --bundle to choose the bundle, or remove %s to start on the embedded pack)",
				err, filepath.Join(a.cfg.DataDir, bundles.StateFileName))
		}
		return err
	}
	a.log.Info().Str("bundle_revision", c.Revision).Str("source", c.Source).Str("why", why).Msg("startup bundle")
	return nil
}

func (a *App) startupCandidate(ctx context.Context) (bundles.Candidate, string) {
	if a.cfg.BundleDir != "" {
		return a.bundles.OfferPath(ctx, a.cfg.BundleDir), "--bundle given"
	}
	if c, ok := a.bundles.OfferRestored(ctx); ok {
		return c, "active before the restart, named by " + bundles.StateFileName
	}
	return a.bundles.OfferEmbedded(ctx, policies.FS), "the binary's embedded pack: no pushed or fetched bundle was active before"
}

// closeAudit stops the bundle sources (an activation keeps its bundle in the store), drains the
// writer's queue, signs the last checkpoint over what it wrote and closes the store.
func (a *App) closeAudit() {
	if a.bundles != nil {
		_ = a.bundles.Close()
	}
	if a.writer != nil {
		if err := a.writer.Close(); err != nil {
			a.log.Error().Err(err).Msg("close audit writer")
		}
	}
	a.closeCheckpointer()
	if a.roller != nil {
		a.roller.Close() // before the store: its last round reads and writes there
	}
	if a.store != nil {
		if err := a.store.Close(); err != nil {
			a.log.Error().Err(err).Msg("close audit store")
		}
	}
	a.unlockDataDir()
}

// unlockDataDir releases the data directory's lock, last, once nothing writes there any more.
func (a *App) unlockDataDir() {
	if a.dataLock == nil {
		return
	}
	if err := a.dataLock.Unlock(); err != nil {
		a.log.Error().Err(err).Msg("unlock data dir")
	}
	a.dataLock = nil
}

// startFeed feeds the master data from the NATS JetStream stream, and returns once it caught up.
func (a *App) startFeed(ctx context.Context, metrics *api.Metrics) error {
	if a.cfg.MasterdataDir != "" {
		return errors.New("master data comes from --masterdata-stream or from --masterdata files, not both: publish the files to the stream (tollgatectl masterdata publish)")
	}
	f, err := feed.New(ctx, feed.Config{
		URL: a.cfg.MasterdataStream, Stream: a.cfg.MasterdataStreamName, Subject: a.cfg.MasterdataSubject,
		Name: a.cfg.ReplicaID, StartTimeout: a.cfg.MasterdataStreamStartTimeout, Registry: a.registry,
		Observe: func(o masterdata.Outcome) { metrics.ObserveEvents(string(o), 1) },
	}, a.md, a.log)
	if err != nil {
		return fmt.Errorf("master data: %w", err)
	}
	a.feed = f
	st := a.md.Status()
	a.log.Info().Str("source", "stream "+f.Status().Stream).Uint64("revision", st.Revision).Interface("counts", st.Counts).Msg("master data loaded")
	return nil
}

// closeFeed stops consuming the master-data stream; decisions then see the last applied data.
func (a *App) closeFeed() {
	if a.feed != nil {
		a.feed.Close()
	}
}

func (a *App) loadMasterdata(metrics *api.Metrics) error {
	var fsys fs.FS = demo.FS
	source := "embedded demo data"
	if a.cfg.MasterdataDir != "" {
		fsys, source = os.DirFS(a.cfg.MasterdataDir), a.cfg.MasterdataDir
	}
	report, err := a.md.LoadDir(fsys)
	if err != nil {
		return fmt.Errorf("load master data from %s: %w", source, err)
	}
	metrics.ObserveEvents(string(masterdata.OutcomeApplied), report.Applied)
	metrics.ObserveEvents(string(masterdata.OutcomeDuplicate), report.Duplicate)
	metrics.ObserveEvents(string(masterdata.OutcomeStale), report.Stale)
	st := a.md.Status()
	a.log.Info().Str("source", source).Uint64("revision", st.Revision).Interface("counts", st.Counts).Msg("master data loaded")
	return nil
}

// Addr is the bound gRPC address.
func (a *App) Addr() net.Addr { return a.grpcLis.Addr() }

// HTTPAddr is the bound HTTP address (metrics, health, AuthZEN).
func (a *App) HTTPAddr() net.Addr { return a.httpLis.Addr() }

// Engine returns the decision engine, for in-process benchmarks and tests.
func (a *App) Engine() *engine.Engine { return a.engine }

// History returns the history tracker decisions lock and read, for in-process benchmarks and tests.
func (a *App) History() *history.Tracker { return a.history }

// Run serves until ctx is cancelled, then stops gracefully: no new calls are accepted and in-flight
// decisions finish (bounded by ShutdownTimeout) before Run returns.
func (a *App) Run(ctx context.Context) error {
	errc := make(chan error, 3)
	go func() { errc <- a.grpc.Serve(a.grpcLis) }()
	go func() {
		if err := a.http.Serve(a.httpLis); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
			return
		}
		errc <- nil
	}()
	active, _ := a.engine.Active()
	a.log.Info().Str("addr", a.Addr().String()).Str("http_addr", a.HTTPAddr().String()).
		Str("bundle_revision", active.Revision()).Str("audit_store", a.auditStoreKind()).Str("audit_chain", a.chainID).
		Msg("tollgate serving")

	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go a.watchAudit(watchCtx, a.writer)
	go a.history.Run(watchCtx)
	go a.historyTail.Run(watchCtx)
	a.roller.Start()
	if err := a.bundles.Start(watchCtx); err != nil {
		errc <- fmt.Errorf("watch bundle sources: %w", err)
	}

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("serve: %w", err)
	}
	stopWatch()
	a.shutdown()
	return err
}

// auditWatchInterval paces the health check's view of the audit log.
const auditWatchInterval = 250 * time.Millisecond

// watchAudit reports NOT_SERVING while the audit log cannot commit: in sync mode no decision can be
// answered then, and load balancers should send callers elsewhere.
func (a *App) watchAudit(ctx context.Context, w *audit.Writer) {
	t := time.NewTicker(auditWatchInterval)
	defer t.Stop()
	serving := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if healthy := w.Healthy(); healthy != serving {
			serving = healthy
			st := healthpb.HealthCheckResponse_SERVING
			if !healthy {
				st = healthpb.HealthCheckResponse_NOT_SERVING
			}
			a.health.SetServingStatus("", st)
			a.log.Warn().Bool("audit_healthy", healthy).Msg("health changed with the audit log")
		}
	}
}

func (a *App) shutdown() {
	a.log.Info().Msg("shutting down: draining in-flight calls")
	a.health.Shutdown()
	done := make(chan struct{})
	go func() {
		a.grpc.GracefulStop()
		close(done)
	}()
	timer := time.NewTimer(a.cfg.ShutdownTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		a.log.Warn().Dur("timeout", a.cfg.ShutdownTimeout).Msg("graceful stop timed out; closing remaining calls")
		a.grpc.Stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = a.http.Shutdown(ctx)
	a.closeFeed()
	a.stopTracing()
	a.closeAudit()
	a.writer, a.store = nil, nil
}

// Close releases what New acquired if Run was never called. After Run returned it is a no-op.
func (a *App) Close() error {
	a.closeFeed()
	a.closeAudit()
	a.writer, a.store = nil, nil
	a.grpc.Stop()
	a.stopTracing()
	a.engine.Close()
	_ = a.http.Close()
	// Listeners handed to Serve are closed by Stop and Close; these close them when Run never ran.
	_ = a.grpcLis.Close()
	_ = a.httpLis.Close()
	return nil
}

func (a *App) serveHealth(w http.ResponseWriter, r *http.Request) {
	resp, err := a.health.Check(r.Context(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		http.Error(w, "not serving", http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// startHistory creates the history tracker decisions lock and read, and the tail that feeds it the
// other replicas' decisions. The tail marks every other chain's head before the startup bundle's
// activation rebuilds the views from the store, so what the rebuild reads and what the tail delivers
// overlap (counted once) and nothing falls between them.
func (a *App) startHistory(ctx context.Context) error {
	var err error
	if a.history, err = history.NewTracker(history.TrackerConfig{Store: a.store, Registry: a.registry, Log: a.log}); err != nil {
		return err
	}
	a.historyTail, err = history.NewTail(history.TailConfig{
		Store: a.store, Own: a.chainID, Interval: a.cfg.HistoryTailInterval,
		Retention: a.history.Retention, Observe: a.history.Observe, Registry: a.registry, Log: a.log,
	})
	if err != nil {
		return err
	}
	if err := a.historyTail.Mark(ctx); err != nil {
		// Not fatal: a chain whose head could not be read is read from the views' retention on.
		a.log.Warn().Err(err).Msg("history tail: could not mark every chain's head")
	}
	return nil
}

// checkMaskedViews refuses history views keyed or conditioned on a request path the audit log masks:
// records keep the masked request, so after a rebuild every such decision would be filed under
// "***MASKED***". A masked value is allowed: the decision counts, its value unreadable.
func checkMaskedViews(maskPaths []string) func(history.Views) error {
	return func(views history.Views) error {
		if masked := views.MaskedPaths(maskPaths); len(masked) > 0 {
			return fmt.Errorf("history views are keyed or conditioned on request paths the audit log masks (--audit-mask): %s; a view's key must be what the log keeps", strings.Join(masked, ", "))
		}
		return nil
	}
}
