package lifecycle_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/bundles"
	"github.com/tollgate/tollgate/test/testserver"
)

// packCopy copies the default policy pack (policies/) into a new directory without its Rego tests,
// applying edit to its data.json, and returns the directory.
func packCopy(t testing.TB, edit func(data map[string]any)) string {
	t.Helper()
	src, dst := "../../policies", t.TempDir()
	err := filepath.WalkDir(src, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if e.IsDir() {
			if rel == "testdata" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o750)
		}
		if !(strings.HasSuffix(rel, ".rego") || rel == "data.json" || rel == ".manifest") || bundles.TestFile(rel) {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if rel == "data.json" && edit != nil {
			var doc map[string]any
			if err := json.Unmarshal(data, &doc); err != nil {
				return err
			}
			edit(doc)
			if data, err = json.Marshal(doc); err != nil {
				return err
			}
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o600)
	})
	if err != nil {
		t.Fatalf("copy pack: %v", err)
	}
	return dst
}

// withoutHistory drops the pack's history views, which switches its history-aware rules off: this
// test's 159 POs are one buyer's to one supplier and site, which TH-7 would sum as split purchases.
func withoutHistory(doc map[string]any) {
	delete(doc["params"].(map[string]any)["history"].(map[string]any), "views")
}

// buyerLimit sets TH-1's first tier (the buyer limit) to max, in the pack without history views.
func buyerLimit(max string) func(map[string]any) {
	return func(doc map[string]any) {
		withoutHistory(doc)
		tiers := doc["params"].(map[string]any)["th"].(map[string]any)["po"].(map[string]any)["tiers"].([]any)
		tiers[0].(map[string]any)["max"] = max
	}
}

// parseCents reads a two-decimal amount as integer cents.
func parseCents(t testing.TB, amount string) int {
	t.Helper()
	whole, frac, ok := strings.Cut(amount, ".")
	w, err1 := strconv.Atoi(whole)
	f, err2 := strconv.Atoi(frac)
	if !ok || len(frac) != 2 || err1 != nil || err2 != nil {
		t.Fatalf("amount %q is not d.dd", amount)
	}
	return w*100 + f
}

