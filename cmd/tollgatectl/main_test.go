package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// result is what one run of the command produced.
type result struct {
	code           int
	stdout, stderr string
}

// runCmd runs tollgatectl in-process with the given stdin and environment.
func runCmd(t testing.TB, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, strings.NewReader(stdin), &stdout, &stderr, func(k string) string { return env[k] })
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// wantFailure checks the exit status and that stderr is exactly one line.
func wantFailure(t testing.TB, got result, code int, stderr string) {
	t.Helper()
	if got.code != code {
		t.Errorf("exit status = %d, want %d (stderr %q)", got.code, code, got.stderr)
	}
	if diff := cmp.Diff(stderr+"\n", got.stderr); diff != "" {
		t.Errorf("stderr mismatch (-want +got):\n%s", diff)
	}
	if got.stdout != "" {
		t.Errorf("stdout = %q, want nothing", got.stdout)
	}
}

func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const goodRequest = `{"actor": {"id": "u_buyer1", "type": "HUMAN"}, "action": "PO.SUBMIT",
  "resource": {"type": "purchase_order", "id": "PO-1", "attributes": {"amount": "100.00", "currency": "USD"}}}`

func TestHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string // substrings of stdout
	}{
		{[]string{"-h"}, []string{
			"Usage: tollgatectl [global flags] COMMAND", "decide ", "decide-batch ", "masterdata ",
			"--addr HOST:PORT", `(default "127.0.0.1:7070")`, "env TOLLGATE_ADDR", "env TOLLGATE_TOKEN",
			"--timeout", `(default "10s")`, "--ca FILE", "--cert FILE", "--key FILE", "--insecure",
			"Exit status: 0 on success; 1 if the call failed",
		}},
		{[]string{"--help"}, []string{"Usage: tollgatectl [global flags] COMMAND"}},
		{[]string{"help"}, []string{"Usage: tollgatectl COMMAND"}},
		{[]string{"decide", "-h"}, []string{"Usage: tollgatectl decide -f FILE", "-f FILE", "(- for stdin)"}},
		{[]string{"decide-batch", "-h"}, []string{"Usage: tollgatectl decide-batch -f FILE", "JSON array"}},
		{[]string{"masterdata", "-h"}, []string{"Usage: tollgatectl masterdata COMMAND", "apply ", "get ", "status "}},
		{[]string{"masterdata", "apply", "-h"}, []string{
			"Usage: tollgatectl masterdata apply -f FILE [--batch N] [--json]", "--json",
			"--batch N", `(default "1000")`, "Each batch is its own transaction",
			"1 if any event is\nINVALID",
		}},
		{[]string{"masterdata", "get", "--help"}, []string{"Usage: tollgatectl masterdata get KIND KEY", "NotFound"}},
		{[]string{"masterdata", "status", "-h"}, []string{"Usage: tollgatectl masterdata status [--json]"}},
		{[]string{"audit", "-h"}, []string{"Usage: tollgatectl audit COMMAND", "list ", "get ", "verify ", "replay ", "export "}},
		{[]string{"audit", "list", "-h"}, []string{
			"Usage: tollgatectl audit list [--from TIME]", "--effect EFFECT", "--page-token TOKEN", "--all", "--json",
			"newest first", "next page: --page-token TOKEN",
		}},
		{[]string{"audit", "get", "-h"}, []string{"Usage: tollgatectl audit get ID", `"facts"`}},
		{[]string{"audit", "verify", "-h"}, []string{"Usage: tollgatectl audit verify [--chain ID] [--since-checkpoint FILE]", "1 if it does not"}},
		{[]string{"audit", "replay", "-h"}, []string{"Usage: tollgatectl audit replay [--json] ID", "0 whether or not the result is identical"}},
		{[]string{"audit", "checkpoints", "-h"}, []string{"Usage: tollgatectl audit checkpoints [--chain ID]", "newest\nfirst", "Global flags"}},
		{[]string{"audit", "prove", "-h"}, []string{"Usage: tollgatectl audit prove [--wait] ID", "tollgate-receipt/v1", "--wait"}},
		{[]string{"audit", "verify-receipt", "-h"}, []string{
			"Usage: tollgatectl audit verify-receipt --key FILE RECEIPT", "--key FILE", "WITHOUT the server",
			"works offline", "1 with the reason",
		}},
		{[]string{"decide", "-h"}, []string{"--receipt", "want_receipt", "audit prove --wait ID"}},
		{[]string{"audit", "export", "-h"}, []string{"Usage: tollgatectl audit export [--since TIME] [--until TIME] [--chain ID]", "COMMIT ORDER"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			got := runCmd(t, nil, "", tc.args...)
			if got.code != exitOK || got.stderr != "" {
				t.Errorf("exit status %d, stderr %q; want 0 and nothing", got.code, got.stderr)
			}
			for _, want := range tc.want {
				if !strings.Contains(got.stdout, want) {
					t.Errorf("usage lacks %q:\n%s", want, got.stdout)
				}
			}
		})
	}
}

