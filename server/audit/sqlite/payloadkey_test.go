package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/tollgate/tollgate/server/audit"
)

// TestBindPayloadKey binds a key id to a log, including one whose schema predates the payload key
// table, and checks that the binding survives a reopen and refuses another id.
func TestBindPayloadKey(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	s.Close()
	// Back to the schema before the payload key table, as a log written by older code has it.
	db, err := sql.Open("sqlite", dir+"/audit.db")
	if err != nil {
		t.Fatal(err)
	}
	// Migration 005 adds the table; the later ones are idempotent.
	for _, q := range []string{"DROP TABLE payload_key", "PRAGMA user_version = 4"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s = openStore(t, dir)
	if _, err := s.PayloadKeyID(ctx); !errors.Is(err, audit.ErrNotFound) {
		t.Fatalf("PayloadKeyID of an unbound log: err = %v, want ErrNotFound", err)
	}
	a, b := bytes.Repeat([]byte{0xa}, 16), bytes.Repeat([]byte{0xb}, 16)
	if err := s.BindPayloadKey(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := s.BindPayloadKey(ctx, a); err != nil {
		t.Errorf("binding the bound key again: %v", err)
	}
	s.Close()
	s = openStore(t, dir)
	if id, err := s.PayloadKeyID(ctx); err != nil || !bytes.Equal(id, a) {
		t.Errorf("PayloadKeyID after reopen = %x, %v; want %x", id, err, a)
	}
	if err := s.BindPayloadKey(ctx, b); !errors.Is(err, audit.ErrPayloadKeyMismatch) {
		t.Errorf("binding another key: err = %v, want ErrPayloadKeyMismatch", err)
	}
	if id, _ := s.PayloadKeyID(ctx); !bytes.Equal(id, a) {
		t.Errorf("a refused bind changed the bound id to %x", id)
	}
}
