package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"math"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/auth"
	"github.com/tollgate/tollgate/server/bundles"
	"github.com/tollgate/tollgate/server/console"
	"github.com/tollgate/tollgate/test/testserver"
)

const (
	auditToken  = "console-test-audit-token"
	decideToken = "console-test-decide-token"
)

// service is the real Tollgate service with a callers file holding an auditor and an orchestrator.
type service struct {
	srv      *testserver.Server
	base     string // http://host:port of the HTTP listener
	callers  string // the callers file
	decision string // the id of one decision made over gRPC
}

func writeCallers(t testing.TB, path string, callers ...auth.CallerConfig) {
	t.Helper()
	data, err := json.Marshal(auth.Config{Callers: callers})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

var (
	auditor      = auth.CallerConfig{Name: "auditor", TokenSHA256: []string{auth.HashToken(auditToken)}, Roles: []string{auth.RoleAudit}}
	orchestrator = auth.CallerConfig{Name: "orchestrator", TokenSHA256: []string{auth.HashToken(decideToken)}, Roles: []string{auth.RoleDecide}}
)

func startService(t testing.TB) *service {
	t.Helper()
	callers := filepath.Join(t.TempDir(), "callers.json")
	writeCallers(t, callers, auditor, orchestrator)
	srv := testserver.Start(t, app.Config{CallersFile: callers})
	s := &service{srv: srv, base: "http://" + srv.App.HTTPAddr().String(), callers: callers}
	s.decision = decide(t, srv, "5500.00").GetDecisionId()
	return s
}

// decide makes one PO decision over gRPC with the orchestrator's token.
func decide(t testing.TB, srv *testserver.Server, amount string) *tollgatev1.DecideResponse {
	t.Helper()
	ctx := context.Background()
	c, err := tollgate.Dial(ctx, srv.App.Addr().String(), tollgate.WithBearerToken(decideToken))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, err := c.Decide(ctx, testserver.POSubmit("u_buyer1", amount))
	if err != nil {
		t.Fatalf("decide: %v", err)
	}
	return resp
}

// browser is an HTTP client with a cookie jar that does not follow redirects, so tests see them.
type browser struct {
	t      testing.TB
	base   string
	client *http.Client
	csrf   string
}

func newBrowser(t testing.TB, base string) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, base: base, client: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// do sends a request as a same-origin page would (its Origin header), and returns the response with
// its body read.
func (b *browser) do(method, path string, body io.Reader, header http.Header) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if method == http.MethodPost {
		req.Header.Set("Origin", b.base)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp, string(data)
}

func (b *browser) get(path string) (*http.Response, string) {
	return b.do(http.MethodGet, path, nil, nil)
}

// post sends a POST with the session's CSRF token.
func (b *browser) post(path string, body io.Reader, header http.Header) (*http.Response, string) {
	b.t.Helper()
	if header == nil {
		header = http.Header{}
	}
	header.Set("X-CSRF-Token", b.csrf)
	return b.do(http.MethodPost, path, body, header)
}

var formSecret = regexp.MustCompile(`name="form_secret" value="([^"]+)"`)

// signIn loads the sign-in form and posts token with the form's secret; it returns the answer.
func (b *browser) signIn(token string, header http.Header) (*http.Response, string) {
	b.t.Helper()
	resp, page := b.get("/console/login")
	m := formSecret.FindStringSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil {
		b.t.Fatalf("sign-in page: %d without a form secret:\n%s", resp.StatusCode, page)
	}
	form := url.Values{"form_secret": {m[1]}, "token": {token}}
	if header == nil {
		header = http.Header{}
	}
	header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(http.MethodPost, "/console/login", strings.NewReader(form.Encode()), header)
}

// signedIn signs in with the auditor's token and reads the session's CSRF token.
func (b *browser) signedIn() *browser {
	b.t.Helper()
	if resp, page := b.signIn(auditToken, nil); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/" {
		b.t.Fatalf("sign in: %d %s\n%s", resp.StatusCode, resp.Header.Get("Location"), page)
	}
	resp, body := b.get("/console/api/session")
	var s struct {
		Caller string `json:"caller"`
		CSRF   string `json:"csrf_token"`
		Open   bool   `json:"open"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &s) != nil || s.CSRF == "" {
		b.t.Fatalf("session: %d %s", resp.StatusCode, body)
	}
	if s.Caller != "auditor" || s.Open {
		b.t.Fatalf("session caller %q open %v, want auditor, not open", s.Caller, s.Open)
	}
	b.csrf = s.CSRF
	return b
}

func TestWithoutSessionPagesRedirectToSignInAndAPIRefuses(t *testing.T) {
	s := startService(t)
	b := newBrowser(t, s.base)
	if resp, _ := b.get("/console/"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/login" {
		t.Errorf("GET /console/ without a session: %d to %q, want 303 to /console/login", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, path := range []string{"/console/api/session", "/console/api/decisions", "/console/api/decisions/" + s.decision, "/console/api/verify", "/console/api/bundles", "/console/api/overview"} {
		if resp, body := b.get(path); resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, s.decision) {
			t.Errorf("GET %s without a session: %d %s, want 401 and no data", path, resp.StatusCode, body)
		}
	}
	if resp, _ := b.do(http.MethodPost, "/console/api/decisions/"+s.decision+"/replay", nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("replay without a session: %d, want 401", resp.StatusCode)
	}
	// A bearer header is not a session: the console is for browsers that signed in.
	if resp, _ := b.do(http.MethodGet, "/console/api/decisions", nil, http.Header{"Authorization": {"Bearer " + auditToken}}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("bearer header without a session: %d, want 401", resp.StatusCode)
	}
}

func TestSignInWithAuditTokenStartsAStrictHttpOnlySession(t *testing.T) {
	s := startService(t)
	b := newBrowser(t, s.base)
	resp, _ := b.signIn("  Bearer "+auditToken+"\n", nil) // pasted with its prefix and a newline
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/" {
		t.Fatalf("sign in: %d to %q, want 303 to /console/", resp.StatusCode, resp.Header.Get("Location"))
	}
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "tollgate_console" {
			session = c
		}
	}
	switch {
	case session == nil || len(session.Value) < 40:
		t.Fatalf("no session cookie with a random id: %v", resp.Cookies())
	case !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/console/":
		t.Errorf("session cookie %v: want HttpOnly, SameSite=Strict, Path=/console/", session)
	case session.Secure:
		t.Errorf("session cookie is Secure on a plaintext listener; the browser would never send it back")
	}
	if strings.Contains(resp.Header.Get("Set-Cookie"), auditToken) {
		t.Error("the token went back to the browser in a cookie")
	}
	b.signedIn()
	if resp, body := b.get("/console/"); resp.StatusCode != http.StatusOK || !strings.Contains(body, "/console/assets/app.js") {
		t.Errorf("console page after sign-in: %d", resp.StatusCode)
	}
	resp, body := b.get("/console/api/decisions/" + s.decision)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, s.decision) {
		t.Errorf("decision after sign-in: %d %s", resp.StatusCode, body)
	}
}

func TestSignInRefusesOtherRolesAndUnknownTokens(t *testing.T) {
	s := startService(t)
	for _, tc := range []struct {
		name, token string
		status      int
		says        string
	}{
		{"decide role", decideToken, http.StatusForbidden, "does not hold the <strong>audit</strong> role"},
		{"unknown token", "not-a-token", http.StatusUnauthorized, "not recognised"},
		{"empty", "   ", http.StatusBadRequest, "Paste your bearer token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBrowser(t, s.base)
			resp, page := b.signIn(tc.token, nil)
			if resp.StatusCode != tc.status || !strings.Contains(page, tc.says) {
				t.Errorf("sign in: %d, want %d saying %q:\n%s", resp.StatusCode, tc.status, tc.says, page)
			}
			for _, c := range resp.Cookies() {
				if c.Name == "tollgate_console" {
					t.Errorf("a refused sign-in set a session cookie")
				}
			}
			if resp, _ := b.get("/console/api/session"); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("after a refused sign-in the API answered %d, want 401", resp.StatusCode)
			}
		})
	}
}

// TestSignInIsProtectedAgainstCSRF: a cross-site page can post the sign-in form, but without the form's
// double-submit cookie, or with a foreign Origin, the sign-in is refused.
func TestSignInIsProtectedAgainstCSRF(t *testing.T) {
	s := startService(t)
	form := url.Values{"form_secret": {"guessed"}, "token": {auditToken}}.Encode()
	formType := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}

	b := newBrowser(t, s.base)
	if resp, _ := b.do(http.MethodPost, "/console/login", strings.NewReader(form), formType); resp.StatusCode != http.StatusForbidden {
		t.Errorf("sign-in without the form's cookie: %d, want 403", resp.StatusCode)
	}
	// The form's cookie is set, but the posted secret is not the one the form carried.
	b.get("/console/login")
	if resp, _ := b.do(http.MethodPost, "/console/login", strings.NewReader(form), formType); resp.StatusCode != http.StatusForbidden {
		t.Errorf("sign-in with another secret than the form's cookie: %d, want 403", resp.StatusCode)
	}
	if resp, _ := b.get("/console/api/session"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("signed in all the same: %d", resp.StatusCode)
	}
	for name, h := range map[string]http.Header{
		"foreign Origin":          {"Origin": {"https://evil.example"}},
		"cross-site fetch header": {"Sec-Fetch-Site": {"cross-site"}, "Origin": {""}},
	} {
		t.Run(name, func(t *testing.T) {
			b := newBrowser(t, s.base)
			resp, page := b.signIn(auditToken, h)
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "another site") {
				t.Errorf("sign in with %s: %d, want 403", name, resp.StatusCode)
			}
			if resp, _ := b.get("/console/api/session"); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("signed in all the same: %d", resp.StatusCode)
			}
		})
	}
}

func TestPostsNeedTheSessionCSRFToken(t *testing.T) {
	s := startService(t)
	b := newBrowser(t, s.base).signedIn()
	replay := "/console/api/decisions/" + s.decision + "/replay"
	for name, h := range map[string]http.Header{
		"no header":    nil,
		"wrong header": {"X-CSRF-Token": {"x" + b.csrf}},
	} {
		if resp, body := b.do(http.MethodPost, replay, nil, h); resp.StatusCode != http.StatusForbidden {
			t.Errorf("replay with %s: %d %s, want 403", name, resp.StatusCode, body)
		}
	}
	if resp, body := b.do(http.MethodPost, replay, nil, http.Header{"X-CSRF-Token": {b.csrf}, "Origin": {"https://evil.example"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("replay from a foreign origin with the right token: %d %s, want 403", resp.StatusCode, body)
	}
	resp, body := b.post(replay, nil, nil)
	var r struct {
		Identical bool `json:"identical"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &r) != nil || !r.Identical {
		t.Fatalf("replay with the CSRF token: %d %s, want 200 identical", resp.StatusCode, body)
	}
	if resp, _ := b.do(http.MethodPost, "/console/logout", nil, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("sign-out without the CSRF token: %d, want 403", resp.StatusCode)
	}
}

