package audit

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/tollgate/tollgate/server/audit/transparency"
)

// The SQL stores keep checkpoints in one table of the same shape; these helpers are the parts of
// reading it that do not depend on the database.

// CheckpointColumns are the columns ScanCheckpoint reads, in order.
const CheckpointColumns = "tree_size, root, origin, note, signed_at"

// RowScanner is a row of database/sql or pgx.
type RowScanner interface{ Scan(...any) error }

// Rows are the rows of a query, of database/sql or pgx.
type Rows interface {
	RowScanner
	Next() bool
	Err() error
}

// ScanCheckpoint reads one row of CheckpointColumns. A root that is not a hash is ErrCorrupt.
func ScanCheckpoint(sc RowScanner) (transparency.Checkpoint, error) {
	var cp transparency.Checkpoint
	var root []byte
	var at int64
	if err := sc.Scan(&cp.Size, &root, &cp.Origin, &cp.Note, &at); err != nil {
		return transparency.Checkpoint{}, err
	}
	if len(root) != tlog.HashSize {
		return transparency.Checkpoint{}, fmt.Errorf("checkpoint at size %d has a root of %d bytes: %w", cp.Size, len(root), ErrCorrupt)
	}
	copy(cp.Root[:], root)
	cp.SignedAt = time.Unix(0, at).UTC()
	return cp, nil
}

// CheckpointsBelow decodes a ListCheckpoints page token: the tree size the next page lists checkpoints
// below, or -1 for the first page. A malformed token is ErrInvalidArgument.
func CheckpointsBelow(token string) (int64, error) {
	if token == "" {
		return -1, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	var below int64
	if err == nil {
		below, err = strconv.ParseInt(string(raw), 10, 64)
	}
	if err != nil || below < 0 {
		return 0, fmt.Errorf("page token %q: %w", token, ErrInvalidArgument)
	}
	return below, nil
}

// CheckpointPageOf reads up to size checkpoints from rows, newest first, which hold at most size+1:
// one more than size means there is a next page, whose token is the last listed checkpoint's size.
func CheckpointPageOf(rows Rows, size int) (CheckpointPage, error) {
	var page CheckpointPage
	for rows.Next() {
		if len(page.Checkpoints) == size {
			last := page.Checkpoints[size-1].Size
			page.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(last, 10)))
			break
		}
		cp, err := ScanCheckpoint(rows)
		if err != nil {
			return CheckpointPage{}, err
		}
		page.Checkpoints = append(page.Checkpoints, cp)
	}
	if err := rows.Err(); err != nil {
		return CheckpointPage{}, err
	}
	return page, nil
}
