package policies_test

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate/tollgate/policies"
)

// TestPackDeclaresTheHistoryViews checks that the embedded pack declares exactly the views of
// server/history's fixture (testdata/pack_views.json), which the history package, the decision path and
// the end-to-end tests are written against: the §6 windows, counted effects, keys and values. A view
// renamed or a window changed in one place only fails here.
func TestPackDeclaresTheHistoryViews(t *testing.T) {
	pack, err := fs.ReadFile(policies.FS, "data.json")
	if err != nil {
		t.Fatalf("read pack data: %v", err)
	}
	fixture, err := os.ReadFile(filepath.Join(packDir(t), "..", "server", "history", "testdata", "pack_views.json"))
	if err != nil {
		t.Fatalf("read history fixture: %v", err)
	}
	if diff := cmp.Diff(declaredViews(t, fixture), declaredViews(t, pack)); diff != "" {
		t.Errorf("params.history.views (-server/history fixture +pack):\n%s", diff)
	}
	if got := packViews(t).Names(); !cmp.Equal(got, []string{"ai_daily_value", "credit_memo_velocity", "invoice_posted", "po_split"}) {
		t.Errorf("parsed views %v", got)
	}
}

// declaredViews is params.history.views of a data document, decoded.
func declaredViews(tb testing.TB, data []byte) any {
	tb.Helper()
	var doc struct {
		Params struct {
			History struct {
				Views any `json:"views"`
			} `json:"history"`
		} `json:"params"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		tb.Fatalf("decode data: %v", err)
	}
	if doc.Params.History.Views == nil {
		tb.Fatal("no params.history.views")
	}
	return doc.Params.History.Views
}
