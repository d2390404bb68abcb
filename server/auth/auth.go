// Package auth says who is calling and what they may do. Callers are configured, each with the
// identities it authenticates by (a client-certificate name or the SHA-256 of a bearer token; tokens are
// never stored in clear), its roles and so its rate limit. With no callers configured the service runs
// open, which the server allows only on loopback.
//
// Roles (architecture.md):
//
//	decide      Decide and DecideBatch (orchestration engines)
//	agent:<id>  Decide only, and only for itself: actor.type AI_AGENT and actor.id <id>
//	audit       the read-only AuditService
//	admin       master data, bundles and activation
//
// The configuration can be replaced at run time (Reload), so rotating a token takes effect without a
// restart and the old token stops working at once.
package auth

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"

	"golang.org/x/time/rate"
)

// Role kinds.
const (
	RoleDecide = "decide"
	RoleAudit  = "audit"
	RoleAdmin  = "admin"
	// RoleAgentPrefix starts an AI agent's role: "agent:<agent id>".
	RoleAgentPrefix = "agent:"
	roleAgentKind   = "agent"
)

// Errors of Identify.
var (
	// ErrUnauthenticated: no credentials, or credentials no configured caller has.
	ErrUnauthenticated = errors.New("unauthenticated")
)

// Config is the callers file (JSON).
type Config struct {
	Callers []CallerConfig `json:"callers"`
	// RateLimits by role kind (decide, agent, audit, admin), per caller; missing kinds take the defaults
	// (per second / burst): decide 5000/10000, agent 50/100, audit 50/100, admin 20/50.
	RateLimits map[string]RateLimit `json:"rate_limits,omitempty"`
}

// CallerConfig is one configured caller.
type CallerConfig struct {
	// Name identifies the caller in logs and audit records.
	Name string `json:"name"`
	// CertNames are client-certificate names that authenticate as this caller: a DNS, URI or email
	// subject alternative name, or the subject common name.
	CertNames []string `json:"cert_names,omitempty"`
	// TokenSHA256 are hex SHA-256 digests of bearer tokens that authenticate as this caller. Several
	// allow an overlap while a token is rotated.
	TokenSHA256 []string `json:"token_sha256,omitempty"`
	// Roles are decide, audit, admin or agent:<id>.
	Roles []string `json:"roles"`
}

// RateLimit is a token bucket: PerSecond sustained, Burst at once.
type RateLimit struct {
	PerSecond float64 `json:"per_second"`
	Burst     int     `json:"burst"`
}

// defaultRateLimits apply per caller, by the caller's most generous role. Read-only.
var defaultRateLimits = map[string]RateLimit{
	RoleDecide:    {PerSecond: 5000, Burst: 10000},
	roleAgentKind: {PerSecond: 50, Burst: 100},
	RoleAudit:     {PerSecond: 50, Burst: 100},
	RoleAdmin:     {PerSecond: 20, Burst: 50},
}

// LoadConfig reads a callers file.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read callers file: %w", err)
	}
	var cfg Config
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("parse callers file %s: %w", path, err)
	}
	return &cfg, nil
}

// HashToken returns the hex SHA-256 of a bearer token, the form the callers file stores.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Caller is an authenticated caller.
type Caller struct {
	Name string
	// Via says how it authenticated: "mtls", "token" or "open" (no callers configured).
	Via   string
	roles map[string]bool
	// agentID is set for an agent:<id> caller.
	agentID string
	limiter *rate.Limiter
}

// Has reports whether the caller holds role (decide, audit, admin).
func (c *Caller) Has(role string) bool { return c.roles[role] }

// AgentID is the AI agent id of an agent:<id> caller, else "".
func (c *Caller) AgentID() string { return c.agentID }

// Allow takes one token from the caller's bucket. When it is empty it returns false and how long until
// the next token.
func (c *Caller) Allow() (bool, float64) {
	if c.limiter == nil {
		return true, 0
	}
	r := c.limiter.Reserve()
	if r.OK() && r.Delay() == 0 {
		return true, 0
	}
	d := r.Delay()
	r.Cancel()
	return false, d.Seconds()
}

// String is the identity audit records keep, e.g. "orchestrator (mtls)".
func (c *Caller) String() string { return c.Name + " (" + c.Via + ")" }

// table is one loaded configuration; immutable.
type table struct {
	open    bool
	byCert  map[string]*Caller
	byToken map[string]*Caller
}

// Authenticator identifies callers. It is safe for concurrent use.
type Authenticator struct {
	t atomic.Pointer[table]
	// open is the caller every request is in open mode: no roles needed, no limit.
	open *Caller
}

// New validates cfg and returns an Authenticator. A nil or empty cfg is open mode.
func New(cfg *Config) (*Authenticator, error) {
	a := &Authenticator{open: &Caller{Name: "anonymous", Via: "open"}}
	if err := a.Reload(cfg); err != nil {
		return nil, err
	}
	return a, nil
}

// Open reports whether no callers are configured, so every RPC is open.
func (a *Authenticator) Open() bool { return a.t.Load().open }

