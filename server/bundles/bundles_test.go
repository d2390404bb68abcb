package bundles_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/server/audit/sqlite"
	"github.com/tollgate/tollgate/server/bundles"
	"github.com/tollgate/tollgate/server/engine"
	"github.com/tollgate/tollgate/server/masterdata"
)

// policy is a minimal bundle: one decision rule reading params from data.json, and a Rego test.
func policy(revision, message string) map[string]string {
	return map[string]string{
		".manifest":      `{"revision": "` + revision + `", "roots": ["tollgate", "params"]}`,
		"data.json":      `{"params": {"message": "` + message + `"}}`,
		"main.rego":      "package tollgate\n\ndecision := {\"effect\": \"ALLOW\", \"reasons\": [{\"code\": \"OK\", \"message\": data.params.message}], \"approvers\": []}\n",
		"main_test.rego": "package tollgate.main_test\n\ntest_allows if data.tollgate.decision.effect == \"ALLOW\"\n",
	}
}

func writeDir(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// tarball builds a bundle tarball from files, signed with key when key is not "".
func tarball(t testing.TB, files map[string]string, key string) []byte {
	t.Helper()
	b, err := bundles.ReadDir(writeDir(t, files), nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		if err := bundles.Sign(b, key, ""); err != nil {
			t.Fatal(err)
		}
	}
	data, err := bundles.Write(b)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// keyPair returns a fresh RSA key pair as PEM (private, public).
func keyPair(t testing.TB) (string, string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
}

func TestVerification(t *testing.T) {
	priv, pub := keyPair(t)
	otherPriv, _ := keyPair(t)
	v, err := bundles.NewVerifier(pub, "")
	if err != nil {
		t.Fatal(err)
	}
	signed := tarball(t, policy("r1", "hello"), priv)

	// Tampered: the signed bundle with data.json changed after signing, signature kept.
	b, err := bundles.ReadTarball(signed, v)
	if err != nil {
		t.Fatalf("read signed bundle: %v", err)
	}
	b.Data["params"] = map[string]any{"message": "tampered"}
	tampered, err := bundles.Write(b)
	if err != nil {
		t.Fatal(err)
	}

	for name, tc := range map[string]struct {
		data []byte
		want string // substring of the error; "" means it verifies
	}{
		"signed":       {signed, ""},
		"unsigned":     {tarball(t, policy("r1", "hello"), ""), "missing .signatures.json"},
		"wrong key":    {tarball(t, policy("r1", "hello"), otherPriv), "verification"},
		"tampered":     {tampered, "digest mismatch"},
		"not a bundle": {[]byte("not gzip"), "read bundle"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := bundles.ReadTarball(tc.data, v)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("ReadTarball: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("ReadTarball error = %v, want one containing %q", err, tc.want)
			}
		})
	}

	info, err := bundles.Inspect(context.Background(), signed, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The effective revision is the one the service reports: over the content, without the signature.
	unsigned, err := bundles.ReadTarball(tarball(t, policy("r1", "hello"), ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	compiled, err := engine.Compile(context.Background(), unsigned)
	if err != nil {
		t.Fatal(err)
	}
	want := bundles.Info{Revision: "r1", EffectiveRevision: compiled.Revision(), Roots: []string{"tollgate", "params"},
		Files: []string{"data.json", "main.rego", "main_test.rego"}, Signed: true, Digest: info.Digest}
	if diff := cmp.Diff(want, info); diff != "" {
		t.Errorf("Inspect (-want +got):\n%s", diff)
	}
}

type fixture struct {
	engine   *engine.Engine
	store    *sqlite.Store
	manager  *bundles.Manager
	registry *prometheus.Registry
}

func nopLog() zerolog.Logger { return zerolog.New(io.Discard) }

func newFixture(t testing.TB, cfg bundles.Config) *fixture {
	t.Helper()
	store, err := sqlite.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return newFixtureOver(t, store, cfg)
}

// newFixtureOver is a fresh engine and manager over an existing store, as after a restart.
func newFixtureOver(t testing.TB, store *sqlite.Store, cfg bundles.Config) *fixture {
	t.Helper()
	md, err := masterdata.New(masterdata.Config{Prepare: engine.PrepareRecord})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Config{}, md, nopLog())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Registry = prometheus.NewRegistry()
	m, err := bundles.New(cfg, eng, store, zerolog.New(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return &fixture{engine: eng, store: store, manager: m, registry: cfg.Registry}
}

func (f *fixture) active(t testing.TB) string {
	t.Helper()
	c, _ := f.engine.Active()
	if c == nil {
		return ""
	}
	return c.Revision()
}

func TestGate(t *testing.T) {
	ctx := context.Background()
	priv, pub := keyPair(t)
	v, err := bundles.NewVerifier(pub, "")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, bundles.Config{Verifier: v, RequireTests: true})

	good := f.manager.OfferTarball(ctx, "test", tarball(t, policy("r1", "hello"), priv))
	if good.Outcome != bundles.Activated || !strings.HasPrefix(good.Revision, "r1@") {
		t.Fatalf("good bundle: %+v, want activated r1@…", good)
	}
	if got := f.active(t); got != good.Revision {
		t.Fatalf("active = %q, want %q", got, good.Revision)
	}
	if kept, err := f.store.GetBundle(ctx, good.Revision); err != nil || len(kept.Data) == 0 {
		t.Fatalf("kept bundle %s: %v", good.Revision, err)
	}

	compileError := policy("r2", "x")
	compileError["main.rego"] = "package tollgate\n\ndecision := {\"effect\": undefined_var}\n"
	failingTest := policy("r3", "x")
	failingTest["main_test.rego"] = "package tollgate.main_test\n\ntest_denies if data.tollgate.decision.effect == \"DENY\"\n"
	noTests := policy("r4", "x")
	delete(noTests, "main_test.rego")
	noDecision := policy("r7", "x")
	noDecision[".manifest"] = `{"revision": "r7", "roots": ["tollgate", "params", "other"]}`
	noDecision["main.rego"] = "package other\n\ndecision := {\"effect\": \"ALLOW\", \"reasons\": [{\"code\": \"OK\"}]}\n"
	noDecision["main_test.rego"] = "package other.main_test\n\ntest_allows if data.other.decision.effect == \"ALLOW\"\n"
	httpSend := policy("r8", "x")
	httpSend["main.rego"] += "\nfetched := http.send({\"method\": \"GET\", \"url\": \"http://127.0.0.1:1/\"})\n"

	for _, tc := range []struct {
		name   string
		data   []byte
		want   bundles.Outcome
		reason string
	}{
		{"unsigned", tarball(t, policy("r6", "x"), ""), bundles.RefusedVerification, "missing .signatures.json"},
		{"compile error", tarball(t, compileError, priv), bundles.RefusedCompile, "undefined_var"},
		{"failing test", tarball(t, failingTest, priv), bundles.RefusedTests, "tollgate.main_test.test_denies: FAIL"},
		{"no tests", tarball(t, noTests, priv), bundles.RefusedTests, "no rego test"},
		{"no decision rule", tarball(t, noDecision, priv), bundles.RefusedCompile, "defines no rule data.tollgate.decision"},
		{"http.send", tarball(t, httpSend, priv), bundles.RefusedCompile, "undefined function http.send"},
		{"same revision", tarball(t, policy("r1", "hello"), priv), bundles.Unchanged, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := f.manager.OfferTarball(ctx, tc.name, tc.data)
			if got.Outcome != tc.want || !strings.Contains(got.Reason, tc.reason) {
				t.Errorf("outcome %s %q, want %s with %q", got.Outcome, got.Reason, tc.want, tc.reason)
			}
			if active := f.active(t); active != good.Revision {
				t.Errorf("active = %q after %s, want %q kept", active, tc.name, good.Revision)
			}
		})
	}

	st := f.manager.Status()
	if st.ActiveRevision != good.Revision || st.ActivatedAt.IsZero() {
		t.Errorf("status active %q at %v, want %q", st.ActiveRevision, st.ActivatedAt, good.Revision)
	}
	var sources []string
	for _, c := range st.History {
		sources = append(sources, c.Source)
	}
	if diff := cmp.Diff([]string{"same revision", "http.send", "no decision rule", "no tests", "failing test", "compile error", "unsigned", "test"}, sources); diff != "" {
		t.Errorf("history newest first (-want +got):\n%s", diff)
	}
	for outcome, want := range map[bundles.Outcome]float64{bundles.Activated: 1, bundles.Unchanged: 1, bundles.RefusedVerification: 1, bundles.RefusedCompile: 3, bundles.RefusedTests: 2} {
		if got := candidates(t, f.registry, outcome); got != want {
			t.Errorf("tollgate_bundle_candidates_total{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}
}

// candidates reads tollgate_bundle_candidates_total{outcome} from reg.
func candidates(t testing.TB, reg *prometheus.Registry, outcome bundles.Outcome) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range families {
		if fam.GetName() != "tollgate_bundle_candidates_total" {
			continue
		}
		for _, m := range fam.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == string(outcome) {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestActiveInfoMetric: tollgate_bundle_active_info names the deciding revision, and only it, from
// before the first activation (absent) through a second one.
func TestActiveInfoMetric(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, bundles.Config{})
	if got := activeInfo(t, f.registry); len(got) != 0 {
		t.Fatalf("before any activation: %v, want no series", got)
	}
	for _, rev := range []string{"r1", "r2"} {
		c := f.manager.OfferTarball(ctx, rev, tarball(t, policy(rev, rev), ""))
		if c.Outcome != bundles.Activated {
			t.Fatalf("%s: %+v", rev, c)
		}
		if got := activeInfo(t, f.registry); len(got) != 1 || got[c.Revision] != 1 {
			t.Errorf("after activating %s: %v, want only %s = 1", rev, got, c.Revision)
		}
	}
}

// activeInfo reads tollgate_bundle_active_info's series from reg: revision -> value.
func activeInfo(t testing.TB, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, fam := range families {
		if fam.GetName() != "tollgate_bundle_active_info" {
			continue
		}
		for _, m := range fam.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "revision" {
					out[l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
	}
	return out
}

// TestGateRefusesMalformedHistoryViews: a bundle's history views (params.history.views) are checked at
// the gate, for activation and for impact analysis's Check alike: a malformed one is refused naming the
// view and field, and the running bundle stays; well-formed views pass.
func TestGateRefusesMalformedHistoryViews(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, bundles.Config{})
	withViews := func(revision, views string) []byte {
		files := policy(revision, revision)
		files["data.json"] = `{"params": {"message": "` + revision + `", "history": {"views": ` + views + `}}}`
		return tarball(t, files, "")
	}
	good := f.manager.OfferTarball(ctx, "good", withViews("v1", `{"po_split": {
		"actions": [{"action": "PO.SUBMIT", "value": "resource.attributes.amount", "currency": "resource.attributes.currency"}],
		"key": [{"path": "actor.id"}, {"path": "resource.attributes.supplier_id"}],
		"effects": ["ALLOW", "REQUIRE_APPROVAL"], "window": "24h"}}`))
	if good.Outcome != bundles.Activated {
		t.Fatalf("a bundle with a well-formed view: %+v, want activated", good)
	}
	bad := withViews("v2", `{"po_split": {"actions": [{"action": "PO.SUBMIT"}], "key": [{"path": "actor.id"}],
		"effects": ["ALLOW"], "window": "yesterday"}}`)
	got := f.manager.OfferTarball(ctx, "bad", bad)
	if got.Outcome != bundles.RefusedCompile || !strings.Contains(got.Reason, "invalid history views") ||
		!strings.Contains(got.Reason, `"po_split"`) || !strings.Contains(got.Reason, "window") {
		t.Errorf("a bundle with a malformed window: %s %q, want refused_compile naming the view and field", got.Outcome, got.Reason)
	}
	if active := f.active(t); active != good.Revision {
		t.Errorf("active = %q after the refusal, want %q kept", active, good.Revision)
	}
	var refused *bundles.RefusedError
	if _, err := f.manager.Check(ctx, bad); !errors.As(err, &refused) || refused.Outcome != bundles.RefusedCompile {
		t.Errorf("Check of the malformed bundle: %v, want a RefusedError with refused_compile", err)
	}
}
