package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// ChainBreakError is NewWriter's refusal to start on a chain whose stored
// tail does not verify. It names the chain, what was found and the seqs and
// record involved. It wraps ErrCorrupt.
type ChainBreakError struct {
	ChainID string
	// Problem says what was found, e.g. "records after seq 41 are missing:
	// the head names seq 57".
	Problem string
	// Head is the stored head; LastSeq, LastHash and LastDecisionID the
	// record with the highest seq (zero if there is none).
	Head           Head
	LastSeq        uint64
	LastHash       []byte
	LastDecisionID string
	// FirstBadSeq and FirstBadDecisionID name the record found not to
	// verify, if one was; unset for a missing tail or a head that disagrees.
	FirstBadSeq        uint64
	FirstBadDecisionID string
}

func (e *ChainBreakError) Error() string {
	msg := fmt.Sprintf("audit chain %s is broken: %s (stored head seq %d, last record seq %d", e.ChainID, e.Problem, e.Head.Seq, e.LastSeq)
	if e.LastDecisionID != "" {
		msg += " decision " + e.LastDecisionID
	}
	if e.FirstBadDecisionID != "" {
		msg += fmt.Sprintf(", first bad record seq %d decision %s", e.FirstBadSeq, e.FirstBadDecisionID)
	}
	return msg + ")"
}

// Unwrap makes errors.Is(err, ErrCorrupt) hold.
func (e *ChainBreakError) Unwrap() error { return ErrCorrupt }

// checkTail loads chainID's stored head and checks the chain's tail: the
// last record hashes to its stored hash, links to the record before it
// (seq and prev_hash), and is the record the head names. It returns the
// head and, if the tail does not hold, what is wrong. Only the last two
// records are read, so a start costs the same on any size of log; Verify
// checks the rest.
func checkTail(ctx context.Context, store Store, chainID string) (Head, *ChainBreakError, error) {
	head, err := store.Head(ctx, chainID)
	if err != nil {
		return Head{}, nil, fmt.Errorf("load audit chain head %s: %w", chainID, err)
	}
	brk := &ChainBreakError{ChainID: chainID, Head: head}
	last, err := store.Last(ctx, chainID)
	var ie *IntegrityError
	switch {
	case errors.Is(err, ErrNotFound):
		if head.Seq == 0 {
			return head, nil, nil
		}
		brk.Problem = fmt.Sprintf("the head names seq %d but the chain has no records", head.Seq)
		return head, brk, nil
	case errors.As(err, &ie):
		brk.Problem = "the last record cannot be read: " + ie.Problem
		brk.FirstBadSeq, brk.FirstBadDecisionID = ie.Seq, ie.DecisionID
		return head, brk, nil
	case errors.Is(err, ErrCorrupt):
		brk.Problem = "the last record cannot be read: " + err.Error()
		return head, brk, nil
	case err != nil:
		return Head{}, nil, fmt.Errorf("load last audit record %s: %w", chainID, err)
	}
	brk.LastSeq, brk.LastHash, brk.LastDecisionID = last.GetSeq(), last.GetHash(), last.GetDecisionId()
	bad := func(format string, args ...any) (Head, *ChainBreakError, error) {
		brk.Problem = fmt.Sprintf(format, args...)
		brk.FirstBadSeq, brk.FirstBadDecisionID = last.GetSeq(), last.GetDecisionId()
		return head, brk, nil
	}
	if h, err := Hash(last); err != nil || !bytes.Equal(h, last.GetHash()) || last.GetChainId() != chainID {
		return bad("the last record (seq %d) does not hash to its stored hash", last.GetSeq())
	}
	prevHash := GenesisHash()
	if last.GetSeq() > 1 {
		var prev *Record
		stop := errors.New("stop")
		err := store.Chain(ctx, chainID, last.GetSeq()-1, func(r *Record) error { prev = r; return stop })
		switch {
		case errors.As(err, &ie):
			brk.Problem = "the record before the last cannot be read: " + ie.Problem
			brk.FirstBadSeq, brk.FirstBadDecisionID = ie.Seq, ie.DecisionID
			return head, brk, nil
		case err != nil && !errors.Is(err, stop):
			return Head{}, nil, fmt.Errorf("read audit chain %s: %w", chainID, err)
		case prev == nil || prev.GetSeq() != last.GetSeq()-1:
			return bad("seq %d, before the last record, is missing", last.GetSeq()-1)
		}
		prevHash = prev.GetHash()
	}
	if !bytes.Equal(last.GetPrevHash(), prevHash) {
		return bad("the last record (seq %d) does not link to the record before it", last.GetSeq())
	}
	switch {
	case last.GetSeq() > head.Seq:
		brk.Problem = fmt.Sprintf("records up to seq %d lie beyond the head's seq %d", last.GetSeq(), head.Seq)
	case last.GetSeq() < head.Seq:
		brk.Problem = fmt.Sprintf("records after seq %d are missing: the head names seq %d", last.GetSeq(), head.Seq)
	case !bytes.Equal(head.Hash, last.GetHash()):
		brk.Problem = fmt.Sprintf("the head's hash %s is not the last record's hash %s", short(head.Hash), short(last.GetHash()))
	default:
		return head, nil, nil
	}
	return head, brk, nil
}