// TestHelpEveryCommand walks the whole command tree, so a command added later
// is covered too: -h, --help and -help print its usage on stdout and exit 0.
func TestHelpEveryCommand(t *testing.T) {
	var walk func(cmd *command, path []string)
	walk = func(cmd *command, path []string) {
		for _, flag := range []string{"-h", "--help", "-help"} {
			args := append(append([]string(nil), path[1:]...), flag)
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				got := runCmd(t, nil, "", args...)
				if got.code != exitOK || got.stderr != "" {
					t.Errorf("exit status %d, stderr %q; want 0 and nothing", got.code, got.stderr)
				}
				if want := "Usage: " + strings.Join(path, " "); !strings.HasPrefix(got.stdout, want) {
					t.Errorf("stdout does not start with %q:\n%s", want, got.stdout)
				}
			})
		}
		for _, sub := range cmd.subs {
			walk(sub, append(append([]string(nil), path...), sub.name))
		}
	}
	walk(rootCommand(), []string{"tollgatectl"})
}

func TestHelpEnvDefaults(t *testing.T) {
	got := runCmd(t, map[string]string{"TOLLGATE_ADDR": "tollgate.internal:7443", "TOLLGATE_TOKEN": "s3cret"}, "", "-h")
	if !strings.Contains(got.stdout, `(default "tollgate.internal:7443")`) {
		t.Errorf("usage does not show TOLLGATE_ADDR as the --addr default:\n%s", got.stdout)
	}
	if strings.Contains(got.stdout, "s3cret") {
		t.Errorf("usage prints the token from TOLLGATE_TOKEN:\n%s", got.stdout)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "tollgatectl: missing command (decide, decide-batch, masterdata, audit, insights, policy, impact) (see 'tollgatectl -h')"},
		{[]string{"frobnicate"}, `tollgatectl: unknown command "frobnicate" (decide, decide-batch, masterdata, audit, insights, policy, impact) (see 'tollgatectl -h')`},
		{[]string{"--nope"}, "tollgatectl: flag provided but not defined: -nope (see 'tollgatectl -h')"},
		{[]string{"--timeout", "soon", "decide"}, `tollgatectl: invalid value "soon" for flag -timeout: parse error (see 'tollgatectl -h')`},
		{[]string{"decide"}, "tollgatectl: decide: -f is required (see 'tollgatectl decide -h')"},
		{[]string{"decide", "-f", "x.json", "extra"}, `tollgatectl: decide: unexpected argument "extra" (flags go before arguments) (see 'tollgatectl decide -h')`},
		{[]string{"decide", "--timeout", "-1s", "-f", "x.json"}, "tollgatectl: decide: --timeout must not be negative (see 'tollgatectl decide -h')"},
		{[]string{"decide-batch", "--json"}, "tollgatectl: decide-batch: flag provided but not defined: -json (see 'tollgatectl decide-batch -h')"},
		{[]string{"masterdata"}, "tollgatectl: masterdata: missing command (apply, publish, get, status) (see 'tollgatectl masterdata -h')"},
		{[]string{"masterdata", "put"}, `tollgatectl: masterdata: unknown command "put" (apply, publish, get, status) (see 'tollgatectl masterdata -h')`},
		{[]string{"masterdata", "apply"}, "tollgatectl: masterdata apply: -f is required (see 'tollgatectl masterdata apply -h')"},
		{[]string{"masterdata", "get", "supplier"}, "tollgatectl: masterdata get: want KIND and KEY, got 1 arguments (see 'tollgatectl masterdata get -h')"},
		{[]string{"masterdata", "status", "now"}, `tollgatectl: masterdata status: unexpected argument "now" (flags go before arguments) (see 'tollgatectl masterdata status -h')`},
		{[]string{"masterdata", "apply", "-f", "x.ndjson", "--batch", "0"}, "tollgatectl: masterdata apply: --batch must be at least 1, got 0 (see 'tollgatectl masterdata apply -h')"},
		{[]string{"audit"}, "tollgatectl: audit: missing command (list, get, verify, replay, export, checkpoints, prove, verify-receipt) (see 'tollgatectl audit -h')"},
		{[]string{"audit", "list", "--from", "yesterday"}, `tollgatectl: audit list: --from: want an RFC 3339 time such as 2026-03-02T09:30:00Z, got "yesterday" (see 'tollgatectl audit list -h')`},
		{[]string{"audit", "list", "--to", "2026-03-02"}, `tollgatectl: audit list: --to: want an RFC 3339 time such as 2026-03-02T09:30:00Z, got "2026-03-02" (see 'tollgatectl audit list -h')`},
		{[]string{"audit", "list", "--from", "2026-03-02T10:00:00Z", "--to", "2026-03-02T09:00:00+00:00"}, "tollgatectl: audit list: --to must be after --from (see 'tollgatectl audit list -h')"},
		{[]string{"audit", "list", "--effect", "MAYBE"}, `tollgatectl: audit list: --effect: want ALLOW, DENY or REQUIRE_APPROVAL, got "MAYBE" (see 'tollgatectl audit list -h')`},
		{[]string{"audit", "list", "--effect", "UNSPECIFIED"}, `tollgatectl: audit list: --effect: want ALLOW, DENY or REQUIRE_APPROVAL, got "UNSPECIFIED" (see 'tollgatectl audit list -h')`},
		{[]string{"audit", "list", "--limit", "1001"}, "tollgatectl: audit list: --limit must be 1 to 1000 (0: the server's default), got 1001 (see 'tollgatectl audit list -h')"},
		{[]string{"audit", "list", "--limit", "-1"}, "tollgatectl: audit list: --limit must be 1 to 1000 (0: the server's default), got -1 (see 'tollgatectl audit list -h')"},
		{[]string{"audit", "list", "everything"}, `tollgatectl: audit list: unexpected argument "everything" (flags go before arguments) (see 'tollgatectl audit list -h')`},
		{[]string{"audit", "get"}, "tollgatectl: audit get: want one decision ID, got 0 arguments (see 'tollgatectl audit get -h')"},
		{[]string{"audit", "get", "a", "b"}, "tollgatectl: audit get: want one decision ID, got 2 arguments (see 'tollgatectl audit get -h')"},
		{[]string{"audit", "get", ""}, "tollgatectl: audit get: decision ID must not be empty (see 'tollgatectl audit get -h')"},
		{[]string{"audit", "replay"}, "tollgatectl: audit replay: want one decision ID, got 0 arguments (see 'tollgatectl audit replay -h')"},
		{[]string{"audit", "verify", "chain-a"}, `tollgatectl: audit verify: unexpected argument "chain-a" (flags go before arguments) (see 'tollgatectl audit verify -h')`},
		{[]string{"audit", "export", "--since", "2026-03-02T10:00:00Z", "--until", "2026-03-02T10:00:00Z"}, "tollgatectl: audit export: --until must be after --since (see 'tollgatectl audit export -h')"},
		{[]string{"audit", "export", "--since", "now"}, `tollgatectl: audit export: --since: want an RFC 3339 time such as 2026-03-02T09:30:00Z, got "now" (see 'tollgatectl audit export -h')`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			wantFailure(t, runCmd(t, nil, "", tc.args...), exitUsage, tc.want)
		})
	}
}

