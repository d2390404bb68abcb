package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/server/audit/transparency"
)

// TestKeygen writes a pair whose keys sign and verify a checkpoint, refuses
// to overwrite it, and overwrites it with --force.
func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	priv := filepath.Join(dir, "audit.key")
	pub := filepath.Join(dir, "audit.pub")
	run := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := status(context.Background(), append([]string{"keygen"}, args...), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	code, out, errOut := run("--key", priv, "--name", "audit-test")
	if code != 0 {
		t.Fatalf("keygen: exit %d: %s", code, errOut)
	}
	vkey, err := os.ReadFile(pub)
	if err != nil {
		t.Fatalf("public key beside --key: %v", err)
	}
	if !strings.Contains(out, priv) || !strings.Contains(out, pub) || !strings.Contains(out, strings.TrimSpace(string(vkey))) {
		t.Errorf("output %q does not name both files and the verifier key", out)
	}
	for path, mode := range map[string]os.FileMode{priv: 0o600, pub: 0o644} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v, want mode %v", path, fi.Mode().Perm(), mode)
		}
	}
	s, err := transparency.LoadSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	v, err := transparency.LoadVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	if v.Name() != "audit-test" {
		t.Errorf("key name %q, want audit-test", v.Name())
	}
	cp, err := transparency.SignCheckpoint(s, "tollgate/c", 1, [32]byte{1}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := transparency.VerifyCheckpoint(cp.Note, v, "tollgate/c"); err != nil {
		t.Errorf("keygen's pair does not verify its own checkpoint: %v", err)
	}

	code, _, errOut = run("--key", priv)
	if code != 1 || !strings.Contains(errOut, "exists") || !strings.Contains(errOut, "--force") {
		t.Errorf("second keygen: exit %d, stderr %q; want 1 naming the existing file and --force", code, errOut)
	}
	if again, _ := os.ReadFile(pub); !bytes.Equal(again, vkey) {
		t.Error("a refused keygen changed the public key")
	}
	if code, _, errOut = run("--key", priv, "--force"); code != 0 {
		t.Fatalf("keygen --force: exit %d: %s", code, errOut)
	}
	if again, _ := os.ReadFile(pub); bytes.Equal(again, vkey) {
		t.Error("keygen --force kept the old key")
	}
	if code, _, _ = run("extra"); code != 2 {
		t.Errorf("keygen with an argument: exit %d, want 2", code)
	}
	for _, help := range []string{"-h", "--help"} {
		code, out, errOut := run(help)
		if code != 0 || !strings.Contains(out+errOut, "usage: tollgate keygen") {
			t.Errorf("keygen %s: exit %d, output %q", help, code, out+errOut)
		}
	}
}
