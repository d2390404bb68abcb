package console

import (
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/api"
	"github.com/tollgate/tollgate/server/auth"
)

// Prefix is the path the app mounts the console at.
const Prefix = "/console/"

// Defaults for Config.
const (
	DefaultSessionTTL  = 8 * time.Hour
	DefaultIdleTimeout = 30 * time.Minute
	DefaultMaxSessions = 10_000
	// DefaultMaxUploadBytes is the largest candidate bundle an impact analysis accepts: the transport
	// bound of the gRPC API, so the console admits no bundle the API would refuse.
	DefaultMaxUploadBytes = api.MaxMessageBytes
)

//go:embed dist
var distFS embed.FS

//go:embed templates/*.html
var templateFS embed.FS

// Config configures a Console. Auth, Audit and Policy are required.
type Config struct {
	// Auth authenticates the token an auditor signs in with, as it does gRPC callers. When it is open
	// (no callers file) the console is open too.
	Auth *auth.Authenticator
	// Audit, Policy and Insights are the service's own server implementations, called in process.
	Audit  tollgatev1.AuditServiceServer
	Policy tollgatev1.PolicyServiceServer
	// Insights may be nil: the overview then says the figures are not available, and the rest works.
	Insights tollgatev1.InsightsServiceServer
	// SecureCookies marks the cookies Secure; the app sets it when the HTTP listener serves TLS. A
	// request that arrived over TLS gets Secure cookies either way.
	SecureCookies bool
	// SessionTTL bounds a session from sign-in; IdleTimeout ends one unused that long. Defaults
	// DefaultSessionTTL and DefaultIdleTimeout.
	SessionTTL, IdleTimeout time.Duration
	// MaxSessions bounds the live sessions; a sign-in beyond it is refused. Default DefaultMaxSessions.
	MaxSessions int
	// MaxUploadBytes bounds a candidate bundle uploaded for impact analysis. Default
	// DefaultMaxUploadBytes.
	MaxUploadBytes int64
	// Now is the clock sessions expire by; nil is time.Now. For tests.
	Now func() time.Time
}

func (c *Config) setDefaults() error {
	if c.Auth == nil || c.Audit == nil || c.Policy == nil {
		return errors.New("console: Auth, Audit and Policy are required")
	}
	if c.SessionTTL < 0 || c.IdleTimeout < 0 || c.MaxSessions < 0 || c.MaxUploadBytes < 0 {
		return errors.New("console: durations and sizes must not be negative")
	}
	if c.SessionTTL == 0 {
		c.SessionTTL = DefaultSessionTTL
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	if c.MaxUploadBytes == 0 {
		c.MaxUploadBytes = DefaultMaxUploadBytes
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Console is the console's http.Handler, to be mounted at Prefix. It is safe for concurrent use.
type Console struct {
	cfg      Config
	log      zerolog.Logger
	sessions *sessions
	pages    *template.Template
	mux      *http.ServeMux
}

// New validates cfg and returns the console.
func New(cfg Config, log zerolog.Logger) (*Console, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	pages, err := template.ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	c := &Console{
		cfg:      cfg,
		log:      log.With().Str("component", "console").Logger(),
		sessions: newSessions(cfg.SessionTTL, cfg.IdleTimeout, cfg.MaxSessions, cfg.Now),
		pages:    pages,
	}
	c.mux = c.routes()
	return c, nil
}

func (c *Console) routes() *http.ServeMux {
	assets, err := fs.Sub(distFS, "dist")
	if err != nil {
		panic(err) // the embed directive guarantees dist exists
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /console/login", c.signInPage)
	mux.HandleFunc("POST /console/login", c.signIn)
	mux.Handle("POST /console/logout", c.authed(c.signOut))
	mux.Handle("GET /console/assets/", http.StripPrefix("/console/assets/", http.FileServerFS(assets)))
	mux.Handle("GET /console/{$}", c.authed(func(w http.ResponseWriter, r *http.Request, _ *session) {
		http.ServeFileFS(w, r, assets, "index.html")
	}))

	mux.Handle("GET /console/api/session", c.authed(c.apiSession))
	mux.Handle("GET /console/api/overview", c.authed(c.apiOverview))
	mux.Handle("GET /console/api/decisions", c.authed(c.apiListDecisions))
	mux.Handle("GET /console/api/decisions/{id}", c.authed(c.apiGetDecision))
	mux.Handle("POST /console/api/decisions/{id}/replay", c.authed(c.apiReplay))
	mux.Handle("GET /console/api/verify", c.authed(c.apiVerify))
	mux.Handle("GET /console/api/bundles", c.authed(c.apiBundles))
	mux.Handle("POST /console/api/impact", c.authed(c.apiImpact))
	return mux
}

// ServeHTTP serves the console under Prefix with its security headers.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// No inline script or style anywhere: every script and stylesheet is an embedded file.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	c.mux.ServeHTTP(w, r)
}