// TestInputErrors covers bad input files: they fail before any connection,
// so no server is needed.
func TestInputErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.json")
	badEnum := writeFile(t, "bad.json", `{"actor": {"id": "u1", "type": "ROBOT"}, "action": "PO.SUBMIT"}`)
	events := writeFile(t, "events.ndjson", `{"event_id": "e1", "kind": "site", "key": "DC1", "version": 1, "op": "UPSERT", "record": {}}
{"event_id": "e2", "kind": "site", "key": "DC2", "version": 1, "op": "UPSERTT", "record": {}}
`)
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"missing file", "", []string{"decide", "-f", missing},
			"tollgatectl: decide: read input: open " + missing + ": no such file or directory"},
		{"bad enum in file", "", []string{"decide", "-f", badEnum},
			"tollgatectl: decide: " + badEnum + `: actor.type: invalid value "ROBOT" (want HUMAN, SERVICE or AI_AGENT)`},
		{"unknown field on stdin", `{"action": "PO.SUBMIT", "actr": {}}`, []string{"decide", "-f", "-"},
			"tollgatectl: decide: stdin: actr: unknown field"},
		{"syntax error on stdin", "{\n\"action\": \"PO.SUBMIT\"\n\"actor\": {}}", []string{"decide", "-f", "-"},
			"tollgatectl: decide: stdin: invalid JSON at line 3, column 1: invalid character '\"' after object key:value pair"},
		{"two requests on stdin", goodRequest + "\n" + goodRequest, []string{"decide", "-f", "-"},
			"tollgatectl: decide: stdin: invalid JSON at line 3, column 1: unexpected data after the JSON value"},
		{"junk after the request", goodRequest + "  x\n", []string{"decide", "-f", "-"},
			"tollgatectl: decide: stdin: invalid JSON at line 2, column 113: unexpected data after the JSON value"},
		{"junk after an event", `{"event_id": "e1"} x`, []string{"masterdata", "apply", "-f", "-"},
			"tollgatectl: masterdata apply: stdin: line 1: invalid JSON at column 20: unexpected data after the JSON value"},
		{"batch not an array", goodRequest, []string{"decide-batch", "-f", "-"},
			"tollgatectl: decide-batch: stdin: want a JSON array of requests, got an object"},
		{"batch element", `[` + goodRequest + `, {"ai": {"mode": "AUTO"}}]`, []string{"decide-batch", "-f", "-"},
			`tollgatectl: decide-batch: stdin: [1].ai.mode: invalid value "AUTO" (want RECOMMEND or EXECUTE)`},
		{"empty batch", `[]`, []string{"decide-batch", "-f", "-"},
			"tollgatectl: decide-batch: stdin: no requests in the array"},
		{"bad event line", "", []string{"masterdata", "apply", "-f", events},
			"tollgatectl: masterdata apply: " + events + `: line 2: op: invalid value "UPSERTT" (want UPSERT or DELETE)`},
		{"no events", "\n\n", []string{"masterdata", "apply", "-f", "-"},
			"tollgatectl: masterdata apply: stdin: no change events"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantFailure(t, runCmd(t, nil, tc.stdin, tc.args...), exitError, tc.want)
		})
	}
}

