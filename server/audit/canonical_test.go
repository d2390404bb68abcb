package audit_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/gowebpki/jcs"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	// Registered for kitchenSink's imports.
	_ "google.golang.org/protobuf/types/known/anypb"
	_ "google.golang.org/protobuf/types/known/emptypb"
	_ "google.golang.org/protobuf/types/known/fieldmaskpb"
	_ "google.golang.org/protobuf/types/known/wrapperspb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
)

// checkDirect requires the direct encoder to agree with the definition on
// m: equal bytes, or both failing. It reports whether both succeeded.
func checkDirect(tb testing.TB, name string, m proto.Message) bool {
	tb.Helper()
	want, werr := audit.CanonicalSlow(m)
	got, gerr := audit.CanonicalDirect(m)
	if errors.Is(gerr, audit.ErrDirectUnsupported) {
		// Left to the slow path: Canonical must be exactly it.
		c, err := audit.Canonical(m)
		if (err == nil) != (werr == nil) || !bytes.Equal(c, want) {
			tb.Errorf("%s: Canonical = %s (%v), want %s (%v)", name, c, err, want, werr)
		}
		return werr == nil
	}
	if (werr == nil) != (gerr == nil) || !bytes.Equal(got, want) {
		tb.Errorf("%s: direct encoder\n got %s (err %v)\nwant %s (err %v)", name, got, gerr, want, werr)
		return false
	}
	if werr == nil {
		// Canonical must take the direct result; with an error it falls
		// back and reports the slow path's error.
		if c, err := audit.Canonical(m); err != nil || !bytes.Equal(c, want) {
			tb.Errorf("%s: Canonical = %s (%v), want %s", name, c, err, want)
		}
	}
	return werr == nil
}

