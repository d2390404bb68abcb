package postgres_test

import (
	"testing"

	"github.com/tollgate/tollgate/server/audit/postgres/pgtest"
	"github.com/tollgate/tollgate/server/insights/insightstest"
)

func TestInsightsConformance(t *testing.T) {
	insightstest.Run(t, func(t *testing.T) insightstest.Stores {
		s := openStore(t, pgtest.NewDatabase(t))
		return insightstest.Stores{Audit: s, Insights: s.Insights()}
	})
}
