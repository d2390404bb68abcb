package audittest

import (
	"context"
	"sync"

	"github.com/tollgate/tollgate/server/audit"
)

// FaultStore is an audit.Store that fails on purpose: it wraps a real store
// and, per method, fails, blocks or misreports calls as the test arranges,
// passing everything else through. It is for tests of how the Writer and the
// service handle a failing store. It is safe for concurrent use; faults can
// be armed and cleared while the store is in use.
//
// Faults and what they model:
//
//   - FailAppends(n, err): the next n Appends return err and store nothing
//     (the store was unavailable: a full disk, a lost connection).
//   - CommitThenFail(n, err): the next n Appends store their entries and
//     then return err (an ambiguous commit: the transaction committed but
//     the caller was told it failed, so a retry of the same records meets
//     its own earlier commit).
//   - RejectRecord(id, err): every Append holding decision id fails with err
//     and stores nothing, until ClearRejects (a record the store refuses,
//     e.g. with audit.ErrInvalidArgument; its batch-mates alone commit).
//   - BlockAppends / BlockFind(key): calls wait until the returned release
//     func is called or their ctx ends (a store stalled by a lock or a slow
//     disk).
//   - FailHead(n, err): the next n Head calls return err (the writer cannot
//     tell at once whether an ambiguous commit went through).
//   - FailPing(err): Ping returns err until FailPing(nil).
//
// Heal clears every fault and releases every block.
type FaultStore struct {
	audit.Store

	mu            sync.Mutex
	failAppends   int
	failErr       error
	commitFail    int
	commitFailErr error
	rejects       map[string]error
	pingErr       error
	failHeads     int
	failHeadErr   error
	appendGate    chan struct{} // closed when appends may proceed; nil: not blocked
	findGates     map[string]chan struct{}
	appends       int
}

// NewFaultStore wraps s with no faults armed.
func NewFaultStore(s audit.Store) *FaultStore {
	return &FaultStore{Store: s, rejects: map[string]error{}, findGates: map[string]chan struct{}{}}
}

// FailAppends makes the next n Appends return err without storing.
func (f *FaultStore) FailAppends(n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failAppends, f.failErr = n, err
}

// CommitThenFail makes the next n Appends store their entries and then
// return err.
func (f *FaultStore) CommitThenFail(n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.commitFail, f.commitFailErr = n, err
}

// RejectRecord makes every Append that holds decisionID return err without
// storing, until ClearRejects or Heal.
func (f *FaultStore) RejectRecord(decisionID string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rejects[decisionID] = err
}

// ClearRejects forgets every RejectRecord.
func (f *FaultStore) ClearRejects() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.rejects)
}

// FailHead makes the next n Head calls return err.
func (f *FaultStore) FailHead(n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failHeads, f.failHeadErr = n, err
}

// Head implements audit.Store, failing while FailHead is armed.
func (f *FaultStore) Head(ctx context.Context, chainID string) (audit.Head, error) {
	f.mu.Lock()
	if f.failHeads > 0 {
		f.failHeads--
		err := f.failHeadErr
		f.mu.Unlock()
		return audit.Head{}, err
	}
	f.mu.Unlock()
	return f.Store.Head(ctx, chainID)
}

// FailPing makes Ping return err; nil lets Ping through again.
func (f *FaultStore) FailPing(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pingErr = err
}

// BlockAppends makes Appends wait until release is called (or their ctx
// ends, with ctx's error). release may be called more than once.
func (f *FaultStore) BlockAppends() (release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	gate := make(chan struct{})
	f.appendGate = gate
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			if f.appendGate == gate {
				f.appendGate = nil
			}
			f.mu.Unlock()
			close(gate)
		})
	}
}

// BlockFind makes FindByIdempotencyKey calls for key (in any scope) wait
// until release is called or their ctx ends. release may be called more
// than once.
func (f *FaultStore) BlockFind(key string) (release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	gate := make(chan struct{})
	f.findGates[key] = gate
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			if f.findGates[key] == gate {
				delete(f.findGates, key)
			}
			f.mu.Unlock()
			close(gate)
		})
	}
}

// Heal clears every fault and releases every blocked call.
func (f *FaultStore) Heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failAppends, f.commitFail, f.failHeads, f.pingErr = 0, 0, 0, nil
	clear(f.rejects)
	if f.appendGate != nil {
		close(f.appendGate)
		f.appendGate = nil
	}
	for k, g := range f.findGates {
		close(g)
		delete(f.findGates, k)
	}
}

// Appends counts the Append calls made so far, failed ones included.
func (f *FaultStore) Appends() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.appends
}

// Append implements audit.Store with the armed Append faults.
func (f *FaultStore) Append(ctx context.Context, prev audit.Head, entries []audit.Entry) error {
	f.mu.Lock()
	f.appends++
	gate := f.appendGate
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	for _, e := range entries {
		if err, ok := f.rejects[e.Record.GetDecisionId()]; ok {
			f.mu.Unlock()
			return err
		}
	}
	if f.failAppends > 0 {
		f.failAppends--
		err := f.failErr
		f.mu.Unlock()
		return err
	}
	var after error
	if f.commitFail > 0 {
		f.commitFail--
		after = f.commitFailErr
	}
	f.mu.Unlock()
	if err := f.Store.Append(ctx, prev, entries); err != nil {
		return err
	}
	return after
}

// FindByIdempotencyKey implements audit.Store, waiting while key is blocked.
func (f *FaultStore) FindByIdempotencyKey(ctx context.Context, scope, key string) (*audit.Record, error) {
	f.mu.Lock()
	gate := f.findGates[key]
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return f.Store.FindByIdempotencyKey(ctx, scope, key)
}

// Ping implements audit.Store, failing while FailPing is armed.
func (f *FaultStore) Ping(ctx context.Context) error {
	f.mu.Lock()
	err := f.pingErr
	f.mu.Unlock()
	if err != nil {
		return err
	}
	return f.Store.Ping(ctx)
}

// Stored splits ids into those s holds and those it does not (by Get), in
// the order given.
func Stored(ctx context.Context, s audit.Store, ids ...string) (stored, missing []string) {
	for _, id := range ids {
		if _, err := s.Get(ctx, id); err == nil {
			stored = append(stored, id)
		} else {
			missing = append(missing, id)
		}
	}
	return stored, missing
}
