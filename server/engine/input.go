package engine

import (
	"math"
	"strconv"

	"github.com/open-policy-agent/opa/v1/ast"
	"google.golang.org/protobuf/types/known/structpb"
)

// Actor types and AI modes as policies see them (the short names of policy-pack §2).
const (
	ActorHuman   = "HUMAN"
	ActorService = "SERVICE"
	ActorAIAgent = "AI_AGENT"

	ModeRecommend = "RECOMMEND"
	ModeExecute   = "EXECUTE"
)

// Request is one normalized decision request. The API layer validates its structure (action present,
// known actor type, sizes) before it reaches the engine; business-level values such as amounts are
// judged by the policy.
type Request struct {
	Actor    Actor
	Action   string
	Resource Resource
	// AI is set only for AI_AGENT actors.
	AI      *AI
	Context map[string]string
}

// Actor is the principal asking.
type Actor struct {
	ID         string
	Type       string // ActorHuman, ActorService or ActorAIAgent
	OnBehalfOf string
}

// Resource is what the action touches. Attributes keep the wire form: amounts arrive as strings and are
// parsed exactly by the policy, never as float64.
type Resource struct {
	Type       string
	ID         string
	Attributes *structpb.Struct
}

// AI describes an AI agent's request.
type AI struct {
	UseCase      string
	Mode         string // ModeRecommend, ModeExecute or ""
	Confidence   float64
	Explanation  string
	ModelVersion string
}

var (
	keyActor        = ast.InternedTerm("actor")
	keyID           = ast.InternedTerm("id")
	keyType         = ast.InternedTerm("type")
	keyOnBehalfOf   = ast.InternedTerm("on_behalf_of")
	keyAction       = ast.InternedTerm("action")
	keyResource     = ast.InternedTerm("resource")
	keyAttributes   = ast.InternedTerm("attributes")
	keyAI           = ast.InternedTerm("ai")
	keyUseCase      = ast.InternedTerm("use_case")
	keyMode         = ast.InternedTerm("mode")
	keyConfidence   = ast.InternedTerm("confidence")
	keyExplanation  = ast.InternedTerm("explanation")
	keyModelVersion = ast.InternedTerm("model_version")
	keyContext      = ast.InternedTerm("context")
)

// inputValue builds the policy input directly as an OPA value: no JSON round trip on the hot path.
func (r *Request) inputValue() ast.Value {
	actor := ast.NewObject(
		[2]*ast.Term{keyID, ast.StringTerm(r.Actor.ID)},
		[2]*ast.Term{keyType, ast.StringTerm(r.Actor.Type)},
		[2]*ast.Term{keyOnBehalfOf, ast.StringTerm(r.Actor.OnBehalfOf)},
	)
	resource := ast.NewObject(
		[2]*ast.Term{keyType, ast.StringTerm(r.Resource.Type)},
		[2]*ast.Term{keyID, ast.StringTerm(r.Resource.ID)},
		[2]*ast.Term{keyAttributes, ast.NewTerm(structValue(r.Resource.Attributes))},
	)
	ctx := ast.NewObject()
	for k, v := range r.Context {
		ctx.Insert(ast.StringTerm(k), ast.StringTerm(v))
	}
	in := ast.NewObject(
		[2]*ast.Term{keyActor, ast.NewTerm(actor)},
		[2]*ast.Term{keyAction, ast.StringTerm(r.Action)},
		[2]*ast.Term{keyResource, ast.NewTerm(resource)},
		[2]*ast.Term{keyContext, ast.NewTerm(ctx)},
	)
	if r.AI != nil {
		in.Insert(keyAI, ast.ObjectTerm(
			[2]*ast.Term{keyUseCase, ast.StringTerm(r.AI.UseCase)},
			[2]*ast.Term{keyMode, ast.StringTerm(r.AI.Mode)},
			[2]*ast.Term{keyConfidence, ast.NewTerm(floatNumber(r.AI.Confidence))},
			[2]*ast.Term{keyExplanation, ast.StringTerm(r.AI.Explanation)},
			[2]*ast.Term{keyModelVersion, ast.StringTerm(r.AI.ModelVersion)},
		))
	}
	return in
}

func structValue(s *structpb.Struct) ast.Object {
	obj := ast.NewObject()
	if s == nil {
		return obj
	}
	for k, v := range s.GetFields() {
		obj.Insert(ast.StringTerm(k), ast.NewTerm(protoValue(v)))
	}
	return obj
}

func protoValue(v *structpb.Value) ast.Value {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return ast.String(k.StringValue)
	case *structpb.Value_BoolValue:
		return ast.Boolean(k.BoolValue)
	case *structpb.Value_NumberValue:
		return floatNumber(k.NumberValue)
	case *structpb.Value_StructValue:
		return structValue(k.StructValue)
	case *structpb.Value_ListValue:
		items := k.ListValue.GetValues()
		terms := make([]*ast.Term, len(items))
		for i, item := range items {
			terms[i] = ast.NewTerm(protoValue(item))
		}
		return ast.NewArray(terms...)
	default:
		return ast.Null{}
	}
}

// floatNumber renders a protobuf number as an OPA number. Integral values become integers so that
// quantities compare exactly; amounts are strings and never come through here.
func floatNumber(f float64) ast.Value {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		// Not representable in JSON; the policy sees a string it will reject as malformed.
		return ast.String(strconv.FormatFloat(f, 'g', -1, 64))
	}
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return ast.Number(strconv.FormatInt(int64(f), 10))
	}
	return ast.Number(strconv.FormatFloat(f, 'g', -1, 64))
}
