package api

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/transparency"
)

// ReceiptErrorTrailer is the gRPC trailer a Decide or DecideBatch answer carries when it asked for a
// receipt (want_receipt) and got none: the decision was made and recorded, its receipt_json is empty,
// and the trailer's value says why (in a batch, one value per request without a receipt, prefixed
// "requests[i]: "). GetReceipt with wait fetches the receipt later.
const ReceiptErrorTrailer = "tollgate-receipt-error"

// CheckpointWaiter waits for the next signed checkpoint; *transparency.Checkpointer is the
// implementation.
type CheckpointWaiter interface {
	// WaitFor returns a checkpoint of chainID covering at least size leaves once one is signed; ctx's
	// error if ctx ends first, transparency.ErrClosed if the signer stops first.
	WaitFor(ctx context.Context, chainID string, size int64) (transparency.Checkpoint, error)
}

// Transparency is what receipts and the checkpoint listing read: the audit store (the chains' Merkle
// trees and their stored checkpoints), the signer to wait on, and the verifier key that checks every
// receipt before it leaves (nil skips the check).
type Transparency struct {
	Store    audit.Store
	Signer   CheckpointWaiter
	Verifier note.Verifier
	// OriginPrefix is the checkpoint origins' prefix; default transparency.DefaultOriginPrefix.
	OriginPrefix string
}

// WithTransparency configures ListCheckpoints and GetReceipt and returns s. Without it both answer
// FailedPrecondition. Call it before s serves.
func (s *AuditServer) WithTransparency(t *Transparency) *AuditServer {
	s.transparency = t
	return s
}

// WithReceipts lets callers ask for a receipt with a decision (want_receipt), proved by t, and returns
// s. In async audit mode (asyncAudit) the answer leaves before its record is committed, so a request
// with want_receipt is refused with FailedPrecondition before anything is evaluated: the caller asks
// GetReceipt with wait afterwards instead. Call it before s serves.
func (s *DecisionServer) WithReceipts(t *Transparency, asyncAudit bool) *DecisionServer {
	s.receipts, s.asyncAudit = t, asyncAudit
	return s
}

// checkWantReceipt refuses want_receipt where no receipt can be made; it runs before evaluation, so a
// refused request makes no decision.
func (s *DecisionServer) checkWantReceipt(req *tollgatev1.DecideRequest, field string) error {
	switch {
	case !req.GetWantReceipt():
		return nil
	case s.receipts == nil:
		return status.Errorf(codes.FailedPrecondition, "%swant_receipt: this server signs no audit checkpoints", field)
	case s.asyncAudit:
		return status.Errorf(codes.FailedPrecondition,
			"%swant_receipt needs --audit-mode sync: in async mode the answer leaves before its record is committed; ask GetReceipt with wait for the receipt afterwards",
			field)
	}
	return nil
}

// receiptMargin is the share of a call's remaining time a receipt may not wait for: the decision
// must still reach the caller before its deadline, with or without the receipt.
const (
	receiptMarginDivisor = 10
	maxReceiptMargin     = 250 * time.Millisecond
)

// attachReceipt waits, within ctx's deadline less a margin, for a checkpoint covering rec and sets
// resp.receipt_json. A receipt that cannot be had leaves the decision as it is, which was made and
// recorded, and returns why, for ReceiptErrorTrailer.
func (s *DecisionServer) attachReceipt(ctx context.Context, resp *tollgatev1.DecideResponse, rec *audit.Record) error {
	if rec == nil || rec.GetSeq() == 0 {
		return fmt.Errorf("decision %s: its record is not committed", resp.GetDecisionId())
	}
	if dl, ok := ctx.Deadline(); ok {
		margin := min(time.Until(dl)/receiptMarginDivisor, maxReceiptMargin)
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-margin))
		defer cancel()
	}
	r, _, err := s.receipts.receipt(ctx, rec, true)
	if err != nil {
		return err
	}
	b, err := r.Encode()
	if err != nil {
		return err
	}
	resp.ReceiptJson = string(b)
	return nil
}

