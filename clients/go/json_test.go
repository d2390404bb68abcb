package tollgate_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// specRequestJSON is the request of policy-pack.md §2, verbatim.
const specRequestJSON = `{
  "actor":    {"id": "u_buyer1", "type": "HUMAN", "on_behalf_of": ""},
  "action":   "PO.SUBMIT",
  "resource": {"type": "purchase_order", "id": "PO-1001",
               "attributes": {"amount": "8000.00", "currency": "USD", "category": "MRO",
                              "site_id": "DC1", "supplier_id": "S1", "created_by": "u_buyer1"}},
  "ai":       {"use_case": "", "mode": "", "confidence": 0, "explanation": "", "model_version": ""},
  "context":  {"workflow_id": "wf-77", "step": "approve"},
  "idempotency_key": "evt-0001"
}`

func specRequest(t testing.TB) *tollgatev1.DecideRequest {
	t.Helper()
	attrs, err := structpb.NewStruct(map[string]any{
		"amount": "8000.00", "currency": "USD", "category": "MRO",
		"site_id": "DC1", "supplier_id": "S1", "created_by": "u_buyer1",
	})
	if err != nil {
		t.Fatal(err)
	}
	return &tollgatev1.DecideRequest{
		Actor:    &tollgatev1.Actor{Id: "u_buyer1", Type: tollgatev1.ActorType_ACTOR_TYPE_HUMAN},
		Action:   "PO.SUBMIT",
		Resource: &tollgatev1.Resource{Type: "purchase_order", Id: "PO-1001", Attributes: attrs},
		// The example's all-empty "ai" is read as no ai.
		Context:        map[string]string{"workflow_id": "wf-77", "step": "approve"},
		IdempotencyKey: "evt-0001",
	}
}

func aiRequest() *tollgatev1.DecideRequest {
	return &tollgatev1.DecideRequest{
		Actor:  &tollgatev1.Actor{Id: "agent-alloc", Type: tollgatev1.ActorType_ACTOR_TYPE_AI_AGENT},
		Action: "ALLOCATION.CREATE",
		Ai: &tollgatev1.AI{
			UseCase:      "backorder_allocation",
			Mode:         tollgatev1.AIMode_AI_MODE_EXECUTE,
			Confidence:   0.93,
			Explanation:  "oldest backorder first",
			ModelVersion: "alloc-2026.03",
		},
	}
}

func TestParseDecideRequestJSONSpecExample(t *testing.T) {
	got, err := tollgate.ParseDecideRequestJSON([]byte(specRequestJSON))
	if err != nil {
		t.Fatalf("ParseDecideRequestJSON: %v", err)
	}
	if diff := cmp.Diff(specRequest(t), got, protocmp.Transform()); diff != "" {
		t.Errorf("request mismatch (-want +got):\n%s", diff)
	}
}

