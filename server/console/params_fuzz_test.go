package console

import (
	"net/url"
	"testing"
	"unicode/utf8"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/api"
)

// FuzzParams feeds outside input, a query string and a path segment and form values as a browser or
// anyone else may send them, to every parser of the console: none may panic, and what they accept is
// within the bounds the server implementations are then asked about.
func FuzzParams(f *testing.F) {
	f.Add("from=2026-01-02T00:00:00Z&to=2026-01-03T00:00:00Z&effect=deny&limit=50&actor=u_buyer1", "01HZX3K4J5M6N7P8Q9R0S1T2V3", "1000", "Bearer abc")
	f.Add("granularity=hour&site=DC1&action=PO.SUBMIT", "", "", "")
	f.Add("effect=MAYBE&limit=0&from=yesterday", "../../etc/passwd", "-1", "bearer ")
	f.Add("limit=99999999999999999999&to=2026-13-40T00:00:00Z&granularity=week", "a b", "100001", "\xff")
	f.Fuzz(func(t *testing.T, query, id, last, token string) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return // net/http refuses such a query before it reaches a handler
		}
		if req, err := listRequest(q); err == nil {
			if req.GetPageSize() < 0 || req.GetPageSize() > 1000 {
				t.Errorf("page size %d accepted", req.GetPageSize())
			}
			if _, ok := tollgatev1.Effect_name[int32(req.GetEffect())]; !ok {
				t.Errorf("effect %d accepted", req.GetEffect())
			}
			for _, s := range []string{req.GetActorId(), req.GetAction(), req.GetResourceType(), req.GetResourceId(), req.GetReasonCode(), req.GetBundleRevision(), req.GetWorkflowId(), req.GetPageToken()} {
				if len(s) > maxParamBytes || !utf8.ValidString(s) {
					t.Errorf("filter %q accepted", s)
				}
			}
		}
		if iq, err := insightsQuery(q); err == nil {
			if _, ok := tollgatev1.Granularity_name[int32(iq.GetGranularity())]; !ok {
				t.Errorf("granularity %d accepted", iq.GetGranularity())
			}
		}
		if got, err := decisionID(id); err == nil && (got == "" || len(got) > 128 || got != id) {
			t.Errorf("decision id %q accepted as %q", id, got)
		}
		if n, err := impactLast(last); err == nil && (n < 0 || n > api.MaxImpactLast) {
			t.Errorf("last %q accepted as %d", last, n)
		}
		if got := bearerToken(token); len(got) > len(token) {
			t.Errorf("token %q grew to %q", token, got)
		}
	})
}
