package lifecycle_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/bundles"
	"github.com/tollgate/tollgate/test/testserver"
)

// TestStartBundlePath: serve --bundle given an empty directory, a plain file or a directory without a
// decision rule does not start, and says why; a bundle archive (.tar.gz) starts and decides.
func TestStartBundlePath(t *testing.T) {
	plain := filepath.Join(t.TempDir(), "policy.txt")
	if err := os.WriteFile(plain, []byte("decision = allow\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	noDecision := poPolicy("nodecision", "5000.00", "x")
	noDecision["tollgate/main.rego"] = strings.Replace(noDecision["tollgate/main.rego"], "package tollgate", "package tollgate.po", 1)
	noDecision["tollgate/main_test.rego"] = "package tollgate.main_test\n\ntest_nothing if true\n"
	for _, tc := range []struct{ name, path, reason string }{
		{"empty directory", t.TempDir(), "no Rego modules"},
		{"plain file", plain, "neither a directory nor a bundle archive"},
		{"no decision rule", writeDir(t, t.TempDir(), noDecision), "defines no rule data.tollgate.decision"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := app.New(context.Background(), app.Config{Addr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: t.TempDir(), BundleDir: tc.path}, zerolog.New(io.Discard))
			if err == nil {
				a.Close()
				t.Fatalf("started with --bundle %s", tc.path)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("start error %q does not say %q", err, tc.reason)
			}
		})
	}

	archive := filepath.Join(t.TempDir(), "bundle.tar.gz")
	if err := os.WriteFile(archive, tarball(t, poPolicy("archived", "5000.00", "archived"), false), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, app.Config{BundleDir: archive})
	resp, err := srv.client.Decide(context.Background(), testserver.POSubmit("u_buyer1", "100.00"))
	if err != nil || resp.GetEffect() != tollgatev1.Effect_EFFECT_ALLOW || !strings.HasPrefix(resp.GetBundleRevision(), "archived@") {
		t.Fatalf("decide under --bundle %s: %v, %v; want ALLOW by archived", archive, resp, err)
	}
	if c := srv.status(t).GetHistory()[0]; c.GetSource() != "file:"+archive {
		t.Errorf("source %q, want file:%s", c.GetSource(), archive)
	}
}

// TestPushWithoutTollgatePackageIsRefused: a pushed bundle without the tollgate package is refused; the
// running bundle keeps deciding and health stays SERVING.
func TestPushWithoutTollgatePackageIsRefused(t *testing.T) {
	srv := startServer(t, app.Config{BundleDir: writeDir(t, t.TempDir(), poPolicy("v1", "5000.00", "v1"))})
	ctx := context.Background()
	running := srv.status(t).GetActiveRevision()
	other := map[string]string{
		".manifest":           `{"revision": "other", "roots": ["acme"]}`,
		"acme/main.rego":      "package acme\n\ndecision := {\"effect\": \"ALLOW\", \"reasons\": [{\"code\": \"OK\"}]}\n",
		"acme/main_test.rego": "package acme.main_test\n\ntest_ok if data.acme.decision.effect == \"ALLOW\"\n",
	}
	_, err := srv.policy.Activate(ctx, &tollgatev1.ActivateRequest{Bundle: tarball(t, other, false)})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "defines no rule data.tollgate.decision") {
		t.Fatalf("push without the tollgate package: %v, want FailedPrecondition naming the missing rule", err)
	}
	if got := srv.status(t).GetActiveRevision(); got != running {
		t.Fatalf("active %q, want %q kept", got, running)
	}
	resp, err := srv.client.Decide(ctx, testserver.POSubmit("u_buyer1", "100.00"))
	if err != nil || resp.GetEffect() != tollgatev1.Effect_EFFECT_ALLOW || resp.GetBundleRevision() != running {
		t.Fatalf("decide after the refused push: %v, %v; want ALLOW by %s", resp, err, running)
	}
	health, err := healthpb.NewHealthClient(srv.client.Conn()).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || health.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health after the refused push: %v, %v", health, err)
	}
	if r, err := http.Get("http://" + srv.app.HTTPAddr().String() + "/healthz"); err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("/healthz after the refused push: %v, %v", r, err)
	} else {
		r.Body.Close()
	}
}

