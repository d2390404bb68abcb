package audit

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// Problem says why a chain does not verify.
type Problem string

// Problems Verify reports.
const (
	// ProblemHashMismatch: a record's stored hash is not the hash of its content.
	ProblemHashMismatch Problem = "hash mismatch"
	// ProblemBrokenLink: a record's prev_hash is not the previous record's hash.
	ProblemBrokenLink Problem = "broken link"
	// ProblemSeqGap: records are missing (or repeated) before this one.
	ProblemSeqGap Problem = "gap in seq"
	// ProblemCorrupt: the store cannot read the record faithfully.
	ProblemCorrupt Problem = "corrupt record"
	// ProblemTruncated: the stored head is beyond the last record.
	ProblemTruncated Problem = "truncated tail"
	// ProblemHead: the stored head disagrees with the last record.
	ProblemHead Problem = "head mismatch"
)

// Report is the outcome of Verify.
type Report struct {
	ChainID string
	OK      bool
	// RecordsChecked counts records whose hash and link verified.
	RecordsChecked uint64
	// FirstBadSeq and FirstBadDecisionID name the first record that does not
	// verify. For ProblemTruncated FirstBadSeq is the first missing seq and
	// FirstBadDecisionID is empty.
	FirstBadSeq        uint64
	FirstBadDecisionID string
	Problem            Problem
	// Detail says what was expected and what was found.
	Detail string
}

// Message is the problem and its detail in one line, empty when OK.
func (r Report) Message() string {
	if r.OK {
		return ""
	}
	return string(r.Problem) + ": " + r.Detail
}

// Verify walks chainID in seq order from seq 1, recomputes each hash and
// checks each prev_hash link and that seq has no gap, then compares the last
// record with the chain head the store keeps beside the records, so a
// truncated tail is reported too. It stops at the first problem. An empty
// chainID verifies every chain and returns the first failing chain's report
// (or an OK report counting all records). The error is for store failures
// only; a chain that does not verify is a Report with OK false.
//
// Verify cannot detect a rewrite that recomputes every later hash and the
// head; anchoring heads outside the store is the remedy for that.
func Verify(ctx context.Context, store Store, chainID string) (Report, error) {
	if chainID != "" {
		return verifyChain(ctx, store, chainID)
	}
	chains, err := store.Chains(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("list audit chains: %w", err)
	}
	total := Report{OK: true}
	for _, c := range chains {
		r, err := verifyChain(ctx, store, c)
		if err != nil {
			return Report{}, err
		}
		if !r.OK {
			r.RecordsChecked += total.RecordsChecked
			return r, nil
		}
		total.RecordsChecked += r.RecordsChecked
	}
	return total, nil
}

var errStop = errors.New("stop")

func verifyChain(ctx context.Context, store Store, chainID string) (Report, error) {
	rep := Report{ChainID: chainID, OK: true}
	head, err := store.Head(ctx, chainID)
	if err != nil {
		return Report{}, fmt.Errorf("load head of audit chain %s: %w", chainID, err)
	}
	fail := func(rec *Record, p Problem, format string, args ...any) error {
		rep.OK, rep.Problem, rep.Detail = false, p, fmt.Sprintf(format, args...)
		rep.FirstBadSeq, rep.FirstBadDecisionID = rec.GetSeq(), rec.GetDecisionId()
		return errStop
	}
	want, prev := uint64(1), GenesisHash()
	err = store.Chain(ctx, chainID, 1, func(rec *Record) error {
		if got := rec.GetSeq(); got != want {
			if got > want {
				return fail(rec, ProblemSeqGap, "expected seq %d, found %d: seq %s missing", want, got, seqRange(want, got-1))
			}
			return fail(rec, ProblemSeqGap, "expected seq %d, found %d again", want, got)
		}
		if rec.GetChainId() != chainID {
			return fail(rec, ProblemHashMismatch, "record claims chain %q", rec.GetChainId())
		}
		if !bytes.Equal(rec.GetPrevHash(), prev) {
			return fail(rec, ProblemBrokenLink, "prev_hash %s, previous record's hash %s", short(rec.GetPrevHash()), short(prev))
		}
		h, err := Hash(rec)
		if err != nil {
			return fail(rec, ProblemCorrupt, "%v", err)
		}
		if !bytes.Equal(h, rec.GetHash()) {
			return fail(rec, ProblemHashMismatch, "stored %s, computed %s", short(rec.GetHash()), short(h))
		}
		if k := rec.GetKind(); k != tollgatev1.RecordKind_RECORD_KIND_DECISION && k != tollgatev1.RecordKind_RECORD_KIND_REPLAY {
			return fail(rec, ProblemCorrupt, "unknown kind %s", k)
		}
		rep.RecordsChecked++
		want, prev = want+1, rec.GetHash()
		return nil
	})
	var ie *IntegrityError
	switch {
	case errors.Is(err, errStop):
		return rep, nil
	case errors.As(err, &ie):
		rep.OK, rep.Problem, rep.Detail = false, ProblemCorrupt, ie.Problem
		rep.FirstBadSeq, rep.FirstBadDecisionID = ie.Seq, ie.DecisionID
		return rep, nil
	case err != nil:
		return Report{}, fmt.Errorf("walk audit chain %s: %w", chainID, err)
	}
	last := want - 1
	switch {
	case head.Seq > last:
		rep.OK, rep.Problem, rep.FirstBadSeq = false, ProblemTruncated, last+1
		rep.Detail = fmt.Sprintf("head records seq %d (hash %s), chain ends at seq %d", head.Seq, short(head.Hash), last)
	case head.Seq < last:
		rep.OK, rep.Problem, rep.FirstBadSeq = false, ProblemHead, head.Seq+1
		rep.Detail = fmt.Sprintf("head records seq %d, chain continues to seq %d", head.Seq, last)
	case last > 0 && !bytes.Equal(head.Hash, prev):
		rep.OK, rep.Problem, rep.FirstBadSeq = false, ProblemHead, last
		rep.Detail = fmt.Sprintf("head hash %s, last record's hash %s", short(head.Hash), short(prev))
	}
	return rep, nil
}

// seqRange renders the seqs from..to as "7" or "7-9".
func seqRange(from, to uint64) string {
	if from == to {
		return fmt.Sprint(from)
	}
	return fmt.Sprintf("%d-%d", from, to)
}

func short(b []byte) string {
	s := hex.EncodeToString(b)
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}