// testRecords are the records the package's tests and audittest build.
func testRecords(tb testing.TB) map[string]*audit.Record {
	tb.Helper()
	recs := map[string]*audit.Record{}
	for n := range 1000 {
		recs[fmt.Sprintf("Decision(%d)", n)] = audittest.Decision(n)
	}
	sealed, _ := audittest.Sealed(tb, audit.Head{ChainID: "c1"}, audittest.Decision(1), audittest.Decision(2))
	for _, r := range sealed {
		recs["sealed "+r.DecisionId] = r
	}
	keyed := audittest.Decision(4)
	keyed.IdempotencyKey, keyed.Request.IdempotencyKey = "evt-1", "evt-1"
	keyed.PayloadHash = audit.PayloadHash(testPayloadKey(tb, 1), keyed.Request)
	recs["keyed"] = keyed

	tricky := audittest.Decision(7)
	tricky.Request.Resource.Attributes.Fields["seq"] = structpb.NewStringValue("18446744073709551615")
	tricky.Request.Context["zzz"] = `"seq":"18446744073709551615"}`
	tricky.FactsJson = `{"prev_hash":"//////////////////////////////////////////8=","seq":"18446744073709551615"}`
	recs["tricky"] = tricky
	marker := audittest.Decision(3)
	marker.Kind, marker.ReplayOf = tollgatev1.RecordKind_RECORD_KIND_REPLAY, "d001"
	recs["replay"] = marker
	recs["bare"] = &audit.Record{DecisionId: "bare"}
	recs["empty"] = &audit.Record{}
	recs["placeholders"] = &audit.Record{Seq: math.MaxUint64, PrevHash: bytes.Repeat([]byte{0xff}, 32)}

	attrs, err := structpb.NewStruct(map[string]any{
		"amount": "8000.00", "currency": "USD", "lines": []any{map[string]any{"qty": 2.0, "ok": true, "x": nil}},
		"big": 1e300, "tiny": 5e-324, "neg": -0.0, "z": 1.5, "a": "x", "n": 100.0,
	})
	if err != nil {
		tb.Fatal(err)
	}
	recs["full"] = &audit.Record{
		DecisionId: "01JDEC", ChainId: "replica-1", Seq: 42, PrevHash: audit.GenesisHash(), Hash: []byte{1},
		EvaluatedAt: timestamppb.New(time.Date(2026, 11, 20, 10, 0, 0, 123456789, time.UTC)),
		Caller:      "cn=orchestrator",
		Request: &tollgatev1.DecideRequest{
			Actor:    &tollgatev1.Actor{Id: "u_buyer1", Type: tollgatev1.ActorType_ACTOR_TYPE_AI_AGENT, OnBehalfOf: "u2"},
			Action:   "PO.SUBMIT",
			Resource: &tollgatev1.Resource{Type: "purchase_order", Id: "PO-1001", Attributes: attrs},
			Context:  map[string]string{"workflow_id": "wf-77", "é": "\u2028<>&", "": "empty key"},
			Ai: &tollgatev1.AI{UseCase: "alloc", Mode: tollgatev1.AIMode_AI_MODE_EXECUTE, Confidence: 1e21,
				Explanation: "why", ModelVersion: "m-1"},
			IdempotencyKey: "evt-0001",
		},
		Effect:             tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL,
		Reasons:            []*tollgatev1.Reason{{Code: "PO_TIER_2_APPROVAL", Message: "8000.00 > 5000.00"}, {}},
		Approvers:          []string{"PROCUREMENT_MANAGER", ""},
		BundleRevision:     "r1@abcdef",
		MasterdataRevision: math.MaxUint64,
		FactsJson:          `[{"builtin":"tollgate.md.get","args":["user","u_buyer1"],"result":null}]`,
		IdempotencyKey:     "evt-0001",
		PayloadHash:        bytes.Repeat([]byte{7}, 32),
		Latency:            durationpb.New(1234567 * time.Nanosecond),
		Kind:               tollgatev1.RecordKind(99), // unknown: written as a number
		ReplayOf:           "01JOLD",
	}
	// A chain-break record: no request, no effect, its own message.
	recs["chain break"] = &audit.Record{
		DecisionId: "chain-break-c1-58", ChainId: "c1", Seq: 58, PrevHash: bytes.Repeat([]byte{3}, 32),
		Kind: tollgatev1.RecordKind_RECORD_KIND_CHAIN_BREAK, EvaluatedAt: timestamppb.New(audittest.Base()), Caller: "ops@host-1",
		ChainBreak: &tollgatev1.ChainBreak{
			Problem: "records after seq 41 are missing: the head names seq 57", AcceptedBy: "ops@host-1",
			HeadSeq: 57, HeadHash: bytes.Repeat([]byte{1}, 32), LastSeq: 41, LastHash: bytes.Repeat([]byte{2}, 32),
			FirstBadSeq: 42, FirstBadDecisionId: "01JBAD \"quoted\"",
		},
	}
	return recs
}

func TestCanonicalDirectMatchesSlowOnRecords(t *testing.T) {
	for name, r := range testRecords(t) {
		if !checkDirect(t, name, r) {
			t.Errorf("%s: no canonical form", name)
		}
		checkDirect(t, name+" request", r.GetRequest())
		if _, err := audit.CanonicalDirect(r); err != nil {
			t.Errorf("%s: the direct encoder does not handle it: %v", name, err)
		}
		if prep, err := audit.Prepare(r); err != nil {
			t.Errorf("%s: Prepare: %v", name, err)
		} else if !bytes.HasSuffix(prep, []byte(`"seq":"18446744073709551615"}`)) {
			t.Errorf("%s: prepared form does not end with the seq placeholder", name)
		}
	}
}