func TestParseDecideRequestJSONEnumSpellings(t *testing.T) {
	want := aiRequest()
	for _, tc := range []struct{ name, actorType, mode string }{
		{"short", `"AI_AGENT"`, `"EXECUTE"`},
		{"prefixed", `"ACTOR_TYPE_AI_AGENT"`, `"AI_MODE_EXECUTE"`},
		{"numbers", `3`, `2`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := `{"actor": {"id": "agent-alloc", "type": ` + tc.actorType + `},
				"action": "ALLOCATION.CREATE",
				"ai": {"use_case": "backorder_allocation", "mode": ` + tc.mode + `, "confidence": 0.93,
				       "explanation": "oldest backorder first", "model_version": "alloc-2026.03"}}`
			got, err := tollgate.ParseDecideRequestJSON([]byte(doc))
			if err != nil {
				t.Fatalf("ParseDecideRequestJSON: %v", err)
			}
			if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
				t.Errorf("request mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseDecideRequestJSONCamelCaseNames(t *testing.T) {
	got, err := tollgate.ParseDecideRequestJSON([]byte(
		`{"actor": {"id": "u2", "type": "HUMAN", "onBehalfOf": "u1"}, "action": "PO.APPROVE", "idempotencyKey": "k"}`))
	if err != nil {
		t.Fatalf("ParseDecideRequestJSON: %v", err)
	}
	want := &tollgatev1.DecideRequest{
		Actor:          &tollgatev1.Actor{Id: "u2", Type: tollgatev1.ActorType_ACTOR_TYPE_HUMAN, OnBehalfOf: "u1"},
		Action:         "PO.APPROVE",
		IdempotencyKey: "k",
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("request mismatch (-want +got):\n%s", diff)
	}
}

func TestParseDecideRequestJSONErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		doc       string
		wantField string
		wantMsg   string // a substring of the message
	}{
		{"unknown top-level field", `{"action": "PO.SUBMIT", "actorr": {}}`, "actorr", "unknown field"},
		{"unknown nested field", `{"actor": {"id": "u1", "typ": "HUMAN"}}`, "actor.typ", "unknown field"},
		{"unknown ai field", `{"ai": {"mode": "EXECUTE", "temperature": 0.2}}`, "ai.temperature", "unknown field"},
		{"bad actor type", `{"actor": {"id": "u1", "type": "ROBOT"}}`, "actor.type",
			`invalid value "ROBOT" (want HUMAN, SERVICE or AI_AGENT)`},
		{"lower-case enum", `{"ai": {"mode": "execute"}}`, "ai.mode", `invalid value "execute" (want RECOMMEND or EXECUTE)`},
		{"undefined enum number", `{"actor": {"type": 9}}`, "actor.type", "invalid value 9"},
		{"enum of wrong type", `{"actor": {"type": true}}`, "actor.type", "want a string"},
		{"string for number", `{"ai": {"confidence": "high"}}`, "ai.confidence", "want a number, got a string"},
		{"number for string", `{"action": 7}`, "action", "want a string, got number 7"},
		{"attributes not an object", `{"resource": {"attributes": [1]}}`, "resource.attributes", "want a JSON object, got an array"},
		{"context value not a string", `{"context": {"step": 2}}`, "context.step", "want a string"},
		{"duplicate field", `{"action": "A", "action": "B"}`, "action", "duplicate field"},
		{"duplicate via camelCase", `{"idempotency_key": "a", "idempotencyKey": "b"}`, "idempotencyKey", "duplicate field"},
		{"not an object", `["PO.SUBMIT"]`, "", "want a JSON object, got an array"},
		{"empty", "  \n", "", "empty input"},
		{"truncated", `{"action": "PO.SUBMIT"`, "", "unexpected end of input"},
		{"trailing data", `{"action": "PO.SUBMIT"} {}`, "", "unexpected data after the JSON value"},
		{"syntax error", "{\n  \"action\": \"PO.SUBMIT\",\n  \"actor\" {}\n}", "", "invalid JSON at line 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tollgate.ParseDecideRequestJSON([]byte(tc.doc))
			var fe *tollgate.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("ParseDecideRequestJSON error = %v, want a *FieldError", err)
			}
			if fe.Field != tc.wantField {
				t.Errorf("Field = %q, want %q (error %q)", fe.Field, tc.wantField, err)
			}
			if !strings.Contains(fe.Msg, tc.wantMsg) {
				t.Errorf("Msg = %q, want it to contain %q", fe.Msg, tc.wantMsg)
			}
		})
	}
}

