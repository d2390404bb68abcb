package tollgate

import (
	"context"
	"fmt"
	"iter"

	"google.golang.org/protobuf/proto"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// ListDecisions returns one page of decision records matching req's filters,
// newest first (evaluated_at, then decision_id, descending). Pass the
// response's next_page_token as req.page_token, with the same filters, for
// the next page; it is empty on the last page. A malformed page token fails
// with InvalidArgument. [Client.DecisionPages] follows the pages for you.
func (c *Client) ListDecisions(ctx context.Context, req *tollgatev1.ListDecisionsRequest) (*tollgatev1.ListDecisionsResponse, error) {
	return c.audit.ListDecisions(ctx, req)
}

// DecisionPages calls ListDecisions from req's page token on and yields each
// page in turn, newest first, until the last page or the first error, which it
// yields with a nil page and then stops. req is not modified; nil lists
// everything. A server that
// hands back a page token it already gave ends the walk with an error rather
// than looping. The walk is not a snapshot: each page is read when the
// iteration reaches it.
func (c *Client) DecisionPages(ctx context.Context, req *tollgatev1.ListDecisionsRequest) iter.Seq2[*tollgatev1.ListDecisionsResponse, error] {
	return func(yield func(*tollgatev1.ListDecisionsResponse, error) bool) {
		req := proto.CloneOf(req)
		if req == nil {
			req = &tollgatev1.ListDecisionsRequest{}
		}
		seen := make(map[string]bool)
		for {
			resp, err := c.audit.ListDecisions(ctx, req)
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
				yield(nil, fmt.Errorf("list decisions: server repeated page token %q", next))
				return
			}
			seen[next] = true
			req.PageToken = next
		}
	}
}

// ExportDecisions returns one page of decision records in commit order: by
// chain id, then seq (oldest first within a chain). Pass the response's
// next_page_token as req.page_token, with the same filters, for the next
// page; it is empty once every chain has been read to its end. The token
// names a chain position, so records committed while you page are on later
// pages, never skipped. A malformed token fails with InvalidArgument.
// [Client.ExportPages] follows the pages for you.
func (c *Client) ExportDecisions(ctx context.Context, req *tollgatev1.ExportDecisionsRequest) (*tollgatev1.ExportDecisionsResponse, error) {
	return c.audit.ExportDecisions(ctx, req)
}

// ExportPages calls ExportDecisions from req's page token on and yields each
// page in turn, in commit order, until the last page or the first error,
// which it yields with a nil page and then stops. req is not modified; nil
// exports every chain. A server that hands back a page token it already gave
// ends the walk with an error rather than looping.
func (c *Client) ExportPages(ctx context.Context, req *tollgatev1.ExportDecisionsRequest) iter.Seq2[*tollgatev1.ExportDecisionsResponse, error] {
	return func(yield func(*tollgatev1.ExportDecisionsResponse, error) bool) {
		req := proto.CloneOf(req)
		if req == nil {
			req = &tollgatev1.ExportDecisionsRequest{}
		}
		seen := make(map[string]bool)
		for {
			resp, err := c.audit.ExportDecisions(ctx, req)
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
				yield(nil, fmt.Errorf("export decisions: server repeated page token %q", next))
				return
			}
			seen[next] = true
			req.PageToken = next
		}
	}
}

// GetDecision returns the record of one decision; an unknown id is a
// NotFound status error.
func (c *Client) GetDecision(ctx context.Context, decisionID string) (*tollgatev1.DecisionRecord, error) {
	resp, err := c.audit.GetDecision(ctx, &tollgatev1.GetDecisionRequest{DecisionId: decisionID})
	if err != nil {
		return nil, err
	}
	if resp.GetRecord() == nil {
		return nil, fmt.Errorf("get decision %s: server answered without a record", decisionID)
	}
	return resp.GetRecord(), nil
}

// VerifyLog walks the hash chain chainID ("" for every chain) on the server
// and reports the first record that does not verify. A chain that does not
// verify is a response with ok false, not an error; errors are for a call
// that could not be made or an unknown chain.
func (c *Client) VerifyLog(ctx context.Context, chainID string) (*tollgatev1.VerifyLogResponse, error) {
	return c.audit.VerifyLog(ctx, &tollgatev1.VerifyLogRequest{ChainId: chainID})
}

// ReplayDecision has the server re-evaluate a recorded decision with its
// bundle revision, evaluation time and recorded facts and compare the result
// with the record. A different result is a response with identical false and
// the differences listed, not an error; errors are for a decision that
// cannot be replayed (NotFound, a bundle revision no longer stored).
func (c *Client) ReplayDecision(ctx context.Context, decisionID string) (*tollgatev1.ReplayDecisionResponse, error) {
	return c.audit.ReplayDecision(ctx, &tollgatev1.ReplayDecisionRequest{DecisionId: decisionID})
}
