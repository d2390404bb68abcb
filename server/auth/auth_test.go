package auth_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/server/auth"
)

func config() *auth.Config {
	return &auth.Config{
		Callers: []auth.CallerConfig{
			{Name: "orchestrator", CertNames: []string{"orchestrator.tollgate.test"}, Roles: []string{"decide"}},
			{Name: "alloc-bot", TokenSHA256: []string{auth.HashToken("agent-token")}, Roles: []string{"agent:agent_alloc"}},
			{Name: "auditor", TokenSHA256: []string{auth.HashToken("audit-token")}, Roles: []string{"audit"}},
		},
		RateLimits: map[string]auth.RateLimit{"audit": {PerSecond: 1, Burst: 2}},
	}
}

func TestIdentify(t *testing.T) {
	a, err := auth.New(config())
	if err != nil {
		t.Fatal(err)
	}
	if a.Open() {
		t.Fatal("configured authenticator reports open mode")
	}
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "someone"}, DNSNames: []string{"orchestrator.tollgate.test"}}
	c, err := a.Identify(cert, "")
	if err != nil || c.Name != "orchestrator" || c.Via != "mtls" || !c.Has(auth.RoleDecide) || c.Has(auth.RoleAdmin) {
		t.Errorf("cert caller = %+v, %v", c, err)
	}
	c, err = a.Identify(nil, "agent-token")
	if err != nil || c.AgentID() != "agent_alloc" || c.Has(auth.RoleDecide) {
		t.Errorf("token caller = %+v, %v", c, err)
	}
	for name, tc := range map[string]struct {
		cert  *x509.Certificate
		token string
	}{
		"nothing":       {},
		"unknown token": {token: "guess"},
		"unknown cert":  {cert: &x509.Certificate{Subject: pkix.Name{CommonName: "mallory"}}},
	} {
		if _, err := a.Identify(tc.cert, tc.token); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("%s: %v, want ErrUnauthenticated", name, err)
		}
	}
}

func TestRotatedTokenStopsWorking(t *testing.T) {
	a, err := auth.New(config())
	if err != nil {
		t.Fatal(err)
	}
	rotated := config()
	rotated.Callers[2].TokenSHA256 = []string{auth.HashToken("audit-token-2")}
	if err := a.Reload(rotated); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Identify(nil, "audit-token"); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Errorf("old token after rotation: %v, want ErrUnauthenticated", err)
	}
	if c, err := a.Identify(nil, "audit-token-2"); err != nil || c.Name != "auditor" {
		t.Errorf("new token: %v, %v", c, err)
	}
}

func TestRateLimit(t *testing.T) {
	a, err := auth.New(config())
	if err != nil {
		t.Fatal(err)
	}
	c, _ := a.Identify(nil, "audit-token")
	for i := range 2 {
		if ok, _ := c.Allow(); !ok {
			t.Fatalf("call %d within the burst was refused", i)
		}
	}
	ok, wait := c.Allow()
	if ok || wait <= 0 || wait > 1 {
		t.Errorf("call past the burst: ok=%v wait=%v, want refused with a wait up to 1s", ok, wait)
	}
}

func TestOpenModeWithoutCallers(t *testing.T) {
	a, err := auth.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.Identify(nil, "")
	if !a.Open() || err != nil || c.Via != "open" {
		t.Errorf("open mode: %v %+v %v", a.Open(), c, err)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := map[string]struct {
		edit func(*auth.Config)
		want string
	}{
		"no name":        {func(c *auth.Config) { c.Callers[0].Name = "" }, "callers[0].name"},
		"duplicate name": {func(c *auth.Config) { c.Callers[1].Name = "orchestrator" }, "configured twice"},
		"no credentials": {func(c *auth.Config) { c.Callers[0].CertNames = nil }, "needs cert_names or token_sha256"},
		"unknown role":   {func(c *auth.Config) { c.Callers[0].Roles = []string{"root"} }, `unknown role "root"`},
		"bad digest":     {func(c *auth.Config) { c.Callers[1].TokenSHA256 = []string{"plaintext-token"} }, "not a hex SHA-256"},
		"shared token":   {func(c *auth.Config) { c.Callers[2].TokenSHA256 = c.Callers[1].TokenSHA256 }, "token also belongs to alloc-bot"},
		"bad rate kind":  {func(c *auth.Config) { c.RateLimits = map[string]auth.RateLimit{"root": {1, 1}} }, "unknown role kind"},
	}
	for name, tt := range tests {
		cfg := config()
		tt.edit(cfg)
		if _, err := auth.New(cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, tt.want)
		}
	}
}

func TestLoadConfigRejectsUnknownFields(t *testing.T) {
	path := filepath.Join(t.TempDir(), "callers.json")
	if err := os.WriteFile(path, []byte(`{"callers": [{"name": "x", "token": "plain", "roles": ["decide"]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.LoadConfig(path); err == nil || !strings.Contains(err.Error(), `unknown field "token"`) {
		t.Errorf("load: %v, want unknown field error", err)
	}
}
