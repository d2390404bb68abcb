package console

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/api"
)

// The parsers below turn the console's query and form parameters into API requests. They check form
// only (a time is a time, a page size a number); the server implementations check meaning, as they do
// for gRPC callers, and their InvalidArgument comes back as 400.

// maxParamBytes bounds one parameter, as api.Limits bounds a string of a request.
const maxParamBytes = api.DefaultMaxStringBytes

// param returns query parameter name, refusing one that is too long or not UTF-8.
func param(q url.Values, name string) (string, error) {
	v := strings.TrimSpace(q.Get(name))
	if len(v) > maxParamBytes {
		return "", fmt.Errorf("%s: longer than %d bytes", name, maxParamBytes)
	}
	if !utf8.ValidString(v) {
		return "", fmt.Errorf("%s: not UTF-8", name)
	}
	return v, nil
}

// timeParam parses an RFC 3339 time; "" is no bound.
func timeParam(q url.Values, name string) (*timestamppb.Timestamp, error) {
	v, err := param(q, name)
	if err != nil || v == "" {
		return nil, err
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return nil, fmt.Errorf("%s: want an RFC 3339 time such as 2026-01-02T15:04:05Z", name)
	}
	return timestamppb.New(t), nil
}

// effects are the effect names the search form offers, as tollgatectl audit list --effect takes them.
var effects = map[string]tollgatev1.Effect{
	"":                 tollgatev1.Effect_EFFECT_UNSPECIFIED,
	"ALLOW":            tollgatev1.Effect_EFFECT_ALLOW,
	"DENY":             tollgatev1.Effect_EFFECT_DENY,
	"REQUIRE_APPROVAL": tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL,
}

// listRequest reads decision search's filters: the flags of tollgatectl audit list.
func listRequest(q url.Values) (*tollgatev1.ListDecisionsRequest, error) {
	req := &tollgatev1.ListDecisionsRequest{}
	var err error
	if req.From, err = timeParam(q, "from"); err != nil {
		return nil, err
	}
	if req.To, err = timeParam(q, "to"); err != nil {
		return nil, err
	}
	for name, dst := range map[string]*string{
		"actor": &req.ActorId, "action": &req.Action, "resource_type": &req.ResourceType,
		"resource_id": &req.ResourceId, "reason": &req.ReasonCode, "bundle": &req.BundleRevision,
		"workflow": &req.WorkflowId, "page_token": &req.PageToken,
	} {
		if *dst, err = param(q, name); err != nil {
			return nil, err
		}
	}
	effect, err := param(q, "effect")
	if err != nil {
		return nil, err
	}
	e, ok := effects[strings.ToUpper(effect)]
	if !ok {
		return nil, fmt.Errorf("effect: want ALLOW, DENY or REQUIRE_APPROVAL, not %q", effect)
	}
	req.Effect = e
	limit, err := param(q, "limit")
	if err != nil {
		return nil, err
	}
	if limit != "" {
		n, err := strconv.ParseInt(limit, 10, 32)
		if err != nil || n < 1 || n > 1000 {
			return nil, fmt.Errorf("limit: want a page size from 1 to 1000")
		}
		req.PageSize = int32(n)
	}
	return req, nil
}

var granularities = map[string]tollgatev1.Granularity{
	"":     tollgatev1.Granularity_GRANULARITY_UNSPECIFIED,
	"hour": tollgatev1.Granularity_GRANULARITY_HOUR,
	"day":  tollgatev1.Granularity_GRANULARITY_DAY,
}

// insightsQuery reads the overview's range, bucket width and filters. Unset bounds take the
// InsightsService defaults (the last 30 days).
func insightsQuery(q url.Values) (*tollgatev1.InsightsQuery, error) {
	out := &tollgatev1.InsightsQuery{}
	var err error
	if out.From, err = timeParam(q, "from"); err != nil {
		return nil, err
	}
	if out.To, err = timeParam(q, "to"); err != nil {
		return nil, err
	}
	g, err := param(q, "granularity")
	if err != nil {
		return nil, err
	}
	var ok bool
	if out.Granularity, ok = granularities[strings.ToLower(g)]; !ok {
		return nil, fmt.Errorf("granularity: want hour or day, not %q", g)
	}
	if out.Action, err = param(q, "action"); err != nil {
		return nil, err
	}
	if out.SiteId, err = param(q, "site"); err != nil {
		return nil, err
	}
	return out, nil
}

// decisionID checks the form of a decision id from the path: a ULID is 26 characters of Crockford's
// base32, but records from other writers may use other ids, so only length and characters are checked.
func decisionID(id string) (string, error) {
	if id == "" || len(id) > 128 {
		return "", fmt.Errorf("decision id: want 1 to 128 characters")
	}
	for _, r := range id {
		if !(r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r == '-' || r == '_' || r == '.' || r == ':') {
			return "", fmt.Errorf("decision id: %q has a character ids do not have", id)
		}
	}
	return id, nil
}

// chainID reads the optional chain to verify; "" verifies every chain.
func chainID(q url.Values) (string, error) {
	return param(q, "chain")
}

// impactLast reads how many of the newest decisions an impact analysis re-evaluates; "" is the API's
// default.
func impactLast(v string) (int32, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil || n < 1 || n > api.MaxImpactLast {
		return 0, fmt.Errorf("last: want a number of decisions from 1 to %d", api.MaxImpactLast)
	}
	return int32(n), nil
}

func tooLarge(limit int64) string {
	return fmt.Sprintf("bundle: larger than the %d MiB a candidate bundle may have", limit>>20)
}
