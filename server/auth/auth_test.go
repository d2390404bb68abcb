package auth_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/server/auth"
)

func config() *auth.Config {
	return &auth.Config{
		Callers: []auth.CallerConfig{
			{Name: "orchestrator", CertNames: []string{"dns:orchestrator.tollgate.test"}, Roles: []string{"decide"}},
			{Name: "alloc-bot", TokenSHA256: []string{auth.HashToken("agent-token")}, Roles: []string{"agent:agent_alloc"}},
			{Name: "auditor", TokenSHA256: []string{auth.HashToken("audit-token")}, Roles: []string{"audit"}},
		},
		RateLimits: map[string]auth.RateLimit{"audit": {PerSecond: 1, Burst: 2}},
	}
}

func TestIdentify(t *testing.T) {
	a, err := auth.New(config(), zerolog.Nop())
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
	a, err := auth.New(config(), zerolog.Nop())
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
	a, err := auth.New(config(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	c, _ := a.Identify(nil, "audit-token")
	for i := range 2 {
		if ok, _ := c.Spend(auth.RoleAudit, 1); !ok {
			t.Fatalf("call %d within the burst was refused", i)
		}
	}
	ok, wait := c.Spend(auth.RoleAudit, 1)
	if ok || wait <= 0 || wait > time.Second {
		t.Errorf("call past the burst: ok=%v wait=%v, want refused with a wait up to 1s", ok, wait)
	}
}

func TestOpenModeWithoutCallers(t *testing.T) {
	a, err := auth.New(nil, zerolog.Nop())
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
		"bad rate class": {func(c *auth.Config) { c.RateLimits = map[string]auth.RateLimit{"root": {1, 1}} }, "unknown role class"},
		"zero rate":      {func(c *auth.Config) { c.RateLimits = map[string]auth.RateLimit{"decide": {0, 1}} }, "rate_limits.decide"},
		"agent and decide": {
			func(c *auth.Config) { c.Callers[1].Roles = []string{"agent:agent_alloc", "decide"} },
			"callers[1] (alloc-bot).roles: agent:agent_alloc cannot be combined with decide",
		},
		"two agents":          {func(c *auth.Config) { c.Callers[1].Roles = []string{"agent:a", "agent:b"} }, "only one agent"},
		"empty prefixed name": {func(c *auth.Config) { c.Callers[0].CertNames = []string{"dns:"} }, "names nothing"},
		"shared cert name": {
			func(c *auth.Config) { c.Callers[1].CertNames = []string{"DNS:Orchestrator.tollgate.test"} },
			`"dns:orchestrator.tollgate.test" also belongs to orchestrator`,
		},
	}
	for name, tt := range tests {
		cfg := config()
		tt.edit(cfg)
		if _, err := auth.New(cfg, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), tt.want) {
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

func TestAgentMayHoldAuditOrAdmin(t *testing.T) {
	cfg := config()
	cfg.Callers[1].Roles = []string{"agent:agent_alloc", "audit", "admin"}
	a, err := auth.New(cfg, zerolog.Nop())
	if err != nil {
		t.Fatalf("agent with audit and admin: %v", err)
	}
	c, err := a.Identify(nil, "agent-token")
	if err != nil || c.AgentID() != "agent_alloc" || !c.Has(auth.RoleAudit) || c.Has(auth.RoleDecide) {
		t.Errorf("caller = %+v, %v", c, err)
	}
}

func TestCertNamesSayWhatTheyMatch(t *testing.T) {
	var logs strings.Builder
	cfg := &auth.Config{Callers: []auth.CallerConfig{
		{Name: "by-dns", CertNames: []string{"dns:orchestrator.tollgate.test"}, Roles: []string{"decide"}},
		{Name: "by-cn", CertNames: []string{"cn:Legacy Client"}, Roles: []string{"decide"}},
		{Name: "by-uri", CertNames: []string{"uri:spiffe://tollgate.test/bot"}, Roles: []string{"audit"}},
		{Name: "by-email", CertNames: []string{"email:ops@tollgate.test"}, Roles: []string{"admin"}},
		{Name: "old-form", CertNames: []string{"old.tollgate.test", "old-cn"}, Roles: []string{"audit"}},
	}}
	a, err := auth.New(cfg, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		cert *x509.Certificate
		want string // caller name; "" for unauthenticated
	}{
		"DNS SAN":                       {&x509.Certificate{DNSNames: []string{"Orchestrator.Tollgate.Test"}}, "by-dns"},
		"CN equal to a dns: name":       {&x509.Certificate{Subject: pkix.Name{CommonName: "orchestrator.tollgate.test"}}, ""},
		"CN for cn:":                    {&x509.Certificate{Subject: pkix.Name{CommonName: "Legacy Client"}}, "by-cn"},
		"DNS SAN equal to a cn: name":   {&x509.Certificate{DNSNames: []string{"Legacy Client"}}, ""},
		"URI SAN":                       {&x509.Certificate{URIs: []*url.URL{{Scheme: "spiffe", Host: "tollgate.test", Path: "/bot"}}}, "by-uri"},
		"email SAN":                     {&x509.Certificate{EmailAddresses: []string{"ops@tollgate.test"}}, "by-email"},
		"email in a DNS SAN":            {&x509.Certificate{DNSNames: []string{"ops@tollgate.test"}}, ""},
		"old form by SAN":               {&x509.Certificate{DNSNames: []string{"old.tollgate.test"}}, "old-form"},
		"old form never by CN":          {&x509.Certificate{Subject: pkix.Name{CommonName: "old-cn"}}, ""},
		"old form by CN equal to a SAN": {&x509.Certificate{Subject: pkix.Name{CommonName: "old.tollgate.test"}}, ""},
	}
	for name, tt := range tests {
		c, err := a.Identify(tt.cert, "")
		switch {
		case tt.want == "" && !errors.Is(err, auth.ErrUnauthenticated):
			t.Errorf("%s: %+v, %v; want ErrUnauthenticated", name, c, err)
		case tt.want != "" && (err != nil || c.Name != tt.want):
			t.Errorf("%s: %+v, %v; want %s", name, c, err, tt.want)
		}
	}
	for _, entry := range []string{`\"old.tollgate.test\" has no type prefix`, `\"old-cn\" has no type prefix`} {
		if n := strings.Count(logs.String(), entry); n != 1 {
			t.Errorf("warning %s logged %d times, want once: %s", entry, n, logs.String())
		}
	}
	if strings.Count(logs.String(), "no type prefix") != 2 {
		t.Errorf("typed entries were warned about: %s", logs.String())
	}
}

func TestBucketsPerRoleClass(t *testing.T) {
	cfg := config()
	cfg.Callers[2].Roles = []string{"decide", "audit"}
	a, err := auth.New(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	c, _ := a.Identify(nil, "audit-token")
	if ok, _ := c.Spend(auth.RoleAudit, 2); !ok {
		t.Fatal("audit burst of 2 refused")
	}
	if ok, _ := c.Spend(auth.RoleAudit, 1); ok {
		t.Error("audit call past the audit burst paid: it was limited at the decide rate")
	}
	if ok, _ := c.Spend(auth.RoleDecide, 100); !ok {
		t.Error("decide bucket was drained by audit calls")
	}
	if ok, _ := c.Spend(auth.RoleAdmin, 1); ok {
		t.Error("a class the caller does not hold paid")
	}
	if got := c.StrictestClass(); got != auth.RoleAudit {
		t.Errorf("strictest class = %q, want audit", got)
	}
	// One call of n tokens pays for n.
	if ok, _ := c.Spend(auth.RoleDecide, 9900); !ok {
		t.Fatal("decide bucket cannot pay the rest of its burst")
	}
	if ok, wait := c.Spend(auth.RoleDecide, 10); ok || wait <= 0 {
		t.Errorf("drained decide bucket: ok=%v wait=%v", ok, wait)
	}
	if ok, wait := c.Spend(auth.RoleDecide, 10001); ok || wait != 0 {
		t.Errorf("cost above the burst: ok=%v wait=%v, want refused for good", ok, wait)
	}
}

func TestReloadKeepsBucketLevels(t *testing.T) {
	a, err := auth.New(config(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	c, _ := a.Identify(nil, "audit-token")
	if ok, _ := c.Spend(auth.RoleAudit, 2); !ok {
		t.Fatal("burst refused")
	}

	// A refused reload changes no bucket.
	bad := config()
	bad.RateLimits["audit"] = auth.RateLimit{PerSecond: 1000, Burst: 1000}
	bad.Callers[0].Roles = []string{"root"}
	if err := a.Reload(bad); err == nil {
		t.Fatal("bad config reloaded")
	}
	if ok, _ := c.Spend(auth.RoleAudit, 1); ok {
		t.Error("a refused reload refilled or re-rated the bucket")
	}

	if err := a.Reload(config()); err != nil {
		t.Fatal(err)
	}
	c2, _ := a.Identify(nil, "audit-token")
	if ok, _ := c2.Spend(auth.RoleAudit, 1); ok {
		t.Error("reload refilled a drained bucket")
	}
	if c2.Burst(auth.RoleAudit) != 2 {
		t.Errorf("burst = %d, want 2", c2.Burst(auth.RoleAudit))
	}

	// A changed limit applies to the carried-over bucket, which still starts from its level.
	raised := config()
	raised.RateLimits["audit"] = auth.RateLimit{PerSecond: 1, Burst: 5}
	if err := a.Reload(raised); err != nil {
		t.Fatal(err)
	}
	c3, _ := a.Identify(nil, "audit-token")
	if c3.Burst(auth.RoleAudit) != 5 {
		t.Errorf("burst after reload = %d, want 5", c3.Burst(auth.RoleAudit))
	}
	if ok, _ := c3.Spend(auth.RoleAudit, 3); ok {
		t.Error("a raised burst refilled the drained bucket")
	}

	// A caller that leaves and comes back starts full.
	without := config()
	without.Callers = without.Callers[:2]
	if err := a.Reload(without); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(config()); err != nil {
		t.Fatal(err)
	}
	c4, _ := a.Identify(nil, "audit-token")
	if ok, _ := c4.Spend(auth.RoleAudit, 2); !ok {
		t.Error("a returning caller did not start with a full bucket")
	}
}
