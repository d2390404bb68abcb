package console

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/server/auth"
)

// Cookie and header names.
const (
	sessionCookie = "tollgate_console"
	// signInCookie carries the double-submit secret of the sign-in form: a cross-site page can post a
	// form but can neither read nor set this cookie, so it cannot sign a victim in as itself.
	signInCookie = "tollgate_signin"
	// csrfHeader carries the session's CSRF token on every POST after sign-in.
	csrfHeader = "X-CSRF-Token"
	// maxSignInBytes bounds the sign-in form: a token and the form secret.
	maxSignInBytes = 16 << 10
	signInMaxAge   = 3600
)

// crossOrigin refuses browser requests whose Origin or Sec-Fetch-Site says another site sent them; it
// guards every POST, the sign-in form's included, before any other check.
var crossOrigin = http.NewCrossOriginProtection()

// pageData is what the server-rendered pages (sign-in, refused) show.
type pageData struct {
	FormSecret string
	Error      string
	Caller     string
}

func (c *Console) render(w http.ResponseWriter, status int, name string, data pageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := c.pages.ExecuteTemplate(w, name, data); err != nil {
		c.log.Error().Err(err).Str("page", name).Msg("render console page")
	}
}

func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: Prefix, MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.cfg.SecureCookies || r.TLS != nil,
	})
}

