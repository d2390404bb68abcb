package transparency_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/server/audit/transparency"
)

func TestWriteKeyPairAndLoad(t *testing.T) {
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "signing.key"), filepath.Join(dir, "signing.pub")
	vkey, err := transparency.WriteKeyPair(priv, pub, "audit-test", false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(vkey, "audit-test+") {
		t.Errorf("verifier key %q is not named audit-test", vkey)
	}
	for path, mode := range map[string]os.FileMode{priv: 0o600, pub: 0o644} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", filepath.Base(path), fi.Mode().Perm(), mode)
		}
	}
	if b, _ := os.ReadFile(pub); string(b) != vkey+"\n" {
		t.Errorf("public key file = %q, want the verifier key and a newline", b)
	}
	s, err := transparency.LoadSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	v, err := transparency.LoadVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	cp := sign(t, s, "tollgate/c", 3, leaf("c", 0))
	if _, err := transparency.VerifyCheckpoint(cp.Note, v, "tollgate/c"); err != nil {
		t.Errorf("checkpoint signed with the loaded key: %v", err)
	}
	if _, err := transparency.LoadSigner(pub); !errors.Is(err, transparency.ErrMalformed) {
		t.Errorf("LoadSigner(public key): err = %v, want ErrMalformed", err)
	}
	if _, err := transparency.LoadVerifier(priv); !errors.Is(err, transparency.ErrMalformed) {
		t.Errorf("LoadVerifier(private key): err = %v, want ErrMalformed", err)
	}
	if _, err := transparency.LoadSigner(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadSigner(missing): err = %v, want ErrNotExist", err)
	}
}

func TestWriteKeyPairRefusesOverwrite(t *testing.T) {
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "k.key"), filepath.Join(dir, "k.pub")
	if err := os.WriteFile(pub, []byte("keep me\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := transparency.WriteKeyPair(priv, pub, "k", false); !errors.Is(err, transparency.ErrKeyExists) {
		t.Fatalf("existing public key: err = %v, want ErrKeyExists", err)
	}
	if _, err := os.Stat(priv); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused keygen wrote the private key: %v", err)
	}
	if b, _ := os.ReadFile(pub); string(b) != "keep me\n" {
		t.Errorf("a refused keygen changed the public key file: %q", b)
	}
	// Overwriting an existing world-readable file still leaves the private
	// key 0600.
	if err := os.WriteFile(priv, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	vkey, err := transparency.WriteKeyPair(priv, pub, "k", true)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(pub); string(b) != vkey+"\n" {
		t.Errorf("forced keygen left public key file %q", b)
	}
	if fi, _ := os.Stat(priv); fi.Mode().Perm() != 0o600 {
		t.Errorf("forced keygen: private key mode %v, want 0600", fi.Mode().Perm())
	}
	if _, err := transparency.LoadSigner(priv); err != nil {
		t.Error(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("directory holds %d files, want 2 (no temporary files left)", len(entries))
	}
}

func TestEphemeralSigner(t *testing.T) {
	s, vkey, err := transparency.EphemeralSigner("dev")
	if err != nil {
		t.Fatal(err)
	}
	v, err := transparency.ParseVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	cp := sign(t, s, "tollgate/c", 1, leaf("c", 0))
	if _, err := transparency.VerifyCheckpoint(cp.Note, v, "tollgate/c"); err != nil {
		t.Error(err)
	}
	if _, err := transparency.VerifyCheckpoint(cp.Note, testVerifier(t), "tollgate/c"); !errors.Is(err, transparency.ErrBadSignature) {
		t.Errorf("ephemeral checkpoint with another key: err = %v, want ErrBadSignature", err)
	}
}
