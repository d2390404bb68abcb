package history

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// requestPath is a checked path into a DecideRequest, spelt as policies see
// the input: actor.id, actor.type, actor.on_behalf_of, action, resource.type,
// resource.id, resource.attributes.<name>[.<name>…], ai.use_case, ai.mode,
// ai.model_version and context.<key>. Enums read as their short names
// (HUMAN, AI_AGENT, EXECUTE), as in policy input.
type requestPath struct {
	text string
	get  func(*tollgatev1.DecideRequest) string
	// attrs is the attribute path under resource.attributes, when get is nil.
	attrs []string
}

var fixedPaths = map[string]func(*tollgatev1.DecideRequest) string{
	"action":             func(r *tollgatev1.DecideRequest) string { return r.GetAction() },
	"actor.id":           func(r *tollgatev1.DecideRequest) string { return r.GetActor().GetId() },
	"actor.on_behalf_of": func(r *tollgatev1.DecideRequest) string { return r.GetActor().GetOnBehalfOf() },
	"actor.type": func(r *tollgatev1.DecideRequest) string {
		if r.GetActor().GetType() == tollgatev1.ActorType_ACTOR_TYPE_UNSPECIFIED {
			return ""
		}
		return strings.TrimPrefix(r.GetActor().GetType().String(), "ACTOR_TYPE_")
	},
	"resource.type":    func(r *tollgatev1.DecideRequest) string { return r.GetResource().GetType() },
	"resource.id":      func(r *tollgatev1.DecideRequest) string { return r.GetResource().GetId() },
	"ai.use_case":      func(r *tollgatev1.DecideRequest) string { return r.GetAi().GetUseCase() },
	"ai.model_version": func(r *tollgatev1.DecideRequest) string { return r.GetAi().GetModelVersion() },
	"ai.mode": func(r *tollgatev1.DecideRequest) string {
		if r.GetAi().GetMode() == tollgatev1.AIMode_AI_MODE_UNSPECIFIED {
			return ""
		}
		return strings.TrimPrefix(r.GetAi().GetMode().String(), "AI_MODE_")
	},
}

func parsePath(s string) (requestPath, error) {
	if get, ok := fixedPaths[s]; ok {
		return requestPath{text: s, get: get}, nil
	}
	if k, ok := strings.CutPrefix(s, "context."); ok && k != "" {
		return requestPath{text: s, get: func(r *tollgatev1.DecideRequest) string { return r.GetContext()[k] }}, nil
	}
	if rest, ok := strings.CutPrefix(s, "resource.attributes."); ok {
		segs := strings.Split(rest, ".")
		for _, seg := range segs {
			if seg == "" {
				return requestPath{}, fmt.Errorf("%q has an empty segment", s)
			}
		}
		return requestPath{text: s, attrs: segs}, nil
	}
	if s == "" {
		return requestPath{}, fmt.Errorf("required")
	}
	return requestPath{}, fmt.Errorf("unknown request path %q (actor.id, actor.type, actor.on_behalf_of, action, resource.type, resource.id, resource.attributes.<name>, ai.use_case, ai.mode, ai.model_version or context.<key>)", s)
}

// lookup returns the string at p in req; false when it is absent, empty or
// not a string (a JSON number amount is malformed, never read as float).
func (p requestPath) lookup(req *tollgatev1.DecideRequest) (string, bool) {
	if p.get != nil {
		s := p.get(req)
		return s, s != ""
	}
	fields := req.GetResource().GetAttributes().GetFields()
	var v *structpb.Value
	for i, seg := range p.attrs {
		v = fields[seg]
		if v == nil {
			return "", false
		}
		if i < len(p.attrs)-1 {
			fields = v.GetStructValue().GetFields()
		}
	}
	s, ok := v.GetKind().(*structpb.Value_StringValue)
	if !ok || s.StringValue == "" {
		return "", false
	}
	return s.StringValue, true
}
