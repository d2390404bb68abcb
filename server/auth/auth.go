// Package auth says who is calling and what they may do. Callers are configured, each with the
// identities it authenticates by (a typed client-certificate name or the SHA-256 of a bearer token;
// tokens are never stored in clear), its roles and so its rate limits. With no callers configured the
// service runs open, which the server allows only on loopback.
//
// Roles (architecture.md):
//
//	decide      Decide and DecideBatch (orchestration engines)
//	agent:<id>  Decide only, and only for itself: actor.type AI_AGENT and actor.id <id>
//	audit       the read-only AuditService
//	admin       master data, bundles and activation
//
// Each role has a class (decide, agent, audit, admin), and a caller has one token bucket per class it
// holds: a call spends from the bucket of the class that authorizes it, so a caller's generous role does
// not lift the limit of its other roles.
//
// The configuration can be replaced at run time (Reload), so rotating a token takes effect without a
// restart and the old token stops working at once; the buckets of callers and classes that remain keep
// their levels.
package auth

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"
)

// Role classes. A role is one of RoleDecide, RoleAudit, RoleAdmin or RoleAgentPrefix+"<id>", whose class
// is RoleAgent. Classes name the rate-limit buckets and the keys of Config.RateLimits.
const (
	RoleDecide = "decide"
	RoleAudit  = "audit"
	RoleAdmin  = "admin"
	// RoleAgent is the class of every agent:<id> role.
	RoleAgent = "agent"
	// RoleAgentPrefix starts an AI agent's role: "agent:<agent id>".
	RoleAgentPrefix = "agent:"
)

// Prefixes of a cert_names entry: which part of a client certificate it matches.
const (
	CertDNS   = "dns:"   // a DNS subject alternative name (compared without case)
	CertURI   = "uri:"   // a URI subject alternative name, e.g. uri:spiffe://example.org/orchestrator
	CertEmail = "email:" // an email subject alternative name
	CertCN    = "cn:"    // the subject common name
)

// Errors of Identify.
var (
	// ErrUnauthenticated: no credentials, or credentials no configured caller has.
	ErrUnauthenticated = errors.New("unauthenticated")
)

// Config is the callers file (JSON).
type Config struct {
	Callers []CallerConfig `json:"callers"`
	// RateLimits by role class (decide, agent, audit, admin), per caller and class; missing classes take
	// the defaults (per second / burst): decide 5000/10000, agent 50/100, audit 50/100, admin 20/50.
	RateLimits map[string]RateLimit `json:"rate_limits,omitempty"`
}

// CallerConfig is one configured caller.
type CallerConfig struct {
	// Name identifies the caller in logs and audit records, and keeps its rate-limit buckets across
	// reloads.
	Name string `json:"name"`
	// CertNames are client-certificate names that authenticate as this caller, each typed by a prefix:
	// "dns:", "uri:" or "email:" match a subject alternative name of that type, "cn:" the subject common
	// name. An entry without a prefix (the old form) matches a DNS, URI or email SAN only, never the
	// common name, and is warned about at every load.
	CertNames []string `json:"cert_names,omitempty"`
	// TokenSHA256 are hex SHA-256 digests of bearer tokens that authenticate as this caller. Several
	// allow an overlap while a token is rotated.
	TokenSHA256 []string `json:"token_sha256,omitempty"`
	// Roles are decide, audit, admin or agent:<id>; at least one. agent:<id> cannot be combined with
	// decide (which would let the agent ask for anyone) nor with a second agent:<id>.
	Roles []string `json:"roles"`
}

// RateLimit is a token bucket: PerSecond sustained, Burst at once.
type RateLimit struct {
	PerSecond float64 `json:"per_second"`
	Burst     int     `json:"burst"`
}

