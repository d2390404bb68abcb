package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/tollgate/tollgate/server/api"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/bundles"
	"github.com/tollgate/tollgate/server/engine"
)

const bundleUsage = `usage: tollgate bundle <command> [flags]

commands:
  build DIR -o FILE [--revision R] [--allow-builtins B]
                                            write the bundle in DIR as an OPA bundle tarball, after compiling it
                                            (an empty directory, or one without a decision rule, is refused)
  sign --key KEY [--key-id ID] [-o OUT] FILE|DIR
                                            sign a bundle tarball (RS256, OPA's .signatures.json); default OUT is FILE;
                                            a DIR gets DIR/.signatures.json
  inspect FILE                              print the manifest and effective revision (the one the service reports),
                                            roots, files, whether it is signed, and the file's SHA-256
  test DIR|FILE [--allow-builtins B]        run the bundle's Rego tests with Tollgate's builtins; exit 1 on failure
`

// exitError carries a process exit status other than the default 2 (e.g. 1 for failing tests).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// exitCode is the process exit status for an error returned by run.
func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 2
}

// bundleCommand runs `tollgate bundle ...`.
func bundleCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, bundleUsage)
		return errors.New("bundle: no command given")
	}
	switch args[0] {
	case "build":
		return bundleBuild(ctx, args[1:], stdout, stderr)
	case "sign":
		return bundleSign(args[1:], stdout, stderr)
	case "inspect":
		return bundleInspect(ctx, args[1:], stdout, stderr)
	case "test":
		return bundleTest(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, bundleUsage)
		return nil
	default:
		fmt.Fprint(stderr, bundleUsage)
		return fmt.Errorf("bundle: unknown command %q", args[0])
	}
}

// parseOne parses fs and returns its single positional argument, allowing flags after it.
func parseOne(fs *flag.FlagSet, args []string, what string) (string, error) {
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return "", fmt.Errorf("%s: %s is required", fs.Name(), what)
	}
	arg := rest[0]
	if err := fs.Parse(rest[1:]); err != nil {
		return "", err
	}
	if fs.NArg() > 0 {
		return "", fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return arg, nil
}

func bundleBuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bundle build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "bundle.tar.gz", "output `FILE`")
	revision := fs.String("revision", "", "set the manifest revision to `R` (default: keep the directory's .manifest revision)")
	allow := fs.String("allow-builtins", "", "comma-separated unsafe `BUILTINS` the bundle may call, as serve --allow-builtins")
	dir, err := parseOne(fs, args, "DIR")
	if err != nil {
		return err
	}
	caps, err := capabilities(*allow)
	if err != nil {
		return fmt.Errorf("bundle build: %w", err)
	}
	b, err := bundles.ReadDir(dir, nil)
	if err != nil {
		return fmt.Errorf("bundle build: %w", err)
	}
	if *revision != "" {
		b.Manifest.Revision = *revision
	}
	compiled, err := engine.CompileWith(ctx, b, caps)
	if err != nil {
		return fmt.Errorf("bundle build: %w", err)
	}
	data, err := bundles.Write(b)
	if err != nil {
		return fmt.Errorf("bundle build: %w", err)
	}
	if err := os.WriteFile(*out, data, 0o644); err != nil {
		return fmt.Errorf("bundle build: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s: revision %s (effective %s), %d modules\n", *out, b.Manifest.Revision, compiled.Revision(), len(b.Modules))
	return nil
}

func bundleSign(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bundle sign", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyFile := fs.String("key", "", "RSA private key `FILE` (PEM); required")
	keyID := fs.String("key-id", bundles.DefaultKeyID, "key `ID` recorded in the signature")
	out := fs.String("o", "", "output `FILE` (default: overwrite the input)")
	file, err := parseOne(fs, args, "FILE")
	if err != nil {
		return err
	}
	if *keyFile == "" {
		return errors.New("bundle sign: --key is required")
	}
	key, err := os.ReadFile(*keyFile)
	if err != nil {
		return fmt.Errorf("bundle sign: %w", err)
	}
	if fi, err := os.Stat(file); err == nil && fi.IsDir() {
		if err := bundles.SignDir(file, string(key), *keyID); err != nil {
			return fmt.Errorf("bundle sign: %w", err)
		}
		fmt.Fprintf(stdout, "signed %s with key id %s (RS256): %s\n", file, *keyID, filepath.Join(file, ".signatures.json"))
		return nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("bundle sign: %w", err)
	}
	b, err := bundles.ReadTarball(data, nil)
	if err != nil {
		return fmt.Errorf("bundle sign: %w", err)
	}
	if err := bundles.Sign(b, string(key), *keyID); err != nil {
		return fmt.Errorf("bundle sign: %w", err)
	}
	signed, err := bundles.Write(b)
	if err != nil {
		return fmt.Errorf("bundle sign: %w", err)
	}
	if *out == "" {
		*out = file
	}
	if err := os.WriteFile(*out, signed, 0o644); err != nil {
		return fmt.Errorf("bundle sign: %w", err)
	}
	fmt.Fprintf(stdout, "signed %s with key id %s (RS256): %s\n", b.Manifest.Revision, *keyID, *out)
	return nil
}

