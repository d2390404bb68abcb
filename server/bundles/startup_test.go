package bundles_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/server/bundles"
)

// TestOfferPath offers what an operator may pass as --bundle: a directory and a bundle archive are
// activated; an empty directory, a plain file and a missing path are refused with a reason that says
// what is wrong, and nothing is activated.
func TestOfferPath(t *testing.T) {
	ctx := context.Background()
	archive := filepath.Join(t.TempDir(), "bundle.tar.gz")
	if err := os.WriteFile(archive, tarball(t, policy("arch", "from an archive"), ""), 0o600); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(plain, []byte("not a bundle\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		want       bundles.Outcome
		reason     string
	}{
		{"directory", writeDir(t, policy("dir", "x")), bundles.Activated, ""},
		{"archive", archive, bundles.Activated, ""},
		{"empty directory", t.TempDir(), bundles.RefusedVerification, "no Rego modules"},
		{"plain file", plain, bundles.RefusedVerification, "neither a directory nor a bundle archive"},
		{"missing", filepath.Join(t.TempDir(), "nothing"), bundles.RefusedVerification, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, bundles.Config{})
			got := f.manager.OfferPath(ctx, tc.path)
			if got.Outcome != tc.want || !strings.Contains(got.Reason, tc.reason) {
				t.Fatalf("OfferPath(%s) = %s %q, want %s with %q", tc.path, got.Outcome, got.Reason, tc.want, tc.reason)
			}
			if active := f.active(t); tc.want.Accepted() != (active != "") {
				t.Errorf("active revision %q after %s", active, got.Outcome)
			}
		})
	}
}

// TestRefuseUnverified: without a key and with RefuseUnverified, a push is refused before it is read,
// while a directory the operator named is still accepted; a URL source is refused at construction.
func TestRefuseUnverified(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, bundles.Config{RefuseUnverified: true})
	got := f.manager.OfferTarball(ctx, "activate", tarball(t, policy("pushed", "x"), ""))
	if got.Outcome != bundles.RefusedVerification || !strings.Contains(got.Reason, "unsigned bundles are refused") {
		t.Fatalf("unsigned push: %s %q, want refused_verification", got.Outcome, got.Reason)
	}
	if active := f.active(t); active != "" {
		t.Fatalf("active %q after a refused push", active)
	}
	if got := f.manager.OfferDir(ctx, writeDir(t, policy("dir", "x"))); got.Outcome != bundles.Activated {
		t.Fatalf("directory: %s %q, want activated", got.Outcome, got.Reason)
	}
	if _, err := bundles.New(bundles.Config{URL: "http://127.0.0.1:1/b.tar.gz", RefuseUnverified: true}, f.engine, f.store, nopLog()); err == nil ||
		!strings.Contains(err.Error(), "without a verification key") {
		t.Fatalf("New with an unverified URL: %v, want a refusal", err)
	}
}

// TestOfferRestored: the state file names the bundle activated last; a second manager over the same
// store reactivates that bundle from the store, and only embedded sources are left to the caller.
func TestOfferRestored(t *testing.T) {
	ctx := context.Background()
	state := filepath.Join(t.TempDir(), bundles.StateFileName)
	f := newFixture(t, bundles.Config{StateFile: state})
	if _, ok := f.manager.OfferRestored(ctx); ok {
		t.Fatal("OfferRestored with no state file offered something")
	}
	pushed := f.manager.OfferTarball(ctx, "activate", tarball(t, policy("pushed", "x"), ""))
	if pushed.Outcome != bundles.Activated {
		t.Fatalf("push: %+v", pushed)
	}

	restarted := newFixtureOver(t, f.store, bundles.Config{StateFile: state})
	got, ok := restarted.manager.OfferRestored(ctx)
	if !ok || got.Outcome != bundles.Activated || got.Revision != pushed.Revision || got.Source != "restore:activate" {
		t.Fatalf("OfferRestored = %+v, %t; want %s activated from restore:activate", got, ok, pushed.Revision)
	}
	if active := restarted.active(t); active != pushed.Revision {
		t.Fatalf("active %q, want %q", active, pushed.Revision)
	}

	// A state file naming a revision the store does not hold fails, naming the revision.
	if err := os.WriteFile(state, []byte(`{"revision": "gone@000000000000", "source": "activate"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	lost := newFixtureOver(t, f.store, bundles.Config{StateFile: state})
	if got, ok := lost.manager.OfferRestored(ctx); !ok || got.Outcome.Accepted() || !strings.Contains(got.Reason, "gone@000000000000") {
		t.Fatalf("OfferRestored of a lost revision = %+v, %t; want a refusal naming it", got, ok)
	}

	if err := os.WriteFile(state, []byte(`{"revision": "pack@000000000000", "source": "embedded"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok := lost.manager.OfferRestored(ctx); ok {
		t.Fatal("OfferRestored restored the embedded pack; the binary's own pack must start instead")
	}
}

// TestCheck vets candidates without activating, keeping or recording them.
func TestCheck(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, bundles.Config{})
	httpSend := policy("net", "x")
	httpSend["main.rego"] += "\nfetched := http.send({\"method\": \"GET\", \"url\": \"http://127.0.0.1:1/\"})\n"
	c, err := f.manager.Check(ctx, tarball(t, policy("ok", "x"), ""))
	if err != nil || !strings.HasPrefix(c.Revision(), "ok@") {
		t.Fatalf("Check good bundle: %v, %v", c, err)
	}
	var refused *bundles.RefusedError
	if _, err := f.manager.Check(ctx, tarball(t, httpSend, "")); !errors.As(err, &refused) || refused.Outcome != bundles.RefusedCompile ||
		!strings.Contains(refused.Reason, "http.send") {
		t.Fatalf("Check http.send bundle: %v, want refused_compile naming http.send", err)
	}
	if active, hist := f.active(t), f.manager.Status().History; active != "" || len(hist) != 0 {
		t.Fatalf("Check activated %q or recorded %d candidates", active, len(hist))
	}
	if _, err := f.store.GetBundle(ctx, c.Revision()); err == nil {
		t.Fatal("Check kept the bundle in the store")
	}
}