// TestParseJSONErrorPosition pins the line and column of syntax errors and of
// data after the object: the place a reader's editor shows for the first
// offending character, in one-line and multi-line documents.
func TestParseJSONErrorPosition(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
		want string // the whole message
	}{
		{"junk after object", `{} x`, "invalid JSON at column 4: unexpected data after the JSON value"},
		{"second object", `{"action": "PO.SUBMIT"} {}`, "invalid JSON at column 25: unexpected data after the JSON value"},
		{"string after object", `{}"a"`, "invalid JSON at column 3: unexpected data after the JSON value"},
		{"number after object", "{}\t\t7", "invalid JSON at column 5: unexpected data after the JSON value"},
		{"closing brace after object", `{}  }`, "invalid JSON at column 5: unexpected data after the JSON value"},
		{"trailing newlines are fine one line", "{} x\n\n", "invalid JSON at column 4: unexpected data after the JSON value"},
		{"junk on a later line", "{\n  \"action\": \"PO.SUBMIT\"\n}\n\n   x", "invalid JSON at line 5, column 4: unexpected data after the JSON value"},
		{"second object on a later line", "{\n  \"action\": \"PO.SUBMIT\"\n}\n{}\n", "invalid JSON at line 4, column 1: unexpected data after the JSON value"},
		{"junk after CRLF lines", "{\r\n}\r\n  ]\r\n", "invalid JSON at line 3, column 3: unexpected data after the JSON value"},
		{"columns count characters", `{"action": "Übergabe→"} x`, "invalid JSON at column 25: unexpected data after the JSON value"},
		{"bad literal", `{"action": tru}`, "invalid JSON at column 15: invalid character '}' in literal true (expecting 'e')"},
		{"bad number", `{"action": 1x}`, "invalid JSON at column 13: invalid character 'x' after object key:value pair"},
		{"bad escape", `{"action": "\x"}`, "invalid JSON at column 14: invalid character 'x' in string escape code"},
		{"bad literal on line 2", "{\"action\": \"b\",\n \"context\": nul}", "invalid JSON at line 2, column 16: invalid character '}' in literal null (expecting 'l')"},
		{"missing colon on line 3", "{\n  \"action\": \"PO.SUBMIT\",\n  \"actor\" {}\n}", "invalid JSON at line 3, column 11: invalid character '{' after object key"},
		{"deep in an array", "{\"resource\": {\"attributes\": {\"a\": [1, 2,\n  3x]}}}", "invalid JSON at line 2, column 4: invalid character 'x' after array element"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tollgate.ParseDecideRequestJSON([]byte(tc.doc))
			var fe *tollgate.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("ParseDecideRequestJSON(%q) error = %v, want a *FieldError", tc.doc, err)
			}
			if fe.Field != "" || fe.Msg != tc.want {
				t.Errorf("ParseDecideRequestJSON(%q) error = {%q, %q}, want {\"\", %q}", tc.doc, fe.Field, fe.Msg, tc.want)
			}
		})
	}
}

func TestParseDecideRequestsJSON(t *testing.T) {
	doc := `[` + specRequestJSON + `, {"actor": {"id": "agent-alloc", "type": "AI_AGENT"}, "action": "ALLOCATION.CREATE",
		"ai": {"use_case": "backorder_allocation", "mode": "EXECUTE", "confidence": 0.93,
		       "explanation": "oldest backorder first", "model_version": "alloc-2026.03"}}]`
	got, err := tollgate.ParseDecideRequestsJSON([]byte(doc))
	if err != nil {
		t.Fatalf("ParseDecideRequestsJSON: %v", err)
	}
	want := []*tollgatev1.DecideRequest{specRequest(t), aiRequest()}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("requests mismatch (-want +got):\n%s", diff)
	}

	_, err = tollgate.ParseDecideRequestsJSON([]byte(`[{"action": "A"}, {"actor": {"type": "ROBOT"}}]`))
	var fe *tollgate.FieldError
	if !errors.As(err, &fe) || fe.Field != "[1].actor.type" {
		t.Errorf("bad second element: error = %v, want a *FieldError for [1].actor.type", err)
	}
	_, err = tollgate.ParseDecideRequestsJSON([]byte(specRequestJSON))
	if !errors.As(err, &fe) || !strings.Contains(fe.Msg, "want a JSON array") {
		t.Errorf("object instead of array: error = %v, want a *FieldError asking for an array", err)
	}
}

