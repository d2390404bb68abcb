package console

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// jsonOptions render protos as the API's field names (decision_id, not decisionId), so the pages read
// the same names as tollgatectl's JSON output.
var jsonOptions = protojson.MarshalOptions{UseProtoNames: true}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// protoJSON is a proto rendered for a JSON response; nil renders as null.
func protoJSON(m proto.Message) json.RawMessage {
	if m == nil {
		return json.RawMessage("null")
	}
	b, err := jsonOptions.Marshal(m)
	if err != nil {
		// Only an invalid UTF-8 string can fail here; the API never returns one.
		return json.RawMessage("null")
	}
	return b
}

// httpStatus maps the gRPC code a server implementation answered with to the console's HTTP status.
// The implementations already hide internals behind Internal, so their messages are shown as they are.
var httpStatus = map[codes.Code]int{
	codes.InvalidArgument:    http.StatusBadRequest,
	codes.OutOfRange:         http.StatusBadRequest,
	codes.NotFound:           http.StatusNotFound,
	codes.AlreadyExists:      http.StatusConflict,
	codes.FailedPrecondition: http.StatusConflict,
	codes.PermissionDenied:   http.StatusForbidden,
	codes.Unauthenticated:    http.StatusUnauthorized,
	codes.ResourceExhausted:  http.StatusTooManyRequests,
	codes.Unavailable:        http.StatusServiceUnavailable,
	codes.DeadlineExceeded:   http.StatusGatewayTimeout,
	codes.Canceled:           499, // the browser went away; nobody reads this
	codes.Unimplemented:      http.StatusNotImplemented,
}

func (c *Console) writeCallError(w http.ResponseWriter, what string, err error) {
	st := status.Convert(err)
	code, ok := httpStatus[st.Code()]
	if !ok {
		c.log.Error().Err(err).Str("call", what).Msg("console call failed")
		writeError(w, http.StatusInternalServerError, what+": internal error")
		return
	}
	writeError(w, code, what+": "+st.Message())
}

func (c *Console) apiSession(w http.ResponseWriter, _ *http.Request, sess *session) {
	writeJSON(w, http.StatusOK, map[string]any{
		"caller": sess.caller, "csrf_token": sess.csrf, "open": c.cfg.Auth.Open(), "insights": c.cfg.Insights != nil,
		"max_upload_bytes": c.cfg.MaxUploadBytes,
	})
}