// reportReceiptErrors sets ReceiptErrorTrailer to msgs, if any, and logs them.
func (s *DecisionServer) reportReceiptErrors(ctx context.Context, msgs []string) {
	if len(msgs) == 0 {
		return
	}
	md := metadata.MD{}
	md.Append(ReceiptErrorTrailer, msgs...)
	if err := grpc.SetTrailer(ctx, md); err != nil {
		s.log.Debug().Err(err).Msg("set receipt trailer")
	}
	for _, m := range msgs {
		s.log.Warn().Str("problem", m).Msg("decision answered without the receipt it asked for")
	}
}

// receiptMessage is the trailer text for a receipt that could not be had.
func receiptMessage(id string, err error) string {
	why := err.Error()
	if st, ok := status.FromError(err); ok {
		why = st.Message()
	}
	return fmt.Sprintf("no receipt for decision %s, which is made and recorded: %s; fetch it with GetReceipt (tollgatectl audit prove --wait %s)", id, why, id)
}

// receipt proves rec, a committed record, under a stored checkpoint covering it; with wait it waits
// for the next checkpoint when none covers it yet (FailedPrecondition without). The receipt is
// checked with the verifier key before it is returned, record body included, so a tree or checkpoint
// altered in the database is DataLoss here rather than a receipt that fails at the caller; a newest
// checkpoint signed by another key (before a key change) is FailedPrecondition.
func (t *Transparency) receipt(ctx context.Context, rec *audit.Record, wait bool) (transparency.Receipt, transparency.Checkpoint, error) {
	chain, seq, id := rec.GetChainId(), rec.GetSeq(), rec.GetDecisionId()
	cp, err := t.Store.LatestCheckpoint(ctx, chain)
	switch {
	case errors.Is(err, transparency.ErrNotFound):
		cp = transparency.Checkpoint{}
	case err != nil:
		return transparency.Receipt{}, transparency.Checkpoint{}, fmt.Errorf("read checkpoint of chain %s: %w", chain, err)
	}
	if uint64(cp.Size) < seq {
		if !wait {
			return transparency.Receipt{}, transparency.Checkpoint{}, status.Errorf(codes.FailedPrecondition,
				"no signed checkpoint covers decision %s (chain %s seq %d) yet (newest covers %d records); one is signed within the checkpoint interval: retry, or ask with wait",
				id, chain, seq, cp.Size)
		}
		if t.Signer == nil {
			return transparency.Receipt{}, transparency.Checkpoint{}, status.Error(codes.FailedPrecondition, "no checkpoint signer is running")
		}
		cp, err = t.Signer.WaitFor(ctx, chain, int64(seq))
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			return transparency.Receipt{}, transparency.Checkpoint{}, status.Errorf(codes.DeadlineExceeded,
				"no checkpoint covering decision %s (chain %s seq %d) was signed before the deadline", id, chain, seq)
		case errors.Is(err, transparency.ErrClosed):
			return transparency.Receipt{}, transparency.Checkpoint{}, status.Error(codes.Unavailable, "the checkpoint signer is stopping; retry")
		case err != nil:
			return transparency.Receipt{}, transparency.Checkpoint{}, err
		}
	}
	r, err := transparency.NewReceipt(ctx, audit.Hashes(t.Store), id, chain, seq, rec.GetHash(), cp)
	if err != nil {
		return transparency.Receipt{}, transparency.Checkpoint{}, fmt.Errorf("prove decision %s: %w", id, err)
	}
	if t.Verifier != nil {
		body, err := audit.CanonicalBody(rec)
		if err != nil {
			return transparency.Receipt{}, transparency.Checkpoint{}, err
		}
		_, err = transparency.VerifyReceiptRecord(r, t.Verifier, transparency.Origin(t.OriginPrefix, chain), body)
		if errors.Is(err, transparency.ErrBadSignature) {
			// Not tampering as such: the newest checkpoint predates a key change (or an ephemeral
			// key's run); the next one, signed once the chain grows, is this key's.
			return transparency.Receipt{}, transparency.Checkpoint{}, status.Errorf(codes.FailedPrecondition,
				"the newest checkpoint of chain %s (size %d) is not signed by this server's key %s (signed before a key change?); one with this key is signed after the next decision",
				chain, cp.Size, t.Verifier.Name())
		}
		if err != nil {
			return transparency.Receipt{}, transparency.Checkpoint{}, status.Errorf(codes.DataLoss,
				"the log does not prove decision %s (chain %s seq %d): %v; run audit verify", id, chain, seq, err)
		}
	}
	return r, cp, nil
}

