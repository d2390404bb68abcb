package authzen

import (
	"encoding/json"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"
)

// fuzzSeeds are request bodies the decoding must handle: the Todo scenario's and the README's shapes,
// defaults with items, every reserved key, and the malformed.
var fuzzSeeds = []string{
	`{"subject":{"type":"user","id":"CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"},"action":{"name":"can_update_todo"},"resource":{"type":"todo","id":"7240d0db","properties":{"ownerID":"rick@the-citadel.com"}}}`,
	`{"subject":{"type":"user","id":"u_buyer1","properties":{"on_behalf_of":"u_pm1","dept":7}},"action":{"name":"PO.SUBMIT","properties":{"method":"POST"}},"resource":{"type":"purchase_order","id":"PO-1","properties":{"amount":"8000.00","lines":[{"qty":2}],"flag":true,"none":null}},"context":{"workflow_id":"wf-77","n":1e400,"idempotency_key":"k"}}`,
	`{"subject":{"type":"agent","id":"agent_alloc"},"action":{"name":"ALLOCATION.CREATE"},"resource":{"type":"allocation","id":"AL-1"},"context":{"ai":{"use_case":"u","mode":"EXECUTE","confidence":0.95,"explanation":"e","model_version":"m"}}}`,
	`{"subject":{"type":"user","id":"a"},"action":{"name":"can_read"},"options":{"evaluations_semantic":"deny_on_first_deny"},"evaluations":[{"resource":{"type":"doc","id":"1"}},{"subject":{"type":"robot","id":"b"}},5,{"context":{"ai":{"mode":"NOPE"}}}]}`,
	`{"evaluations":[],"subject":{"type":"service","id":"s"},"action":{"name":"x"},"resource":{"type":"t","id":"i"},"context":{"ai":{"confidence":"high"}}}`,
	`{"subject":5}`, `[]`, `{`, ``, `{} {}`, `{"context":{"idempotency_key":7}}`,
}

// FuzzDecode checks the HTTP JSON decoding (DecodeEvaluation, DecodeEvaluations and Item) and the
// mapping to a decision request on any body: an input is either refused with a *requestError (the 400
// of the endpoints) or mapped to a request that names a known actor type, an actor, an action and a
// resource, that protobuf can encode (what the decision service's size check needs), and that the
// same evaluation sent again as JSON maps to identically.
func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if e, err := DecodeEvaluation(body); checkRefusal(t, err) {
			checkMapping(t, e)
		}
		r, err := DecodeEvaluations(body)
		if !checkRefusal(t, err) {
			return
		}
		checkMapping(t, &r.Evaluation)
		for i := range r.Evaluations {
			if item, err := r.Item(i); checkRefusal(t, err) {
				checkMapping(t, item)
			}
		}
	})
}

// checkRefusal fails on an error that is not a *requestError, and reports whether there was none.
func checkRefusal(t *testing.T, err error) bool {
	t.Helper()
	if err == nil {
		return true
	}
	var re *requestError
	if !errors.As(err, &re) || re.msg == "" {
		t.Fatalf("error %T %q, want a *requestError with a message", err, err)
	}
	return false
}

func checkMapping(t *testing.T, e *Evaluation) {
	t.Helper()
	req, err := e.DecideRequest()
	if !checkRefusal(t, err) {
		return
	}
	if req.GetActor().GetType() == 0 || req.GetActor().GetId() == "" || req.GetAction() == "" ||
		req.GetResource().GetType() == "" || req.GetResource().GetId() == "" {
		t.Fatalf("mapped request %v lacks a required field", req)
	}
	for k := range req.GetContext() {
		if k == contextAI || k == contextIdempotencyKey || k == "subject."+propertyOnBehalfOf {
			t.Fatalf("reserved key %q leaked into the context", k)
		}
	}
	if _, err := proto.Marshal(req); err != nil {
		t.Fatalf("mapped request does not encode: %v", err)
	}
	again, err := json.Marshal(e)
	if err != nil {
		t.Fatalf("re-encode %+v: %v", e, err)
	}
	e2, err := DecodeEvaluation(again)
	if err != nil {
		t.Fatalf("decode the re-encoded %s: %v", again, err)
	}
	req2, err := e2.DecideRequest()
	if err != nil {
		t.Fatalf("map the re-encoded %s: %v", again, err)
	}
	if !proto.Equal(req, req2) {
		t.Fatalf("the same evaluation maps differently sent again:\n%v\n%v", req, req2)
	}
}
