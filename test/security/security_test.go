// Package security tests caller identity, least privilege, limits and transport rules against the real
// service over real TLS.
package security_test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/auth"
	"github.com/tollgate/tollgate/server/auth/devcerts"
	"github.com/tollgate/tollgate/test/testserver"
)

// syncBuffer collects the service's log lines for assertions.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type secureServer struct {
	app   *app.App
	certs string
	token string
	logs  *syncBuffer
}

// startSecure starts the service with TLS, client CAs and the dev callers file; edit may change the
// callers file before start.
func startSecure(t testing.TB, edit func(*auth.Config)) *secureServer {
	t.Helper()
	certs := t.TempDir()
	if err := devcerts.Write(certs, time.Hour); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		cfg, err := auth.LoadConfig(filepath.Join(certs, "callers.json"))
		if err != nil {
			t.Fatal(err)
		}
		edit(cfg)
		writeCallers(t, filepath.Join(certs, "callers.json"), cfg)
	}
	token, err := os.ReadFile(filepath.Join(certs, "token"))
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, secureConfig(t, certs), zerolog.New(io.MultiWriter(logs)))
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
	return &secureServer{app: a, certs: certs, token: strings.TrimSpace(string(token)), logs: logs}
}

// secureConfig configures the service on loopback with the TLS material and callers file in certs.
func secureConfig(t testing.TB, certs string) app.Config {
	return app.Config{
		Addr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: t.TempDir(),
		TLSCert: filepath.Join(certs, "server.crt"), TLSKey: filepath.Join(certs, "server.key"),
		ClientCA: filepath.Join(certs, "ca.crt"), CallersFile: filepath.Join(certs, "callers.json"),
	}
}

// startWith builds (without running) a service from the material in certs, closed at the end of the test.
func startWith(t testing.TB, certs string) (*app.App, error) {
	t.Helper()
	a, err := app.New(context.Background(), secureConfig(t, certs), zerolog.Nop())
	if err == nil {
		t.Cleanup(func() { a.Close() })
	}
	return a, err
}