// TestCanonicalDirectEdgeCases covers what the schema can hold but the
// records above do not: string escapes, key orders, numbers, time forms and
// the inputs that have no canonical form.
func TestCanonicalDirectEdgeCases(t *testing.T) {
	withAttrs := func(v map[string]*structpb.Value) *audit.Record {
		r := audittest.Decision(0)
		r.Request.Resource.Attributes = &structpb.Struct{Fields: v}
		return r
	}
	num := structpb.NewNumberValue
	str := structpb.NewStringValue
	cases := map[string]*audit.Record{
		"unicode keys": withAttrs(map[string]*structpb.Value{
			"\ue000": num(1), "\U0001F600": num(2), "\uffff": num(3), "\U00010000": num(4), "a": num(5),
			"é": num(6), "\u00ff": num(7), "aa": num(8), "": num(9), "\U0010FFFF": num(10), "\ud7ff": num(11),
		}),
		"control characters": withAttrs(map[string]*structpb.Value{
			"\x00\x01\x1f": str("\b\t\n\f\r\x0b\x7f\"\\/"), "\u2028": str("\u2029\ufeff\ufffd"),
			"k\x1e": str("<>&'"),
		}),
		"numbers": withAttrs(map[string]*structpb.Value{
			"a": num(1e21), "b": num(1e-7), "c": num(math.Copysign(0, -1)), "d": num(5e-324), "e": num(1e20),
			"f": num(1<<53 - 1), "g": num(1 << 53), "h": num(1<<53 + 2), "i": num(-(1<<53 - 1)), "j": num(0.1),
			"k": num(1e-6), "l": num(9.999999999999999e20), "m": num(math.MaxFloat64), "n": num(-1.5e-300),
			"o": num(123456789012), "p": num(2.5e-5), "q": num(-1e21), "r": num(4.35), "s": num(1e300),
		}),
		"empty struct and nested lists": withAttrs(map[string]*structpb.Value{
			"empty":      structpb.NewStructValue(&structpb.Struct{}),
			"nil struct": {Kind: &structpb.Value_StructValue{}},
			"nil list":   {Kind: &structpb.Value_ListValue{}},
			"lists": structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{
				structpb.NewListValue(&structpb.ListValue{}),
				structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{num(0), str(""), structpb.NewBoolValue(false), structpb.NewNullValue()}}),
				structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"z": num(1), "y": num(2)}}),
			}}),
			"zeros": num(0), "false": structpb.NewBoolValue(false), "empty string": str(""),
		}),
		// Invalid: protojson refuses these, so both must fail.
		"NaN value":       withAttrs(map[string]*structpb.Value{"x": num(math.NaN())}),
		"Inf value":       withAttrs(map[string]*structpb.Value{"x": num(math.Inf(-1))}),
		"Value no kind":   withAttrs(map[string]*structpb.Value{"x": {}}),
		"nil Value":       withAttrs(map[string]*structpb.Value{"x": nil}),
		"bad UTF-8 key":   withAttrs(map[string]*structpb.Value{"\xff": num(1)}),
		"bad UTF-8 value": withAttrs(map[string]*structpb.Value{"x": str("a\xc3")}),
		"bad UTF-8 field": {DecisionId: "\xed\xa0\x80"}, // an encoded surrogate
		"bad UTF-8 map":   {Request: &tollgatev1.DecideRequest{Context: map[string]string{"k": "\x80"}}},
		"bad UTF-8 map key": {
			Request: &tollgatev1.DecideRequest{Context: map[string]string{"\x80": "v"}},
		},
	}
	// A double field's NaN and infinities are JSON strings in protojson.
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1), math.Copysign(0, -1), 5e-324, 0.3} {
		r := audittest.Decision(1)
		r.Request.Ai = &tollgatev1.AI{Confidence: f}
		cases[fmt.Sprintf("confidence %v", f)] = r
	}
	for _, ts := range []*timestamppb.Timestamp{
		{Seconds: 1772366400}, {Seconds: 1772366400, Nanos: 1e6}, {Seconds: 1772366400, Nanos: 1e3},
		{Seconds: 1772366400, Nanos: 1}, {Seconds: 1772366400, Nanos: 120e6}, {Seconds: 1772366400, Nanos: 999999999},
		{}, {Seconds: -62135596800}, {Seconds: 253402300799, Nanos: 999999999}, {Seconds: -1, Nanos: 5},
		{Seconds: -62135596801}, {Seconds: 253402300800}, {Nanos: -1}, {Nanos: 1e9},
	} {
		r := audittest.Decision(2)
		r.EvaluatedAt = ts
		cases[fmt.Sprintf("timestamp %d.%09d", ts.Seconds, ts.Nanos)] = r
	}
	for _, d := range []*durationpb.Duration{
		{}, {Seconds: 1, Nanos: 340012}, {Seconds: 1}, {Nanos: 1e6}, {Nanos: -1}, {Seconds: -3, Nanos: -5e5},
		{Seconds: 315576000000, Nanos: 999999999}, {Seconds: -315576000000}, {Seconds: 315576000001},
		{Seconds: 1, Nanos: -1}, {Seconds: -1, Nanos: 1}, {Nanos: 1e9}, {Seconds: 59, Nanos: 100},
	} {
		r := audittest.Decision(2)
		r.Latency = d
		cases[fmt.Sprintf("duration %d.%09d", d.Seconds, d.Nanos)] = r
	}
	for name, r := range cases {
		checkDirect(t, name, r)
	}
}

