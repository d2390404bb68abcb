package lifecycle_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/auth/devcerts"
	"github.com/tollgate/tollgate/server/bundles"
	"github.com/tollgate/tollgate/test/testserver"
)

// secureServer is the service over TLS with the dev callers file: one client certificate per role.
type secureServer struct {
	app   *app.App
	certs string
}

// startSecure starts the service with TLS, client certificates and roles on addr (port 0).
func startSecure(t testing.TB, addr string, cfg app.Config) *secureServer {
	t.Helper()
	certs := t.TempDir()
	if err := devcerts.Write(certs, time.Hour); err != nil {
		t.Fatal(err)
	}
	cfg.Addr, cfg.HTTPAddr, cfg.DataDir = addr, "127.0.0.1:0", t.TempDir()
	cfg.TLSCert, cfg.TLSKey = filepath.Join(certs, "server.crt"), filepath.Join(certs, "server.key")
	cfg.ClientCA, cfg.CallersFile = filepath.Join(certs, "ca.crt"), filepath.Join(certs, "callers.json")
	cfg.Checkpoints.SigningKeyFile, _ = testserver.SigningKey(t) // needed off loopback
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, zerolog.New(io.Discard))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		a.Close()
	})
	return &secureServer{app: a, certs: certs}
}

// as dials the service on loopback with the dev certificate of role (orchestrator, auditor, admin).
func (s *secureServer) as(t testing.TB, role string) *tollgate.Client {
	t.Helper()
	_, port, err := net.SplitHostPort(s.app.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := tollgate.Dial(context.Background(), net.JoinHostPort("127.0.0.1", port), tollgate.WithTLSFiles(
		filepath.Join(s.certs, "ca.crt"), filepath.Join(s.certs, role+".crt"), filepath.Join(s.certs, role+".key")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestImpactCandidateCannotReachTheNetwork: an auditor sends, over real gRPC and TLS, a candidate whose
// decision rule calls http.send. The gate refuses it before anything is evaluated (InvalidArgument
// naming the built-in) and the target HTTP server receives no request.
func TestImpactCandidateCannotReachTheNetwork(t *testing.T) {
	var hits atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	defer target.Close()

	srv := startSecure(t, "127.0.0.1:0", app.Config{BundleDir: writeDir(t, t.TempDir(), poPolicy("v1", "5000.00", "v1"))})
	ctx := context.Background()
	orchestrator := srv.as(t, "orchestrator")
	for _, amount := range []string{"100.00", "9000.00"} {
		if _, err := orchestrator.Decide(ctx, testserver.POSubmit("u_buyer1", amount)); err != nil {
			t.Fatal(err)
		}
	}

	hostile := poPolicy("hostile", "5000.00", "hostile")
	hostile["tollgate/main.rego"] = `package tollgate

decision := {"effect": "ALLOW", "reasons": [{"code": "FETCHED", "message": sprintf("%v", [resp.status_code])}], "approvers": []}

resp := http.send({"method": "GET", "url": "` + target.URL + `/exfiltrate"})
`
	delete(hostile, "tollgate/main_test.rego")
	_, err := srv.as(t, "auditor").Audit().ImpactAnalysis(ctx, &tollgatev1.ImpactAnalysisRequest{Bundle: tarball(t, hostile, false), Last: 10})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "http.send") {
		t.Fatalf("ImpactAnalysis of an http.send candidate: %v, want InvalidArgument naming http.send", err)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the candidate made %d HTTP requests on the server's behalf", n)
	}
}

// TestUnsignedPushOffLoopback: on a non-loopback address without a verification key, an admin's
// unsigned push is refused and the running bundle stays; --allow-unsigned-bundles accepts it. A
// --bundle-url without a key there stops the start.
func TestUnsignedPushOffLoopback(t *testing.T) {
	ctx := context.Background()
	push := tarball(t, poPolicy("pushed", "6000.00", "pushed"), false)
	start := writeDir(t, t.TempDir(), poPolicy("v1", "5000.00", "v1"))

	srv := startSecure(t, "0.0.0.0:0", app.Config{BundleDir: start})
	admin := tollgatev1.NewPolicyServiceClient(srv.as(t, "admin").Conn())
	_, err := admin.Activate(ctx, &tollgatev1.ActivateRequest{Bundle: push})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "unsigned bundles are refused") {
		t.Fatalf("unsigned push off loopback: %v, want FailedPrecondition", err)
	}
	if st, err := admin.Status(ctx, &tollgatev1.PolicyServiceStatusRequest{}); err != nil || !strings.HasPrefix(st.GetActiveRevision(), "v1@") {
		t.Fatalf("active after the refused push: %v, %v; want v1 kept", st.GetActiveRevision(), err)
	}

	allowed := startSecure(t, "0.0.0.0:0", app.Config{BundleDir: start, AllowUnsignedBundles: true})
	resp, err := tollgatev1.NewPolicyServiceClient(allowed.as(t, "admin").Conn()).Activate(ctx, &tollgatev1.ActivateRequest{Bundle: push})
	if err != nil || resp.GetCandidate().GetOutcome() != tollgatev1.CandidateOutcome_CANDIDATE_OUTCOME_ACTIVATED {
		t.Fatalf("unsigned push with AllowUnsignedBundles: %v, %v", resp, err)
	}

	certs := t.TempDir()
	if err := devcerts.Write(certs, time.Hour); err != nil {
		t.Fatal(err)
	}
	signingKey, _ := testserver.SigningKey(t)
	_, err = app.New(ctx, app.Config{
		Addr: "0.0.0.0:0", HTTPAddr: "127.0.0.1:0", DataDir: t.TempDir(), BundleDir: start,
		TLSCert: filepath.Join(certs, "server.crt"), TLSKey: filepath.Join(certs, "server.key"),
		ClientCA: filepath.Join(certs, "ca.crt"), CallersFile: filepath.Join(certs, "callers.json"),
		Bundles:     bundles.Config{URL: "http://127.0.0.1:1/bundle.tar.gz"},
		Checkpoints: app.CheckpointConfig{SigningKeyFile: signingKey},
	}, zerolog.New(io.Discard))
	if err == nil || !strings.Contains(err.Error(), "without a verification key") {
		t.Fatalf("start with an unverified --bundle-url off loopback: %v, want a refusal", err)
	}
}