func TestSignOutEndsTheSession(t *testing.T) {
	s := startService(t)
	b := newBrowser(t, s.base).signedIn()
	if resp, body := b.post("/console/logout", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign out: %d %s", resp.StatusCode, body)
	}
	if resp, _ := b.get("/console/api/decisions"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("API after sign-out: %d, want 401", resp.StatusCode)
	}
	if resp, _ := b.get("/console/"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("page after sign-out: %d, want 303 to sign in", resp.StatusCode)
	}
}

// TestRotatedTokenEndsItsSessions: the console checks the session's token on every request, so removing
// it from the callers file ends the session at once, as it ends the token's gRPC access.
func TestRotatedTokenEndsItsSessions(t *testing.T) {
	s := startService(t)
	b := newBrowser(t, s.base).signedIn()
	writeCallers(t, s.callers, orchestrator)
	if err := s.srv.App.ReloadCallers(); err != nil {
		t.Fatal(err)
	}
	if resp, _ := b.get("/console/api/decisions"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("API after the token was rotated out: %d, want 401", resp.StatusCode)
	}
	// A caller that lost the audit role keeps its token but loses the console.
	writeCallers(t, s.callers, auth.CallerConfig{Name: "auditor", TokenSHA256: auditor.TokenSHA256, Roles: []string{auth.RoleAudit}}, orchestrator)
	if err := s.srv.App.ReloadCallers(); err != nil {
		t.Fatal(err)
	}
	b = newBrowser(t, s.base).signedIn()
	writeCallers(t, s.callers, auth.CallerConfig{Name: "auditor", TokenSHA256: auditor.TokenSHA256, Roles: []string{auth.RoleDecide}}, orchestrator)
	if err := s.srv.App.ReloadCallers(); err != nil {
		t.Fatal(err)
	}
	if resp, body := b.get("/console/"); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Access refused") {
		t.Errorf("page after the audit role was removed: %d, want 403 refused", resp.StatusCode)
	}
}