// defaultRateLimits apply per caller and role class. Read-only.
var defaultRateLimits = map[string]RateLimit{
	RoleDecide: {PerSecond: 5000, Burst: 10000},
	RoleAgent:  {PerSecond: 50, Burst: 100},
	RoleAudit:  {PerSecond: 50, Burst: 100},
	RoleAdmin:  {PerSecond: 20, Burst: 50},
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

// Caller is an authenticated caller. It is safe for concurrent use.
type Caller struct {
	Name string
	// Via says how it authenticated: "mtls", "token" or "open" (no callers configured).
	Via   string
	roles map[string]bool
	// agentID is set for an agent:<id> caller.
	agentID string
	// buckets are the caller's token buckets by role class, shared by all its identities; nil in open
	// mode, which has no limits.
	buckets map[string]*rate.Limiter
	// strictest is the class with the lowest sustained rate: it pays for calls any caller may make.
	strictest string
}

// Has reports whether the caller holds a role of class role (decide, agent, audit, admin).
func (c *Caller) Has(role string) bool { return c.roles[role] }

// AgentID is the AI agent id of an agent:<id> caller, else "".
func (c *Caller) AgentID() string { return c.agentID }

// StrictestClass is the caller's role class with the lowest sustained rate (ties in the order decide,
// agent, audit, admin): the bucket a call pays from when it is open to every authenticated caller.
func (c *Caller) StrictestClass() string { return c.strictest }

// Spend takes n tokens from the caller's bucket of role class class (n below 1 counts as 1). It returns
// true when the bucket paid; otherwise it takes nothing and says how long until it could pay, or 0 when
// it never can (n above the bucket's burst, or a class the caller does not hold). In open mode every call
// is paid.
func (c *Caller) Spend(class string, n int) (bool, time.Duration) {
	if c.buckets == nil {
		return true, 0
	}
	b, ok := c.buckets[class]
	if !ok {
		return false, 0
	}
	n = max(n, 1)
	r := b.ReserveN(time.Now(), n)
	if !r.OK() {
		return false, 0
	}
	if d := r.Delay(); d > 0 {
		r.Cancel()
		return false, d
	}
	return true, 0
}

// Burst is the burst of the caller's bucket of class class, 0 when it has none (or is unlimited).
func (c *Caller) Burst(class string) int {
	if b, ok := c.buckets[class]; ok {
		return b.Burst()
	}
	return 0
}

// String is the identity audit records keep, e.g. "orchestrator (mtls)".
func (c *Caller) String() string { return c.Name + " (" + c.Via + ")" }

// table is one loaded configuration; immutable once stored.
type table struct {
	open    bool
	byCert  map[string]*Caller // by typed name, e.g. "dns:orchestrator.example.org"
	byToken map[string]*Caller
	// buckets by caller name, then role class; the next Reload carries them over.
	buckets map[string]map[string]*rate.Limiter
}

// Authenticator identifies callers. It is safe for concurrent use.
type Authenticator struct {
	t atomic.Pointer[table]
	// reload serializes Reload, which reads the current table to carry its buckets over.
	reload sync.Mutex
	// open is the caller every request is in open mode: no roles needed, no limit.
	open *Caller
	log  zerolog.Logger
}

// New validates cfg and returns an Authenticator. A nil or empty cfg is open mode. Warnings about the
// configuration (old-form cert_names) go to log.
func New(cfg *Config, log zerolog.Logger) (*Authenticator, error) {
	a := &Authenticator{open: &Caller{Name: "anonymous", Via: "open"}, log: log}
	if err := a.Reload(cfg); err != nil {
		return nil, err
	}
	return a, nil
}

// Open reports whether no callers are configured, so every RPC is open.
func (a *Authenticator) Open() bool { return a.t.Load().open }

// bucketChange is a carried-over bucket whose configured limit changed; applied only once the whole
// configuration is valid, so a refused reload changes nothing.
type bucketChange struct {
	b     *rate.Limiter
	limit RateLimit
}

// Reload validates cfg and replaces the configuration atomically; calls already authenticated finish as
// they were. An invalid cfg returns an error naming the caller and field, and changes nothing. A bucket
// of a caller name and role class that the previous configuration had too keeps its current level (a
// drained bucket stays drained), taking the new rate and burst if they changed.
func (a *Authenticator) Reload(cfg *Config) error {
	a.reload.Lock()
	defer a.reload.Unlock()
	t := &table{byCert: map[string]*Caller{}, byToken: map[string]*Caller{}, buckets: map[string]map[string]*rate.Limiter{}}
	if cfg == nil || len(cfg.Callers) == 0 {
		t.open = true
		a.t.Store(t)
		return nil
	}
	for class := range cfg.RateLimits {
		if _, ok := defaultRateLimits[class]; !ok {
			return fmt.Errorf("rate_limits: unknown role class %q (want decide, agent, audit, admin)", class)
		}
	}
	var prev map[string]map[string]*rate.Limiter
	if old := a.t.Load(); old != nil {
		prev = old.buckets
	}
	var changes []bucketChange
	var warnings []string
	for i, cc := range cfg.Callers {
		where := fmt.Sprintf("callers[%d]", i)
		if cc.Name == "" {
			return fmt.Errorf("%s.name: is required", where)
		}
		if _, dup := t.buckets[cc.Name]; dup {
			return fmt.Errorf("%s.name: %q is configured twice", where, cc.Name)
		}
		where = fmt.Sprintf("%s (%s)", where, cc.Name)
		if len(cc.CertNames) == 0 && len(cc.TokenSHA256) == 0 {
			return fmt.Errorf("%s: needs cert_names or token_sha256", where)
		}
		c, err := callerRoles(cc, where)
		if err != nil {
			return err
		}
		c.buckets = map[string]*rate.Limiter{}
		lowest := math.Inf(1)
		for _, class := range []string{RoleDecide, RoleAgent, RoleAudit, RoleAdmin} {
			if !c.roles[class] {
				continue
			}
			limit, ok := cfg.RateLimits[class]
			if !ok {
				limit = defaultRateLimits[class]
			}
			if limit.PerSecond <= 0 || limit.Burst <= 0 {
				return fmt.Errorf("rate_limits.%s: per_second and burst must be above zero", class)
			}
			if limit.PerSecond < lowest {
				lowest, c.strictest = limit.PerSecond, class
			}
			b := prev[cc.Name][class]
			if b == nil {
				b = rate.NewLimiter(rate.Limit(limit.PerSecond), limit.Burst)
			} else if b.Limit() != rate.Limit(limit.PerSecond) || b.Burst() != limit.Burst {
				changes = append(changes, bucketChange{b: b, limit: limit})
			}
			c.buckets[class] = b
		}
		t.buckets[cc.Name] = c.buckets
		for _, entry := range cc.CertNames {
			keys, typed, err := certKeys(entry)
			if err != nil {
				return fmt.Errorf("%s.cert_names: %w", where, err)
			}
			if !typed {
				warnings = append(warnings, fmt.Sprintf("%s.cert_names: %q has no type prefix: it matches a DNS, URI or email SAN only, never the certificate's CN; write dns:, uri:, email: or cn: before it", where, entry))
			}
			for _, k := range keys {
				if other, dup := t.byCert[k]; dup {
					return fmt.Errorf("%s: certificate name %q also belongs to %s", where, k, other.Name)
				}
				t.byCert[k] = c.as("mtls")
			}
		}
		for _, h := range cc.TokenSHA256 {
			h = strings.ToLower(h)
			if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size {
				return fmt.Errorf("%s.token_sha256: %q is not a hex SHA-256 digest", where, h)
			}
			if other, dup := t.byToken[h]; dup {
				return fmt.Errorf("%s: token also belongs to %s", where, other.Name)
			}
			t.byToken[h] = c.as("token")
		}
	}
	for _, ch := range changes {
		now := time.Now()
		ch.b.SetLimitAt(now, rate.Limit(ch.limit.PerSecond))
		ch.b.SetBurstAt(now, ch.limit.Burst)
	}
	for _, w := range warnings {
		a.log.Warn().Msg("callers file: " + w)
	}
	a.t.Store(t)
	return nil
}

// callerRoles validates a caller's roles and returns the caller holding them.
func callerRoles(cc CallerConfig, where string) (*Caller, error) {
	c := &Caller{Name: cc.Name, roles: map[string]bool{}}
	if len(cc.Roles) == 0 {
		return nil, fmt.Errorf("%s.roles: at least one role is required", where)
	}
	for _, r := range cc.Roles {
		switch {
		case r == RoleDecide || r == RoleAudit || r == RoleAdmin:
			c.roles[r] = true
		case strings.HasPrefix(r, RoleAgentPrefix) && len(r) > len(RoleAgentPrefix):
			if c.agentID != "" {
				return nil, fmt.Errorf("%s.roles: one caller can be only one agent", where)
			}
			c.agentID, c.roles[RoleAgent] = strings.TrimPrefix(r, RoleAgentPrefix), true
		default:
			return nil, fmt.Errorf("%s.roles: unknown role %q", where, r)
		}
	}
	// decide authorizes any actor, so beside it the agent's restriction to itself would mean nothing.
	if c.roles[RoleAgent] && c.roles[RoleDecide] {
		return nil, fmt.Errorf("%s.roles: agent:%s cannot be combined with decide, which would let the agent ask for anyone; give them separate callers", where, c.agentID)
	}
	return c, nil
}

// as returns a copy of c that authenticated via how; the copies share roles and buckets.
func (c *Caller) as(how string) *Caller {
	cp := *c
	cp.Via = how
	return &cp
}

// certKeys returns the lookup keys of one cert_names entry and whether it was typed. An untyped entry
// (the old form) matches SANs only.
func certKeys(entry string) ([]string, bool, error) {
	for _, p := range []string{CertDNS, CertURI, CertEmail, CertCN} {
		if len(entry) < len(p) || !strings.EqualFold(entry[:len(p)], p) {
			continue
		}
		v := entry[len(p):]
		if v == "" {
			return nil, true, fmt.Errorf("%q names nothing after its prefix", entry)
		}
		if p == CertDNS {
			v = strings.ToLower(v)
		}
		return []string{p + v}, true, nil
	}
	if entry == "" {
		return nil, false, errors.New("an entry is empty")
	}
	return []string{CertDNS + strings.ToLower(entry), CertURI + entry, CertEmail + entry}, false, nil
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
		for _, k := range certNames(leaf) {
			if c, ok := t.byCert[k]; ok {
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

// certNames lists the typed names a certificate can authenticate by: its SANs, then its common name.
func certNames(cert *x509.Certificate) []string {
	names := make([]string, 0, len(cert.DNSNames)+len(cert.URIs)+len(cert.EmailAddresses)+1)
	for _, d := range cert.DNSNames {
		names = append(names, CertDNS+strings.ToLower(d))
	}
	for _, u := range cert.URIs {
		names = append(names, CertURI+u.String())
	}
	for _, e := range cert.EmailAddresses {
		names = append(names, CertEmail+e)
	}
	if cert.Subject.CommonName != "" {
		names = append(names, CertCN+cert.Subject.CommonName)
	}
	return names
}