func writeCallers(t testing.TB, path string, cfg *auth.Config) {
	t.Helper()
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// as dials the server as a dev client certificate ("" for no certificate) with optional extra options.
func (s *secureServer) as(t testing.TB, cert string, opts ...tollgate.Option) *tollgate.Client {
	t.Helper()
	certFile, keyFile := "", ""
	if cert != "" {
		certFile, keyFile = filepath.Join(s.certs, cert+".crt"), filepath.Join(s.certs, cert+".key")
	}
	opts = append([]tollgate.Option{tollgate.WithTLSFiles(filepath.Join(s.certs, "ca.crt"), certFile, keyFile)}, opts...)
	c, err := tollgate.Dial(context.Background(), s.app.Addr().String(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// stranger issues a client certificate from the server's CA that no caller is configured with, and
// returns its name for as.
func (s *secureServer) stranger(t testing.TB) string {
	t.Helper()
	const name = "stranger"
	tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: name}, URIs: []*url.URL{devcerts.ClientID(name)}}
	if err := devcerts.IssueClient(s.certs, name, tmpl); err != nil {
		t.Fatal(err)
	}
	return name
}

func codeOf(err error) codes.Code { return status.Code(err) }

func decideReq(actorType tollgatev1.ActorType, actorID string) *tollgatev1.DecideRequest {
	attrs, _ := structpb.NewStruct(map[string]any{"amount": "100.00", "currency": "USD", "category": "MRO", "site_id": "DC1", "supplier_id": "S1"})
	r := &tollgatev1.DecideRequest{
		Actor:    &tollgatev1.Actor{Id: actorID, Type: actorType},
		Action:   "PO.SUBMIT",
		Resource: &tollgatev1.Resource{Type: "purchase_order", Id: "PO-9", Attributes: attrs},
	}
	if actorType == tollgatev1.ActorType_ACTOR_TYPE_AI_AGENT {
		r.Ai = &tollgatev1.AI{UseCase: "backorder_allocation", Mode: tollgatev1.AIMode_AI_MODE_RECOMMEND, Confidence: 0.95, ModelVersion: "v1"}
	}
	return r
}

func wantCode(t testing.TB, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("got %v, want %s", err, code)
	}
}

func TestLeastPrivilegePerRPC(t *testing.T) {
	s := startSecure(t, nil)
	ctx := context.Background()
	human := decideReq(tollgatev1.ActorType_ACTOR_TYPE_HUMAN, "u_buyer1")
	listAudit := func(c *tollgate.Client) error {
		_, err := c.Audit().ListDecisions(ctx, &tollgatev1.ListDecisionsRequest{})
		return err
	}
	applyMD := func(c *tollgate.Client) error {
		_, err := c.MasterDataStatus(ctx)
		return err
	}

	orchestrator := s.as(t, "orchestrator")
	if _, err := orchestrator.Decide(ctx, human); err != nil {
		t.Fatalf("orchestrator Decide: %v", err)
	}
	if _, err := orchestrator.DecideBatch(ctx, []*tollgatev1.DecideRequest{human}); err != nil {
		t.Fatalf("orchestrator DecideBatch: %v", err)
	}
	wantCode(t, applyMD(orchestrator), codes.PermissionDenied)
	wantCode(t, listAudit(orchestrator), codes.PermissionDenied)

	auditor := s.as(t, "auditor")
	if err := listAudit(auditor); err != nil {
		t.Fatalf("auditor ListDecisions: %v", err)
	}
	_, err := auditor.Decide(ctx, human)
	wantCode(t, err, codes.PermissionDenied)

	admin := s.as(t, "admin")
	if err := applyMD(admin); err != nil {
		t.Fatalf("admin master data: %v", err)
	}
	_, err = admin.Decide(ctx, human)
	wantCode(t, err, codes.PermissionDenied)

	tokenClient := s.as(t, "", tollgate.WithBearerToken(s.token))
	if _, err := tokenClient.Decide(ctx, human); err != nil {
		t.Fatalf("token client Decide: %v", err)
	}

	anonymous := s.as(t, "")
	_, err = anonymous.Decide(ctx, human)
	wantCode(t, err, codes.Unauthenticated)
	guess := s.as(t, "", tollgate.WithBearerToken("not-a-token"))
	_, err = guess.Decide(ctx, human)
	wantCode(t, err, codes.Unauthenticated)

	// Every decision answered carries its caller in the audit record.
	page, err := auditor.Audit().ListDecisions(ctx, &tollgatev1.ListDecisionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var callers []string
	for _, r := range page.GetRecords() {
		callers = append(callers, r.GetCaller())
	}
	if len(callers) != 3 || !strings.HasPrefix(callers[0], devcerts.TokenCaller+" (token) from 127.0.0.1:") ||
		!strings.HasPrefix(callers[2], "orchestrator (mtls) from 127.0.0.1:") {
		t.Errorf("recorded callers = %q", callers)
	}
	if !strings.Contains(s.logs.String(), `"reason":"no role permits it"`) || !strings.Contains(s.logs.String(), "bearer token not recognised") {
		t.Errorf("refusals are not logged: %s", s.logs.String())
	}
}

func TestAgentMayAskOnlyForItself(t *testing.T) {
	s := startSecure(t, nil)
	ctx := context.Background()
	agent := s.as(t, "agent_alloc")
	if _, err := agent.Decide(ctx, decideReq(tollgatev1.ActorType_ACTOR_TYPE_AI_AGENT, "agent_alloc")); err != nil {
		t.Fatalf("agent asking for itself: %v", err)
	}
	for name, req := range map[string]*tollgatev1.DecideRequest{
		"claims a human's id":    decideReq(tollgatev1.ActorType_ACTOR_TYPE_HUMAN, "u_buyer1"),
		"claims another agent":   decideReq(tollgatev1.ActorType_ACTOR_TYPE_AI_AGENT, "agent_cs"),
		"claims to be a service": decideReq(tollgatev1.ActorType_ACTOR_TYPE_SERVICE, "agent_alloc"),
	} {
		_, err := agent.Decide(ctx, req)
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s: %v, want PermissionDenied", name, err)
		}
	}
	_, err := agent.DecideBatch(ctx, []*tollgatev1.DecideRequest{decideReq(tollgatev1.ActorType_ACTOR_TYPE_AI_AGENT, "agent_alloc")})
	wantCode(t, err, codes.PermissionDenied)

	// Refused calls changed nothing: only the one allowed decision is in the log, and each refusal is logged.
	page, err := s.as(t, "auditor").Audit().ListDecisions(ctx, &tollgatev1.ListDecisionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.GetRecords()) != 1 {
		t.Errorf("log holds %d records, want only the allowed decision", len(page.GetRecords()))
	}
	for _, want := range []string{"may only ask for itself", "may only ask with actor.type AI_AGENT"} {
		if !strings.Contains(s.logs.String(), want) {
			t.Errorf("log lacks refusal %q", want)
		}
	}
}

func TestRotatedTokenIsRefused(t *testing.T) {
	s := startSecure(t, nil)
	ctx := context.Background()
	old := s.as(t, "", tollgate.WithBearerToken(s.token))
	if _, err := old.Decide(ctx, decideReq(tollgatev1.ActorType_ACTOR_TYPE_HUMAN, "u_buyer1")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(s.certs, "callers.json")
	cfg, err := auth.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range cfg.Callers {
		if cfg.Callers[i].Name == devcerts.TokenCaller {
			cfg.Callers[i].TokenSHA256 = []string{auth.HashToken("rotated-token")}
		}
	}
	writeCallers(t, path, cfg)
	if err := s.app.ReloadCallers(); err != nil {
		t.Fatal(err)
	}
	_, err = old.Decide(ctx, decideReq(tollgatev1.ActorType_ACTOR_TYPE_HUMAN, "u_buyer1"))
	wantCode(t, err, codes.Unauthenticated)
	fresh := s.as(t, "", tollgate.WithBearerToken("rotated-token"))
	if _, err := fresh.Decide(ctx, decideReq(tollgatev1.ActorType_ACTOR_TYPE_HUMAN, "u_buyer1")); err != nil {
		t.Errorf("new token: %v", err)
	}
}

func TestRateLimitAnswersResourceExhaustedWithRetryInfo(t *testing.T) {
	s := startSecure(t, func(c *auth.Config) {
		c.RateLimits = map[string]auth.RateLimit{"audit": {PerSecond: 0.5, Burst: 2}}
	})
	auditor := s.as(t, "auditor")
	ctx := context.Background()
	var last error
	for range 3 {
		_, last = auditor.Audit().ListDecisions(ctx, &tollgatev1.ListDecisionsRequest{})
	}
	wantCode(t, last, codes.ResourceExhausted)
	var retry *errdetails.RetryInfo
	for _, d := range status.Convert(last).Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			retry = r
		}
	}
	if retry == nil || retry.GetRetryDelay().AsDuration() <= 0 {
		t.Errorf("no retry delay in %v", last)
	}
}