func TestSecurityHeaders(t *testing.T) {
	s := startService(t)
	b := newBrowser(t, s.base)
	for _, path := range []string{"/console/login", "/console/", "/console/assets/app.js", "/console/api/session"} {
		resp, _ := b.get(path)
		for k, want := range map[string]string{
			"X-Frame-Options":        "DENY",
			"X-Content-Type-Options": "nosniff",
			"Cache-Control":          "no-store",
		} {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("%s: %s = %q, want %q", path, k, got, want)
			}
		}
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP allows inline script or style: %q", path, csp)
		}
	}
}

// TestAssetsAreEmbeddedAndHaveNoInlineScript: the page's script and stylesheet come from the binary,
// and no page carries an inline script the CSP would block.
func TestAssetsAreEmbeddedAndHaveNoInlineScript(t *testing.T) {
	s := startService(t)
	b := newBrowser(t, s.base).signedIn()
	for path, ctype := range map[string]string{"/console/assets/app.js": "javascript", "/console/assets/app.css": "text/css"} {
		resp, body := b.get(path)
		if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), ctype) || len(body) < 1000 {
			t.Errorf("%s: %d %s, %d bytes", path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
		if strings.Contains(body, "http://") && ctype == "text/css" || strings.Contains(body, "@import url(http") {
			t.Errorf("%s loads something from outside the binary", path)
		}
	}
	inline := regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]|\son[a-z]+=|<style`)
	for _, path := range []string{"/console/", "/console/login"} {
		if _, page := b.get(path); inline.MatchString(page) {
			t.Errorf("%s has inline script or style: %s", path, inline.FindString(page))
		}
	}
}

func TestImpactAnalysisUpload(t *testing.T) {
	s := startService(t)
	b := newBrowser(t, s.base).signedIn()
	upload := func(bundle []byte, last string) (*http.Response, string) {
		var body bytes.Buffer
		w := multipart.NewWriter(&body)
		f, err := w.CreateFormFile("bundle", "candidate.tar.gz")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = f.Write(bundle)
		_ = w.WriteField("last", last)
		_ = w.Close()
		return b.post("/console/api/impact", &body, http.Header{"Content-Type": {w.FormDataContentType()}})
	}
	// The running pack with the first buyer tier raised above the 5500.00 PO the service decided.
	resp, body := upload(packTarball(t, "6000.00"), "100")
	var r struct {
		Total   string `json:"total"`
		Changed string `json:"changed"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &r) != nil {
		t.Fatalf("impact: %d %s", resp.StatusCode, body)
	}
	if r.Total != "1" || r.Changed != "1" || !strings.Contains(body, s.decision) {
		t.Errorf("impact: total %s changed %s, want the one decision changed: %s", r.Total, r.Changed, body)
	}
	if resp, body := upload([]byte("not a bundle"), ""); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("impact of garbage: %d %s, want 400", resp.StatusCode, body)
	}
	if resp, body := upload(bytes.Repeat([]byte{0}, 8<<20+1), ""); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("impact of a bundle above the limit: %d %s, want 413", resp.StatusCode, body)
	}
	if resp, body := upload(packTarball(t, "6000.00"), "-1"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("impact with last -1: %d %s, want 400", resp.StatusCode, body)
	}
}