// kitchenSink is a message with every kind of field the direct encoder
// handles or hands back, built at run time so that the audit schema need
// not grow test fields.
const kitchenSink = `
name: "tollgate/audit/kitchen_sink_test.proto"
package: "tollgate.audit.test"
syntax: "proto3"
dependency: ["google/protobuf/any.proto", "google/protobuf/duration.proto", "google/protobuf/empty.proto",
  "google/protobuf/field_mask.proto", "google/protobuf/struct.proto", "google/protobuf/timestamp.proto",
  "google/protobuf/wrappers.proto"]
enum_type { name: "Color" value { name: "COLOR_UNSPECIFIED" number: 0 } value { name: "RED" number: 1 } value { name: "NEG" number: -1 } }
message_type {
  name: "Sink"
  field { name: "i32" number: 1 label: LABEL_OPTIONAL type: TYPE_INT32 }
  field { name: "i64" number: 2 label: LABEL_OPTIONAL type: TYPE_INT64 }
  field { name: "u32" number: 3 label: LABEL_OPTIONAL type: TYPE_UINT32 }
  field { name: "u64" number: 4 label: LABEL_OPTIONAL type: TYPE_UINT64 }
  field { name: "s32" number: 5 label: LABEL_OPTIONAL type: TYPE_SINT32 }
  field { name: "s64" number: 6 label: LABEL_OPTIONAL type: TYPE_SINT64 }
  field { name: "f32" number: 7 label: LABEL_OPTIONAL type: TYPE_FIXED32 }
  field { name: "f64" number: 8 label: LABEL_OPTIONAL type: TYPE_FIXED64 }
  field { name: "sf32" number: 9 label: LABEL_OPTIONAL type: TYPE_SFIXED32 }
  field { name: "sf64" number: 10 label: LABEL_OPTIONAL type: TYPE_SFIXED64 }
  field { name: "flt" number: 11 label: LABEL_OPTIONAL type: TYPE_FLOAT }
  field { name: "dbl" number: 12 label: LABEL_OPTIONAL type: TYPE_DOUBLE }
  field { name: "b" number: 13 label: LABEL_OPTIONAL type: TYPE_BOOL }
  field { name: "s" number: 14 label: LABEL_OPTIONAL type: TYPE_STRING }
  field { name: "by" number: 15 label: LABEL_OPTIONAL type: TYPE_BYTES }
  field { name: "color" number: 16 label: LABEL_OPTIONAL type: TYPE_ENUM type_name: ".tollgate.audit.test.Color" }
  field { name: "opt_i32" number: 17 label: LABEL_OPTIONAL type: TYPE_INT32 oneof_index: 1 proto3_optional: true }
  field { name: "opt_s" number: 18 label: LABEL_OPTIONAL type: TYPE_STRING oneof_index: 2 proto3_optional: true }
  field { name: "opt_b" number: 19 label: LABEL_OPTIONAL type: TYPE_BOOL oneof_index: 3 proto3_optional: true }
  field { name: "opt_dbl" number: 20 label: LABEL_OPTIONAL type: TYPE_DOUBLE oneof_index: 4 proto3_optional: true }
  field { name: "one_s" number: 21 label: LABEL_OPTIONAL type: TYPE_STRING oneof_index: 0 }
  field { name: "one_i64" number: 22 label: LABEL_OPTIONAL type: TYPE_INT64 oneof_index: 0 }
  field { name: "r_i32" number: 23 label: LABEL_REPEATED type: TYPE_INT32 }
  field { name: "r_s" number: 24 label: LABEL_REPEATED type: TYPE_STRING }
  field { name: "r_sink" number: 25 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".tollgate.audit.test.Sink" }
  field { name: "r_color" number: 26 label: LABEL_REPEATED type: TYPE_ENUM type_name: ".tollgate.audit.test.Color" }
  field { name: "m_ss" number: 27 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".tollgate.audit.test.Sink.MSsEntry" }
  field { name: "m_is" number: 28 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".tollgate.audit.test.Sink.MIsEntry" }
  field { name: "m_bs" number: 29 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".tollgate.audit.test.Sink.MBsEntry" }
  field { name: "child" number: 30 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".tollgate.audit.test.Sink" }
  field { name: "ts" number: 31 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.Timestamp" }
  field { name: "dur" number: 32 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.Duration" }
  field { name: "st" number: 33 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.Struct" }
  field { name: "val" number: 34 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.Value" }
  field { name: "lv" number: 35 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.ListValue" }
  field { name: "w_b" number: 36 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.BoolValue" }
  field { name: "w_i64" number: 37 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.Int64Value" }
  field { name: "w_u32" number: 38 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.UInt32Value" }
  field { name: "w_flt" number: 39 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.FloatValue" }
  field { name: "w_dbl" number: 40 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.DoubleValue" }
  field { name: "w_s" number: 41 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.StringValue" }
  field { name: "w_by" number: 42 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.BytesValue" }
  field { name: "any" number: 43 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.Any" }
  field { name: "empty" number: 44 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.Empty" }
  field { name: "fm" number: 45 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.FieldMask" }
  field { name: "null" number: 46 label: LABEL_OPTIONAL type: TYPE_ENUM type_name: ".google.protobuf.NullValue" }
  field { name: "r_ts" number: 47 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".google.protobuf.Timestamp" }
  field { name: "m_sv" number: 48 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".tollgate.audit.test.Sink.MSvEntry" }
  field { name: "Zed" number: 49 label: LABEL_OPTIONAL type: TYPE_STRING json_name: "aaa" }
  field { name: "w_i32" number: 50 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.Int32Value" }
  field { name: "w_u64" number: 51 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.UInt64Value" }
  nested_type { name: "MSsEntry" options { map_entry: true }
    field { name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
    field { name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_STRING } }
  nested_type { name: "MIsEntry" options { map_entry: true }
    field { name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_INT64 }
    field { name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_STRING } }
  nested_type { name: "MBsEntry" options { map_entry: true }
    field { name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_BOOL }
    field { name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".tollgate.audit.test.Sink" } }
  nested_type { name: "MSvEntry" options { map_entry: true }
    field { name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
    field { name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.Value" } }
  oneof_decl { name: "one" }
  oneof_decl { name: "_opt_i32" }
  oneof_decl { name: "_opt_s" }
  oneof_decl { name: "_opt_b" }
  oneof_decl { name: "_opt_dbl" }
}`

