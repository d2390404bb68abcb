package api

import (
	"math"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/engine"
)

// normalize checks the structure of a decision request and converts it to the engine's form. field
// prefixes the field names of errors (e.g. "requests[3]." inside a batch). Business-level values, such
// as an unknown customer or a malformed amount, are left for the policy to deny.
func (l Limits) normalize(req *tollgatev1.DecideRequest, field string) (*engine.Request, error) {
	if size := proto.Size(req); size > l.MaxRequestBytes {
		return nil, badField(field+"request", "%d bytes exceeds the limit of %d", size, l.MaxRequestBytes)
	}
	actor := req.GetActor()
	if actor == nil {
		return nil, badField(field+"actor", "is required")
	}
	if actor.GetId() == "" {
		return nil, badField(field+"actor.id", "is required")
	}
	actorType, ok := actorTypes[actor.GetType()]
	if !ok {
		return nil, badField(field+"actor.type", "must be HUMAN, SERVICE or AI_AGENT")
	}
	if req.GetAction() == "" {
		return nil, badField(field+"action", "is required")
	}
	out := &engine.Request{
		Actor:  engine.Actor{ID: actor.GetId(), Type: actorType, OnBehalfOf: actor.GetOnBehalfOf()},
		Action: req.GetAction(),
		Resource: engine.Resource{
			Type:       req.GetResource().GetType(),
			ID:         req.GetResource().GetId(),
			Attributes: req.GetResource().GetAttributes(),
		},
		Context: req.GetContext(),
	}
	for name, s := range map[string]string{
		"actor.id": actor.GetId(), "actor.on_behalf_of": actor.GetOnBehalfOf(), "action": req.GetAction(),
		"resource.type": out.Resource.Type, "resource.id": out.Resource.ID, "idempotency_key": req.GetIdempotencyKey(),
	} {
		if err := l.checkString(field+name, s); err != nil {
			return nil, err
		}
	}
	if len(req.GetContext()) > l.MaxContext {
		return nil, badField(field+"context", "%d entries exceed the limit of %d", len(req.GetContext()), l.MaxContext)
	}
	for k, v := range req.GetContext() {
		// Keys are strings of the request too: bounded and valid UTF-8 like the values.
		if err := l.checkString(field+"context", k); err != nil {
			return nil, err
		}
		if err := l.checkString(field+"context."+k, v); err != nil {
			return nil, err
		}
	}
	if attrs := req.GetResource().GetAttributes(); attrs != nil {
		count := 0
		if err := l.checkStruct(field+"resource.attributes", attrs, 1, &count); err != nil {
			return nil, err
		}
	}
	// An ai block with every field empty is the same as none: policy-pack §2 shows one in its example
	// request for a human.
	if ai := req.GetAi(); ai != nil && !proto.Equal(ai, emptyAI) {
		if actorType != engine.ActorAIAgent {
			return nil, badField(field+"ai", "is allowed only when actor.type is AI_AGENT")
		}
		mode, ok := aiModes[ai.GetMode()]
		if !ok {
			return nil, badField(field+"ai.mode", "must be RECOMMEND or EXECUTE")
		}
		if math.IsNaN(ai.GetConfidence()) || math.IsInf(ai.GetConfidence(), 0) {
			return nil, badField(field+"ai.confidence", "must be a number")
		}
		for name, s := range map[string]string{"ai.use_case": ai.GetUseCase(), "ai.explanation": ai.GetExplanation(), "ai.model_version": ai.GetModelVersion()} {
			if err := l.checkString(field+name, s); err != nil {
				return nil, err
			}
		}
		out.AI = &engine.AI{
			UseCase: ai.GetUseCase(), Mode: mode, Confidence: ai.GetConfidence(),
			Explanation: ai.GetExplanation(), ModelVersion: ai.GetModelVersion(),
		}
	}
	return out, nil
}

var emptyAI = &tollgatev1.AI{}

var actorTypes = map[tollgatev1.ActorType]string{
	tollgatev1.ActorType_ACTOR_TYPE_HUMAN:    engine.ActorHuman,
	tollgatev1.ActorType_ACTOR_TYPE_SERVICE:  engine.ActorService,
	tollgatev1.ActorType_ACTOR_TYPE_AI_AGENT: engine.ActorAIAgent,
}

// An unspecified mode is passed on as "": the policy decides what an AI request without a mode may do.
var aiModes = map[tollgatev1.AIMode]string{
	tollgatev1.AIMode_AI_MODE_UNSPECIFIED: "",
	tollgatev1.AIMode_AI_MODE_RECOMMEND:   engine.ModeRecommend,
	tollgatev1.AIMode_AI_MODE_EXECUTE:     engine.ModeExecute,
}

func (l Limits) checkString(field, s string) error {
	if len(s) > l.MaxStringBytes {
		return badField(field, "%d bytes exceeds the limit of %d", len(s), l.MaxStringBytes)
	}
	if !utf8.ValidString(s) {
		return badField(field, "is not valid UTF-8")
	}
	return nil
}

// checkStruct bounds the depth and size of free-form attributes, so no caller can make the policy walk
// an arbitrarily large or deep document.
func (l Limits) checkStruct(field string, s *structpb.Struct, depth int, count *int) error {
	if depth > l.MaxDepth {
		return badField(field, "nesting deeper than %d levels", l.MaxDepth)
	}
	for k, v := range s.GetFields() {
		if err := l.checkString(field, k); err != nil {
			return err
		}
		if err := l.checkValue(field+"."+k, v, depth, count); err != nil {
			return err
		}
	}
	return nil
}

func (l Limits) checkValue(field string, v *structpb.Value, depth int, count *int) error {
	*count++
	if *count > l.MaxAttributes {
		return badField(field, "more than %d attribute values", l.MaxAttributes)
	}
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return l.checkString(field, k.StringValue)
	case *structpb.Value_NumberValue:
		if math.IsNaN(k.NumberValue) || math.IsInf(k.NumberValue, 0) {
			return badField(field, "is not a finite number")
		}
	case *structpb.Value_StructValue:
		return l.checkStruct(field, k.StructValue, depth+1, count)
	case *structpb.Value_ListValue:
		if depth+1 > l.MaxDepth {
			return badField(field, "nesting deeper than %d levels", l.MaxDepth)
		}
		for _, item := range k.ListValue.GetValues() {
			if err := l.checkValue(field+"[]", item, depth+1, count); err != nil {
				return err
			}
		}
	}
	return nil
}
