package perf

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultPostgresURL is the machine's own PostgreSQL, the server perfrun makes its database on unless told
// otherwise (-postgres).
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// PostgresDB is a database made for one perfrun on a PostgreSQL server. Drop it when the run ends.
type PostgresDB struct {
	// URL is the database's own URL, for `tollgate serve --audit-store`.
	URL string
	// Version and SynchronousCommit are the server's server_version and synchronous_commit, for the
	// report: the figures mean sync durability only when synchronous_commit is on.
	Version, SynchronousCommit string
	server, name               string
}

// NewPostgresDB creates an empty database named tollgate_perf_<random> on the server at serverURL (a
// postgres:// URL of a database the user may connect to, with the right to CREATE DATABASE). It fails,
// naming the server, when the server cannot be reached: a run that was asked to measure PostgreSQL must
// not quietly leave it out.
func NewPostgresDB(ctx context.Context, serverURL string) (*PostgresDB, error) {
	u, err := url.Parse(serverURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("postgres server %q: want a postgres:// URL", serverURL)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	db := &PostgresDB{server: serverURL, name: "tollgate_perf_" + hex.EncodeToString(b[:])}
	err = db.admin(ctx, func(ctx context.Context, conn *pgx.Conn) error {
		if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&db.Version); err != nil {
			return err
		}
		if err := conn.QueryRow(ctx, "SHOW synchronous_commit").Scan(&db.SynchronousCommit); err != nil {
			return err
		}
		_, err := conn.Exec(ctx, "CREATE DATABASE "+db.name)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create a database on PostgreSQL at %s (give another server with -postgres, or -skip-postgres): %w", redact(u), err)
	}
	u.Path = "/" + db.name
	db.URL = u.String()
	return db, nil
}

// Drop drops the database, closing the connections a killed server may have left.
func (db *PostgresDB) Drop(ctx context.Context) error {
	err := db.admin(ctx, func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db.name+" WITH (FORCE)")
		return err
	})
	if err != nil {
		return fmt.Errorf("drop database %s: %w", db.name, err)
	}
	return nil
}

// Name is the database's name.
func (db *PostgresDB) Name() string { return db.name }

func (db *PostgresDB) admin(ctx context.Context, f func(context.Context, *pgx.Conn) error) error {
	// Bounded, and not cancelled by an interrupt: the drop must still run after Ctrl-C.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, db.server)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return f(ctx, conn)
}

// redact drops a password from u for messages.
func redact(u *url.URL) string { return u.Redacted() }

// BackendCPU returns the user+system CPU time so far of each PostgreSQL backend process connected to
// the database, by pid (pg_stat_activity, then /proc/PID/stat: the server must be on this machine).
// Tollgate on SQLite spends its store's CPU in its own process; on PostgreSQL much of it is spent in
// these processes, so a fair CPU-per-decision figure adds them.
func (db *PostgresDB) BackendCPU(ctx context.Context) (map[int]time.Duration, error) {
	cpu := map[int]time.Duration{}
	err := db.admin(ctx, func(ctx context.Context, conn *pgx.Conn) error {
		rows, err := conn.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE datname = $1", db.name)
		if err != nil {
			return err
		}
		pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return err
		}
		for _, pid := range pids {
			c, err := ProcessCPU(int(pid))
			if err != nil {
				continue // the backend ended meanwhile
			}
			cpu[int(pid)] = c
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the CPU time of the backends of %s: %w", db.name, err)
	}
	return cpu, nil
}

// CPUSince is the CPU time the processes of after spent since before (two BackendCPU readings); a
// process absent from before started in between and counts whole. A backend that ended in between is
// lost, so the figure is a lower bound.
func CPUSince(before, after map[int]time.Duration) time.Duration {
	var d time.Duration
	for pid, c := range after {
		d += c - before[pid]
	}
	return d
}
