package bundles

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/keys"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"

	"github.com/tollgate/tollgate/server/engine"
)

// DefaultKeyID is the key id bundles are signed with and verified against when none is given.
const DefaultKeyID = "tollgate"

// SigningAlgorithm is the JWS algorithm of Tollgate's bundle signatures.
const SigningAlgorithm = "RS256"

// Verifier checks bundle signatures against one public key. A nil *Verifier verifies nothing: unsigned
// bundles are accepted and signatures are not checked.
type Verifier struct {
	cfg *bundle.VerificationConfig
}

// NewVerifier returns a verifier for publicKeyPEM (an RSA public key, PEM). keyID "" is DefaultKeyID.
// Every bundle it reads must carry a .signatures.json signed by the matching private key, whatever key
// id the signature names.
func NewVerifier(publicKeyPEM, keyID string) (*Verifier, error) {
	if keyID == "" {
		keyID = DefaultKeyID
	}
	block, _ := pem.Decode([]byte(publicKeyPEM))
	if block == nil {
		return nil, errors.New("verification key is not PEM")
	}
	if _, err := x509.ParsePKIXPublicKey(block.Bytes); err != nil && block.Type == "PUBLIC KEY" {
		return nil, fmt.Errorf("verification key: %w", err)
	}
	kc := &keys.Config{Key: publicKeyPEM, Algorithm: SigningAlgorithm}
	return &Verifier{cfg: bundle.NewVerificationConfig(map[string]*bundle.KeyConfig{keyID: kc}, keyID, "", nil)}, nil
}

func (v *Verifier) apply(r *bundle.Reader) *bundle.Reader {
	if v == nil {
		// Without a key a signature cannot be checked; reading it anyway is the caller's choice.
		return r.WithSkipBundleVerification(true)
	}
	return r.WithBundleVerificationConfig(v.cfg)
}

// ReadTarball reads an OPA bundle tarball (tar.gz), verifying it with v (nil: no verification).
func ReadTarball(data []byte, v *Verifier) (*bundle.Bundle, error) {
	b, err := v.apply(bundle.NewReader(bytes.NewReader(data)).WithProcessAnnotations(true)).Read()
	if err != nil {
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	return &b, nil
}

// ErrNoPolicy is returned for a bundle directory that holds no Rego module: it cannot decide anything.
var ErrNoPolicy = errors.New("no Rego modules (.rego files)")

// ReadDir reads an OPA bundle from a directory, verifying it with v (nil: no verification). A directory
// without a Rego module is refused (ErrNoPolicy): it is an empty or mistaken path, not a policy.
func ReadDir(dir string, v *Verifier) (*bundle.Bundle, error) {
	b, err := v.apply(bundle.NewCustomReader(bundle.NewDirectoryLoader(dir)).WithProcessAnnotations(true)).Read()
	if err != nil {
		return nil, fmt.Errorf("read bundle %s: %w", dir, err)
	}
	if len(b.Modules) == 0 {
		return nil, fmt.Errorf("read bundle %s: %w", dir, ErrNoPolicy)
	}
	// A directory loader names modules by their path on disk; name them by their path in the bundle, as a
	// tarball does, so the same content gives the same tarball and revision wherever it was read from.
	for i := range b.Modules {
		b.Modules[i].URL = b.Modules[i].Path
	}
	return &b, nil
}

// ReadFile reads a bundle archive (tar.gz) from path, verifying it with v (nil: no verification). A
// file that is not one is refused with an error that says so.
func ReadFile(path string, v *Verifier) (*bundle.Bundle, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	if len(data) < 2 || data[0] != 0x1f || data[1] != 0x8b {
		return nil, fmt.Errorf("read bundle %s: neither a directory nor a bundle archive (.tar.gz, as `tollgate bundle build` writes)", path)
	}
	b, err := ReadTarball(data, v)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", path, err)
	}
	return b, nil
}

