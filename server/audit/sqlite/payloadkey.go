package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tollgate/tollgate/server/audit"
)

// PayloadKeyID returns the id of the payload key bound to the log by
// BindPayloadKey (audit.PayloadKey.ID), or audit.ErrNotFound if none is.
func (s *Store) PayloadKeyID(ctx context.Context) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	var id []byte
	err := s.w.QueryRowContext(ctx, "SELECT key_id FROM payload_key WHERE id = 1").Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, audit.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read payload key id: %w", err)
	}
	return id, nil
}

// BindPayloadKey binds the log to the payload key with id, if no key is
// bound yet, in one write transaction, so of two starts with different keys
// only one binds. If another key is bound it returns an error wrapping
// audit.ErrPayloadKeyMismatch that names both ids.
func (s *Store) BindPayloadKey(ctx context.Context, id []byte) error {
	if err := s.check(); err != nil {
		return err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("bind payload key: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO payload_key (id, key_id, bound_at) VALUES (1, ?, ?)
		ON CONFLICT (id) DO NOTHING`, id, time.Now().UnixNano()); err != nil {
		return fmt.Errorf("bind payload key: %w", err)
	}
	var bound []byte
	if err := tx.QueryRowContext(ctx, "SELECT key_id FROM payload_key WHERE id = 1").Scan(&bound); err != nil {
		return fmt.Errorf("bind payload key: %w", err)
	}
	if !bytes.Equal(bound, id) {
		return fmt.Errorf("payload key id %x, log bound to key id %x: %w", id, bound, audit.ErrPayloadKeyMismatch)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("bind payload key: %w", err)
	}
	return nil
}
