package authzen_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/auth/devcerts"
	"github.com/tollgate/tollgate/server/authzen"
)

// TestTLSClientCertificates: with a server certificate the AuthZEN endpoints serve HTTPS, a client
// certificate authenticates its caller as on gRPC (the orchestrator's decide role; the auditor's audit
// role only gets 403), and the metadata names https URLs.
func TestTLSClientCertificates(t *testing.T) {
	certs := t.TempDir()
	if err := devcerts.Write(certs, time.Hour); err != nil {
		t.Fatal(err)
	}
	srv := start(t, app.Config{
		TLSCert: filepath.Join(certs, "server.crt"), TLSKey: filepath.Join(certs, "server.key"),
		ClientCA: filepath.Join(certs, "ca.crt"), CallersFile: filepath.Join(certs, "callers.json"),
	})
	base := "https://" + srv.App.HTTPAddr().String()
	as := func(cert string) *client {
		cfg := &tls.Config{RootCAs: x509.NewCertPool(), MinVersion: tls.VersionTLS12}
		ca, err := os.ReadFile(filepath.Join(certs, "ca.crt"))
		if err != nil || !cfg.RootCAs.AppendCertsFromPEM(ca) {
			t.Fatalf("CA: %v", err)
		}
		if cert != "" {
			pair, err := tls.LoadX509KeyPair(filepath.Join(certs, cert+".crt"), filepath.Join(certs, cert+".key"))
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		return &client{base: base, http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}}
	}

	if d := as("orchestrator").evaluate(t, poSubmit); d.Context.Effect != "REQUIRE_APPROVAL" {
		t.Fatalf("orchestrator by certificate: %+v, want the decision", d.Context)
	}
	if r := as("auditor").post(t, authzen.EvaluationPath, poSubmit); r.status != http.StatusForbidden {
		t.Fatalf("auditor by certificate: %d %s, want 403", r.status, r.body)
	}
	if r := as("").post(t, authzen.EvaluationPath, poSubmit); r.status != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("no certificate, no token: %d %q, want 401 with a Bearer challenge", r.status, r.header.Get("WWW-Authenticate"))
	}
	req, err := http.NewRequest(http.MethodGet, base+authzen.MetadataPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	var m authzen.Metadata
	as("").do(t, req).decode(t, http.StatusOK, &m)
	if m.PolicyDecisionPoint != base || m.AccessEvaluationEndpoint != base+authzen.EvaluationPath {
		t.Fatalf("metadata %+v, want https URLs on %s", m, base)
	}
}
