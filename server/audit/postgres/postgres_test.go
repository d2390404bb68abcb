package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
	"github.com/tollgate/tollgate/server/audit/postgres"
	"github.com/tollgate/tollgate/server/audit/postgres/pgtest"
)

func TestConformance(t *testing.T) {
	audittest.Run(t, func(t *testing.T) audit.Store {
		return openStore(t, pgtest.NewDatabase(t))
	})
}

func openStore(tb testing.TB, url string) *postgres.Store {
	tb.Helper()
	s, err := postgres.Open(context.Background(), postgres.Config{URL: url})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestDurable(t *testing.T) {
	audittest.RunDurable(t, func(t *testing.T) audittest.Storage {
		return &storage{url: pgtest.NewDatabase(t)}
	})
}

// storage is a test database; Rewrite and Delete go around the store with SQL.
type storage struct{ url string }

func (s *storage) Open(t *testing.T) audit.Store { return openStore(t, s.url) }

func (s *storage) exec(t *testing.T, fn func(ctx context.Context, conn *pgx.Conn) error) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := fn(ctx, conn); err != nil {
		t.Fatal(err)
	}
}

func (s *storage) Rewrite(t *testing.T, decisionID string, edit func(*audittest.Row)) {
	s.exec(t, func(ctx context.Context, conn *pgx.Conn) error {
		var r audittest.Row
		if err := conn.QueryRow(ctx, "SELECT effect, hash, body FROM records WHERE decision_id = $1", decisionID).Scan(&r.Effect, &r.Hash, &r.Body); err != nil {
			return err
		}
		edit(&r)
		_, err := conn.Exec(ctx, "UPDATE records SET effect = $2, hash = $3, body = $4 WHERE decision_id = $1", decisionID, r.Effect, r.Hash, r.Body)
		return err
	})
}

func (s *storage) Delete(t *testing.T, decisionID string) {
	s.exec(t, func(ctx context.Context, conn *pgx.Conn) error {
		if _, err := conn.Exec(ctx, "DELETE FROM record_reasons WHERE decision_id = $1", decisionID); err != nil {
			return err
		}
		_, err := conn.Exec(ctx, "DELETE FROM records WHERE decision_id = $1", decisionID)
		return err
	})
}
