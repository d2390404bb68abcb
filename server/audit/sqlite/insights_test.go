package sqlite_test

import (
	"context"
	"testing"

	"github.com/tollgate/tollgate/server/audit/sqlite"
	"github.com/tollgate/tollgate/server/insights/insightstest"
)

func TestInsightsConformance(t *testing.T) {
	insightstest.Run(t, func(t *testing.T) insightstest.Stores {
		s, err := sqlite.Open(context.Background(), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return insightstest.Stores{Audit: s, Insights: s.Insights()}
	})
}
