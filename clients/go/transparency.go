package tollgate

import (
	"context"
	"fmt"
	"iter"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// ReceiptErrorTrailer is the gRPC trailer in which the server says why a decision that asked for a
// receipt (want_receipt) came without one.
const ReceiptErrorTrailer = "tollgate-receipt-error"

// DecideWithReceipt asks for one decision with its receipt: want_receipt is set on a copy of req, and
// the server answers after a signed checkpoint covers the decision's record (within about one
// checkpoint interval). When err is nil the decision was made and recorded; its receipt is
// resp.receipt_json, which `tollgatectl audit verify-receipt` checks offline. If the server could not
// produce the receipt before the deadline, receipt_json is empty and missing says why: fetch the
// receipt later with GetReceipt (wait true). A server in async audit mode refuses want_receipt with
// FailedPrecondition, deciding nothing.
func (c *Client) DecideWithReceipt(ctx context.Context, req *tollgatev1.DecideRequest) (resp *tollgatev1.DecideResponse, missing string, err error) {
	req = proto.CloneOf(req)
	if req == nil {
		req = &tollgatev1.DecideRequest{}
	}
	req.WantReceipt = true
	var trailer metadata.MD
	resp, err = c.decisions.Decide(ctx, req, grpc.Trailer(&trailer))
	if err != nil {
		return nil, "", err
	}
	if resp.GetReceiptJson() == "" {
		missing = strings.Join(trailer.Get(ReceiptErrorTrailer), "; ")
		if missing == "" {
			missing = "the server sent no receipt and no reason"
		}
	}
	return resp, missing, nil
}

// GetReceipt returns the receipt of a recorded decision (or any record of the log): its leaf index,
// an inclusion proof and a signed checkpoint that covers it, as receipt_json, with that checkpoint.
// With wait, a record no checkpoint covers yet waits for the next one, within ctx's deadline; without,
// it fails with FailedPrecondition. An unknown id is NotFound.
func (c *Client) GetReceipt(ctx context.Context, decisionID string, wait bool) (*tollgatev1.GetReceiptResponse, error) {
	resp, err := c.audit.GetReceipt(ctx, &tollgatev1.GetReceiptRequest{DecisionId: decisionID, Wait: wait})
	if err != nil {
		return nil, err
	}
	if resp.GetReceiptJson() == "" {
		return nil, fmt.Errorf("get receipt %s: server answered without a receipt", decisionID)
	}
	return resp, nil
}

// ListCheckpoints returns one page of a chain's signed checkpoints, newest first. chain_id may be
// empty when the log has one chain. Pass next_page_token as req.page_token for the next page.
// [Client.CheckpointPages] follows the pages for you.
func (c *Client) ListCheckpoints(ctx context.Context, req *tollgatev1.ListCheckpointsRequest) (*tollgatev1.ListCheckpointsResponse, error) {
	return c.audit.ListCheckpoints(ctx, req)
}

// CheckpointPages calls ListCheckpoints from req's page token on and yields each page in turn,
// newest first, until the last page or the first error, which it yields with a nil page and then
// stops. req is not modified. A server that hands back a page token it already gave ends the walk
// with an error rather than looping.
func (c *Client) CheckpointPages(ctx context.Context, req *tollgatev1.ListCheckpointsRequest) iter.Seq2[*tollgatev1.ListCheckpointsResponse, error] {
	return func(yield func(*tollgatev1.ListCheckpointsResponse, error) bool) {
		req := proto.CloneOf(req)
		if req == nil {
			req = &tollgatev1.ListCheckpointsRequest{}
		}
		seen := make(map[string]bool)
		for {
			resp, err := c.audit.ListCheckpoints(ctx, req)
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(resp, nil) {
				return
			}
			next := resp.GetNextPageToken()
			if next == "" {
				return
			}
			if seen[next] {
				yield(nil, fmt.Errorf("list checkpoints: server repeated page token %q", next))
				return
			}
			seen[next] = true
			req.PageToken = next
		}
	}
}
