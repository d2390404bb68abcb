package engine_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate/tollgate/policies"
	"github.com/tollgate/tollgate/server/bundles"
	"github.com/tollgate/tollgate/server/engine"
	"github.com/tollgate/tollgate/server/insights"
)

// TestInsightsConfig: the pack's params.insights compiles into Compiled.Insights; a malformed one
// fails the compile with insights.ErrInvalidConfig.
func TestInsightsConfig(t *testing.T) {
	ctx := context.Background()
	b, err := bundles.ReadFS(policies.FS, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := engine.Compile(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	want := insights.Config{
		ApprovalActions: map[string]string{"PO.SUBMIT": "PO.APPROVE", "INVOICE.POST": "INVOICE.APPROVE"},
		ApprovalSLA:     24 * time.Hour,
	}
	if diff := cmp.Diff(want, c.Insights()); diff != "" {
		t.Errorf("pack insights config (-want +got):\n%s", diff)
	}

	params := b.Data["params"].(map[string]any)
	for name, bad := range map[string]any{
		"sla not a duration":  map[string]any{"approval_sla": "a day"},
		"sla negative":        map[string]any{"approval_sla": "-1h"},
		"empty approval":      map[string]any{"approval_actions": map[string]any{"PO.SUBMIT": ""}},
		"mapping not strings": map[string]any{"approval_actions": map[string]any{"PO.SUBMIT": 1}},
		"not an object":       "PO.SUBMIT",
	} {
		t.Run(name, func(t *testing.T) {
			params["insights"] = bad
			if _, err := engine.Compile(ctx, b); !errors.Is(err, insights.ErrInvalidConfig) {
				t.Errorf("compile: %v, want insights.ErrInvalidConfig", err)
			}
		})
	}
}