// ReadFS reads an OPA bundle from a file system, verifying it with v (nil: no verification).
func ReadFS(fsys fs.FS, v *Verifier) (*bundle.Bundle, error) {
	loader, err := bundle.NewFSLoader(fsys)
	if err != nil {
		return nil, fmt.Errorf("open bundle: %w", err)
	}
	b, err := v.apply(bundle.NewCustomReader(loader).WithProcessAnnotations(true)).Read()
	if err != nil {
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	return &b, nil
}

// Write returns b as an OPA bundle tarball, with its signatures if it has any.
func Write(b *bundle.Bundle) ([]byte, error) {
	return engine.Serialize(b)
}

// Sign replaces b's signatures with one RS256 signature by privateKeyPEM under keyID ("" is
// DefaultKeyID), made with OPA's signing code. Write b afterwards to get the signed tarball.
func Sign(b *bundle.Bundle, privateKeyPEM, keyID string) error {
	if keyID == "" {
		keyID = DefaultKeyID
	}
	b.Signatures = bundle.SignaturesConfig{}
	if err := b.GenerateSignature(bundle.NewSigningConfig(privateKeyPEM, SigningAlgorithm, ""), keyID, false); err != nil {
		return fmt.Errorf("sign bundle: %w", err)
	}
	return nil
}

// SignDir signs the bundle in dir with privateKeyPEM under keyID ("" is DefaultKeyID) and writes the
// signature to dir/.signatures.json, as `opa sign` does for a directory: every file the bundle reads is
// covered, so editing one afterwards makes verification fail until the directory is signed again.
//
// OPA's signature always covers the bundle's data as one root data.json, so a directory without one
// gets an empty data.json ({}), and a directory whose data lives in nested data.json files cannot be
// verified once signed: keep a signed directory's data in its root data.json.
func SignDir(dir, privateKeyPEM, keyID string) error {
	dataFile := filepath.Join(dir, "data.json")
	if _, err := os.Stat(dataFile); errors.Is(err, fs.ErrNotExist) {
		if err := os.WriteFile(dataFile, []byte("{}\n"), 0o644); err != nil {
			return fmt.Errorf("sign bundle: %w", err)
		}
	}
	b, err := ReadDir(dir, nil)
	if err != nil {
		return err
	}
	if err := Sign(b, privateKeyPEM, keyID); err != nil {
		return err
	}
	data, err := json.MarshalIndent(b.Signatures, "", "  ")
	if err != nil {
		return fmt.Errorf("sign bundle: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".signatures.json"), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("sign bundle: %w", err)
	}
	return nil
}

// Info describes a bundle tarball for `tollgate bundle inspect`.
type Info struct {
	// Revision is the manifest revision.
	Revision string
	// EffectiveRevision is the revision the service reports for this bundle once activated: the
	// manifest revision and a digest of the content without signatures (engine.Compiled.Revision).
	// "" when the bundle does not compile; CompileError then says why.
	EffectiveRevision string
	CompileError      string
	Roots             []string
	Files             []string // module and data files, sorted
	Signed            bool
	// Digest is the hex SHA-256 of the tarball file as given; it covers the signatures and the archive's
	// encoding, so it is not the digest in EffectiveRevision.
	Digest string
}

// Inspect reads a bundle tarball without verifying it and describes it, compiling it under caps (nil:
// the safe set) for its effective revision.
func Inspect(ctx context.Context, data []byte, caps *engine.Capabilities) (Info, error) {
	b, err := ReadTarball(data, nil)
	if err != nil {
		return Info{}, err
	}
	unsigned := *b
	unsigned.Signatures = bundle.SignaturesConfig{}
	var effective, compileErr string
	if c, err := engine.CompileWith(ctx, &unsigned, caps); err != nil {
		compileErr = err.Error()
	} else {
		effective = c.Revision()
	}
	sum := sha256.Sum256(data)
	signed, err := hasSignatures(data)
	if err != nil {
		return Info{}, err
	}
	info := Info{Revision: b.Manifest.Revision, EffectiveRevision: effective, CompileError: compileErr, Signed: signed, Digest: hex.EncodeToString(sum[:])}
	if b.Manifest.Roots != nil {
		info.Roots = slices.Clone(*b.Manifest.Roots)
	}
	for _, m := range b.Modules {
		info.Files = append(info.Files, strings.TrimPrefix(m.URL, "/"))
	}
	if len(b.Data) > 0 {
		info.Files = append(info.Files, "data.json")
	}
	slices.Sort(info.Files)
	return info, nil
}

// hasSignatures reports whether a tarball holds a .signatures.json, listing it with OPA's loader.
func hasSignatures(data []byte) (bool, error) {
	loader := bundle.NewTarballLoader(bytes.NewReader(data))
	for {
		f, err := loader.NextFile()
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("read bundle: %w", err)
		}
		if bundle.IsSignaturesFile(f.Path()) {
			return true, nil
		}
	}
}

// TestReport is the outcome of a bundle's Rego tests.
type TestReport struct {
	Passed, Skipped int
	// Failures names each failing or erroring test with why, e.g. "tollgate.th.test_x: FAIL".
	Failures []string
}

// TestFile reports whether path is a Rego test file by OPA's naming convention.
func TestFile(path string) bool { return strings.HasSuffix(path, "_test.rego") }

// RunTests runs b's Rego tests (every test_ rule, conventionally in *_test.rego files) through OPA's
// tester with the engine's master-data builtins declared, under caps (nil: the safe set) and with
// built-in errors fatal, as the engine evaluates, each test bounded by timeout (0: 30s). An error means
// the tests could not be run at all (e.g. they do not compile, or call a built-in outside caps);
// failing tests are in the report.
func RunTests(ctx context.Context, b *bundle.Bundle, timeout time.Duration, caps *engine.Capabilities) (TestReport, error) {
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	if caps == nil {
		var err error
		if caps, err = engine.NewCapabilities(nil); err != nil {
			return TestReport{}, fmt.Errorf("run bundle tests: %w", err)
		}
	}
	compiler := ast.NewCompiler().
		WithCapabilities(caps.AST()).
		WithEnablePrintStatements(true).
		WithDefaultRegoVersion(ast.RegoV1)
	store := inmem.New()
	txn, err := store.NewTransaction(ctx, storage.WriteParams)
	if err != nil {
		return TestReport{}, fmt.Errorf("run bundle tests: %w", err)
	}
	defer store.Abort(ctx, txn)
	ch, err := tester.NewRunner().
		SetStore(store).
		SetCompiler(compiler).
		SetBundles(map[string]*bundle.Bundle{"candidate": b}).
		AddCustomBuiltins(engine.TesterBuiltins()).
		RaiseBuiltinErrors(true).
		CapturePrintOutput(true).
		SetTimeout(timeout).
		RunTests(ctx, txn)
	if err != nil {
		return TestReport{}, fmt.Errorf("run bundle tests: %w", err)
	}
	var rep TestReport
	for r := range ch {
		name := strings.TrimPrefix(r.Package, "data.") + "." + r.Name
		switch {
		case r.Error != nil:
			rep.Failures = append(rep.Failures, fmt.Sprintf("%s: error: %v", name, r.Error))
		case r.Fail:
			rep.Failures = append(rep.Failures, name+": FAIL")
		case r.Skip:
			rep.Skipped++
		default:
			rep.Passed++
		}
	}
	return rep, nil
}
