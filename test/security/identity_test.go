package security_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/auth"
	"github.com/tollgate/tollgate/server/auth/devcerts"
)

func TestCommonNameCannotStandInForSAN(t *testing.T) {
	s := startSecure(t, func(c *auth.Config) {
		c.Callers = append(c.Callers,
			auth.CallerConfig{Name: "by-dns", CertNames: []string{"dns:orchestrator.tollgate.test"}, Roles: []string{auth.RoleDecide}},
			auth.CallerConfig{Name: "by-cn", CertNames: []string{"cn:Old Client"}, Roles: []string{auth.RoleDecide}},
			auth.CallerConfig{Name: "old-form", CertNames: []string{"legacy.tollgate.test"}, Roles: []string{auth.RoleDecide}},
		)
	})
	for name, tmpl := range map[string]*x509.Certificate{
		"impostor":   {Subject: pkix.Name{CommonName: "orchestrator.tollgate.test"}},
		"dns-holder": {Subject: pkix.Name{CommonName: "anything"}, DNSNames: []string{"orchestrator.tollgate.test"}},
		"cn-holder":  {Subject: pkix.Name{CommonName: "Old Client"}},
		"legacy-cn":  {Subject: pkix.Name{CommonName: "legacy.tollgate.test"}},
		"legacy-san": {Subject: pkix.Name{CommonName: "anything"}, DNSNames: []string{"legacy.tollgate.test"}},
	} {
		if err := devcerts.IssueClient(s.certs, name, tmpl); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	req := decideReq(tollgatev1.ActorType_ACTOR_TYPE_HUMAN, "u_buyer1")
	for cert, want := range map[string]codes.Code{
		"impostor":   codes.Unauthenticated, // its CN equals the dns: name, but it has no such SAN
		"dns-holder": codes.OK,
		"cn-holder":  codes.OK,
		"legacy-cn":  codes.Unauthenticated, // the old unprefixed form matches SANs only
		"legacy-san": codes.OK,
	} {
		_, err := s.as(t, cert).Decide(ctx, req)
		if codeOf(err) != want {
			t.Errorf("%s: %v, want %s", cert, err, want)
		}
	}
	if n := strings.Count(s.logs.String(), `\"legacy.tollgate.test\" has no type prefix`); n != 1 {
		t.Errorf("the old-form entry was warned about %d times at start, want once: %s", n, s.logs.String())
	}
}

func TestHTTPListenerFollowsTransportRule(t *testing.T) {
	ctx := context.Background()
	cfg := app.Config{Addr: "127.0.0.1:0", HTTPAddr: "0.0.0.0:0", DataDir: t.TempDir()}
	if a, err := app.New(ctx, cfg, zerolog.Nop()); err == nil {
		a.Close()
		t.Error("plaintext HTTP on all interfaces started, want refused")
	} else if !strings.Contains(err.Error(), "refusing plaintext on non-loopback address 0.0.0.0:0 (--http-addr)") {
		t.Errorf("plaintext HTTP on all interfaces: %v, want refused naming --http-addr", err)
	}
	logs := &syncBuffer{}
	cfg.Insecure = true
	a, err := app.New(ctx, cfg, zerolog.New(logs))
	if err != nil {
		t.Fatalf("--insecure: %v", err)
	}
	a.Close()
	if !strings.Contains(logs.String(), "INSECURE: plaintext HTTP") {
		t.Errorf("--insecure HTTP start did not warn: %s", logs.String())
	}

	// With a certificate the HTTP listener serves TLS with it, and plaintext gets no answer.
	s := startSecure(t, nil)
	pem, err := os.ReadFile(filepath.Join(s.certs, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get("https://" + s.app.HTTPAddr().String() + "/healthz")
	if err != nil {
		t.Fatalf("https healthz: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "ok\n" {
		t.Errorf("https healthz = %d %q", resp.StatusCode, body)
	}
	plain, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + s.app.HTTPAddr().String() + "/metrics")
	if err == nil {
		plain.Body.Close()
		if plain.StatusCode == http.StatusOK {
			t.Error("plaintext /metrics answered 200 beside a TLS certificate")
		}
	}
}