// TestPolicySurvivesRestart restarts the real service on the same data dir: a pushed bundle and a
// bundle fetched from --bundle-url are active again after a restart without --bundle; an explicit
// --bundle wins over them; the embedded pack, once active again, is the binary's own.
func TestPolicySurvivesRestart(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	embedded := startServer(t, app.Config{DataDir: dataDir})
	packRevision := embedded.status(t).GetActiveRevision()
	resp, err := embedded.policy.Activate(ctx, &tollgatev1.ActivateRequest{Bundle: tarball(t, poPolicy("pushed", "6000.00", "pushed"), false)})
	if err != nil {
		t.Fatal(err)
	}
	pushed := resp.GetCandidate().GetRevision()
	stop(t, embedded)

	restarted := startServer(t, app.Config{DataDir: dataDir})
	if got := restarted.status(t).GetActiveRevision(); got != pushed {
		t.Fatalf("after a restart the active revision is %q, want the pushed %q", got, pushed)
	}
	if c := restarted.status(t).GetHistory()[0]; c.GetSource() != "restore:activate" {
		t.Errorf("restored from %q, want restore:activate", c.GetSource())
	}
	d, err := restarted.client.Decide(ctx, testserver.POSubmit("u_buyer1", "5500.00"))
	if err != nil || d.GetEffect() != tollgatev1.Effect_EFFECT_ALLOW || d.GetBundleRevision() != pushed {
		t.Fatalf("decide after the restart: %v, %v; want ALLOW by the pushed bundle", d, err)
	}
	stop(t, restarted)

	// A bundle from --bundle-url survives a restart even while the bundle server is down.
	bs := testserver.NewBundleServer(t)
	bs.Serve(tarball(t, poPolicy("fetched", "7000.00", "fetched"), false))
	fetching := startServer(t, app.Config{DataDir: dataDir, Bundles: bundles.Config{URL: bs.URL + "/b.tar.gz", PollInterval: 50 * time.Millisecond}})
	waitFor(t, 10*time.Second, "the fetched bundle", func() bool { return strings.HasPrefix(fetching.status(t).GetActiveRevision(), "fetched@") })
	fetched := fetching.status(t).GetActiveRevision()
	stop(t, fetching)
	bs.Serve(nil)
	down := startServer(t, app.Config{DataDir: dataDir, Bundles: bundles.Config{URL: bs.URL + "/b.tar.gz", PollInterval: time.Hour}})
	if got := down.status(t).GetActiveRevision(); got != fetched {
		t.Fatalf("after a restart with the bundle server down: %q, want %q", got, fetched)
	}
	stop(t, down)

	// An explicit --bundle wins, and is what the next plain restart keeps.
	explicit := startServer(t, app.Config{DataDir: dataDir, BundleDir: writeDir(t, t.TempDir(), poPolicy("explicit", "5000.00", "explicit"))})
	explicitRevision := explicit.status(t).GetActiveRevision()
	if !strings.HasPrefix(explicitRevision, "explicit@") {
		t.Fatalf("with --bundle: active %q, want explicit@…", explicitRevision)
	}
	stop(t, explicit)
	if got := startServerStopped(t, dataDir); got != explicitRevision {
		t.Fatalf("after --bundle then a plain restart: %q, want %q", got, explicitRevision)
	}

	// Back to the embedded pack: pushing it by name is not possible, so the state file is removed, as the
	// README says; the binary's pack starts, and the next restart keeps it.
	if err := os.Remove(filepath.Join(dataDir, bundles.StateFileName)); err != nil {
		t.Fatal(err)
	}
	if got := startServerStopped(t, dataDir); got != packRevision {
		t.Fatalf("without a state file: %q, want the embedded pack %q", got, packRevision)
	}
	if got := startServerStopped(t, dataDir); got != packRevision {
		t.Fatalf("restart after the embedded pack: %q, want %q", got, packRevision)
	}
}

// startServerStopped starts the service on dataDir without --bundle, returns its active revision and
// stops it.
func startServerStopped(t *testing.T, dataDir string) string {
	t.Helper()
	srv := startServer(t, app.Config{DataDir: dataDir})
	rev := srv.status(t).GetActiveRevision()
	stop(t, srv)
	return rev
}

func stop(t testing.TB, s *server) {
	t.Helper()
	s.client.Close()
	if err := s.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	s.app.Close()
}

// TestReplayOfRetiredBundle decides under bundle A, activates B, and replays the decision: the replay
// uses A from the audit store and is identical.
func TestReplayOfRetiredBundle(t *testing.T) {
	srv := startServer(t, app.Config{BundleDir: writeDir(t, t.TempDir(), poPolicy("a", "5000.00", "a"))})
	ctx := context.Background()
	orig, err := srv.client.Decide(ctx, testserver.POSubmit("u_buyer1", "5500.00"))
	if err != nil || orig.GetEffect() != tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL {
		t.Fatalf("decide under a: %v, %v", orig, err)
	}
	if _, err := srv.policy.Activate(ctx, &tollgatev1.ActivateRequest{Bundle: tarball(t, poPolicy("b", "6000.00", "b"), false)}); err != nil {
		t.Fatal(err)
	}
	if now, err := srv.client.Decide(ctx, testserver.POSubmit("u_buyer1", "5500.00")); err != nil || now.GetEffect() != tollgatev1.Effect_EFFECT_ALLOW {
		t.Fatalf("decide under b: %v, %v; want ALLOW", now, err)
	}
	replay, err := srv.client.ReplayDecision(ctx, orig.GetDecisionId())
	if err != nil {
		t.Fatal(err)
	}
	if !replay.GetIdentical() || replay.GetReplayed().GetBundleRevision() != orig.GetBundleRevision() ||
		replay.GetReplayed().GetEffect() != tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL {
		t.Fatalf("replay of a decision by the retired bundle %s: identical %t, differences %v, replayed %v",
			orig.GetBundleRevision(), replay.GetIdentical(), replay.GetDifferences(), replay.GetReplayed())
	}
}