// GetReceipt returns the receipt of one record: its leaf index, an inclusion proof and a stored signed
// checkpoint covering it. Any record of a chain has one, replay markers and chain-break records too:
// the receipt proves the record is in the log. With wait, a record no checkpoint covers yet waits for
// the next (bounded by the call's deadline); without, it is FailedPrecondition. An unknown id is
// NotFound.
func (s *AuditServer) GetReceipt(ctx context.Context, req *tollgatev1.GetReceiptRequest) (*tollgatev1.GetReceiptResponse, error) {
	if req.GetDecisionId() == "" {
		return nil, toStatus(s.log, badField("decision_id", "is required"))
	}
	if s.transparency == nil {
		return nil, status.Error(codes.FailedPrecondition, "this server signs no audit checkpoints")
	}
	rec, err := s.store.Get(ctx, req.GetDecisionId())
	if err != nil {
		return nil, toStatus(s.log, fmt.Errorf("decision %s: %w", req.GetDecisionId(), err))
	}
	r, cp, err := s.transparency.receipt(ctx, rec, req.GetWait())
	if err != nil {
		return nil, toStatus(s.log, err)
	}
	b, err := r.Encode()
	if err != nil {
		return nil, toStatus(s.log, err)
	}
	return &tollgatev1.GetReceiptResponse{ReceiptJson: string(b), Checkpoint: checkpointProto(rec.GetChainId(), cp)}, nil
}

// ListCheckpoints returns one page of a chain's stored checkpoints, newest first. chain_id may be
// omitted when the log has one chain. The page token names the tree size the page stopped at, so
// checkpoints signed while a reader pages come before the first page, never inside the walk.
func (s *AuditServer) ListCheckpoints(ctx context.Context, req *tollgatev1.ListCheckpointsRequest) (*tollgatev1.ListCheckpointsResponse, error) {
	if req.GetPageSize() < 0 {
		return nil, toStatus(s.log, badField("page_size", "must not be negative"))
	}
	chain := req.GetChainId()
	if chain == "" {
		chains, err := s.store.Chains(ctx)
		if err != nil {
			return nil, toStatus(s.log, fmt.Errorf("list chains: %w", err))
		}
		switch len(chains) {
		case 0:
			return &tollgatev1.ListCheckpointsResponse{}, nil
		case 1:
			chain = chains[0]
		default:
			return nil, toStatus(s.log, badField("chain_id", "is required: the log has %d chains", len(chains)))
		}
	}
	page, err := s.store.ListCheckpoints(ctx, audit.CheckpointQuery{ChainID: chain, PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken()})
	if errors.Is(err, audit.ErrInvalidArgument) {
		return nil, toStatus(s.log, badField("page_token", "malformed page token"))
	}
	if err != nil {
		return nil, toStatus(s.log, fmt.Errorf("list checkpoints of chain %s: %w", chain, err))
	}
	out := &tollgatev1.ListCheckpointsResponse{NextPageToken: page.NextPageToken}
	for _, cp := range page.Checkpoints {
		out.Checkpoints = append(out.Checkpoints, checkpointProto(chain, cp))
	}
	return out, nil
}

func checkpointProto(chain string, cp transparency.Checkpoint) *tollgatev1.Checkpoint {
	out := &tollgatev1.Checkpoint{
		ChainId:  chain,
		Origin:   cp.Origin,
		TreeSize: uint64(cp.Size),
		RootHash: cp.Root[:],
		Note:     string(cp.Note),
	}
	if !cp.SignedAt.IsZero() {
		out.SignedAt = timestamppb.New(cp.SignedAt)
	}
	return out
}
