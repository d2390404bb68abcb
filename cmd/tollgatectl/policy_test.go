package main

import (
	"strings"
	"testing"

	"github.com/tollgate/tollgate/policies"
	"github.com/tollgate/tollgate/server/bundles"
	"github.com/tollgate/tollgate/server/engine"
)

// packTarball is the embedded pack as a bundle tarball, with revision and, if limit is not "", the TH-1
// buyer limit changed.
func packTarball(t testing.TB, revision, limit string) string {
	t.Helper()
	b, err := bundles.ReadFS(policies.FS, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Manifest.Revision = revision
	if limit != "" {
		tiers := b.Data["params"].(map[string]any)["th"].(map[string]any)["po"].(map[string]any)["tiers"].([]any)
		tiers[0].(map[string]any)["max"] = limit
	}
	data, err := engine.Serialize(b)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, revision+".tar.gz", string(data))
}

func TestPolicyAndImpactAgainstServer(t *testing.T) {
	addr, _ := startServer(t)
	// The two the raised limit changes come first to their supplier, so no earlier PO is summed with them
	// (TH-7); the later ones are split-purchase approvals either way.
	for _, po := range [][2]string{{"S1", "5500.00"}, {"S3", "6000.00"}, {"S1", "4000.00"}, {"S3", "8000.00"}} {
		decide(t, addr, poRequestTo("u_buyer1", po[0], po[1], "wf-impact"))
	}

	raised := packTarball(t, "raised", "6000.00")
	out := ctlOK(t, addr, "", "--timeout", "5m", "impact", "--bundle", raised, "--last", "100")
	for _, want := range []string{
		"over the last 4 decisions: 2 would change, 0 not comparable",
		"PO_TIER_2_APPROVAL   PO_WITHIN_BUYER_LIMIT  2",
		"REQUIRE_APPROVAL -> ALLOW (PO_TIER_2_APPROVAL -> PO_WITHIN_BUYER_LIMIT)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("impact output lacks %q:\n%s", want, out)
		}
	}

	// Activation compiles and runs the pack's Rego tests, slow under -race: hence the long timeouts.
	// The raised limit contradicts the pack's own TH-1 test, so the gate refuses it.
	got := ctl(t, addr, "", "--timeout", "5m", "policy", "activate", raised)
	if got.code != exitError || !strings.Contains(got.stderr, "FailedPrecondition") || !strings.Contains(got.stderr, "test_po_tiers_at_and_over_limits: FAIL") {
		t.Errorf("activate raised: exit %d, stderr %q; want 1 and FailedPrecondition naming the failing test", got.code, got.stderr)
	}
	if out := ctlOK(t, addr, "", "--timeout", "5m", "policy", "activate", packTarball(t, "renamed", "")); !strings.HasPrefix(out, "ACTIVATED renamed@") {
		t.Errorf("activate renamed pack: %q", out)
	}
	status := ctlOK(t, addr, "", "policy", "status")
	for _, want := range []string{"active: renamed@", "REFUSED_TESTS", "raised@", "ACTIVATED", "embedded"} {
		if !strings.Contains(status, want) {
			t.Errorf("policy status lacks %q:\n%s", want, status)
		}
	}
	wantFailure(t, ctl(t, addr, "", "impact", "--last", "5"), exitUsage, "tollgatectl: impact: --bundle is required (see 'tollgatectl impact -h')")
}
