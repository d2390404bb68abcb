package perf_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/server/audit/postgres/pgtest"
	"github.com/tollgate/tollgate/test/perf"
)

// TestPostgresDB makes a database on the test server as perfrun does, writes to it through its URL and
// drops it.
func TestPostgresDB(t *testing.T) {
	server := pgtest.ServerURL(t)
	ctx := context.Background()
	// pgtest skips (or fails under TOLLGATE_REQUIRE_POSTGRES=1) when the server is unreachable.
	pgtest.NewDatabase(t)

	db, err := perf.NewPostgresDB(ctx, server)
	if err != nil {
		t.Fatal(err)
	}
	dropped := false
	t.Cleanup(func() {
		if !dropped {
			_ = db.Drop(ctx)
		}
	})
	if !strings.HasPrefix(db.Name(), "tollgate_perf_") || !strings.Contains(db.URL, "/"+db.Name()) {
		t.Errorf("database %q at %q: want a tollgate_perf_ database named in its URL", db.Name(), db.URL)
	}
	if db.Version == "" || db.SynchronousCommit == "" {
		t.Errorf("server version %q, synchronous_commit %q: want both", db.Version, db.SynchronousCommit)
	}
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE t (x int)"); err != nil {
		t.Fatal(err)
	}
	// The backend serving conn is seen, and the CPU it spends on a query is counted.
	before, err := db.BackendCPU(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != 1 {
		t.Errorf("BackendCPU before: got %d backends, want the 1 of our connection: %v", len(before), before)
	}
	if _, err := conn.Exec(ctx, "SELECT count(*) FROM generate_series(1, 5000000)"); err != nil {
		t.Fatal(err)
	}
	after, err := db.BackendCPU(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := perf.CPUSince(before, after); d < 20*time.Millisecond {
		t.Errorf("CPU of a backend counting to 5,000,000: got %v, want some", d)
	}
	// Drop closes the connections still open on the database, as a killed server leaves them.
	if err := db.Drop(ctx); err != nil {
		t.Fatal(err)
	}
	dropped = true
	_ = conn.Close(ctx)
	admin, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var n int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", db.Name()).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s still exists after Drop", db.Name())
	}
}

func TestPostgresDBUnreachable(t *testing.T) {
	for _, u := range []string{
		"mysql://root@127.0.0.1/x",
		// A port nothing listens on: perfrun must fail, naming the server, not leave PostgreSQL out.
		"postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2",
	} {
		_, err := perf.NewPostgresDB(context.Background(), u)
		if err == nil {
			t.Errorf("NewPostgresDB(%q): no error", u)
			continue
		}
		if !strings.Contains(err.Error(), "127.0.0.1") || !strings.Contains(err.Error(), "postgres") {
			t.Errorf("NewPostgresDB(%q): error %q does not name the server", u, err)
		}
	}
}