// Reload replaces the configuration atomically; calls already authenticated finish as they were.
// Rate-limit buckets start full again.
func (a *Authenticator) Reload(cfg *Config) error {
	t := &table{byCert: map[string]*Caller{}, byToken: map[string]*Caller{}}
	if cfg == nil || len(cfg.Callers) == 0 {
		t.open = true
		a.t.Store(t)
		return nil
	}
	for kind := range cfg.RateLimits {
		if _, ok := defaultRateLimits[kind]; !ok {
			return fmt.Errorf("rate_limits: unknown role kind %q (want decide, agent, audit, admin)", kind)
		}
	}
	names := map[string]bool{}
	for i, cc := range cfg.Callers {
		where := fmt.Sprintf("callers[%d]", i)
		if cc.Name == "" {
			return fmt.Errorf("%s.name: is required", where)
		}
		if names[cc.Name] {
			return fmt.Errorf("%s.name: %q is configured twice", where, cc.Name)
		}
		names[cc.Name] = true
		if len(cc.CertNames) == 0 && len(cc.TokenSHA256) == 0 {
			return fmt.Errorf("%s (%s): needs cert_names or token_sha256", where, cc.Name)
		}
		c := &Caller{Name: cc.Name, roles: map[string]bool{}}
		var limit RateLimit
		if len(cc.Roles) == 0 {
			return fmt.Errorf("%s (%s).roles: at least one role is required", where, cc.Name)
		}
		for _, r := range cc.Roles {
			kind := r
			switch {
			case r == RoleDecide || r == RoleAudit || r == RoleAdmin:
			case strings.HasPrefix(r, RoleAgentPrefix) && len(r) > len(RoleAgentPrefix):
				if c.agentID != "" {
					return fmt.Errorf("%s (%s).roles: one caller can be only one agent", where, cc.Name)
				}
				c.agentID, kind = strings.TrimPrefix(r, RoleAgentPrefix), roleAgentKind
			default:
				return fmt.Errorf("%s (%s).roles: unknown role %q", where, cc.Name, r)
			}
			c.roles[kind] = true
			l, ok := cfg.RateLimits[kind]
			if !ok {
				l = defaultRateLimits[kind]
			}
			if l.PerSecond > limit.PerSecond {
				limit = l
			}
		}
		if limit.PerSecond <= 0 || limit.Burst <= 0 {
			return fmt.Errorf("%s (%s): rate limit must have per_second and burst above zero", where, cc.Name)
		}
		c.limiter = rate.NewLimiter(rate.Limit(limit.PerSecond), limit.Burst)
		for _, n := range cc.CertNames {
			if other, dup := t.byCert[n]; dup {
				return fmt.Errorf("%s (%s): certificate name %q also belongs to %s", where, cc.Name, n, other.Name)
			}
			t.byCert[n] = &Caller{Name: c.Name, Via: "mtls", roles: c.roles, agentID: c.agentID, limiter: c.limiter}
		}
		for _, h := range cc.TokenSHA256 {
			h = strings.ToLower(h)
			if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size {
				return fmt.Errorf("%s (%s).token_sha256: %q is not a hex SHA-256 digest", where, cc.Name, h)
			}
			if other, dup := t.byToken[h]; dup {
				return fmt.Errorf("%s (%s): token also belongs to %s", where, cc.Name, other.Name)
			}
			t.byToken[h] = &Caller{Name: c.Name, Via: "token", roles: c.roles, agentID: c.agentID, limiter: c.limiter}
		}
	}
	a.t.Store(t)
	return nil
}

// Identify returns the caller presenting a verified client certificate chain (leaf first; may be nil) or
// a bearer token (may be ""). A certificate wins over a token. In open mode every request is the
// anonymous caller.
func (a *Authenticator) Identify(leaf *x509.Certificate, token string) (*Caller, error) {
	t := a.t.Load()
	if t.open {
		return a.open, nil
	}
	if leaf != nil {
		for _, n := range certNames(leaf) {
			if c, ok := t.byCert[n]; ok {
				return c, nil
			}
		}
	}
	if token != "" {
		if c, ok := t.byToken[HashToken(token)]; ok {
			return c, nil
		}
		return nil, fmt.Errorf("%w: bearer token not recognised", ErrUnauthenticated)
	}
	if leaf != nil {
		return nil, fmt.Errorf("%w: client certificate %q is not a configured caller", ErrUnauthenticated, leaf.Subject.CommonName)
	}
	return nil, fmt.Errorf("%w: no client certificate or bearer token", ErrUnauthenticated)
}

// certNames lists the names a certificate can authenticate by: its SANs, then its common name.
func certNames(cert *x509.Certificate) []string {
	names := append([]string{}, cert.DNSNames...)
	for _, u := range cert.URIs {
		names = append(names, u.String())
	}
	names = append(names, cert.EmailAddresses...)
	if cert.Subject.CommonName != "" {
		names = append(names, cert.Subject.CommonName)
	}
	return names
}
