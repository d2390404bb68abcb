package api

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tollgate/tollgate/server/masterdata"
)

// DefaultConsistencyWait is how long a decision with a consistency token waits for master data at least
// as fresh as the token, when Consistency.Wait is not set.
const DefaultConsistencyWait = 2 * time.Second

// ReasonMasterdataBehind is the google.rpc.ErrorInfo reason of a decision refused because this replica's
// master data stayed behind the request's min_masterdata_revision.
const ReasonMasterdataBehind = "MASTERDATA_BEHIND"

// Freshness waits for master data at least as fresh as a revision; *masterdata.Store is the
// implementation (see its WaitForRevision for the contract).
type Freshness interface {
	Snapshot() *masterdata.Snapshot
	WaitForRevision(ctx context.Context, min uint64) (*masterdata.Snapshot, error)
}

// StreamHead reports the newest revision the master-data feed knows of (the stream's last sequence), and
// false while it does not know. A feed may implement it; the error of a replica that is behind then says
// how far behind the stream it is, not only behind the token.
type StreamHead interface {
	StreamHead() (uint64, bool)
}

// Consistency configures how decisions honour min_masterdata_revision (see WithConsistency).
type Consistency struct {
	// Store is the replica's master data.
	Store Freshness
	// Wait bounds the wait for master data as fresh as the token; the call's deadline bounds it too.
	// Zero means DefaultConsistencyWait; negative means do not wait (answer or refuse at once).
	Wait time.Duration
	// Head, if set, names the stream head in the error of a replica that is behind.
	Head StreamHead
}

// WithConsistency makes decisions with a min_masterdata_revision wait for c.Store to reach it, at most
// c.Wait, and refuse with Unavailable (ReasonMasterdataBehind) if it does not. Without it a token is
// still checked against the revision the decision was evaluated on, without waiting.
func (s *DecisionServer) WithConsistency(c Consistency) *DecisionServer {
	if c.Wait == 0 {
		c.Wait = DefaultConsistencyWait
	}
	s.consistency = c
	return s
}

// behindError is a decision refused because the replica's master data is older than the request's
// consistency token. No decision was made, so nothing is audited; the caller may retry, here or on
// another replica.
type behindError struct {
	revision, min uint64
	waited        time.Duration
	head          uint64
	hasHead       bool
}

func (e *behindError) Error() string {
	msg := fmt.Sprintf("master data at revision %d is %d behind the requested min_masterdata_revision %d after waiting %s",
		e.revision, e.min-e.revision, e.min, e.waited.Round(time.Millisecond))
	if e.hasHead {
		msg += fmt.Sprintf("; the stream head is %d", e.head)
	}
	return msg + ": decision not made, retry later or on another replica"
}

// status is e as Unavailable with msg (e's message, perhaps prefixed with the request's index in a
// batch) and a google.rpc.ErrorInfo, so clients can read the numbers without parsing the message.
func (e *behindError) status(msg string) error {
	st := status.New(codes.Unavailable, msg)
	info := &errdetails.ErrorInfo{Reason: ReasonMasterdataBehind, Domain: "tollgate.v1", Metadata: map[string]string{
		"revision":  strconv.FormatUint(e.revision, 10),
		"requested": strconv.FormatUint(e.min, 10),
		"behind":    strconv.FormatUint(e.min-e.revision, 10),
		"waited":    e.waited.Round(time.Millisecond).String(),
	}}
	if e.hasHead {
		info.Metadata["stream_head"] = strconv.FormatUint(e.head, 10)
	}
	if d, err := st.WithDetails(info); err == nil {
		st = d
	}
	return st.Err()
}

// Outcomes of tollgate_consistency_waits_total.
const (
	consistencyFresh  = "fresh"  // the replica already had the revision
	consistencyWaited = "waited" // it reached the revision while the decision waited
	consistencyBehind = "behind" // it did not: refused
)

// awaitRevision waits until the master data reaches min (0: at once), within the configured wait and
// ctx, and returns a *behindError if it does not. field names the request inside a batch ("" alone).
func (s *DecisionServer) awaitRevision(ctx context.Context, min uint64, field string) error {
	store := s.consistency.Store
	if min == 0 || store == nil {
		return nil
	}
	if rev := store.Snapshot().Revision(); rev >= min {
		s.metrics.observeConsistency(consistencyFresh)
		return nil
	} else if s.consistency.Wait < 0 {
		return s.refuseBehind(field, rev, min, 0)
	}
	start := time.Now()
	waitCtx, cancel := context.WithTimeout(ctx, s.consistency.Wait)
	defer cancel()
	sn, err := store.WaitForRevision(waitCtx, min)
	var behind *masterdata.BehindError
	switch {
	case err == nil:
		s.metrics.observeConsistency(consistencyWaited)
		return nil
	case !errors.As(err, &behind):
		return fmt.Errorf("wait for master data revision %d: %w", min, err)
	}
	return s.refuseBehind(field, sn.Revision(), min, time.Since(start))
}

// refuseBehind counts, logs and returns the refusal of a decision whose master data is at revision,
// behind min.
func (s *DecisionServer) refuseBehind(field string, revision, min uint64, waited time.Duration) error {
	e := &behindError{revision: revision, min: min, waited: waited}
	if s.consistency.Head != nil {
		e.head, e.hasHead = s.consistency.Head.StreamHead()
	}
	s.metrics.observeConsistency(consistencyBehind)
	ev := s.log.Warn().Uint64("masterdata_revision", revision).Uint64("min_masterdata_revision", min).
		Dur("waited", waited)
	if e.hasHead {
		ev = ev.Uint64("stream_head", e.head)
	}
	ev.Str("request", field).Msg("decision refused: master data behind the consistency token")
	if field != "" {
		return fmt.Errorf("%s: %w", field, e)
	}
	return e
}