// signInPage shows the token form with a fresh double-submit secret. In open mode there is nothing to
// sign in to.
func (c *Console) signInPage(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Auth.Open() {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	secret := randomID()
	c.setCookie(w, r, signInCookie, secret, signInMaxAge)
	c.render(w, http.StatusOK, "signin.html", pageData{FormSecret: secret})
}

// signIn checks the pasted bearer token with the service's authenticator and starts a session for a
// caller holding the audit role. A token without it gets the refused page and no session.
func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Auth.Open() {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	retry := func(status int, msg string) {
		secret := randomID()
		c.setCookie(w, r, signInCookie, secret, signInMaxAge)
		c.render(w, status, "signin.html", pageData{FormSecret: secret, Error: msg})
	}
	if err := crossOrigin.Check(r); err != nil {
		c.log.Warn().Str("peer", r.RemoteAddr).Msg("console sign-in refused: cross-origin request")
		retry(http.StatusForbidden, "This sign-in came from another site and was refused.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxSignInBytes)
	if err := r.ParseForm(); err != nil {
		retry(http.StatusBadRequest, "The sign-in form could not be read.")
		return
	}
	cookie, err := r.Cookie(signInCookie)
	if err != nil || !sameSecret(cookie.Value, r.PostForm.Get("form_secret")) {
		retry(http.StatusForbidden, "The sign-in form expired or was not this site's. Please try again.")
		return
	}
	token := bearerToken(r.PostForm.Get("token"))
	if token == "" {
		retry(http.StatusBadRequest, "Paste your bearer token.")
		return
	}
	caller, err := c.cfg.Auth.Identify(nil, token)
	if err != nil {
		c.log.Warn().Str("peer", r.RemoteAddr).Err(err).Msg("console sign-in refused")
		retry(http.StatusUnauthorized, "That token is not recognised.")
		return
	}
	if !caller.Has(auth.RoleAudit) {
		c.log.Warn().Str("peer", r.RemoteAddr).Str("caller", caller.String()).Msg("console sign-in refused: no audit role")
		c.render(w, http.StatusForbidden, "refused.html", pageData{Caller: caller.Name})
		return
	}
	sess, err := c.sessions.create(caller.Name, token)
	if err != nil {
		retry(http.StatusServiceUnavailable, err.Error())
		return
	}
	c.setCookie(w, r, signInCookie, "", -1)
	c.setCookie(w, r, sessionCookie, sess.id, int(c.cfg.SessionTTL.Seconds()))
	c.log.Info().Str("peer", r.RemoteAddr).Str("caller", caller.String()).Msg("console sign-in")
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

// bearerToken trims what an auditor may paste around a token: blanks and an "Bearer " prefix.
func bearerToken(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > len("bearer ") && strings.EqualFold(s[:len("bearer ")], "bearer ") {
		s = strings.TrimSpace(s[len("bearer "):])
	}
	return s
}

// signOut ends the session.
func (c *Console) signOut(w http.ResponseWriter, r *http.Request, sess *session) {
	c.sessions.end(sess.id)
	c.setCookie(w, r, sessionCookie, "", -1)
	c.log.Info().Str("peer", r.RemoteAddr).Str("caller", sess.caller).Msg("console sign-out")
	writeJSON(w, http.StatusOK, map[string]string{"signed_out": "true"})
}

// authedHandler serves a request of a signed-in caller holding the audit role.
type authedHandler func(http.ResponseWriter, *http.Request, *session)

// errNoSession is why a request without a live session is refused.
var errNoSession = errors.New("not signed in")

// authed admits a request with a live session whose token still authenticates a caller holding the
// audit role; a POST must carry the session's CSRF token. A page request without a session is sent to
// sign in; an API request gets 401. API calls pay from the caller's audit rate-limit bucket, as the
// same gRPC call would. In open mode every request is admitted, and the index page starts an anonymous
// session so that its POSTs carry a CSRF token like everyone's.
func (c *Console) authed(h authedHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		isAPI := strings.HasPrefix(r.URL.Path, Prefix+"api/")
		refuse := func(status int, err error) {
			if isAPI || r.Method == http.MethodPost {
				writeError(w, status, err.Error())
				return
			}
			http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
		}
		if r.Method == http.MethodPost {
			if err := crossOrigin.Check(r); err != nil {
				writeError(w, http.StatusForbidden, "cross-origin request refused")
				return
			}
		}
		sess, ok := c.session(r)
		open := c.cfg.Auth.Open()
		switch {
		case !ok && open && !isAPI && r.Method == http.MethodGet:
			s, err := c.sessions.create("anonymous", "")
			if err != nil {
				writeError(w, http.StatusServiceUnavailable, err.Error())
				return
			}
			c.setCookie(w, r, sessionCookie, s.id, int(c.cfg.SessionTTL.Seconds()))
			sess, ok = s, true
		case !ok && open && r.Method == http.MethodGet:
			sess, ok = &session{caller: "anonymous"}, true // a read needs no CSRF token, so no session
		case !ok:
			refuse(http.StatusUnauthorized, errNoSession)
			return
		}
		caller, err := c.cfg.Auth.Identify(nil, sess.token)
		if err != nil {
			c.sessions.end(sess.id)
			c.log.Warn().Str("peer", r.RemoteAddr).Str("caller", sess.caller).Err(err).Msg("console session ended: token no longer authenticates")
			refuse(http.StatusUnauthorized, errNoSession)
			return
		}
		if !open && !caller.Has(auth.RoleAudit) {
			c.sessions.end(sess.id)
			if isAPI {
				writeError(w, http.StatusForbidden, caller.Name+" does not hold the audit role")
				return
			}
			c.render(w, http.StatusForbidden, "refused.html", pageData{Caller: caller.Name})
			return
		}
		if r.Method == http.MethodPost && !sameSecret(sess.csrf, r.Header.Get(csrfHeader)) {
			writeError(w, http.StatusForbidden, "missing or wrong "+csrfHeader+" header")
			return
		}
		if isAPI {
			if paid, wait := caller.Spend(auth.RoleAudit, 1); !paid {
				if wait > 0 {
					w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
				}
				writeError(w, http.StatusTooManyRequests, "audit rate limit of "+caller.Name+" exceeded; retry later")
				return
			}
		}
		h(w, r, sess)
	})
}

// session returns the request's live session, if any.
func (c *Console) session(r *http.Request) (*session, bool) {
	cookie, err := r.Cookie(sessionCookie)
	if err != nil || cookie.Value == "" {
		return nil, false
	}
	return c.sessions.get(cookie.Value)
}