// sinkType returns the message type described by kitchenSink.
func sinkType(tb testing.TB) protoreflect.MessageType {
	tb.Helper()
	var fdp descriptorpb.FileDescriptorProto
	if err := prototext.Unmarshal([]byte(kitchenSink), &fdp); err != nil {
		tb.Fatal(err)
	}
	fd, err := protodesc.NewFile(&fdp, protoregistry.GlobalFiles)
	if err != nil {
		tb.Fatal(err)
	}
	return dynamicpb.NewMessageType(fd.Messages().ByName("Sink"))
}

// sinkCases are Sink messages in protojson form (JSON names or proto names).
var sinkCases = []string{
	`{}`,
	`{"i32":-5,"i64":"-9223372036854775808","u32":4294967295,"u64":"18446744073709551615","s32":-2147483648,
	  "s64":"9223372036854775807","f32":7,"f64":"8","sf32":-9,"sf64":"-10","flt":0.1,"dbl":0.1,"b":true,
	  "s":"h\u00e9\u0000\u001f","by":"/+8=","color":"RED"}`,
	`{"optI32":0,"optS":"","optB":false,"optDbl":0}`,
	`{"optDbl":-0,"dbl":-0,"flt":-0}`,
	`{"oneS":""}`,
	`{"oneI64":"0"}`,
	`{"color":7,"rColor":["RED",-1,5,0]}`,
	`{"color":-1}`,
	`{"flt":"NaN","dbl":"Infinity","optDbl":"-Infinity","wFlt":"NaN","wDbl":"-Infinity"}`,
	`{"flt":3.4028235e38,"dbl":1e21}`,
	`{"flt":1e-45,"dbl":5e-324}`,
	`{"flt":16777217,"dbl":1.7976931348623157e308}`,
	`{"flt":0.3,"dbl":1e-7}`,
	`{"rI32":[0,0,-1],"rS":["","\ue000","\ud83d\ude00"],"rSink":[{},{"i32":1},{"child":{}}]}`,
	`{"mSs":{"\ue000":"a","\ud83d\ude00":"b","":"c","a":"d","B":"e"},"mIs":{"-1":"a","10":"b","9":"c","0":""},
	  "mBs":{"true":{},"false":{"b":true}}}`,
	`{"child":{"child":{"child":{"s":"deep"}}}}`,
	`{"ts":"1970-01-01T00:00:00Z","dur":"0s"}`,
	`{"ts":"2026-03-01T12:00:00.000001Z","dur":"-0.000000001s","rTs":["0001-01-01T00:00:00Z","9999-12-31T23:59:59.999999999Z"]}`,
	`{"st":{},"val":null,"lv":[]}`,
	`{"st":{"a":[1,[2,[3,{}]]],"b":{"c":null}},"val":{"\ud83d\ude00":1,"\ue000":2},"lv":[null,true,"x",1.5]}`,
	`{"val":[]}`,
	`{"val":""}`,
	`{"val":0}`,
	`{"val":-0}`,
	`{"val":false}`,
	`{"mSv":{"a":null,"b":0,"c":{}}}`,
	`{"wB":false,"wI64":"0","wU32":0,"wFlt":0,"wDbl":0,"wS":"","wBy":"","wI32":0,"wU64":"0"}`,
	`{"wB":true,"wI64":"-1","wU32":1,"wFlt":1.5,"wDbl":2.5,"wS":"\"","wBy":"AA==","wI32":-7,"wU64":"18446744073709551615"}`,
	`{"null":null}`,
	`{"aaa":"json name differs from proto name"}`,
}

