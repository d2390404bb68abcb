package audit

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit/transparency"
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
	// ProblemTree: the stored Merkle tree is not the tree the records
	// rebuild (its size, root or a leaf differs), or hashes are stored
	// beyond its size.
	ProblemTree Problem = "tree mismatch"
	// ProblemCheckpoint: a stored checkpoint does not parse, is not signed
	// by the verifier key, disagrees with its own row, or is not a prefix of
	// the tree the records rebuild (the log was rewritten or cut after it was
	// signed).
	ProblemCheckpoint Problem = "checkpoint inconsistent"
	// ProblemNotExtended: the log does not extend the checkpoint kept
	// outside the service (VerifyOptions.Since).
	ProblemNotExtended Problem = "log does not extend the checkpoint"
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
	// TreeSize and Root are the Merkle tree the records rebuild, when one
	// chain was verified and its records verify (else 0 and nil).
	TreeSize int64
	Root     []byte
	// CheckpointsChecked counts the stored checkpoints proved to be
	// prefixes of that tree (so each also of the next).
	CheckpointsChecked uint64
	// SignaturesChecked says checkpoint signatures were checked; false
	// when Verify had no verifier key, so only sizes and roots were.
	SignaturesChecked bool
	// SinceChecked says the log was proved to extend VerifyOptions.Since.
	SinceChecked bool
}

// Message is the problem and its detail in one line, empty when OK.
func (r Report) Message() string {
	if r.OK {
		return ""
	}
	return string(r.Problem) + ": " + r.Detail
}

// VerifyOptions says what Verify checks beyond the records.
type VerifyOptions struct {
	// ChainID names the chain to verify; empty verifies every chain.
	ChainID string
	// Verifier checks the signatures of stored checkpoints and of Since.
	// Nil checks only their sizes and roots against the tree (the report's
	// SignaturesChecked is false): enough to prove the stored checkpoints
	// consistent, not that the service signed them.
	Verifier note.Verifier
	// OriginPrefix makes chain c's checkpoint origin
	// transparency.Origin(OriginPrefix, c); default
	// transparency.DefaultOriginPrefix.
	OriginPrefix string
	// Since is a signed checkpoint kept outside the service (a witness's
	// copy, a receipt's); Verify then also proves that the current log of
	// its chain extends it. Its origin names the chain, which must be
	// ChainID when that is set (else ErrInvalidArgument).
	Since []byte
}

// Verify is VerifyLog of chainID without a verifier key or an outside
// checkpoint.
func Verify(ctx context.Context, store Store, chainID string) (Report, error) {
	return VerifyLog(ctx, store, VerifyOptions{ChainID: chainID})
}

