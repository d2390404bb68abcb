package sqlite_test

import (
	"context"
	"testing"

	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
	"github.com/tollgate/tollgate/server/audit/sqlite"
)

func TestConformance(t *testing.T) {
	audittest.Run(t, func(t *testing.T) audit.Store {
		return openStore(t, t.TempDir())
	})
}

func openStore(tb testing.TB, dir string) *sqlite.Store {
	tb.Helper()
	s, err := sqlite.Open(context.Background(), dir)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}
