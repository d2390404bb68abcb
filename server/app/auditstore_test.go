package app_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/audit/postgres/pgtest"
)

// TestAuditStoreSelection: the chain id defaults to "default" on SQLite and to the replica id on
// PostgreSQL; an explicit chain wins; an unknown store is refused; the data-dir lock holds with
// PostgreSQL too.
func TestAuditStoreSelection(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	start := func(t *testing.T, cfg app.Config) (*app.App, error) {
		t.Helper()
		cfg.Addr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
		if cfg.DataDir == "" {
			cfg.DataDir = t.TempDir()
		}
		a, err := app.New(ctx, cfg, zerolog.Nop())
		if err == nil {
			t.Cleanup(func() { a.Close() })
		}
		return a, err
	}
	dir := t.TempDir()
	replicaID, err := app.DefaultReplicaID(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  app.Config
		want string
	}{
		{"sqlite default", app.Config{}, "default"},
		{"sqlite by name", app.Config{AuditStore: "sqlite"}, "default"},
		{"postgres, replica id given", app.Config{AuditStore: url, ReplicaID: "node-7"}, "node-7"},
		{"postgres, derived replica id", app.Config{AuditStore: url, DataDir: dir}, replicaID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := start(t, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := a.AuditChain(); got != tc.want {
				t.Errorf("AuditChain = %q, want %q", got, tc.want)
			}
			a.Close()
		})
	}
	t.Run("explicit chain wins", func(t *testing.T) {
		cfg := app.Config{AuditStore: url, ReplicaID: "node-8"}
		cfg.Audit.ChainID = "orders-eu"
		a, err := start(t, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.AuditChain(); got != "orders-eu" {
			t.Errorf("AuditChain = %q, want orders-eu", got)
		}
	})
	t.Run("unknown store", func(t *testing.T) {
		if _, err := start(t, app.Config{AuditStore: "mysql://x"}); err == nil || !strings.Contains(err.Error(), "mysql://x") {
			t.Errorf("New with audit store mysql://x: err = %v, want it refused by name", err)
		}
	})
	t.Run("data dir lock", func(t *testing.T) {
		shared := t.TempDir()
		if _, err := start(t, app.Config{AuditStore: url, DataDir: shared}); err != nil {
			t.Fatal(err)
		}
		if _, err := start(t, app.Config{AuditStore: url, DataDir: shared}); !errors.Is(err, app.ErrDataDirInUse) {
			t.Errorf("second replica on the same data dir: err = %v, want ErrDataDirInUse", err)
		}
	})
}

// TestDefaultReplicaID is stable for a data dir, differs between two and starts with the host name.
func TestDefaultReplicaID(t *testing.T) {
	root := t.TempDir()
	a1, _ := app.DefaultReplicaID(filepath.Join(root, "a"))
	a2, _ := app.DefaultReplicaID(filepath.Join(root, "a"))
	b, _ := app.DefaultReplicaID(filepath.Join(root, "b"))
	host, _ := os.Hostname()
	if a1 != a2 || a1 == b || !strings.HasPrefix(a1, host+"-") {
		t.Errorf("replica ids %q, %q, %q; want the first two equal, the third different, all starting %q", a1, a2, b, host+"-")
	}
}
