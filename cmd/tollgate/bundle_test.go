package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/server/bundles"
)

// writeBundleDir writes a minimal bundle with one Rego test whose verdict is passing.
func writeBundleDir(t *testing.T, passing bool) string {
	t.Helper()
	dir := t.TempDir()
	want := "ALLOW"
	if !passing {
		want = "DENY"
	}
	files := map[string]string{
		".manifest":      `{"revision": "dev", "roots": ["tollgate"]}`,
		"main.rego":      "package tollgate\n\ndecision := {\"effect\": \"ALLOW\", \"reasons\": [{\"code\": \"OK\"}]}\n",
		"main_test.rego": "package tollgate.main_test\n\ntest_effect if data.tollgate.decision.effect == \"" + want + "\"\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func runTollgate(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, &stdout, &stderr)
	return stdout.String() + stderr.String(), err
}

func TestBundleBuildSignInspectTest(t *testing.T) {
	dir := writeBundleDir(t, true)
	out := filepath.Join(t.TempDir(), "b.tar.gz")
	got, err := runTollgate(t, "bundle", "build", dir, "-o", out, "--revision", "r7")
	effective := regexp.MustCompile(`effective (r7@[0-9a-f]{12})`).FindStringSubmatch(got)
	if err != nil || effective == nil {
		t.Fatalf("build: %v\n%s", err, got)
	}
	got, err = runTollgate(t, "bundle", "inspect", out)
	if err != nil || !strings.Contains(got, "revision:    r7\n") || !strings.Contains(got, "effective:   "+effective[1]+"\n") ||
		!strings.Contains(got, "signed:      false") || !strings.Contains(got, "main_test.rego") {
		t.Fatalf("inspect unsigned: %v\n%s", err, got)
	}
	if got, err := runTollgate(t, "bundle", "sign", "--key", "../../bundles/dev-keys/bundle-signing.key", out); err != nil {
		t.Fatalf("sign: %v\n%s", err, got)
	}
	// Signing changes the file, not the policy: the effective revision the service reports stays.
	got, err = runTollgate(t, "bundle", "inspect", out)
	if err != nil || !strings.Contains(got, "signed:      true") || !strings.Contains(got, "effective:   "+effective[1]+"\n") ||
		!strings.Contains(got, "file sha256: ") {
		t.Fatalf("inspect signed: %v\n%s", err, got)
	}
	pub, err := os.ReadFile("../../bundles/dev-keys/bundle-signing.pub")
	if err != nil {
		t.Fatal(err)
	}
	v, err := bundles.NewVerifier(string(pub), "")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bundles.ReadTarball(data, v); err != nil {
		t.Fatalf("signed bundle does not verify with the dev public key: %v", err)
	}
	for _, target := range []string{dir, out} {
		if got, err := runTollgate(t, "bundle", "test", target); err != nil || !strings.Contains(got, "1 passed, 0 failed") {
			t.Errorf("test %s: %v\n%s", target, err, got)
		}
	}
}

// TestBundleBuildRefusesNoPolicy: an empty directory, or one whose Rego defines no
// data.tollgate.decision, is not a bundle the service could decide with.
func TestBundleBuildRefusesNoPolicy(t *testing.T) {
	out := filepath.Join(t.TempDir(), "b.tar.gz")
	if got, err := runTollgate(t, "bundle", "build", t.TempDir(), "-o", out); err == nil || !strings.Contains(got+err.Error(), "no Rego modules") {
		t.Fatalf("build of an empty dir: %v\n%s", err, got)
	}
	wrong := t.TempDir()
	if err := os.WriteFile(filepath.Join(wrong, "main.rego"), []byte("package tollgate\n\nallow := true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := runTollgate(t, "bundle", "build", wrong, "-o", out); err == nil || !strings.Contains(err.Error(), "defines no rule data.tollgate.decision") {
		t.Fatalf("build without a decision rule: %v\n%s", err, got)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused build wrote its output")
	}
}

func TestBundleTestFailureExitsOne(t *testing.T) {
	got, err := runTollgate(t, "bundle", "test", writeBundleDir(t, false))
	if err == nil || exitCode(err) != 1 || !strings.Contains(got, "tollgate.main_test.test_effect: FAIL") {
		t.Fatalf("bundle test of a failing bundle: exit %d, %v\n%s", exitCode(err), err, got)
	}
	if _, err := runTollgate(t, "bundle", "frobnicate"); err == nil || exitCode(err) != 2 {
		t.Errorf("unknown bundle command: %v, want exit 2", err)
	}
}

func TestBundleSignDirVerifies(t *testing.T) {
	dir := writeBundleDir(t, true)
	if got, err := runTollgate(t, "bundle", "sign", "--key", "../../bundles/dev-keys/bundle-signing.key", dir); err != nil {
		t.Fatalf("sign dir: %v\n%s", err, got)
	}
	pub, err := os.ReadFile("../../bundles/dev-keys/bundle-signing.pub")
	if err != nil {
		t.Fatal(err)
	}
	v, err := bundles.NewVerifier(string(pub), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bundles.ReadDir(dir, v); err != nil {
		t.Fatalf("signed dir does not verify: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.rego"), []byte("package tollgate\n\ndecision := {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := bundles.ReadDir(dir, v); err == nil {
		t.Fatal("edited signed dir still verifies")
	}
}