// sinkFallbackCases hold types the direct encoder leaves to protojson.
var sinkFallbackCases = []string{
	`{"empty":{}}`,
	`{"fm":"a.b,c"}`,
	`{"any":{"@type":"type.googleapis.com/google.protobuf.Duration","value":"1s"}}`,
	`{"child":{"empty":{}}}`,
}

func TestCanonicalDirectAllKinds(t *testing.T) {
	mt := sinkType(t)
	for i, js := range slices.Concat(sinkCases, sinkFallbackCases) {
		m := mt.New().Interface()
		if err := protojson.Unmarshal([]byte(js), m); err != nil {
			t.Fatalf("test case %s: %v", js, err)
		}
		checkDirect(t, js, m)
		_, err := audit.CanonicalDirect(m)
		if fallback := errors.Is(err, audit.ErrDirectUnsupported); fallback != (i >= len(sinkCases)) {
			t.Errorf("%s: direct encoder error %v, want a fallback %t", js, err, !fallback)
		}
	}
	// What JSON cannot express.
	fds := mt.Descriptor().Fields()
	bad := mt.New()
	bad.Set(fds.ByName("s"), protoreflect.ValueOfString("\xff"))
	checkDirect(t, "bad UTF-8", bad.Interface())
	bad = mt.New()
	bad.Mutable(fds.ByName("r_s")).List().Append(protoreflect.ValueOfString("ok\xc0"))
	checkDirect(t, "bad UTF-8 in list", bad.Interface())
	bad = mt.New()
	bad.Mutable(fds.ByName("m_ss")).Map().Set(protoreflect.ValueOfString("\xc0").MapKey(), protoreflect.ValueOfString(""))
	checkDirect(t, "bad UTF-8 map key", bad.Interface())
}

