package authzen_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/authzen"
	"github.com/tollgate/tollgate/test/testserver"
)

// todoBundle is the Todo scenario's bundle, from this package's directory.
const todoBundle = "../../bundles/authzen-todo"

// start starts the service for a test. These tests check what is decided, not how fast: the engine's
// evaluation bound is raised from 250ms so that a machine slowed by -race and parallel packages does not
// turn an answer into EVALUATION_TIMEOUT.
func start(t testing.TB, cfg app.Config) *testserver.Server {
	t.Helper()
	if cfg.EvalTimeout == 0 {
		cfg.EvalTimeout = 10 * time.Second
	}
	return testserver.Start(t, cfg)
}

// todoCase is one case of testdata/todo.json: a user asking for one action on one resource, and the
// scenario's answer.
type todoCase struct {
	User     string           `json:"user"`
	Subject  authzen.Subject  `json:"subject"`
	Action   authzen.Action   `json:"action"`
	Resource authzen.Resource `json:"resource"`
	Decision bool             `json:"decision"`
	Why      string           `json:"why"`
}

func (c todoCase) evaluation() authzen.Evaluation {
	s, a, r := c.Subject, c.Action, c.Resource
	return authzen.Evaluation{Subject: &s, Action: &a, Resource: &r}
}

func (c todoCase) String() string { return c.User + " " + c.Action.Name + " (" + c.Why + ")" }

func loadTodoCases(t testing.TB) []todoCase {
	t.Helper()
	data, err := os.ReadFile("testdata/todo.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []todoCase
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	return cases
}

// client speaks HTTP to one running service's AuthZEN endpoints.
type client struct {
	base  string
	token string // sent as Authorization: Bearer when set
	http  *http.Client
}

func newClient(srv *testserver.Server, token string) *client {
	return &client{base: "http://" + srv.App.HTTPAddr().String(), token: token, http: &http.Client{Timeout: 30 * time.Second}}
}

// reply is an HTTP answer, its body read.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// post sends body (a string as it is, anything else as JSON) to path as application/json, with the
// extra headers given as name, value pairs.
func (c *client) post(t testing.TB, path string, body any, headers ...string) reply {
	t.Helper()
	data, ok := body.(string)
	if !ok {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		data = string(b)
	}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, c.base+path, bytes.NewReader([]byte(data)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return c.do(t, req)
}

func (c *client) do(t testing.TB, req *http.Request) reply {
	t.Helper()
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: body}
}

// evaluate posts one Access Evaluation and decodes its 200 answer.
func (c *client) evaluate(t testing.TB, e any) authzen.Decision {
	t.Helper()
	r := c.post(t, authzen.EvaluationPath, e)
	var d authzen.Decision
	r.decode(t, http.StatusOK, &d)
	return d
}

// evaluations posts an Access Evaluations request and decodes its 200 answer.
func (c *client) evaluations(t testing.TB, req any) []authzen.Decision {
	t.Helper()
	r := c.post(t, authzen.EvaluationsPath, req)
	var out authzen.EvaluationsResponse
	r.decode(t, http.StatusOK, &out)
	return out.Evaluations
}

func (r reply) decode(t testing.TB, wantStatus int, v any) {
	t.Helper()
	if r.status != wantStatus {
		t.Fatalf("status %d, want %d: %s", r.status, wantStatus, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}
