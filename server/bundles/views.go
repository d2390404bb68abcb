package bundles

import (
	"encoding/json"
	"fmt"

	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/tollgate/tollgate/server/history"
)

// checkViews refuses a bundle whose history views (params.history.views, docs/history.md) are
// malformed: a rule reading a view that cannot be maintained must not decide. A bundle without views
// passes.
func checkViews(b *bundle.Bundle) error {
	params, ok := b.Data["params"]
	if !ok {
		return nil
	}
	data, err := json.Marshal(map[string]any{"params": params})
	if err != nil {
		return fmt.Errorf("read params for history views: %w", err)
	}
	if _, err := history.Parse(data); err != nil {
		return err
	}
	return nil
}
