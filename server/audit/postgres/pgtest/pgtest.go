// Package pgtest gives tests their own PostgreSQL database.
//
// The server is TOLLGATE_TEST_POSTGRES (default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable): a URL of a
// database the test may connect to with the right to CREATE DATABASE.
// TOLLGATE_TEST_POSTGRES=off skips these tests, saying so. When the default
// server cannot be reached the tests skip too, saying so, so that `make test`
// works on a fresh machine without PostgreSQL; with TOLLGATE_REQUIRE_POSTGRES=1
// (set by .ci/run) or an explicit TOLLGATE_TEST_POSTGRES URL they fail
// instead, so CI cannot pass by skipping.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the environment variable with the server's URL, or "off".
const EnvURL = "TOLLGATE_TEST_POSTGRES"

// EnvRequire names the environment variable that, set to 1, makes an
// unreachable default server fail the tests rather than skip them.
const EnvRequire = "TOLLGATE_REQUIRE_POSTGRES"

// DefaultURL is the machine's own PostgreSQL.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// ServerURL returns the server URL tests use. It skips tb when EnvURL is "off".
func ServerURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv(EnvURL)
	switch u {
	case "off":
		tb.Skipf("%s=off: PostgreSQL tests skipped", EnvURL)
	case "":
		u = DefaultURL
	}
	return u
}

// NewDatabase creates an empty database on the server, drops it (closing
// its connections) when tb ends, and returns its URL. It fails tb if the
// server cannot be reached.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	server := ServerURL(tb)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "tollgate_test_" + hex.EncodeToString(b[:])
	admin := func(sql string) {
		tb.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, server)
		if err != nil && os.Getenv(EnvURL) == "" && os.Getenv(EnvRequire) != "1" {
			tb.Skipf("no PostgreSQL at %s (%v): test skipped; set %s=1 to fail instead, or %s to another server", server, err, EnvRequire, EnvURL)
		}
		if err != nil {
			tb.Fatalf("connect to PostgreSQL at %s (set %s to another server, or to off to skip): %v", server, EnvURL, err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, sql); err != nil {
			tb.Fatalf("%s: %v", sql, err)
		}
	}
	admin("CREATE DATABASE " + name)
	tb.Cleanup(func() { admin("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)") })
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		tb.Fatalf("%s=%q: want a postgres:// URL", EnvURL, server)
	}
	u.Path = "/" + name
	return u.String()
}
