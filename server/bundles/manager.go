package bundles

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/engine"
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
	// RefusedVerification: unreadable, unsigned or wrongly signed.
	RefusedVerification Outcome = "refused_verification"
	// RefusedCompile: the Rego does not compile or lacks the decision rule.
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
	// Source names where it came from: "embedded", "dir:PATH", "url:URL", "activate".
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
	// History lists the most recent candidates, newest first.
	History []Candidate
}

// Config configures a Manager. Zero values take the documented defaults.
type Config struct {
	// Dir is a bundle directory watched for changes; "" watches nothing.
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
	return nil
}

// Engine is what the gate activates bundles in; *engine.Engine is the implementation.
type Engine interface {
	Active() (*engine.Compiled, time.Time)
	Activate(c *engine.Compiled)
}

// Keeper keeps every activated bundle by revision for replay; audit.Store is the implementation.
type Keeper interface {
	PutBundle(ctx context.Context, b audit.Bundle) error
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
	m.count = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_bundle_candidates_total",
		Help: "Candidate policy bundles considered by the activation gate, by outcome.",
	}, []string{"outcome"})
	if cfg.Registry != nil {
		if err := cfg.Registry.Register(m.count); err != nil {
			return nil, fmt.Errorf("bundles: register metrics: %w", err)
		}
	}
	return m, nil
}

// OfferTarball runs a bundle tarball through the gate. source names it in the history.
func (m *Manager) OfferTarball(ctx context.Context, source string, data []byte) Candidate {
	return m.offer(ctx, source, true, func() (*bundle.Bundle, error) { return ReadTarball(data, m.cfg.Verifier) })
}

// OfferDir runs the bundle in dir through the gate.
func (m *Manager) OfferDir(ctx context.Context, dir string) Candidate {
	return m.offer(ctx, "dir:"+dir, true, func() (*bundle.Bundle, error) { return ReadDir(dir, m.cfg.Verifier) })
}

// OfferEmbedded runs the pack built into the binary through the gate. It is not signature-checked: it
// is part of the binary, which is verified as a whole when it is installed. Nor are its Rego tests run
// again at every start: they pass in the build (go test ./policies) that produced the binary, and
// running them costs seconds per start.
func (m *Manager) OfferEmbedded(ctx context.Context, fsys fs.FS) Candidate {
	return m.offer(ctx, "embedded", false, func() (*bundle.Bundle, error) { return ReadFS(fsys, nil) })
}

// offer is the gate: read and verify, compile, test, keep, activate; the first failure refuses.
func (m *Manager) offer(ctx context.Context, source string, runTests bool, read func() (*bundle.Bundle, error)) Candidate {
	m.gate.Lock()
	defer m.gate.Unlock()
	c := Candidate{Source: source}
	c.Outcome, c.Reason = m.check(ctx, &c, runTests, read)
	c.At = time.Now().UTC()
	m.record(c)
	return c
}

func (m *Manager) check(ctx context.Context, c *Candidate, runTests bool, read func() (*bundle.Bundle, error)) (Outcome, string) {
	b, err := read()
	if err != nil {
		return RefusedVerification, err.Error()
	}
	c.Revision = b.Manifest.Revision
	// The signature has been checked; what is compiled, kept and replayed is the verified content.
	// Without the signature the kept copy reads back without a key and the revision names the content.
	b.Signatures = bundle.SignaturesConfig{}

	compiled, err := engine.Compile(ctx, b)
	if err != nil {
		return RefusedCompile, err.Error()
	}
	c.Revision = compiled.Revision()
	if active, _ := m.engine.Active(); active != nil && active.Revision() == compiled.Revision() {
		return Unchanged, ""
	}

	if runTests {
		if outcome, reason := m.test(ctx, b); outcome != "" {
			return outcome, reason
		}
	}

	keep := audit.Bundle{Revision: compiled.Revision(), Data: compiled.Data(), ActivatedAt: time.Now().UTC()}
	if err := m.keep.PutBundle(context.WithoutCancel(ctx), keep); err != nil {
		return Failed, fmt.Sprintf("keep bundle for replay: %v", err)
	}
	m.engine.Activate(compiled)
	return Activated, ""
}

// test runs the candidate's own Rego tests; a non-empty outcome refuses it.
func (m *Manager) test(ctx context.Context, b *bundle.Bundle) (Outcome, string) {
	rep, err := RunTests(ctx, b, m.cfg.TestTimeout)
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
	if m.cfg.Dir != "" {
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