func bundleInspect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bundle inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file, err := parseOne(fs, args, "FILE")
	if err != nil {
		return err
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("bundle inspect: %w", err)
	}
	info, err := bundles.Inspect(ctx, data, nil)
	if err != nil {
		return fmt.Errorf("bundle inspect: %w", err)
	}
	if info.EffectiveRevision == "" {
		info.EffectiveRevision = "none: " + info.CompileError
	}
	fmt.Fprintf(stdout, "revision:    %s\neffective:   %s\nroots:       %s\nsigned:      %t\nfile sha256: %s\nfiles:\n",
		info.Revision, info.EffectiveRevision, strings.Join(info.Roots, ", "), info.Signed, info.Digest)
	for _, f := range info.Files {
		fmt.Fprintf(stdout, "  %s\n", f)
	}
	return nil
}

func bundleTest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bundle test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 30*time.Second, "bound on each test")
	allow := fs.String("allow-builtins", "", "comma-separated unsafe `BUILTINS` the tests may call, as serve --allow-builtins")
	path, err := parseOne(fs, args, "DIR or FILE")
	if err != nil {
		return err
	}
	caps, err := capabilities(*allow)
	if err != nil {
		return fmt.Errorf("bundle test: %w", err)
	}
	var b *bundle.Bundle
	if fi, statErr := os.Stat(path); statErr == nil && fi.IsDir() {
		b, err = bundles.ReadDir(path, nil)
	} else if data, readErr := os.ReadFile(path); readErr != nil {
		err = readErr
	} else {
		b, err = bundles.ReadTarball(data, nil)
	}
	if err != nil {
		return fmt.Errorf("bundle test: %w", err)
	}
	rep, err := bundles.RunTests(ctx, b, *timeout, caps)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("bundle test: %w", err)}
	}
	for _, f := range rep.Failures {
		fmt.Fprintln(stdout, f)
	}
	fmt.Fprintf(stdout, "%d passed, %d failed, %d skipped\n", rep.Passed, len(rep.Failures), rep.Skipped)
	if len(rep.Failures) > 0 {
		return &exitError{code: 1, err: fmt.Errorf("bundle test: %d tests failed", len(rep.Failures))}
	}
	return nil
}

// capabilities returns the built-ins bundles may call: the safe set widened by a comma-separated list.
func capabilities(allow string) (*engine.Capabilities, error) {
	var names []string
	if allow != "" {
		names = strings.Split(allow, ",")
	}
	return engine.NewCapabilities(names)
}

// bundleFlags are serve's flags for the bundle sources and gate.
type bundleFlags struct {
	url          string
	poll         time.Duration
	keyFile      string
	keyID        string
	requireTests bool
}

// registerBundleFlags registers serve's policy flags: those of the bundle gate, read back by config,
// and those bound straight to cfg (built-ins, unsigned bundles, impact analysis).
func registerBundleFlags(fs *flag.FlagSet, cfg *app.Config) *bundleFlags {
	f := &bundleFlags{}
	fs.StringVar(&f.url, "bundle-url", "", "HTTP bundle server `URL` polled with ETag for a new bundle tarball")
	fs.DurationVar(&f.poll, "bundle-poll-interval", 10*time.Second, "how often --bundle-url is polled")
	fs.StringVar(&f.keyFile, "bundle-verification-key", "", "RSA public key `FILE` (PEM); when set, unsigned or wrongly signed bundles from --bundle, --bundle-url and PolicyService.Activate are refused")
	fs.StringVar(&f.keyID, "bundle-key-id", bundles.DefaultKeyID, "key `ID` of --bundle-verification-key")
	fs.BoolVar(&f.requireTests, "bundle-require-tests", false, "refuse bundles without Rego tests")
	fs.BoolVar(&cfg.AllowUnsignedBundles, "allow-unsigned-bundles", false, "without --bundle-verification-key, accept pushed (Activate) and --bundle-url bundles on a non-loopback --addr (refused there by default)")
	fs.Func("allow-builtins", "comma-separated OPA `BUILTINS` bundles may call that reach the network or host ("+strings.Join(engine.UnsafeBuiltins(), ", ")+"); none by default", func(v string) error {
		if _, err := capabilities(v); err != nil {
			return err
		}
		cfg.AllowBuiltins = strings.Split(v, ",")
		return nil
	})
	fs.DurationVar(&cfg.ImpactTimeout, "impact-timeout", api.DefaultImpactTimeout, "server-side deadline of one impact analysis")
	return f
}

// config returns the bundles.Config the flags describe.
func (f *bundleFlags) config() (bundles.Config, error) {
	cfg := bundles.Config{URL: f.url, PollInterval: f.poll, RequireTests: f.requireTests}
	if f.keyFile != "" {
		key, err := os.ReadFile(f.keyFile)
		if err != nil {
			return cfg, fmt.Errorf("bundle verification key: %w", err)
		}
		if cfg.Verifier, err = bundles.NewVerifier(string(key), f.keyID); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}