func TestHostileInputUnderAuth(t *testing.T) {
	s := startSecure(t, nil)
	c := s.as(t, "orchestrator")
	deep := map[string]any{"x": 1}
	for range 40 {
		deep = map[string]any{"n": deep}
	}
	req := decideReq(tollgatev1.ActorType_ACTOR_TYPE_HUMAN, "u_buyer1")
	req.Resource.Attributes, _ = structpb.NewStruct(deep)
	_, err := c.Decide(context.Background(), req)
	wantCode(t, err, codes.InvalidArgument)
	huge := decideReq(tollgatev1.ActorType_ACTOR_TYPE_HUMAN, "u_buyer1")
	huge.Resource.Attributes.Fields["blob"] = structpb.NewStringValue(strings.Repeat("A", 9<<20))
	_, err = c.Decide(context.Background(), huge)
	wantCode(t, err, codes.ResourceExhausted)
}

func TestTransportRulesAtStart(t *testing.T) {
	base := func() app.Config {
		return app.Config{HTTPAddr: "127.0.0.1:0", DataDir: t.TempDir()}
	}
	ctx := context.Background()
	cfg := base()
	cfg.Addr = "0.0.0.0:0"
	if _, err := app.New(ctx, cfg, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("plaintext open mode on all interfaces: %v, want refused", err)
	}

	certs := t.TempDir()
	if err := devcerts.Write(certs, time.Hour); err != nil {
		t.Fatal(err)
	}
	cfg = base()
	cfg.Addr, cfg.CallersFile = "0.0.0.0:0", filepath.Join(certs, "callers.json")
	if _, err := app.New(ctx, cfg, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "refusing plaintext") {
		t.Errorf("plaintext with callers on all interfaces: %v, want refused", err)
	}

	logs := &syncBuffer{}
	cfg.Insecure = true
	cfg.Checkpoints.SigningKeyFile, _ = testserver.SigningKey(t) // needed off loopback
	a, err := app.New(ctx, cfg, zerolog.New(logs))
	if err != nil {
		t.Fatalf("--insecure: %v", err)
	}
	a.Close()
	if !strings.Contains(logs.String(), "INSECURE") {
		t.Errorf("--insecure start did not warn: %s", logs.String())
	}
}
