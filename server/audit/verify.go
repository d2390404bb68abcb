package audit

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

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
	// ProblemAcceptedBreak: the chain verifies except where an operator
	// accepted a break at start (a RECORD_KIND_CHAIN_BREAK record): the
	// records before the break that did not verify are not vouched for.
	ProblemAcceptedBreak Problem = "accepted chain break"
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
	// AcceptedBreaks lists the chain-break records the walk accepted (see
	// ProblemAcceptedBreak); a failing report lists those before its problem.
	AcceptedBreaks []AcceptedBreak
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
// truncated tail is reported too. It reports the first problem.
//
// A chain-break record (written when an operator accepted a broken tail at
// start) that links to the last intact record ends a damaged stretch: the
// walk verifies on from it. A chain whose only fault is such a break is not
// OK: the report's Problem is ProblemAcceptedBreak, naming the break record
// (seq, decision id), who accepted it and when, the seqs left unverified
// and how many records after it verify. Any other problem wins over it. An empty
// chainID verifies every chain and returns the first failing chain's report
// (or an OK report counting all records); a chain whose only fault is an
// accepted break does not stop the others from being verified, and is
// reported only if none fails otherwise. The error is for store failures
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
	var firstBreak *Report
	for _, c := range chains {
		r, err := verifyChain(ctx, store, c)
		if err != nil {
			return Report{}, err
		}
		if !r.OK && r.Problem != ProblemAcceptedBreak {
			r.RecordsChecked += total.RecordsChecked
			return r, nil
		}
		if !r.OK && firstBreak == nil {
			firstBreak = &r // reported once every other chain verified
		}
		total.RecordsChecked += r.RecordsChecked
	}
	if firstBreak != nil {
		firstBreak.RecordsChecked = total.RecordsChecked
		return *firstBreak, nil
	}
	return total, nil
}

// walk is the outcome of walking a chain's records in seq order.
type walk struct {
	// checked counts records whose hash and link verified.
	checked uint64
	// problem is the first record-level problem no accepted break covers;
	// nil if none. Its RecordsChecked is the count at that point.
	problem *Report
	// lastGood is the last record verified before problem (or the last
	// record at all); want is the seq expected after it.
	lastGood Head
	want     uint64
	breaks   []AcceptedBreak
}

// AcceptedBreak is a RECORD_KIND_CHAIN_BREAK record Verify found, linked
// as writeChainBreak links it, and the stretch of seqs before it that it
// accepts without verifying.
type AcceptedBreak struct {
	Seq        uint64
	DecisionID string
	AcceptedBy string
	At         time.Time
	Problem    string
	// UnverifiedFrom..UnverifiedTo are the seqs between the last intact
	// record and the break that Verify did not verify (damaged, missing or
	// skipped); UnverifiedFrom > UnverifiedTo when there are none.
	UnverifiedFrom, UnverifiedTo uint64
}

