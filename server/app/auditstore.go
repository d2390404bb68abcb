package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/postgres"
	"github.com/tollgate/tollgate/server/audit/sqlite"
	"github.com/tollgate/tollgate/server/engine"
	"github.com/tollgate/tollgate/server/insights"
)

// AuditStoreSQLite names the embedded audit store, SQLite under DataDir (Config.AuditStore "" too).
const AuditStoreSQLite = "sqlite"

// isPostgresURL reports whether an AuditStore value selects PostgreSQL.
func isPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// openAuditStore opens the store cfg.AuditStore selects. DataDir stays this service's own (locked)
// directory either way: it keeps the bundle state file and the dead-letter file.
func openAuditStore(ctx context.Context, cfg Config) (audit.Store, error) {
	switch {
	case cfg.AuditStore == "" || cfg.AuditStore == AuditStoreSQLite:
		return sqlite.Open(ctx, cfg.DataDir)
	case isPostgresURL(cfg.AuditStore):
		s, err := postgres.Open(ctx, postgres.Config{URL: cfg.AuditStore})
		if err != nil {
			return nil, fmt.Errorf("open audit store: %w", err)
		}
		return s, nil
	}
	return nil, fmt.Errorf("audit store %q: want %q or a postgres:// URL", cfg.AuditStore, AuditStoreSQLite)
}

// insightsStore returns the insights.Store kept beside the audit store, in the same database.
func insightsStore(st audit.Store) (insights.Store, error) {
	switch s := st.(type) {
	case *sqlite.Store:
		return s.Insights(), nil
	case *postgres.Store:
		return s.Insights(), nil
	}
	return nil, fmt.Errorf("audit store %T keeps no insights roll-ups", st)
}

// activeInsights returns the insights config of the engine's active bundle.
func activeInsights(eng *engine.Engine) func() insights.Config {
	return func() insights.Config {
		if c, _ := eng.Active(); c != nil {
			return c.Insights()
		}
		return insights.Config{}
	}
}

// defaultChainID is the audit chain of a service whose Config.Audit.ChainID is empty: "default" on
// SQLite, where the chain is the only one in its file; on PostgreSQL, where replicas share the
// database and each must write its own chain, the replica id.
func defaultChainID(cfg Config) string {
	if isPostgresURL(cfg.AuditStore) {
		return cfg.ReplicaID
	}
	return "default"
}

// DefaultReplicaID is the replica id of a service started without one: the host name and the first
// 8 hex digits of the SHA-256 of the data directory's absolute path, e.g. "node-7-3fa2c1d0". It is
// stable across restarts of the same service on the same host and differs between two services on
// one host (each has its own data directory, which New locks).
func DefaultReplicaID(dataDir string) (string, error) {
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("replica id: %w", err)
	}
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return "", fmt.Errorf("replica id: %w", err)
	}
	sum := sha256.Sum256([]byte(abs))
	return host + "-" + hex.EncodeToString(sum[:4]), nil
}

// auditStoreKind names the audit store for logs, without the URL (it may hold a password).
func (a *App) auditStoreKind() string {
	if isPostgresURL(a.cfg.AuditStore) {
		return "postgres"
	}
	return AuditStoreSQLite
}
