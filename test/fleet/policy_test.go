package fleet_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/policies"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/audit/postgres/pgtest"
	"github.com/tollgate/tollgate/server/bundles"
	"github.com/tollgate/tollgate/test/testserver"
)

// devKey reads one of the repository's dev-only bundle signing keys.
func devKey(t *testing.T, name string) string {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join("..", "..", "bundles", "dev-keys", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(pem)
}

// packBundle is the embedded policy pack under another manifest revision, signed with the dev key, as
// an operator's release pipeline would publish it.
func packBundle(t *testing.T, revision string) []byte {
	t.Helper()
	b, err := bundles.ReadFS(policies.FS, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Manifest.Revision = revision
	if err := bundles.Sign(b, devKey(t, "bundle-signing.key"), ""); err != nil {
		t.Fatal(err)
	}
	data, err := bundles.Write(b)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestPolicyRollout rolls a new bundle out to three replicas through the bundle server they all poll,
// and back: every replica's policy status and every replica's decisions name the new revision once it
// is out, and a rollback is one more publish.
func TestPolicyRollout(t *testing.T) {
	ctx := context.Background()
	url, key := pgtest.NewDatabase(t), payloadKeyFile(t)
	verifier, err := bundles.NewVerifier(devKey(t, "bundle-signing.pub"), "")
	if err != nil {
		t.Fatal(err)
	}
	bs := testserver.NewBundleServer(t)
	bs.Serve(packBundle(t, "fleet-1"))
	var fleet []*testserver.Server
	var policy []tollgatev1.PolicyServiceClient
	for _, id := range []string{"replica-a", "replica-b", "replica-c"} {
		s := testserver.Start(t, app.Config{AuditStore: url, ReplicaID: id, PayloadKeyFile: key, Bundles: bundles.Config{
			URL: bs.URL + "/tollgate.tar.gz", PollInterval: 100 * time.Millisecond, Verifier: verifier,
		}})
		fleet = append(fleet, s)
		policy = append(policy, tollgatev1.NewPolicyServiceClient(s.Client.Conn()))
	}
	// converged waits until every replica's policy status and decisions name revision.
	converged := func(revision string) {
		t.Helper()
		for i, s := range fleet {
			// The gate runs the pack's Rego tests at each activation: seconds under -race on a loaded machine.
			deadline := time.Now().Add(90 * time.Second)
			for {
				st, err := policy[i].Status(ctx, &tollgatev1.PolicyServiceStatusRequest{})
				if err != nil {
					t.Fatal(err)
				}
				if strings.HasPrefix(st.GetActiveRevision(), revision+"@") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s still runs %q, want %s@…", s.App.AuditChain(), st.GetActiveRevision(), revision)
				}
				time.Sleep(50 * time.Millisecond)
			}
			resp, err := s.Client.Decide(ctx, testserver.POSubmit("u_buyer1", "900.00"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(resp.GetBundleRevision(), revision+"@") {
				t.Errorf("%s decided on %q, want %s@…", s.App.AuditChain(), resp.GetBundleRevision(), revision)
			}
		}
	}
	converged("fleet-1")
	bs.Serve(packBundle(t, "fleet-2"))
	converged("fleet-2")
	bs.Serve(packBundle(t, "fleet-1")) // the rollback: publish the previous bundle again
	converged("fleet-1")
}
