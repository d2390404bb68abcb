package masterdata

import (
	"context"
	"fmt"
)

// BehindError is WaitForRevision's error when the store did not reach the requested revision before
// its context ended. It wraps the context's error, so errors.Is(err, context.DeadlineExceeded) holds.
type BehindError struct {
	// Revision is the store's revision when the wait gave up; Min the one asked for.
	Revision, Min uint64
	// Err is the context's error.
	Err error
}

func (e *BehindError) Error() string {
	return fmt.Sprintf("master data at revision %d, %d behind the requested %d: %v", e.Revision, e.Behind(), e.Min, e.Err)
}

func (e *BehindError) Unwrap() error { return e.Err }

// Behind is how many revisions the store lacked.
func (e *BehindError) Behind() uint64 {
	if e.Min <= e.Revision {
		return 0
	}
	return e.Min - e.Revision
}

// WaitForRevision returns a snapshot whose revision is at least min as soon as the store has one: at
// once if it already does, else when the Apply (or LoadDir) that reaches min commits. It waits on
// memdb's watch channel of the meta object, which every applying batch replaces, so it does not poll
// and costs nothing while no batch commits.
//
// If ctx ends first it returns the latest snapshot (behind min) and a *BehindError that wraps ctx's
// error and names the store's revision. Revisions only grow, so any snapshot taken after this one
// returns sees at least min too. It is safe for concurrent use and never blocks Apply.
func (s *Store) WaitForRevision(ctx context.Context, min uint64) (*Snapshot, error) {
	for {
		txn := s.db.Txn(false)
		ch, raw, err := txn.FirstWatch(tableMeta, IndexID, metaID)
		if err != nil || raw == nil {
			// New inserts the meta object before the Store is returned; the table and index are static.
			panic(fmt.Sprintf("masterdata: meta object missing: %v", err))
		}
		sn := &Snapshot{txn: txn, meta: raw.(*meta)}
		if sn.meta.Revision >= min {
			return sn, nil
		}
		select {
		case <-ch:
			// A batch replaced the meta object: look again.
		case <-ctx.Done():
			return sn, &BehindError{Revision: sn.meta.Revision, Min: min, Err: ctx.Err()}
		}
	}
}
