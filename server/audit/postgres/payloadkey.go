package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/server/audit"
)

// PayloadKeyID implements audit.Store.
func (s *Store) PayloadKeyID(ctx context.Context) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	var id []byte
	err := s.w.QueryRow(ctx, "SELECT key_id FROM payload_key WHERE id = 1").Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, audit.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read payload key id: %w", err)
	}
	return id, nil
}

// BindPayloadKey implements audit.Store. Replicas starting at once race on the insert; the primary
// key lets exactly one bind, and every one then compares with what is bound.
func (s *Store) BindPayloadKey(ctx context.Context, id []byte) error {
	if err := s.check(); err != nil {
		return err
	}
	if _, err := s.w.Exec(ctx, `INSERT INTO payload_key (id, key_id, bound_at) VALUES (1, $1, $2)
		ON CONFLICT (id) DO NOTHING`, id, time.Now().UnixNano()); err != nil {
		return fmt.Errorf("bind payload key: %w", err)
	}
	bound, err := s.PayloadKeyID(ctx)
	if err != nil {
		return fmt.Errorf("bind payload key: %w", err)
	}
	if !bytes.Equal(bound, id) {
		return fmt.Errorf("payload key id %x, log bound to key id %x: %w", id, bound, audit.ErrPayloadKeyMismatch)
	}
	return nil
}