func decisionResponse() *tollgatev1.DecideResponse {
	return &tollgatev1.DecideResponse{
		DecisionId: "01JQ2B3C4D5E6F7G8H9J0KMNPQ",
		Effect:     tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL,
		Reasons: []*tollgatev1.Reason{
			{Code: "PO_TIER_2_APPROVAL", Message: "amount 8000.00 USD needs PROCUREMENT_MANAGER"},
		},
		Approvers:          []string{"PROCUREMENT_MANAGER"},
		BundleRevision:     "default-2026.03.1",
		MasterdataRevision: 42,
		EvaluatedAt:        timestamppb.New(time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)),
	}
}

func TestFormatDecideResponseJSON(t *testing.T) {
	got, err := tollgate.FormatDecideResponseJSON(decisionResponse())
	if err != nil {
		t.Fatalf("FormatDecideResponseJSON: %v", err)
	}
	want := `{
  "decision_id": "01JQ2B3C4D5E6F7G8H9J0KMNPQ",
  "effect": "REQUIRE_APPROVAL",
  "reasons": [
    {
      "code": "PO_TIER_2_APPROVAL",
      "message": "amount 8000.00 USD needs PROCUREMENT_MANAGER"
    }
  ],
  "approvers": [
    "PROCUREMENT_MANAGER"
  ],
  "bundle_revision": "default-2026.03.1",
  "masterdata_revision": "42",
  "evaluated_at": "2026-03-02T09:30:00Z",
  "replay": false
}`
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("output mismatch (-want +got):\n%s", diff)
	}
}