// TestTransportRefusals checks that the CLI never sends plaintext or a token
// in clear text to a non-loopback address; Dial refuses before connecting.
func TestTransportRefusals(t *testing.T) {
	req := writeFile(t, "req.json", goodRequest)
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"remote without TLS", nil, []string{"--addr", "10.1.2.3:7070", "decide", "-f", req},
			"tollgatectl: decide: 10.1.2.3:7070 is not a loopback address: use TLS (--ca, --cert, --key) or --insecure"},
		{"global flag after the command", nil, []string{"decide", "--addr", "10.1.2.3:7070", "-f", req},
			"tollgatectl: decide: 10.1.2.3:7070 is not a loopback address: use TLS (--ca, --cert, --key) or --insecure"},
		{"address from the environment", map[string]string{"TOLLGATE_ADDR": "tollgate.internal:7070"}, []string{"masterdata", "status"},
			"tollgatectl: masterdata status: tollgate.internal:7070 is not a loopback address: use TLS (--ca, --cert, --key) or --insecure"},
		{"flag overrides the environment", map[string]string{"TOLLGATE_ADDR": "127.0.0.1:7070"}, []string{"--addr", "10.9.9.9:7070", "masterdata", "get", "site", "DC1"},
			"tollgatectl: masterdata get: 10.9.9.9:7070 is not a loopback address: use TLS (--ca, --cert, --key) or --insecure"},
		{"token over insecure", nil, []string{"--addr", "10.1.2.3:7070", "--insecure", "--token", "s3cret", "decide", "-f", req},
			"tollgatectl: decide: refusing to send --token in plaintext to 10.1.2.3:7070: use TLS (--ca)"},
		{"token from the environment", map[string]string{"TOLLGATE_TOKEN": "s3cret"}, []string{"--addr", "10.1.2.3:7070", "--insecure", "masterdata", "status"},
			"tollgatectl: masterdata status: refusing to send --token in plaintext to 10.1.2.3:7070: use TLS (--ca)"},
		{"cert without key", nil, []string{"--cert", "client.pem", "decide", "-f", req},
			"tollgatectl: decide: dial 127.0.0.1:7070: client certificate and key must be given together"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantFailure(t, runCmd(t, tc.env, "", tc.args...), exitError, tc.want)
		})
	}
}

