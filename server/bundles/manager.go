package bundles

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/engine"
	"github.com/tollgate/tollgate/server/history"
)

// Outcome is what the gate did with a candidate. The values are the outcome label of
// tollgate_bundle_candidates_total.
type Outcome string

// Gate outcomes.
const (
	// Activated: the candidate passed and now decides.
	Activated Outcome = "activated"
	// Unchanged: the candidate is the active revision; nothing was swapped.
	Unchanged Outcome = "unchanged"
	// RefusedVerification: unreadable, unsigned or wrongly signed, or pushed unverified where
	// Config.RefuseUnverified refuses that.
	RefusedVerification Outcome = "refused_verification"
	// RefusedCompile: the Rego does not compile, calls a built-in outside the engine's capabilities or
	// lacks the decision rule.
	RefusedCompile Outcome = "refused_compile"
	// RefusedTests: a Rego test failed, or none ran while tests are required.
	RefusedTests Outcome = "refused_tests"
	// Failed: the candidate could not be kept in the audit store, so it was not activated; offering it
	// again may succeed.
	Failed Outcome = "error"
)

// Accepted reports whether the candidate is the running bundle after the gate.
func (o Outcome) Accepted() bool { return o == Activated || o == Unchanged }

// Candidate is one bundle the gate considered.
type Candidate struct {
	// Revision is the effective revision (engine.Compiled.Revision) when the bundle compiled, else its
	// manifest revision if it could be read, else "".
	Revision string
	// Source names where it came from: "embedded", "dir:PATH", "file:PATH", "url:URL", "activate", or
	// "restore:" and one of those for a bundle reactivated at start from the audit store.
	Source  string
	Outcome Outcome
	// Reason says why it was refused; "" when accepted.
	Reason string
	At     time.Time
}

// Status is the gate's view: the active bundle and the recent candidates.
type Status struct {
	ActiveRevision string
	ActivatedAt    time.Time
	// Evaluation is the path the active bundle's decisions take and its exactness gate's verdict.
	Evaluation engine.PathStatus
	// History lists the most recent candidates, newest first.
	History []Candidate
}

// Config configures a Manager. Zero values take the documented defaults.
type Config struct {
	// Dir is a bundle directory watched for changes, or a bundle archive (.tar.gz), which is read at
	// start only; "" watches nothing.
	Dir string
	// URL is an HTTP bundle server URL polled for the bundle tarball; "" polls nothing.
	URL string
	// PollInterval paces URL polling. Default 10s.
	PollInterval time.Duration
	// Debounce is how long the directory must stay quiet after a change before it is read, so an editor
	// or a copy writing many files is seen once. Default 500ms.
	Debounce time.Duration
	// Verifier checks signatures of every candidate but the embedded pack; nil checks none.
	Verifier *Verifier
	// RefuseUnverified, with a nil Verifier, refuses every pushed (OfferTarball: Activate, URL)
	// candidate: with no key nothing shows who made it. The app sets it when the service listens off
	// loopback, unless the operator allows unsigned bundles.
	RefuseUnverified bool
	// StateFile is where the gate records the active bundle's revision and source after each activation
	// (written atomically), so a restart can reactivate it (OfferRestored); "" records nothing.
	StateFile string
	// RequireTests refuses candidates that have no Rego test.
	RequireTests bool
	// TestTimeout bounds each Rego test. Default 30s.
	TestTimeout time.Duration
	// HistorySize bounds the candidates Status reports. Default 100.
	HistorySize int
	// MaxBundleBytes bounds a bundle fetched from URL. Default 64 MiB.
	MaxBundleBytes int64
	// HTTPClient fetches from URL. Default a client with a 30s timeout.
	HTTPClient *http.Client
	// CheckViews, when set, vets a candidate's history views (engine.Compiled.HistoryViews) beyond their
	// form, which Compile checks: an error refuses the candidate with RefusedCompile. The app refuses
	// views reading request paths the audit log masks. Check (impact analysis) runs it too.
	CheckViews func(history.Views) error
	// PrepareViews, when set, is called with a candidate's history views after its tests and before it
	// is kept and activated, to make the service maintain them (history.Tracker.Prepare rebuilds the
	// index when the views are new); an error fails the candidate (Failed) and the running bundle stays.
	PrepareViews func(ctx context.Context, views history.Views) error
	// Registry receives tollgate_bundle_candidates_total; nil registers nothing.
	Registry *prometheus.Registry
}

