package authzen

import (
	"net/http"
)

// Metadata is the PDP metadata document (§9). Only what Tollgate serves is listed: parameters with no
// value are omitted, as the specification requires, so no search endpoint and no capability URN (the
// Access Request & Approval profile's needs an access_request_endpoint Tollgate does not have).
type Metadata struct {
	// PolicyDecisionPoint is the PDP's identifier: the URL the document was fetched from, without the
	// well-known path.
	PolicyDecisionPoint       string `json:"policy_decision_point"`
	AccessEvaluationEndpoint  string `json:"access_evaluation_endpoint"`
	AccessEvaluationsEndpoint string `json:"access_evaluations_endpoint"`
}

// serveMetadata answers the metadata document with absolute URLs built from the request's scheme and
// Host, so the document names the address the client reached (through a port mapping or a proxy that
// keeps Host) and the client's check that policy_decision_point equals that URL holds. It needs no
// credentials: it says nothing about policy.
func (h *Handler) serveMetadata(w http.ResponseWriter, r *http.Request) {
	echoRequestID(w, r)
	base := "http://" + r.Host
	if r.TLS != nil {
		base = "https://" + r.Host
	}
	w.Header().Set("Cache-Control", "max-age=300")
	writeJSON(w, Metadata{
		PolicyDecisionPoint:       base,
		AccessEvaluationEndpoint:  base + EvaluationPath,
		AccessEvaluationsEndpoint: base + EvaluationsPath,
	})
}
