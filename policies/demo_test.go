package policies_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate/tollgate/bundles/demo"
)

// TestDemoRequests runs every request of the README tour
// (bundles/demo/requests/*.json) through the real decision service over the
// embedded demo master data, today and at points through the next year, and
// checks the effect and primary reason recorded in expected.json. It fails
// when a request has no expectation or an expectation no request, so the tour
// cannot drift from the data or the pack.
func TestDemoRequests(t *testing.T) {
	dir := filepath.Join(packDir(t), "..", "bundles", "demo", "requests")
	raw, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatalf("read expectations: %v", err)
	}
	var expected map[string]struct {
		Effect  string `json:"effect"`
		Primary string `json:"primary"`
	}
	if err := json.Unmarshal(raw, &expected); err != nil {
		t.Fatalf("decode expectations: %v", err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatalf("list requests: %v", err)
	}
	var names []string
	for _, f := range files {
		if name := filepath.Base(f); name != "expected.json" {
			names = append(names, name)
		}
	}
	var want []string
	for name := range expected {
		want = append(want, name)
	}
	sort.Strings(want)
	if diff := cmp.Diff(want, names); diff != "" {
		t.Fatalf("requests and expected.json disagree (-expected +files):\n%s", diff)
	}

	compiled := compilePack(t)
	store := newStore(t, demo.FS, nil)
	ctx := emptyHistory(t)
	today := time.Now().UTC()
	for _, months := range []int{0, 3, 6, 9, 12} {
		at := today.AddDate(0, months, 0)
		srv := newServer(t, compiled, store, at)
		for _, name := range names {
			t.Run(fmt.Sprintf("%s/+%dmonths", strings.TrimSuffix(name, ".json"), months), func(t *testing.T) {
				req, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					t.Fatalf("read request: %v", err)
				}
				got, codes := decide(t, ctx, srv, req)
				exp := expected[name]
				if got.Effect != exp.Effect || got.Primary != exp.Primary {
					t.Errorf("%s at %s: got %s %s, want %s %s (all reasons %v)", name, at.Format(time.DateOnly),
						got.Effect, got.Primary, exp.Effect, exp.Primary, codes)
				}
			})
		}
	}
}