// VerifyLog reads one snapshot of store (Store.View), so it never reports a
// break that is only a commit landing between two reads, and checks each
// chain in it:
//
//   - the records: it walks them in seq order from seq 1, recomputes each
//     hash, checks each prev_hash link and that seq has no gap, then
//     compares the last record with the stored head, so a truncated tail is
//     reported too;
//   - the tree: it rebuilds the Merkle tree from the records (leaf seq-1 is
//     the record's hash) and compares it with the stored tree (size = head
//     seq, root, no hashes beyond it), so a tree table rewritten to hide a
//     change is caught, and a change made to records without the tree too;
//   - the checkpoints: every stored checkpoint must be a prefix of the
//     rebuilt tree (a consistency proof), which also makes each consistent
//     with the next; signatures are checked with opts.Verifier if given;
//   - opts.Since, a checkpoint kept outside the service: the rebuilt tree
//     must extend it. This is what detects an attacker who rewrote every
//     table consistently: he cannot make the log extend a checkpoint
//     signed before the tampering.
//
// It reports the first problem. A chain-break record (written when an
// operator accepted a broken tail at start) that links to the last intact
// record ends a damaged stretch: the walk verifies on from it, and the
// tree's leaves in that stretch are taken as stored (those records are not
// vouched for). A chain whose only fault is such a break is not OK: the
// report's Problem is ProblemAcceptedBreak, naming the break record (seq,
// decision id), who accepted it and when, the seqs left unverified and how
// many records after it verify. Any other problem wins over it. An empty
// ChainID verifies every chain and returns the first failing chain's report
// (or an OK report counting all records); a chain whose only fault is an
// accepted break does not stop the others from being verified, and is
// reported only if none fails otherwise. The error is for store failures
// and a malformed opts.Since (ErrInvalidArgument); a chain that does not
// verify is a Report with OK false.
func VerifyLog(ctx context.Context, store Store, opts VerifyOptions) (Report, error) {
	var since *transparency.Checkpoint
	sinceChain := ""
	if len(opts.Since) > 0 {
		cp, err := openCheckpoint(opts.Since, opts.Verifier)
		if err != nil {
			return Report{}, fmt.Errorf("since checkpoint: %w: %w", ErrInvalidArgument, err)
		}
		prefix := opts.OriginPrefix
		if prefix == "" {
			prefix = transparency.DefaultOriginPrefix
		}
		c, ok := strings.CutPrefix(cp.Origin, prefix+"/")
		if !ok || c == "" || (opts.ChainID != "" && c != opts.ChainID) {
			return Report{}, fmt.Errorf("since checkpoint is for %q, not a chain of this log (%s/<chain>) or not chain %q: %w",
				cp.Origin, prefix, opts.ChainID, ErrInvalidArgument)
		}
		since, sinceChain = &cp, c
	}
	var out Report
	err := store.View(ctx, func(v Snapshot) error {
		var err error
		if opts.ChainID != "" {
			out, err = verifyChain(ctx, v, opts.ChainID, opts, since)
			return err
		}
		chains, err := v.Chains(ctx)
		if err != nil {
			return fmt.Errorf("list audit chains: %w", err)
		}
		if since != nil && !slices.Contains(chains, sinceChain) {
			chains = append(chains, sinceChain) // a log that lost the whole chain does not extend it
		}
		total := Report{OK: true, SignaturesChecked: opts.Verifier != nil}
		var firstBreak *Report
		for _, c := range chains {
			cs := since
			if c != sinceChain {
				cs = nil
			}
			r, err := verifyChain(ctx, v, c, opts, cs)
			if err != nil {
				return err
			}
			total.RecordsChecked += r.RecordsChecked
			total.CheckpointsChecked += r.CheckpointsChecked
			total.SinceChecked = total.SinceChecked || r.SinceChecked
			if !r.OK && r.Problem != ProblemAcceptedBreak {
				r.RecordsChecked, r.CheckpointsChecked = total.RecordsChecked, total.CheckpointsChecked
				r.TreeSize, r.Root = 0, nil
				out = r
				return nil
			}
			if !r.OK && firstBreak == nil {
				firstBreak = &r // reported once every other chain verified
			}
		}
		out = total
		if firstBreak != nil {
			out = *firstBreak
			out.RecordsChecked, out.CheckpointsChecked, out.SinceChecked = total.RecordsChecked, total.CheckpointsChecked, total.SinceChecked
			out.TreeSize, out.Root = 0, nil
		}
		return nil
	})
	if err != nil {
		return Report{}, err
	}
	return out, nil
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
	// hashes[i] is the stored hash of the record with seq i+1, nil for a
	// seq with no record read: the leaves Verify rebuilds the tree from.
	hashes [][]byte
	ids    []string
}

// keep notes rec's hash as the leaf of its seq.
func (w *walk) keep(rec *Record) {
	seq := rec.GetSeq()
	if seq == 0 || seq > 1<<40 {
		return // no leaf; the walk reports the seq
	}
	for uint64(len(w.hashes)) < seq {
		w.hashes, w.ids = append(w.hashes, nil), append(w.ids, "")
	}
	w.hashes[seq-1], w.ids[seq-1] = rec.GetHash(), rec.GetDecisionId()
}

// chainReader is what walkChain reads: a Store or a Snapshot.
type chainReader interface {
	Chain(ctx context.Context, chainID string, fromSeq uint64, fn func(*Record) error) error
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
func walkChain(ctx context.Context, store chainReader, chainID string) (walk, error) {
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
				w.keep(rec)
				w.problem = nil
				w.checked++
				w.want, prev = rec.GetSeq()+1, rec.GetHash()
				w.lastGood = Head{ChainID: chainID, Seq: rec.GetSeq(), Hash: rec.GetHash()}
				return nil
			}
		}
		w.keep(rec)
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

func verifyChain(ctx context.Context, store Snapshot, chainID string, opts VerifyOptions, since *transparency.Checkpoint) (Report, error) {
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
	if !rep.OK && rep.Problem != ProblemAcceptedBreak {
		return rep, nil
	}
	return checkTree(ctx, store, rep, head, w, opts, since)
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
