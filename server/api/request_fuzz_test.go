package api

import (
	"errors"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/engine"
)

// fuzzLimits are the limit sets FuzzNormalize picks from: the defaults, and tight ones so that short
// inputs reach every bound.
var fuzzLimits = []Limits{
	Limits{}.withDefaults(),
	Limits{MaxRequestBytes: 300, MaxAttributes: 6, MaxDepth: 3, MaxContext: 2, MaxStringBytes: 12}.withDefaults(),
	Limits{MaxRequestBytes: 2000, MaxAttributes: 40, MaxDepth: 1, MaxContext: 4, MaxStringBytes: 64}.withDefaults(),
}

// FuzzNormalize checks Limits.normalize on requests built from a protobuf-encoded DecideRequest (as gRPC
// would deliver it) overlaid with structured fields (which may hold what the wire format cannot, such as
// invalid UTF-8). It either returns a *fieldError naming a field under the given prefix, or a request
// that is within every limit, all of whose strings are valid UTF-8 and whose numbers are finite, and
// that the engine request mirrors.
func FuzzNormalize(f *testing.F) {
	spec := &tollgatev1.DecideRequest{
		Actor:  &tollgatev1.Actor{Id: "u_buyer1", Type: tollgatev1.ActorType_ACTOR_TYPE_HUMAN},
		Action: "PO.SUBMIT",
		Resource: &tollgatev1.Resource{Type: "purchase_order", Id: "PO-1001", Attributes: mustStruct(f, map[string]any{
			"amount": "8000.00", "currency": "USD", "category": "MRO", "site_id": "DC1", "supplier_id": "S1",
			"lines": []any{map[string]any{"qty": 2, "item_id": "I1"}}, "flag": true, "none": nil,
		})},
		Context:        map[string]string{"workflow_id": "wf-77", "step": "approve"},
		IdempotencyKey: "evt-0001",
	}
	agent := &tollgatev1.DecideRequest{
		Actor:  &tollgatev1.Actor{Id: "agent_alloc", Type: tollgatev1.ActorType_ACTOR_TYPE_AI_AGENT},
		Action: "ALLOCATION.CREATE",
		Ai: &tollgatev1.AI{UseCase: "backorder_allocation", Mode: tollgatev1.AIMode_AI_MODE_EXECUTE,
			Confidence: 0.93, Explanation: "short", ModelVersion: "m-1"},
	}
	for _, m := range []*tollgatev1.DecideRequest{spec, agent, {}} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatalf("marshal seed: %v", err)
		}
		f.Add(b, uint8(0), "", int32(0), "", "", "", uint8(0), "", "", int32(0), 0.0, false)
		f.Add(b, uint8(1), "", int32(0), "", "k", "v", uint8(4), "ctx", "v", int32(0), 0.0, true)
	}
	f.Add([]byte{}, uint8(1), "u1", int32(3), "A", "k", "\xff", uint8(2), "", "", int32(2), math.NaN(), false)
	f.Add([]byte{}, uint8(2), "u1", int32(3), "A", "k", "v", uint8(2), "\xfe", "", int32(1), 0.5, false)
	f.Add([]byte{}, uint8(0), "u1", int32(1), "A", "", "", uint8(0), "", "", int32(9), 1.0, false)

	f.Fuzz(func(t *testing.T, wire []byte, limitSel uint8, actorID string, actorType int32, action,
		attrKey, attrVal string, nest uint8, ctxKey, ctxVal string, aiMode int32, confidence float64, batch bool) {
		req := &tollgatev1.DecideRequest{}
		if err := proto.Unmarshal(wire, req); err != nil {
			req = &tollgatev1.DecideRequest{}
		}
		if actorID != "" || actorType != 0 {
			if req.Actor == nil {
				req.Actor = &tollgatev1.Actor{}
			}
			req.Actor.Id = actorID
			req.Actor.Type = tollgatev1.ActorType(actorType)
		}
		if action != "" {
			req.Action = action
		}
		if attrKey != "" {
			if req.Resource == nil {
				req.Resource = &tollgatev1.Resource{}
			}
			if req.Resource.Attributes == nil {
				req.Resource.Attributes = &structpb.Struct{Fields: map[string]*structpb.Value{}}
			}
			req.Resource.Attributes.Fields[attrKey] = nested(attrVal, int(nest%12))
		}
		if ctxKey != "" || ctxVal != "" {
			if req.Context == nil {
				req.Context = map[string]string{}
			}
			req.Context[ctxKey] = ctxVal
		}
		if aiMode != 0 || confidence != 0 {
			req.Ai = &tollgatev1.AI{Mode: tollgatev1.AIMode(aiMode), Confidence: confidence, UseCase: attrVal}
		}
		lim := fuzzLimits[int(limitSel)%len(fuzzLimits)]
		prefix := ""
		if batch {
			prefix = "requests[7]."
		}

		before := proto.Clone(req)
		out, err := lim.normalize(req, prefix)
		if !proto.Equal(before, req) {
			t.Fatalf("normalize modified its input")
		}
		if err != nil {
			var fe *fieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T %q is not a *fieldError", err, err)
			}
			if len(fe.field) <= len(prefix) || !strings.HasPrefix(fe.field, prefix) || fe.reason == "" {
				t.Fatalf("fieldError %q: want a field under prefix %q and a reason", err, prefix)
			}
			if out != nil {
				t.Fatalf("normalize returned a request with error %v", err)
			}
			return
		}
		checkAccepted(t, lim, req, out)
	})
}