// TestUnreachableServer dials a loopback port nothing listens on and gets a
// one-line Unavailable.
func TestUnreachableServer(t *testing.T) {
	got := runCmd(t, nil, goodRequest, "--addr", "127.0.0.1:1", "--timeout", "5s", "decide", "-f", "-")
	if got.code != exitError {
		t.Errorf("exit status = %d, want %d", got.code, exitError)
	}
	if !strings.HasPrefix(got.stderr, "tollgatectl: decide: Unavailable: ") || strings.Count(got.stderr, "\n") != 1 {
		t.Errorf("stderr = %q, want one line starting with the Unavailable code", got.stderr)
	}
}

func TestDescribe(t *testing.T) {
	badRequest := func(msg string, violations ...string) error {
		t.Helper()
		st := status.New(codes.InvalidArgument, msg)
		br := &errdetails.BadRequest{}
		for i := 0; i < len(violations); i += 2 {
			br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
				Field: violations[i], Description: violations[i+1]})
		}
		st, err := st.WithDetails(br)
		if err != nil {
			t.Fatal(err)
		}
		return st.Err()
	}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"status", status.Error(codes.InvalidArgument, "actor.type: must be HUMAN, SERVICE or AI_AGENT"),
			"InvalidArgument: actor.type: must be HUMAN, SERVICE or AI_AGENT"},
		{"violation already in the message", badRequest("action: is required", "action", "is required"),
			"InvalidArgument: action: is required"},
		{"violations added", badRequest("2 fields are invalid", "action", "is required", "actor.id", "is required"),
			"InvalidArgument: 2 fields are invalid; action: is required; actor.id: is required"},
		{"multi-line message", status.Error(codes.Internal, "boom\n  at line 2"), "Internal: boom at line 2"},
		{"not found", status.Error(codes.NotFound, `supplier "NOPE": not found`), `NotFound: supplier "NOPE": not found`},
		{"plain error", errors.New("read input: open x: no such file or directory"), "read input: open x: no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := describe(tc.err); got != tc.want {
				t.Errorf("describe() = %q, want %q", got, tc.want)
			}
		})
	}
}