// writeChainBreak appends the RECORD_KIND_CHAIN_BREAK record of an accepted
// break and returns the new head.
//
// How it links: its seq is one above everything stored (the head's seq and
// the last record's, whichever is higher), so no stored row, intact or not,
// is overwritten or hidden, and seqs only grow; its prev_hash is the hash of
// the last intact record (the last record Verify walks to before its first
// problem; GenesisHash if there is none). Verify accepts exactly that link
// after a damaged stretch, reports the break with who accepted it and when,
// and verifies the records after it as usual. The damaged records stay in
// the store, unverified.
func writeChainBreak(ctx context.Context, store Store, brk *ChainBreakError, acceptedBy string, now time.Time) (Head, error) {
	w, err := walkChain(ctx, store, brk.ChainID)
	if err != nil {
		return Head{}, err
	}
	intact := w.lastGood
	if w.problem != nil && w.problem.FirstBadDecisionID != "" && brk.FirstBadDecisionID == "" {
		brk.FirstBadSeq, brk.FirstBadDecisionID = w.problem.FirstBadSeq, w.problem.FirstBadDecisionID
	}
	if w.problem != nil && w.problem.FirstBadSeq != 0 && w.problem.FirstBadSeq < brk.FirstBadSeq {
		// The walk found damage before the tail: the break covers from there.
		brk.FirstBadSeq, brk.FirstBadDecisionID = w.problem.FirstBadSeq, w.problem.FirstBadDecisionID
	}
	seq := max(brk.Head.Seq, brk.LastSeq) + 1
	rec := &Record{
		DecisionId:  fmt.Sprintf("chain-break-%s-%d", brk.ChainID, seq),
		ChainId:     brk.ChainID,
		Kind:        tollgatev1.RecordKind_RECORD_KIND_CHAIN_BREAK,
		EvaluatedAt: timestamppb.New(now),
		Caller:      acceptedBy,
		ChainBreak: &tollgatev1.ChainBreak{
			Problem:            brk.Problem,
			AcceptedBy:         acceptedBy,
			HeadSeq:            brk.Head.Seq,
			HeadHash:           brk.Head.Hash,
			LastSeq:            brk.LastSeq,
			LastHash:           brk.LastHash,
			FirstBadSeq:        brk.FirstBadSeq,
			FirstBadDecisionId: brk.FirstBadDecisionID,
		},
	}
	prev := intact.Hash
	if intact.Seq == 0 {
		prev = GenesisHash()
	}
	body, err := seal(rec, seq, prev)
	if err != nil {
		return Head{}, err
	}
	if err := store.Append(ctx, storedHead(brk.Head), []Entry{{Record: rec, Body: body}}); err != nil {
		return Head{}, fmt.Errorf("write chain-break record of audit chain %s: %w", brk.ChainID, err)
	}
	return Head{ChainID: brk.ChainID, Seq: seq, Hash: rec.GetHash()}, nil
}

// operator names who accepted a chain break: the OS user and host of this
// process, "user@host".
func operator() string {
	name := "unknown-user"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return name + "@" + host
}