// checkAccepted asserts the contract of an accepted request, independently of how normalize checks it.
func checkAccepted(t *testing.T, lim Limits, req *tollgatev1.DecideRequest, out *engine.Request) {
	t.Helper()
	if size := proto.Size(req); size > lim.MaxRequestBytes {
		t.Errorf("accepted a request of %d bytes, limit %d", size, lim.MaxRequestBytes)
	}
	walkStrings(req.ProtoReflect(), func(where, s string) {
		if !utf8.ValidString(s) {
			t.Errorf("accepted invalid UTF-8 in %s: %q", where, s)
		}
		if len(s) > lim.MaxStringBytes {
			t.Errorf("accepted a %d-byte string in %s, limit %d", len(s), where, lim.MaxStringBytes)
		}
	})
	if n := len(req.GetContext()); n > lim.MaxContext {
		t.Errorf("accepted %d context entries, limit %d", n, lim.MaxContext)
	}
	if attrs := req.GetResource().GetAttributes(); attrs != nil {
		var count, depth int
		measure(structpb.NewStructValue(attrs), 0, &count, &depth, func(v float64) {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Errorf("accepted a non-finite attribute number %v", v)
			}
		})
		count-- // the attributes struct itself is not an attribute value
		if count > lim.MaxAttributes {
			t.Errorf("accepted %d attribute values, limit %d", count, lim.MaxAttributes)
		}
		if depth > lim.MaxDepth {
			t.Errorf("accepted attributes nested %d deep, limit %d", depth, lim.MaxDepth)
		}
	}
	if out.Actor.ID == "" || out.Actor.ID != req.GetActor().GetId() || out.Action == "" || out.Action != req.GetAction() ||
		out.Actor.OnBehalfOf != req.GetActor().GetOnBehalfOf() || out.Resource.ID != req.GetResource().GetId() {
		t.Errorf("engine request %+v does not mirror %v", out, req)
	}
	switch out.Actor.Type {
	case engine.ActorHuman, engine.ActorService, engine.ActorAIAgent:
	default:
		t.Errorf("engine actor type %q", out.Actor.Type)
	}
	emptyAI := req.GetAi() == nil || proto.Equal(req.GetAi(), &tollgatev1.AI{})
	if emptyAI != (out.AI == nil) {
		t.Errorf("request ai %v gave engine ai %+v", req.GetAi(), out.AI)
	}
	if out.AI != nil {
		if out.Actor.Type != engine.ActorAIAgent {
			t.Errorf("ai accepted for actor type %q", out.Actor.Type)
		}
		if c := out.AI.Confidence; math.IsNaN(c) || math.IsInf(c, 0) {
			t.Errorf("accepted ai.confidence %v", c)
		}
	}
}

// walkStrings calls fn with every string field value and string map key in m, recursively.
func walkStrings(m protoreflect.Message, fn func(where, s string)) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := string(fd.FullName())
		switch {
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				if fd.MapKey().Kind() == protoreflect.StringKind {
					fn(name+" key", k.String())
				}
				walkValue(fd.MapValue(), mv, name, fn)
				return true
			})
		case fd.IsList():
			for i := 0; i < v.List().Len(); i++ {
				walkValue(fd, v.List().Get(i), name, fn)
			}
		default:
			walkValue(fd, v, name, fn)
		}
		return true
	})
}

func walkValue(fd protoreflect.FieldDescriptor, v protoreflect.Value, where string, fn func(where, s string)) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		fn(where, v.String())
	case protoreflect.MessageKind, protoreflect.GroupKind:
		walkStrings(v.Message(), fn)
	}
}

// measure counts the values in v (v included), records the deepest container level (v's own level is
// level+1 when v is a struct or list) and passes every number to num.
func measure(v *structpb.Value, level int, count, depth *int, num func(float64)) {
	*count++
	switch k := v.GetKind().(type) {
	case *structpb.Value_NumberValue:
		num(k.NumberValue)
	case *structpb.Value_StructValue:
		*depth = max(*depth, level+1)
		for _, c := range k.StructValue.GetFields() {
			measure(c, level+1, count, depth, num)
		}
	case *structpb.Value_ListValue:
		*depth = max(*depth, level+1)
		for _, c := range k.ListValue.GetValues() {
			measure(c, level+1, count, depth, num)
		}
	}
}

// nested wraps the string s in n containers, alternating lists and structs.
func nested(s string, n int) *structpb.Value {
	v := structpb.NewStringValue(s)
	for i := range n {
		if i%2 == 0 {
			v = structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{v}})
		} else {
			v = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{s: v}})
		}
	}
	return v
}

func mustStruct(tb testing.TB, m map[string]any) *structpb.Struct {
	tb.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		tb.Fatalf("struct: %v", err)
	}
	return s
}

// TestNormalizeContextKeys is the regression test for what FuzzNormalize found: context keys were not
// checked, so a key of invalid UTF-8 or beyond MaxStringBytes was accepted.
func TestNormalizeContextKeys(t *testing.T) {
	lim := Limits{}.withDefaults()
	for name, key := range map[string]string{
		"invalid UTF-8": "\xfe",
		"too long":      strings.Repeat("k", lim.MaxStringBytes+1),
	} {
		t.Run(name, func(t *testing.T) {
			req := &tollgatev1.DecideRequest{
				Actor:   &tollgatev1.Actor{Id: "u1", Type: tollgatev1.ActorType_ACTOR_TYPE_HUMAN},
				Action:  "PO.SUBMIT",
				Context: map[string]string{key: "v"},
			}
			_, err := lim.normalize(req, "")
			var fe *fieldError
			if !errors.As(err, &fe) || fe.field != "context" {
				t.Fatalf("normalize = %v, want a *fieldError on field context", err)
			}
		})
	}
}