func (c *Config) setDefaults() error {
	if c.PollInterval < 0 || c.Debounce < 0 || c.TestTimeout < 0 || c.HistorySize < 0 || c.MaxBundleBytes < 0 {
		return errors.New("bundles: durations and sizes must not be negative")
	}
	if c.PollInterval == 0 {
		c.PollInterval = 10 * time.Second
	}
	if c.Debounce == 0 {
		c.Debounce = 500 * time.Millisecond
	}
	if c.TestTimeout == 0 {
		c.TestTimeout = 30 * time.Second
	}
	if c.HistorySize == 0 {
		c.HistorySize = 100
	}
	if c.MaxBundleBytes == 0 {
		c.MaxBundleBytes = 64 << 20
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if c.URL != "" && !strings.HasPrefix(c.URL, "http://") && !strings.HasPrefix(c.URL, "https://") {
		return fmt.Errorf("bundles: url %q is not http(s)", c.URL)
	}
	if c.URL != "" && c.Verifier == nil && c.RefuseUnverified {
		return fmt.Errorf("bundles: url %s without a verification key would activate whatever that server or the network path to it serves; give a verification key or allow unsigned bundles", c.URL)
	}
	return nil
}

// Engine is what the gate compiles bundles with (under its capabilities) and activates them in;
// *engine.Engine is the implementation.
type Engine interface {
	Compile(ctx context.Context, b *bundle.Bundle) (*engine.Compiled, error)
	Capabilities() *engine.Capabilities
	Active() (*engine.Compiled, time.Time)
	Activate(c *engine.Compiled)
}

// Keeper keeps every activated bundle by revision for replay and gives it back for a restart;
// audit.Store is the implementation.
type Keeper interface {
	PutBundle(ctx context.Context, b audit.Bundle) error
	GetBundle(ctx context.Context, revision string) (audit.Bundle, error)
}

// Manager runs candidates through the activation gate, one at a time, and watches the configured
// sources. Its methods are safe for concurrent use.
type Manager struct {
	cfg    Config
	engine Engine
	keep   Keeper
	log    zerolog.Logger
	count  *prometheus.CounterVec

	gate    sync.Mutex // one candidate through the gate at a time, so activations keep their order
	mu      sync.Mutex // guards history
	history []Candidate

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a Manager over eng and keep. It activates nothing and starts nothing until Offer* or
// Start is called.
func New(cfg Config, eng Engine, keep Keeper, log zerolog.Logger) (*Manager, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if eng == nil || keep == nil {
		return nil, errors.New("bundles: engine and keeper are required")
	}
	m := &Manager{cfg: cfg, engine: eng, keep: keep, log: log.With().Str("component", "bundles").Logger()}
	if cfg.Verifier == nil {
		if cfg.RefuseUnverified {
			m.log.Warn().Msg("no bundle verification key: pushed bundles (PolicyService.Activate) are refused")
		} else {
			m.log.Warn().Msg("no bundle verification key: pushed and fetched bundles are activated unsigned; anyone with the admin role, or who can serve the bundle URL, decides the policy")
		}
	}
	if allowed := eng.Capabilities().Allowed(); len(allowed) > 0 {
		m.log.Warn().Strs("builtins", allowed).Msg("bundles may call built-ins that reach the network or the host")
	}
	m.count = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_bundle_candidates_total",
		Help: "Candidate policy bundles considered by the activation gate, by outcome.",
	}, []string{"outcome"})
	if cfg.Registry != nil {
		for _, c := range []prometheus.Collector{m.count, newActiveInfo(eng)} {
			if err := cfg.Registry.Register(c); err != nil {
				return nil, fmt.Errorf("bundles: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

// OfferTarball runs a pushed or fetched bundle tarball through the gate. source names it in the history.
func (m *Manager) OfferTarball(ctx context.Context, source string, data []byte) Candidate {
	return m.offer(ctx, source, offerOpts{runTests: true, pushed: true}, func() (*bundle.Bundle, error) {
		return ReadTarball(data, m.cfg.Verifier)
	})
}

// OfferDir runs the bundle in dir through the gate.
func (m *Manager) OfferDir(ctx context.Context, dir string) Candidate {
	return m.offer(ctx, "dir:"+dir, offerOpts{runTests: true}, func() (*bundle.Bundle, error) { return ReadDir(dir, m.cfg.Verifier) })
}

// OfferPath runs the bundle at path through the gate: a directory as OfferDir does, a file as a bundle
// archive (tar.gz) the operator named. Anything else is refused with the reason.
func (m *Manager) OfferPath(ctx context.Context, path string) Candidate {
	fi, err := os.Stat(path)
	if err == nil && fi.IsDir() {
		return m.OfferDir(ctx, path)
	}
	return m.offer(ctx, "file:"+path, offerOpts{runTests: true}, func() (*bundle.Bundle, error) {
		if err != nil {
			return nil, fmt.Errorf("read bundle: %w", err)
		}
		return ReadFile(path, m.cfg.Verifier)
	})
}

// OfferEmbedded runs the pack built into the binary through the gate. It is not signature-checked: it
// is part of the binary, which is verified as a whole when it is installed. Nor are its Rego tests run
// again at every start: they pass in the build (go test ./policies) that produced the binary, and
// running them costs seconds per start.
func (m *Manager) OfferEmbedded(ctx context.Context, fsys fs.FS) Candidate {
	return m.offer(ctx, SourceEmbedded, offerOpts{}, func() (*bundle.Bundle, error) { return ReadFS(fsys, nil) })
}

// SourceEmbedded is the source of the pack built into the binary.
const SourceEmbedded = "embedded"

// OfferRestored reactivates, at start, the bundle the state file (Config.StateFile) names, read from
// the keeper, so a pushed or fetched bundle survives a restart. It reports false, offering nothing,
// when there is nothing to restore: no state file, or the embedded pack was active, which is then this
// binary's pack (so an upgrade rolls it forward). The restored bundle is compiled and must define the
// decision rule again (the capabilities may have narrowed); it is not verified or tested again: it was
// when it was first activated, and the copy comes from the audit store, not from the network.
func (m *Manager) OfferRestored(ctx context.Context) (Candidate, bool) {
	if m.cfg.StateFile == "" {
		return Candidate{}, false
	}
	st, err := readState(m.cfg.StateFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return Candidate{}, false
	case err != nil:
		c := Candidate{Source: "restore", Outcome: Failed, Reason: err.Error(), At: time.Now().UTC()}
		m.record(c)
		return c, true
	case st.Source == SourceEmbedded:
		return Candidate{}, false
	}
	c := m.offer(ctx, "restore:"+st.Source, offerOpts{stateSource: st.Source, revision: st.Revision}, func() (*bundle.Bundle, error) {
		kept, err := m.keep.GetBundle(ctx, st.Revision)
		if err != nil {
			return nil, fmt.Errorf("bundle %s named by %s: %w", st.Revision, m.cfg.StateFile, err)
		}
		return ReadTarball(kept.Data, nil)
	})
	return c, true
}

// Check runs a bundle tarball through the gate's checks without activating, keeping or recording it:
// it reads and verifies it (Config.Verifier), compiles it under the engine's capabilities and requires
// the decision rule. Its Rego tests are not run: nothing it decides is answered to a caller. A refused
// bundle is a *RefusedError. Impact analysis vets its candidate with it.
func (m *Manager) Check(ctx context.Context, data []byte) (*engine.Compiled, error) {
	b, err := ReadTarball(data, m.cfg.Verifier)
	if err != nil {
		return nil, &RefusedError{Outcome: RefusedVerification, Reason: err.Error()}
	}
	b.Signatures = bundle.SignaturesConfig{}
	compiled, err := m.engine.Compile(ctx, b)
	if err != nil {
		return nil, &RefusedError{Outcome: RefusedCompile, Reason: err.Error()}
	}
	if err := m.checkViews(compiled); err != nil {
		return nil, &RefusedError{Outcome: RefusedCompile, Reason: err.Error()}
	}
	return compiled, nil
}

// RefusedError is a bundle Check refused, with the outcome the gate would have given it.
type RefusedError struct {
	Outcome Outcome
	Reason  string
}

func (e *RefusedError) Error() string { return fmt.Sprintf("%s: %s", e.Outcome, e.Reason) }

// offerOpts says how the gate treats one candidate.
type offerOpts struct {
	runTests bool
	// pushed candidates are refused unverified under Config.RefuseUnverified.
	pushed bool
	// revision, when set, is the effective revision the candidate must compile to.
	revision string
	// stateSource is the source the state file records; "" is the candidate's source.
	stateSource string
}

// offer is the gate: read and verify, compile, test, keep, activate; the first failure refuses.
func (m *Manager) offer(ctx context.Context, source string, opts offerOpts, read func() (*bundle.Bundle, error)) Candidate {
	m.gate.Lock()
	defer m.gate.Unlock()
	c := Candidate{Source: source}
	if opts.stateSource == "" {
		opts.stateSource = source
	}
	c.Outcome, c.Reason = m.check(ctx, &c, opts, read)
	c.At = time.Now().UTC()
	m.record(c)
	return c
}

func (m *Manager) check(ctx context.Context, c *Candidate, opts offerOpts, read func() (*bundle.Bundle, error)) (Outcome, string) {
	if opts.pushed && m.cfg.Verifier == nil && m.cfg.RefuseUnverified {
		return RefusedVerification, "unsigned bundles are refused: the service listens off loopback without a bundle verification key"
	}
	b, err := read()
	if err != nil {
		return RefusedVerification, err.Error()
	}
	c.Revision = b.Manifest.Revision
	// The signature has been checked; what is compiled, kept and replayed is the verified content.
	// Without the signature the kept copy reads back without a key and the revision names the content.
	b.Signatures = bundle.SignaturesConfig{}

	compiled, err := m.engine.Compile(ctx, b)
	if err != nil {
		return RefusedCompile, err.Error()
	}
	c.Revision = compiled.Revision()
	if err := m.checkViews(compiled); err != nil {
		return RefusedCompile, err.Error()
	}
	if opts.revision != "" && compiled.Revision() != opts.revision {
		return RefusedVerification, fmt.Sprintf("kept bundle %s compiles as revision %s", opts.revision, compiled.Revision())
	}
	if active, _ := m.engine.Active(); active != nil && active.Revision() == compiled.Revision() {
		return Unchanged, ""
	}

	if opts.runTests {
		if outcome, reason := m.test(ctx, b); outcome != "" {
			return outcome, reason
		}
	}

	if m.cfg.PrepareViews != nil {
		if err := m.cfg.PrepareViews(ctx, compiled.HistoryViews()); err != nil {
			return Failed, fmt.Sprintf("prepare history views: %v", err)
		}
	}

	keep := audit.Bundle{Revision: compiled.Revision(), Data: compiled.Data(), ActivatedAt: time.Now().UTC()}
	if err := m.keep.PutBundle(context.WithoutCancel(ctx), keep); err != nil {
		return Failed, fmt.Sprintf("keep bundle for replay: %v", err)
	}
	// Recorded before the swap: a bundle that decides must be the one a restart brings back.
	if m.cfg.StateFile != "" {
		st := state{Revision: compiled.Revision(), Source: opts.stateSource, ActivatedAt: keep.ActivatedAt}
		if err := writeState(m.cfg.StateFile, st); err != nil {
			return Failed, err.Error()
		}
	}
	m.engine.Activate(compiled)
	return Activated, ""
}

// checkViews runs Config.CheckViews on the compiled candidate's views.
func (m *Manager) checkViews(c *engine.Compiled) error {
	if m.cfg.CheckViews == nil {
		return nil
	}
	return m.cfg.CheckViews(c.HistoryViews())
}

// test runs the candidate's own Rego tests; a non-empty outcome refuses it.
func (m *Manager) test(ctx context.Context, b *bundle.Bundle) (Outcome, string) {
	rep, err := RunTests(ctx, b, m.cfg.TestTimeout, m.engine.Capabilities())
	switch {
	case err != nil:
		return RefusedTests, err.Error()
	case len(rep.Failures) > 0:
		return RefusedTests, fmt.Sprintf("%d of %d rego tests failed: %s", len(rep.Failures), len(rep.Failures)+rep.Passed, summarize(rep.Failures, 5))
	case m.cfg.RequireTests && rep.Passed == 0:
		return RefusedTests, "no rego test passed and tests are required"
	}
	return "", ""
}

func summarize(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, "; ")
	}
	return strings.Join(items[:n], "; ") + fmt.Sprintf("; and %d more", len(items)-n)
}

func (m *Manager) record(c Candidate) {
	m.count.WithLabelValues(string(c.Outcome)).Inc()
	ev := m.log.Info()
	if !c.Outcome.Accepted() {
		ev = m.log.Error()
	}
	ev.Str("source", c.Source).Str("bundle_revision", c.Revision).Str("outcome", string(c.Outcome)).
		Str("reason", c.Reason).Msg("bundle candidate")
	m.mu.Lock()
	defer m.mu.Unlock()
	m.history = append(m.history, c)
	if over := len(m.history) - m.cfg.HistorySize; over > 0 {
		m.history = append(m.history[:0], m.history[over:]...)
	}
}

// Status returns the active revision, when it was activated and the recent candidates, newest first.
func (m *Manager) Status() Status {
	var st Status
	if active, at := m.engine.Active(); active != nil {
		st.ActiveRevision, st.ActivatedAt = active.Revision(), at
		st.Evaluation = active.PathStatus()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st.History = make([]Candidate, len(m.history))
	for i, c := range m.history {
		st.History[len(m.history)-1-i] = c
	}
	return st
}

// Start watches Config.Dir and polls Config.URL, offering each change to the gate, until Close. It
// fails if the directory cannot be watched.
func (m *Manager) Start(ctx context.Context) error {
	ctx, m.cancel = context.WithCancel(context.WithoutCancel(ctx))
	if fi, err := os.Stat(m.cfg.Dir); err == nil && fi.IsDir() {
		w, err := newDirWatcher(m.cfg.Dir)
		if err != nil {
			m.cancel()
			return err
		}
		m.wg.Go(func() { m.watchDir(ctx, w) })
	}
	if m.cfg.URL != "" {
		m.wg.Go(func() { m.poll(ctx) })
	}
	return nil
}

// Close stops watching and polling and waits for a candidate in the gate to finish.
func (m *Manager) Close() error {
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
	return nil
}