// walkChain walks chainID from seq 1. At a problem it keeps reading, without
// verifying, for a chain-break record that links to the last intact record
// (which accepts the damage); the walk then verifies on from the break. A
// record the store cannot read is skipped the same way.
func walkChain(ctx context.Context, store Store, chainID string) (walk, error) {
	w := walk{want: 1, lastGood: Head{ChainID: chainID}}
	prev := GenesisHash()
	fail := func(rec *Record, p Problem, format string, args ...any) {
		w.problem = &Report{ChainID: chainID, RecordsChecked: w.checked, FirstBadSeq: rec.GetSeq(),
			FirstBadDecisionID: rec.GetDecisionId(), Problem: p, Detail: fmt.Sprintf(format, args...)}
	}
	fn := func(rec *Record) error {
		if rec.GetKind() == tollgatev1.RecordKind_RECORD_KIND_CHAIN_BREAK && rec.GetSeq() >= w.want &&
			rec.GetChainId() == chainID && bytes.Equal(rec.GetPrevHash(), prev) {
			if h, err := Hash(rec); err == nil && bytes.Equal(h, rec.GetHash()) {
				cb := rec.GetChainBreak()
				w.breaks = append(w.breaks, AcceptedBreak{
					Seq: rec.GetSeq(), DecisionID: rec.GetDecisionId(), AcceptedBy: cb.GetAcceptedBy(),
					At: rec.GetEvaluatedAt().AsTime(), Problem: cb.GetProblem(),
					UnverifiedFrom: w.lastGood.Seq + 1, UnverifiedTo: rec.GetSeq() - 1,
				})
				w.problem = nil
				w.checked++
				w.want, prev = rec.GetSeq()+1, rec.GetHash()
				w.lastGood = Head{ChainID: chainID, Seq: rec.GetSeq(), Hash: rec.GetHash()}
				return nil
			}
		}
		if w.problem != nil {
			return nil // damaged stretch: only an accepting break ends it
		}
		if got := rec.GetSeq(); got != w.want {
			if got > w.want {
				fail(rec, ProblemSeqGap, "expected seq %d, found %d: seq %s missing", w.want, got, seqRange(w.want, got-1))
			} else {
				fail(rec, ProblemSeqGap, "expected seq %d, found %d again", w.want, got)
			}
			return nil
		}
		if rec.GetChainId() != chainID {
			fail(rec, ProblemHashMismatch, "record claims chain %q", rec.GetChainId())
			return nil
		}
		if !bytes.Equal(rec.GetPrevHash(), prev) {
			fail(rec, ProblemBrokenLink, "prev_hash %s, previous record's hash %s", short(rec.GetPrevHash()), short(prev))
			return nil
		}
		h, err := Hash(rec)
		if err != nil {
			fail(rec, ProblemCorrupt, "%v", err)
			return nil
		}
		if !bytes.Equal(h, rec.GetHash()) {
			fail(rec, ProblemHashMismatch, "stored %s, computed %s", short(rec.GetHash()), short(h))
			return nil
		}
		if k := rec.GetKind(); k != tollgatev1.RecordKind_RECORD_KIND_DECISION && k != tollgatev1.RecordKind_RECORD_KIND_REPLAY {
			fail(rec, ProblemCorrupt, "kind %s where a decision or replay marker belongs", k)
			return nil
		}
		w.checked++
		w.want, prev = w.want+1, rec.GetHash()
		w.lastGood = Head{ChainID: chainID, Seq: rec.GetSeq(), Hash: rec.GetHash()}
		return nil
	}
	for from := uint64(1); ; {
		err := store.Chain(ctx, chainID, from, fn)
		var ie *IntegrityError
		if !errors.As(err, &ie) {
			if err != nil {
				return walk{}, fmt.Errorf("walk audit chain %s: %w", chainID, err)
			}
			return w, nil
		}
		if w.problem == nil {
			w.problem = &Report{ChainID: chainID, RecordsChecked: w.checked, FirstBadSeq: ie.Seq,
				FirstBadDecisionID: ie.DecisionID, Problem: ProblemCorrupt, Detail: ie.Problem}
		}
		from = ie.Seq + 1
	}
}

func verifyChain(ctx context.Context, store Store, chainID string) (Report, error) {
	head, err := store.Head(ctx, chainID)
	if err != nil {
		return Report{}, fmt.Errorf("load head of audit chain %s: %w", chainID, err)
	}
	w, err := walkChain(ctx, store, chainID)
	if err != nil {
		return Report{}, err
	}
	if w.problem != nil {
		w.problem.OK = false
		w.problem.AcceptedBreaks = w.breaks
		return *w.problem, nil
	}
	rep := Report{ChainID: chainID, OK: true, RecordsChecked: w.checked, AcceptedBreaks: w.breaks}
	last, prev := w.lastGood.Seq, w.lastGood.Hash
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
	case len(w.breaks) > 0:
		// Everything verifies but an accepted break: the chain is not whole,
		// and saying OK would claim the damaged stretch is intact.
		b := w.breaks[0]
		rep.OK, rep.Problem = false, ProblemAcceptedBreak
		rep.FirstBadSeq, rep.FirstBadDecisionID = b.Seq, b.DecisionID
		unverified := "no records skipped"
		if b.UnverifiedFrom <= b.UnverifiedTo {
			unverified = "seq " + seqRange(b.UnverifiedFrom, b.UnverifiedTo) + " not verified"
		}
		rep.Detail = fmt.Sprintf("break record seq %d accepted by %s at %s, after seq %d: found %q; %s; the %d records after it verify",
			b.Seq, b.AcceptedBy, b.At.UTC().Format(time.RFC3339), b.UnverifiedFrom-1, b.Problem, unverified, last-b.Seq)
		if len(w.breaks) > 1 {
			rep.Detail += fmt.Sprintf("; %d accepted breaks in all", len(w.breaks))
		}
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