func dirTarball(t testing.TB, dir string) []byte {
	t.Helper()
	b, err := bundles.ReadDir(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := bundles.Write(b)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestImpactOfBuyerLimit raises the TH-1 buyer limit from 5000.00 to 6000.00 in a candidate: impact
// analysis reports as changed exactly the PO submissions whose amounts fall in (5000.00, 6000.00], all
// from PO_TIER_2_APPROVAL to PO_WITHIN_BUYER_LIMIT, and activates nothing.
func TestImpactOfBuyerLimit(t *testing.T) {
	// A generous evaluation bound: a 250ms timeout under -race on a busy machine would record
	// EVALUATION_TIMEOUT denials instead of the tiers this test is about.
	srv := startServer(t, app.Config{BundleDir: packCopy(t, withoutHistory), EvalTimeout: time.Minute})
	ctx := context.Background()
	running := srv.status(t).GetActiveRevision()

	amounts := []string{"4999.99", "5000.00", "5000.01", "5500.00", "5999.99", "6000.00", "6000.01", "100.00", "25000.00"}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 150 {
		cents := 400000 + rng.IntN(300000) // 4000.00 .. 6999.99
		amounts = append(amounts, fmt.Sprintf("%d.%02d", cents/100, cents%100))
	}
	inRange := map[string]bool{} // decision ids whose amount is in (5000.00, 6000.00]
	var total int
	for _, amount := range amounts {
		resp, err := srv.client.Decide(ctx, testserver.POSubmit("u_buyer1", amount))
		if err != nil {
			t.Fatalf("decide %s: %v", amount, err)
		}
		total++
		if c := parseCents(t, amount); c > 500000 && c <= 600000 {
			inRange[resp.GetDecisionId()] = true
			if resp.GetReasons()[0].GetCode() != "PO_TIER_2_APPROVAL" {
				t.Fatalf("PO of %s: %v, want PO_TIER_2_APPROVAL under the running pack", amount, resp.GetReasons())
			}
		}
	}
	for _, actor := range []string{"u_nobody", "u_nobody2"} { // denied before any threshold
		if _, err := srv.client.Decide(ctx, testserver.POSubmit(actor, "5500.00")); err != nil {
			t.Fatal(err)
		}
		total++
	}

	candidate := dirTarball(t, packCopy(t, buyerLimit("6000.00")))
	resp, err := srv.client.Audit().ImpactAnalysis(ctx, &tollgatev1.ImpactAnalysisRequest{Bundle: candidate, Last: 10000})
	if err != nil {
		t.Fatalf("ImpactAnalysis: %v", err)
	}
	n := uint64(len(inRange))
	if resp.GetTotal() != uint64(total) || resp.GetChanged() != n || resp.GetNotComparable() != 0 {
		t.Fatalf("total %d changed %d not comparable %d; want %d, %d, 0", resp.GetTotal(), resp.GetChanged(), resp.GetNotComparable(), total, n)
	}
	wantCodes := []*tollgatev1.ReasonCodeChange{{From: "PO_TIER_2_APPROVAL", To: "PO_WITHIN_BUYER_LIMIT", Count: n}}
	if diff := cmp.Diff(wantCodes, resp.GetChangedReasonCodes(), protocmp.Transform()); diff != "" {
		t.Errorf("changed reason codes (-want +got):\n%s", diff)
	}
	var toAllow uint64
	for _, m := range resp.GetMatrix() {
		if m.GetFrom() != m.GetTo() {
			if m.GetFrom() != tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL || m.GetTo() != tollgatev1.Effect_EFFECT_ALLOW {
				t.Errorf("unexpected effect change %v", m)
			}
			toAllow += m.GetCount()
		}
	}
	if toAllow != n {
		t.Errorf("REQUIRE_APPROVAL -> ALLOW %d, want %d", toAllow, n)
	}
	if len(resp.GetExamples()) == 0 {
		t.Fatal("no examples")
	}
	for _, ex := range resp.GetExamples() {
		if !inRange[ex.GetDecisionId()] || ex.GetChange() != "REQUIRE_APPROVAL -> ALLOW (PO_TIER_2_APPROVAL -> PO_WITHIN_BUYER_LIMIT)" {
			t.Errorf("example %s %q is not a PO in (5000.00, 6000.00] moving to ALLOW", ex.GetDecisionId(), ex.GetChange())
		}
	}
	if st := srv.status(t); st.GetActiveRevision() != running {
		t.Errorf("impact analysis changed the active revision to %q", st.GetActiveRevision())
	}
	t.Logf("%d decisions, %d in (5000.00, 6000.00] changed, candidate %s", total, n, resp.GetCandidateRevision())
}

// TestImpactNotComparable analyses a candidate that reads master data the recorded decisions never
// read: those records are not comparable, not changes.
func TestImpactNotComparable(t *testing.T) {
	srv := startServer(t, app.Config{BundleDir: writeDir(t, t.TempDir(), poPolicy("v1", "5000.00", "v1"))})
	ctx := context.Background()
	for _, amount := range []string{"10.00", "20.00", "9000.00"} {
		if _, err := srv.client.Decide(ctx, testserver.POSubmit("u_buyer1", amount)); err != nil {
			t.Fatal(err)
		}
	}
	readsSite := poPolicy("v2", "5000.00", "v1")
	readsSite["tollgate/main.rego"] = strings.Replace(readsSite["tollgate/main.rego"],
		"user := md.get(\"user\", input.actor.id)",
		"user := md.get(\"user\", input.actor.id) if md.get(\"site\", input.resource.attributes.site_id) != null", 1)
	resp, err := srv.client.Audit().ImpactAnalysis(ctx, &tollgatev1.ImpactAnalysisRequest{Bundle: tarball(t, readsSite, false), Last: 100})
	if err != nil {
		t.Fatalf("ImpactAnalysis: %v", err)
	}
	if resp.GetTotal() != 3 || resp.GetNotComparable() != 3 || resp.GetChanged() != 0 || len(resp.GetMatrix()) != 0 {
		t.Fatalf("total %d not comparable %d changed %d matrix %v; want 3, 3, 0, none", resp.GetTotal(), resp.GetNotComparable(), resp.GetChanged(), resp.GetMatrix())
	}
	for _, ex := range resp.GetExamples() {
		if ex.GetChange() != "not comparable" || ex.GetCandidate().GetReasons()[0].GetCode() != "POLICY_ERROR" {
			t.Errorf("example %v, want not comparable with POLICY_ERROR", ex)
		}
	}
}