// packTarball builds the repository's policy pack as a bundle with the first PO buyer tier's maximum
// set to max.
func packTarball(t testing.TB, max string) []byte {
	t.Helper()
	src, dst := "../../policies", t.TempDir()
	err := filepath.WalkDir(src, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		switch {
		case e.IsDir() && rel == "testdata":
			return filepath.SkipDir
		case e.IsDir():
			return os.MkdirAll(filepath.Join(dst, rel), 0o750)
		case !(strings.HasSuffix(rel, ".rego") || rel == "data.json" || rel == ".manifest") || bundles.TestFile(rel):
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if rel == "data.json" {
			var doc map[string]any
			if err := json.Unmarshal(data, &doc); err != nil {
				return err
			}
			tiers, ok := doc["params"].(map[string]any)["th"].(map[string]any)["po"].(map[string]any)["tiers"].([]any)
			if !ok {
				return errors.New("data.json has no params.th.po.tiers")
			}
			tiers[0].(map[string]any)["max"] = max
			if data, err = json.Marshal(doc); err != nil {
				return err
			}
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	bnd, err := bundles.ReadDir(dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := bundles.Write(bnd)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestOpenModeConsole: without a callers file the console is open like the gRPC API, says so, and its
// POSTs still need the CSRF token of the session the page started.
func TestOpenModeConsole(t *testing.T) {
	srv := testserver.Start(t, app.Config{})
	if _, err := srv.Client.Decide(context.Background(), testserver.POSubmit("u_buyer1", "100.00")); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, "http://"+srv.App.HTTPAddr().String())
	if resp, page := b.get("/console/"); resp.StatusCode != http.StatusOK || !strings.Contains(page, "Open mode") {
		t.Fatalf("open-mode page: %d", resp.StatusCode)
	}
	if resp, _ := b.get("/console/login"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("sign-in page in open mode: %d, want 303 to the console", resp.StatusCode)
	}
	resp, body := b.get("/console/api/session")
	var s struct {
		CSRF string `json:"csrf_token"`
		Open bool   `json:"open"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &s) != nil || !s.Open || s.CSRF == "" {
		t.Fatalf("open-mode session: %d %s", resp.StatusCode, body)
	}
	b.csrf = s.CSRF
	resp, body = b.get("/console/api/decisions?limit=1")
	var page struct {
		Records []struct {
			ID string `json:"decision_id"`
		} `json:"records"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &page) != nil || len(page.Records) != 1 {
		t.Fatalf("open-mode search: %d %s", resp.StatusCode, body)
	}
	replay := "/console/api/decisions/" + page.Records[0].ID + "/replay"
	if resp, _ := b.do(http.MethodPost, replay, nil, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("open-mode replay without the CSRF token: %d, want 403", resp.StatusCode)
	}
	if resp, body := b.post(replay, nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("open-mode replay: %d %s", resp.StatusCode, body)
	}
}

// TestOverviewCountsTheDecisions: the overview endpoint answers the InsightsService's figures for the
// decisions the service made, every figure in one response.
func TestOverviewCountsTheDecisions(t *testing.T) {
	s := startService(t) // one PO of 5500.00: REQUIRE_APPROVAL
	// The pack's history rules may hand repeated POs to a human, so the answers, not the amounts, say
	// what the overview must count.
	allow, approval := 0, 1
	for _, amount := range []string{"100.00", "200.00"} {
		switch got := decide(t, s.srv, amount).GetEffect(); got {
		case tollgatev1.Effect_EFFECT_ALLOW:
			allow++
		case tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL:
			approval++
		default:
			t.Fatalf("PO of %s: %v", amount, got)
		}
	}
	b := newBrowser(t, s.base).signedIn()
	resp, body := b.get("/console/api/overview?granularity=hour")
	var o struct {
		Available bool `json:"available"`
		Volume    struct {
			Points []struct {
				Counts struct {
					Allow           string `json:"allow"`
					RequireApproval string `json:"require_approval"`
				} `json:"counts"`
			} `json:"points"`
		} `json:"volume"`
		Approvals struct {
			Rates []struct {
				Action string  `json:"action"`
				Rate   float64 `json:"rate"`
			} `json:"rates"`
		} `json:"approvals"`
		PolicyChanges struct {
			Changes []struct {
				Revision string `json:"revision"`
			} `json:"changes"`
		} `json:"policy_changes"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &o) != nil || !o.Available {
		t.Fatalf("overview: %d %s", resp.StatusCode, body)
	}
	var gotAllow, gotApproval int
	for _, p := range o.Volume.Points {
		a, _ := strconv.Atoi(p.Counts.Allow)
		r, _ := strconv.Atoi(p.Counts.RequireApproval)
		gotAllow, gotApproval = gotAllow+a, gotApproval+r
	}
	if gotAllow != allow || gotApproval != approval {
		t.Errorf("volume %+v: %d ALLOW and %d REQUIRE_APPROVAL, want %d and %d", o.Volume.Points, gotAllow, gotApproval, allow, approval)
	}
	wantRate := float64(approval) / 3
	if len(o.Approvals.Rates) != 1 || o.Approvals.Rates[0].Action != "PO.SUBMIT" || math.Abs(o.Approvals.Rates[0].Rate-wantRate) > 1e-9 {
		t.Errorf("approval rates %+v, want PO.SUBMIT at %.3f", o.Approvals.Rates, wantRate)
	}
	if len(o.PolicyChanges.Changes) != 1 {
		t.Errorf("policy changes %+v, want the startup activation", o.PolicyChanges.Changes)
	}
	for _, bad := range []string{"granularity=week", "from=yesterday"} {
		if resp, body := b.get("/console/api/overview?" + bad); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("overview?%s: %d %s, want 400", bad, resp.StatusCode, body)
		}
	}
}

// TestWithoutInsightsTheOverviewSaysSo: a console given no InsightsService serves the rest and says on
// the overview that the figures are not available.
func TestWithoutInsightsTheOverviewSaysSo(t *testing.T) {
	open, err := auth.New(nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	c, err := console.New(console.Config{Auth: open, Audit: tollgatev1.UnimplementedAuditServiceServer{},
		Policy: tollgatev1.UnimplementedPolicyServiceServer{}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	defer srv.Close()
	b := newBrowser(t, srv.URL)
	resp, body := b.get("/console/api/overview")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"available":false`) || !strings.Contains(body, "insights not available") {
		t.Errorf("overview without insights: %d %s", resp.StatusCode, body)
	}
	if resp, body := b.get("/console/api/session"); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"insights":false`) {
		t.Errorf("session without insights: %d %s", resp.StatusCode, body)
	}
	// The other pages still call their services, whose errors come back as HTTP statuses.
	if resp, body := b.get("/console/api/decisions"); resp.StatusCode != http.StatusNotImplemented {
		t.Errorf("search on an unimplemented audit service: %d %s, want 501", resp.StatusCode, body)
	}
	if _, err := console.New(console.Config{Auth: open}, zerolog.Nop()); err == nil {
		t.Error("New without Audit and Policy: no error")
	}
}