func TestFormatDecideResponseJSONZeroValue(t *testing.T) {
	got, err := tollgate.FormatDecideResponseJSON(&tollgatev1.DecideResponse{})
	if err != nil {
		t.Fatalf("FormatDecideResponseJSON: %v", err)
	}
	for _, want := range []string{`"effect": "UNSPECIFIED"`, `"approvers": []`, `"reasons": []`} {
		if !strings.Contains(string(got), want) {
			t.Errorf("output lacks %s:\n%s", want, got)
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  proto.Message
		// wantShort are enum spellings the printed form must use.
		wantShort []string
	}{
		{"spec request", specRequest(t), []string{`"type": "HUMAN"`, `"ai": null`}},
		{"unspecified enums", &tollgatev1.DecideRequest{Actor: &tollgatev1.Actor{Id: "x"}, Ai: &tollgatev1.AI{Confidence: 0.5}},
			[]string{`"type": "UNSPECIFIED"`, `"mode": "UNSPECIFIED"`}},
		{"ai request", aiRequest(), []string{`"type": "AI_AGENT"`, `"mode": "EXECUTE"`}},
		{"response", decisionResponse(), []string{`"effect": "REQUIRE_APPROVAL"`}},
		{"deny", &tollgatev1.DecideResponse{Effect: tollgatev1.Effect_EFFECT_DENY,
			Reasons: []*tollgatev1.Reason{{Code: "UNKNOWN_SUPPLIER"}}}, []string{`"effect": "DENY"`}},
		{"apply response", &tollgatev1.ApplyResponse{Revision: 7, Results: []*tollgatev1.EventResult{
			{EventId: "e1", Outcome: tollgatev1.EventOutcome_EVENT_OUTCOME_STALE, Error: "version 3 <= 5"}}},
			[]string{`"outcome": "STALE"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			printed, err := tollgate.FormatJSON(tc.msg)
			if err != nil {
				t.Fatalf("FormatJSON: %v", err)
			}
			for _, want := range tc.wantShort {
				if !strings.Contains(string(printed), want) {
					t.Errorf("printed form lacks %s:\n%s", want, printed)
				}
			}
			if strings.Contains(string(printed), "_TYPE_") || strings.Contains(string(printed), "EFFECT_") {
				t.Errorf("printed form has prefixed enum names:\n%s", printed)
			}
			got := tc.msg.ProtoReflect().New().Interface()
			if err := tollgate.ParseJSON(printed, got); err != nil {
				t.Fatalf("ParseJSON of printed form: %v\n%s", err, printed)
			}
			if diff := cmp.Diff(tc.msg, got, protocmp.Transform()); diff != "" {
				t.Errorf("round trip mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFormatDecideResponsesJSON(t *testing.T) {
	resps := []*tollgatev1.DecideResponse{decisionResponse(), {Effect: tollgatev1.Effect_EFFECT_ALLOW}}
	printed, err := tollgate.FormatDecideResponsesJSON(resps)
	if err != nil {
		t.Fatalf("FormatDecideResponsesJSON: %v", err)
	}
	// The printed array must read back as the same decisions.
	var got []*tollgatev1.DecideResponse
	for _, part := range splitArray(t, printed) {
		resp := &tollgatev1.DecideResponse{}
		if err := tollgate.ParseJSON(part, resp); err != nil {
			t.Fatalf("ParseJSON: %v", err)
		}
		got = append(got, resp)
	}
	if diff := cmp.Diff(resps, got, protocmp.Transform()); diff != "" {
		t.Errorf("round trip mismatch (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(string(printed), "[\n  {\n    \"decision_id\"") {
		t.Errorf("printed form is not an indented array:\n%s", printed)
	}
}

func TestFormatDecideResponsesJSONEmpty(t *testing.T) {
	printed, err := tollgate.FormatDecideResponsesJSON(nil)
	if err != nil {
		t.Fatalf("FormatDecideResponsesJSON: %v", err)
	}
	if string(printed) != "[]" {
		t.Errorf("printed %q, want []", printed)
	}
}

func TestParseChangeEventsNDJSON(t *testing.T) {
	input := `{"event_id": "e1", "kind": "supplier", "key": "S1", "version": 3, "op": "UPSERT", "record": {"id": "S1", "status": "APPROVED", "watchlist": false}}

{"event_id": "e2", "kind": "inventory", "key": "DC1/I1", "version": "18446744073709551615", "op": "CHANGE_OP_UPSERT", "record": {"site_id": "DC1", "item_id": "I1", "on_hand": 120}}
{"event_id": "e3", "kind": "customer", "key": "C9", "version": 4, "op": "DELETE"}`
	got, err := tollgate.ParseChangeEventsNDJSON(strings.NewReader(input))
	if err != nil {
		t.Fatalf("ParseChangeEventsNDJSON: %v", err)
	}
	mustStruct := func(m map[string]any) *structpb.Struct {
		s, err := structpb.NewStruct(m)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	want := []*tollgatev1.ChangeEvent{
		{EventId: "e1", Kind: "supplier", Key: "S1", Version: 3, Op: tollgatev1.ChangeOp_CHANGE_OP_UPSERT,
			Record: mustStruct(map[string]any{"id": "S1", "status": "APPROVED", "watchlist": false})},
		{EventId: "e2", Kind: "inventory", Key: "DC1/I1", Version: 18446744073709551615, Op: tollgatev1.ChangeOp_CHANGE_OP_UPSERT,
			Record: mustStruct(map[string]any{"site_id": "DC1", "item_id": "I1", "on_hand": 120})},
		{EventId: "e3", Kind: "customer", Key: "C9", Version: 4, Op: tollgatev1.ChangeOp_CHANGE_OP_DELETE},
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("events mismatch (-want +got):\n%s", diff)
	}
}

func TestParseChangeEventsNDJSONErrors(t *testing.T) {
	good := `{"event_id": "e1", "kind": "site", "key": "DC1", "version": 1, "op": "UPSERT", "record": {"id": "DC1"}}`
	for _, tc := range []struct {
		name      string
		bad       string
		wantField string
		wantMsg   string
	}{
		{"bad op", `{"event_id": "e3", "op": "UPSERTT"}`, "op", `invalid value "UPSERTT" (want UPSERT or DELETE)`},
		{"unknown field", `{"event_id": "e3", "verison": 2}`, "verison", "unknown field"},
		{"negative version", `{"event_id": "e3", "version": -1}`, "version", "want a non-negative integer, got -1"},
		{"fractional version", `{"event_id": "e3", "version": 1.5}`, "version", "want a non-negative integer, got 1.5"},
		{"version overflow", `{"event_id": "e3", "version": 18446744073709551616}`, "version", "out of range"},
		{"record not an object", `{"event_id": "e3", "record": "x"}`, "record", "want a JSON object"},
		{"syntax", `{"event_id": "e3",, }`, "", "invalid JSON at column 19"},
		{"trailing data", `{"event_id": "e3"} {}`, "", "invalid JSON at column 20: unexpected data after the JSON value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			input := good + "\n\n" + tc.bad + "\n" + good + "\n"
			_, err := tollgate.ParseChangeEventsNDJSON(strings.NewReader(input))
			var le *tollgate.LineError
			if !errors.As(err, &le) || le.Line != 3 {
				t.Fatalf("error = %v, want a *LineError on line 3", err)
			}
			var fe *tollgate.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error = %v, want it to wrap a *FieldError", err)
			}
			if fe.Field != tc.wantField || !strings.Contains(fe.Msg, tc.wantMsg) {
				t.Errorf("FieldError = {%q, %q}, want field %q and a message containing %q", fe.Field, fe.Msg, tc.wantField, tc.wantMsg)
			}
			if !strings.HasPrefix(err.Error(), "line 3: ") {
				t.Errorf("Error() = %q, want it to start with the line", err)
			}
		})
	}
}

func TestParseChangeEventsNDJSONLongLine(t *testing.T) {
	// Longer than bufio.Scanner's default 64 KiB token limit.
	long := strings.Repeat("x", 200_000)
	input := `{"event_id": "e1", "kind": "site", "key": "DC1", "version": 1, "op": "UPSERT", "record": {"note": "` + long + `"}}`
	got, err := tollgate.ParseChangeEventsNDJSON(strings.NewReader(input))
	if err != nil {
		t.Fatalf("ParseChangeEventsNDJSON: %v", err)
	}
	if len(got) != 1 || got[0].GetRecord().GetFields()["note"].GetStringValue() != long {
		t.Errorf("long record not read back intact")
	}
}

// splitArray splits a JSON array into its elements' raw text.
func splitArray(t testing.TB, data []byte) [][]byte {
	t.Helper()
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatalf("split array: %v", err)
	}
	parts := make([][]byte, len(raw))
	for i, r := range raw {
		parts[i] = r
	}
	return parts
}

func TestParseDecideRequestJSONKeepsNonEmptyAI(t *testing.T) {
	// Only an all-zero ai is dropped; one with any value set reaches the
	// server, which judges whether the actor may send it.
	got, err := tollgate.ParseDecideRequestJSON([]byte(
		`{"actor": {"id": "u1", "type": "HUMAN"}, "action": "PO.SUBMIT", "ai": {"mode": "", "confidence": 0.5}}`))
	if err != nil {
		t.Fatalf("ParseDecideRequestJSON: %v", err)
	}
	if diff := cmp.Diff(&tollgatev1.AI{Confidence: 0.5}, got.GetAi(), protocmp.Transform()); diff != "" {
		t.Errorf("ai mismatch (-want +got):\n%s", diff)
	}
	reqs, err := tollgate.ParseDecideRequestsJSON([]byte(`[` + specRequestJSON + `]`))
	if err != nil {
		t.Fatalf("ParseDecideRequestsJSON: %v", err)
	}
	if reqs[0].Ai != nil {
		t.Errorf("batch element kept the spec example's empty ai: %v", reqs[0].Ai)
	}
}

func BenchmarkParseDecideRequestJSON(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tollgate.ParseDecideRequestJSON([]byte(specRequestJSON)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFormatDecideResponseJSON(b *testing.B) {
	resp := decisionResponse()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tollgate.FormatDecideResponseJSON(resp); err != nil {
			b.Fatal(err)
		}
	}
}