func (c *Console) apiListDecisions(w http.ResponseWriter, r *http.Request, _ *session) {
	req, err := listRequest(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	resp, err := c.cfg.Audit.ListDecisions(r.Context(), req)
	if err != nil {
		c.writeCallError(w, "list decisions", err)
		return
	}
	writeJSON(w, http.StatusOK, protoJSON(resp))
}

// apiGetDecision answers the record and, when a signed checkpoint covers it, its receipt; why there is
// none otherwise (no checkpoints signed, or none yet covering the record) goes in receipt_note.
func (c *Console) apiGetDecision(w http.ResponseWriter, r *http.Request, _ *session) {
	id, err := decisionID(r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	got, err := c.cfg.Audit.GetDecision(r.Context(), &tollgatev1.GetDecisionRequest{DecisionId: id})
	if err != nil {
		c.writeCallError(w, "get decision", err)
		return
	}
	out := map[string]any{"record": protoJSON(got.GetRecord())}
	receipt, err := c.cfg.Audit.GetReceipt(r.Context(), &tollgatev1.GetReceiptRequest{DecisionId: id})
	switch st := status.Convert(err); {
	case err == nil:
		out["receipt"] = protoJSON(receipt)
	case st.Code() == codes.FailedPrecondition:
		out["receipt_note"] = st.Message()
	default:
		c.writeCallError(w, "get receipt", err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (c *Console) apiReplay(w http.ResponseWriter, r *http.Request, sess *session) {
	id, err := decisionID(r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	resp, err := c.cfg.Audit.ReplayDecision(r.Context(), &tollgatev1.ReplayDecisionRequest{DecisionId: id})
	if err != nil {
		c.writeCallError(w, "replay", err)
		return
	}
	c.log.Info().Str("caller", sess.caller).Str("decision_id", id).Bool("identical", resp.GetIdentical()).Msg("console replay")
	writeJSON(w, http.StatusOK, protoJSON(resp))
}

func (c *Console) apiVerify(w http.ResponseWriter, r *http.Request, _ *session) {
	chain, err := chainID(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	resp, err := c.cfg.Audit.VerifyLog(r.Context(), &tollgatev1.VerifyLogRequest{ChainId: chain})
	if err != nil {
		c.writeCallError(w, "verify log", err)
		return
	}
	writeJSON(w, http.StatusOK, protoJSON(resp))
}

func (c *Console) apiBundles(w http.ResponseWriter, r *http.Request, _ *session) {
	resp, err := c.cfg.Policy.Status(r.Context(), &tollgatev1.PolicyServiceStatusRequest{})
	if err != nil {
		c.writeCallError(w, "policy status", err)
		return
	}
	writeJSON(w, http.StatusOK, protoJSON(resp))
}

// apiImpact runs an impact analysis of an uploaded candidate bundle (multipart field "bundle", at most
// MaxUploadBytes) over the newest "last" decisions. Nothing is activated or kept.
func (c *Console) apiImpact(w http.ResponseWriter, r *http.Request, sess *session) {
	// The multipart framing around the file is small; the file itself is checked exactly below.
	r.Body = http.MaxBytesReader(w, r.Body, c.cfg.MaxUploadBytes+64<<10)
	file, _, err := r.FormFile("bundle")
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, tooLarge(c.cfg.MaxUploadBytes))
			return
		}
		writeError(w, http.StatusBadRequest, "bundle: upload a candidate bundle (.tar.gz) as the form field bundle")
		return
	}
	defer file.Close()
	data, err := io.ReadAll(io.LimitReader(file, c.cfg.MaxUploadBytes+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bundle: read upload: "+err.Error())
		return
	}
	if int64(len(data)) > c.cfg.MaxUploadBytes {
		writeError(w, http.StatusRequestEntityTooLarge, tooLarge(c.cfg.MaxUploadBytes))
		return
	}
	last, err := impactLast(r.PostFormValue("last"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	resp, err := c.cfg.Audit.ImpactAnalysis(r.Context(), &tollgatev1.ImpactAnalysisRequest{Bundle: data, Last: last})
	if err != nil {
		c.writeCallError(w, "impact analysis", err)
		return
	}
	c.log.Info().Str("caller", sess.caller).Str("candidate_revision", resp.GetCandidateRevision()).
		Uint64("changed", resp.GetChanged()).Uint64("total", resp.GetTotal()).Msg("console impact analysis")
	writeJSON(w, http.StatusOK, protoJSON(resp))
}

// apiOverview answers every insights figure for one range in one response, so the overview's charts
// and tables agree on the range and on when they were read.
func (c *Console) apiOverview(w http.ResponseWriter, r *http.Request, _ *session) {
	if c.cfg.Insights == nil {
		writeJSON(w, http.StatusOK, map[string]any{"available": false,
			"reason": "insights not available: this service runs no InsightsService"})
		return
	}
	q, err := insightsQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	out, what, err := c.overview(r.Context(), q)
	if err != nil {
		c.writeCallError(w, what, err)
		return
	}
	out["available"] = true
	writeJSON(w, http.StatusOK, out)
}

func (c *Console) overview(ctx context.Context, q *tollgatev1.InsightsQuery) (map[string]any, string, error) {
	in := c.cfg.Insights
	out := map[string]any{"query": protoJSON(q)}
	calls := []struct {
		key  string
		call func() (proto.Message, error)
	}{
		{"volume", func() (proto.Message, error) { return in.GetVolume(ctx, &tollgatev1.GetVolumeRequest{Query: q}) }},
		{"exceptions", func() (proto.Message, error) {
			return in.GetExceptions(ctx, &tollgatev1.GetExceptionsRequest{Query: q})
		}},
		{"approvals", func() (proto.Message, error) {
			return in.GetApprovals(ctx, &tollgatev1.GetApprovalsRequest{Query: q})
		}},
		{"autonomy", func() (proto.Message, error) { return in.GetAutonomy(ctx, &tollgatev1.GetAutonomyRequest{Query: q}) }},
		{"retries", func() (proto.Message, error) { return in.GetRetries(ctx, &tollgatev1.GetRetriesRequest{Query: q}) }},
		{"delays", func() (proto.Message, error) {
			return in.GetApprovalDelays(ctx, &tollgatev1.GetApprovalDelaysRequest{Query: q})
		}},
		{"sla_breaches", func() (proto.Message, error) {
			return in.ListSLABreaches(ctx, &tollgatev1.ListSLABreachesRequest{From: q.GetFrom(), To: q.GetTo(),
				Action: q.GetAction(), SiteId: q.GetSiteId(), PageSize: slaPageSize})
		}},
		{"policy_changes", func() (proto.Message, error) {
			return in.ListPolicyChanges(ctx, &tollgatev1.ListPolicyChangesRequest{Query: q})
		}},
	}
	for _, call := range calls {
		m, err := call.call()
		if err != nil {
			return nil, call.key, err
		}
		out[call.key] = protoJSON(m)
	}
	return out, "", nil
}

// slaPageSize is how many open approvals past their SLA the overview lists; the total counts them all.
const slaPageSize = 20