// TestCompareJCS checks the member order against RFC 8785's definition,
// comparing UTF-16 code units.
func TestCompareJCS(t *testing.T) {
	keys := []string{"", "a", "aa", "ab", "b", "B", "é", "\u00ff", "\u0100", "\ud7ff", "\ue000", "\uffff",
		"\U00010000", "\U0001F600", "\U0001F601", "\U0010FFFF", "a\U0001F600", "a\ue000", "\x00", "\x7f"}
	ref := func(a, b string) int {
		ua, ub := utf16.Encode([]rune(a)), utf16.Encode([]rune(b))
		return slices.Compare(ua, ub)
	}
	sign := func(n int) int { return min(max(n, -1), 1) }
	for _, a := range keys {
		for _, b := range keys {
			if got, want := sign(audit.CompareJCS(a, b)), ref(a, b); got != want {
				t.Errorf("compareJCS(%q, %q) = %d, want %d", a, b, got, want)
			}
		}
	}
}

// TestCanonicalDirectRandomNumbers compares number formatting with JCS's
// on random doubles of every magnitude, as Struct numbers and as a double
// field.
func TestCanonicalDirectRandomNumbers(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 1200))
	fields := map[string]*structpb.Value{}
	for i := range 5000 {
		var f float64
		switch i % 4 {
		case 0:
			f = math.Float64frombits(rng.Uint64())
		case 1:
			f = float64(rng.Int64N(1<<54) - 1<<53)
		case 2:
			f = float64(rng.IntN(2_000_000)-1_000_000) / 100
		default:
			f = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(40)-20))
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		if _, err := jcs.NumberToJSON(f); err != nil {
			t.Fatal(err)
		}
		fields[fmt.Sprint(i)] = structpb.NewNumberValue(f)
		if i%50 == 0 {
			checkDirect(t, fmt.Sprintf("confidence %v", f), &tollgatev1.AI{Confidence: f})
		}
	}
	r := audittest.Decision(0)
	r.Request.Resource.Attributes = &structpb.Struct{Fields: fields}
	checkDirect(t, "random numbers", r)
}

// BenchmarkCanonical compares the definition with the direct encoder on a
// typical record (audittest.Decision, as prepare sees it).
func BenchmarkCanonical(b *testing.B) {
	rec := audittest.Decision(5)
	rec.Seq, rec.PrevHash = math.MaxUint64, bytes.Repeat([]byte{0xff}, 32)
	for _, bc := range []struct {
		name string
		enc  func(proto.Message) ([]byte, error)
	}{{"slow", audit.CanonicalSlow}, {"direct", audit.Canonical}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.enc(rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
