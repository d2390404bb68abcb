package lifecycle_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/bundles"
	"github.com/tollgate/tollgate/test/testserver"
)

// server is a running service and clients connected to it.
type server struct {
	app    *app.App
	client *tollgate.Client
	policy tollgatev1.PolicyServiceClient
	stop   func() error
}

// startServer starts the real service for one test (see testserver.Start) with a PolicyService client.
func startServer(t testing.TB, cfg app.Config) *server {
	t.Helper()
	srv := testserver.Start(t, cfg)
	return &server{app: srv.App, client: srv.Client, policy: tollgatev1.NewPolicyServiceClient(srv.Client.Conn()), stop: srv.Stop}
}

func (s *server) status(t testing.TB) *tollgatev1.PolicyServiceStatusResponse {
	t.Helper()
	st, err := s.policy.Status(context.Background(), &tollgatev1.PolicyServiceStatusRequest{})
	if err != nil {
		t.Fatalf("PolicyService.Status: %v", err)
	}
	return st
}

// waitFor polls cond every 50ms until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// devKeys returns the repository's dev-only signing key pair (PEM).
func devKeys(t testing.TB) (private, public string) {
	t.Helper()
	priv, err := os.ReadFile("../../bundles/dev-keys/bundle-signing.key")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile("../../bundles/dev-keys/bundle-signing.pub")
	if err != nil {
		t.Fatal(err)
	}
	return string(priv), string(pub)
}

func verifier(t testing.TB) *bundles.Verifier {
	t.Helper()
	_, pub := devKeys(t)
	v, err := bundles.NewVerifier(pub, "")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// poPolicy is a small PO.SUBMIT policy: a known user at or under params.limit is allowed, above it needs
// a procurement manager, an unknown user is denied. It reads the user through md.get, so decisions
// record facts, and carries Rego tests of its own. label shows in the ALLOW reason message.
func poPolicy(revision, limit, label string) map[string]string {
	return map[string]string{
		".manifest": `{"revision": "` + revision + `", "roots": ["tollgate", "params"]}`,
		"data.json": `{"params": {"limit": "` + limit + `", "label": "` + label + `"}}`,
		"tollgate/main.rego": `package tollgate

user := md.get("user", input.actor.id)

amount := to_number(input.resource.attributes.amount)

decision := {"effect": "DENY", "reasons": [{"code": "UNKNOWN_USER", "message": input.actor.id}], "approvers": []} if user == null

decision := {"effect": "ALLOW", "reasons": [{"code": "PO_WITHIN_BUYER_LIMIT", "message": data.params.label}], "approvers": []} if {
	user != null
	amount <= to_number(data.params.limit)
}

decision := {"effect": "REQUIRE_APPROVAL", "reasons": [{"code": "PO_TIER_2_APPROVAL", "message": "over the buyer limit"}], "approvers": ["PROCUREMENT_MANAGER"]} if {
	user != null
	amount > to_number(data.params.limit)
}
`,
		"tollgate/main_test.rego": `package tollgate.main_test

import data.tollgate

test_small_po_allowed if {
	tollgate.decision.effect == "ALLOW" with input as {"actor": {"id": "u"}, "resource": {"attributes": {"amount": "1.00"}}}
		with md.get as {"status": "ACTIVE"}
}

test_unknown_user_denied if {
	tollgate.decision.effect == "DENY" with input as {"actor": {"id": "u"}, "resource": {"attributes": {"amount": "1.00"}}}
		with md.get as null
}
`,
	}
}

// writeDir writes files (paths relative to dir) into dir, creating it.
func writeDir(t testing.TB, dir string, files map[string]string) string {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// tarball builds a bundle tarball from files, signed with the dev key when sign is set.
func tarball(t testing.TB, files map[string]string, sign bool) []byte {
	t.Helper()
	b, err := bundles.ReadDir(writeDir(t, t.TempDir(), files), nil)
	if err != nil {
		t.Fatal(err)
	}
	if sign {
		priv, _ := devKeys(t)
		if err := bundles.Sign(b, priv, ""); err != nil {
			t.Fatal(err)
		}
	}
	data, err := bundles.Write(b)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
