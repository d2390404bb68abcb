package authzen

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// Subject is the principal asking (AuthZEN 1.0 §5.1).
type Subject struct {
	Type       string         `json:"type"`
	ID         string         `json:"id"`
	Properties map[string]any `json:"properties,omitempty"`
}

// Action is what the subject wants to do (§5.3).
type Action struct {
	Name       string         `json:"name"`
	Properties map[string]any `json:"properties,omitempty"`
}

// Resource is what the action touches (§5.2).
type Resource struct {
	Type       string         `json:"type"`
	ID         string         `json:"id"`
	Properties map[string]any `json:"properties,omitempty"`
}

// Evaluation is one Access Evaluation request, the 4-tuple of §6.1. A nil entity was not given.
type Evaluation struct {
	Subject  *Subject       `json:"subject,omitempty"`
	Action   *Action        `json:"action,omitempty"`
	Resource *Resource      `json:"resource,omitempty"`
	Context  map[string]any `json:"context,omitempty"`
}

// EvaluationsRequest is an Access Evaluations request (§7.1): the top-level 4-tuple holds the defaults
// of the items. Items stay raw until they are evaluated, so one that does not decode is an error in its
// own answer rather than in the whole request's.
type EvaluationsRequest struct {
	Evaluation
	Evaluations []json.RawMessage `json:"evaluations,omitempty"`
	Options     Options           `json:"options"`
}

// Options are the Access Evaluations options (§7.1.2); unknown options are ignored.
type Options struct {
	EvaluationsSemantic string `json:"evaluations_semantic,omitempty"`
}

// Evaluations semantics (§7.1.2.1).
const (
	ExecuteAll          = "execute_all"
	DenyOnFirstDeny     = "deny_on_first_deny"
	PermitOnFirstPermit = "permit_on_first_permit"
)

// requestError is a request that cannot be evaluated as sent: the HTTP 400 of §10, or the error inside
// one item's answer.
type requestError struct{ msg string }

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &requestError{msg: fmt.Sprintf(format, args...)}
}

// DecodeEvaluation decodes an Access Evaluation request body. Unknown fields are ignored; numbers keep
// their exact text (json.Number). A body that is empty, not one JSON object or of the wrong types is a
// *requestError.
func DecodeEvaluation(body []byte) (*Evaluation, error) {
	var e Evaluation
	if err := decodeJSON(body, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// DecodeEvaluations decodes an Access Evaluations request body, as DecodeEvaluation; the items are
// decoded later, each by Item.
func DecodeEvaluations(body []byte) (*EvaluationsRequest, error) {
	var r EvaluationsRequest
	if err := decodeJSON(body, &r); err != nil {
		return nil, err
	}
	switch r.Options.EvaluationsSemantic {
	case "", ExecuteAll, DenyOnFirstDeny, PermitOnFirstPermit:
	default:
		return nil, badRequest("options.evaluations_semantic: %q is not %s, %s or %s",
			r.Options.EvaluationsSemantic, ExecuteAll, DenyOnFirstDeny, PermitOnFirstPermit)
	}
	return &r, nil
}

// Item returns the i-th evaluation with the request's defaults filled in: an entity the item gives
// replaces the default entity whole (no field-level merge), as §7.1.1 says.
func (r *EvaluationsRequest) Item(i int) (*Evaluation, error) {
	var item Evaluation
	if err := decodeJSON(r.Evaluations[i], &item); err != nil {
		return nil, err
	}
	if item.Subject == nil {
		item.Subject = r.Subject
	}
	if item.Action == nil {
		item.Action = r.Action
	}
	if item.Resource == nil {
		item.Resource = r.Resource
	}
	if item.Context == nil {
		item.Context = r.Context
	}
	return &item, nil
}

func decodeJSON(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return badRequest("the request body is empty; want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return badRequest("invalid JSON: %s", jsonMessage(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("invalid JSON: unexpected data after the JSON object")
	}
	return nil
}

// jsonMessage says what is wrong without Go type names.
func jsonMessage(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return fmt.Sprintf("want a JSON object, got %s", te.Value)
		}
		return fmt.Sprintf("%s: wrong type (%s)", te.Field, te.Value)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// actorTypes maps subject.type to the actor type policies see. Anything else cannot be evaluated:
// guessing a type would let a typo decide which rules apply.
var actorTypes = map[string]tollgatev1.ActorType{
	"user":     tollgatev1.ActorType_ACTOR_TYPE_HUMAN,
	"identity": tollgatev1.ActorType_ACTOR_TYPE_HUMAN,
	"service":  tollgatev1.ActorType_ACTOR_TYPE_SERVICE,
	"agent":    tollgatev1.ActorType_ACTOR_TYPE_AI_AGENT,
}

// Reserved context keys: they set DecideRequest fields instead of becoming context entries.
const (
	contextAI             = "ai"
	contextIdempotencyKey = "idempotency_key"
	propertyOnBehalfOf    = "on_behalf_of"
)

// DecideRequest maps an evaluation to Tollgate's decision request (the package doc's table). A missing
// required field, an unknown subject.type or a reserved key of the wrong type is a *requestError; the
// limits (sizes, depth, string lengths) are the decision service's to check, as for gRPC.
func (e *Evaluation) DecideRequest() (*tollgatev1.DecideRequest, error) {
	if err := e.check(); err != nil {
		return nil, err
	}
	actorType, ok := actorTypes[e.Subject.Type]
	if !ok {
		return nil, badRequest("subject.type: %q is not user, identity, service or agent", e.Subject.Type)
	}
	req := &tollgatev1.DecideRequest{
		Actor:    &tollgatev1.Actor{Id: e.Subject.ID, Type: actorType},
		Action:   e.Action.Name,
		Resource: &tollgatev1.Resource{Type: e.Resource.Type, Id: e.Resource.ID},
	}
	if len(e.Resource.Properties) > 0 {
		attrs, err := structpb.NewStruct(e.Resource.Properties)
		if err != nil {
			return nil, badRequest("resource.properties: %v", err)
		}
		req.Resource.Attributes = attrs
	}
	ctx := map[string]string{}
	for name, v := range e.Subject.Properties {
		if name == propertyOnBehalfOf {
			s, ok := v.(string)
			if !ok {
				return nil, badRequest("subject.properties.on_behalf_of: want a string")
			}
			req.Actor.OnBehalfOf = s
			continue
		}
		ctx["subject."+name] = contextValue(v)
	}
	for name, v := range e.Action.Properties {
		ctx["action."+name] = contextValue(v)
	}
	for name, v := range e.Context {
		switch name {
		case contextAI:
			ai, err := aiBlock(v)
			if err != nil {
				return nil, err
			}
			req.Ai = ai
		case contextIdempotencyKey:
			s, ok := v.(string)
			if !ok {
				return nil, badRequest("context.idempotency_key: want a string")
			}
			req.IdempotencyKey = s
		default:
			ctx[name] = contextValue(v)
		}
	}
	if len(ctx) > 0 {
		req.Context = ctx
	}
	return req, nil
}

// check names the first required field that is missing (§5: subject type and id, action name,
// resource type and id).
func (e *Evaluation) check() error {
	missing := func(field string) error { return badRequest("%s: is required", field) }
	switch {
	case e.Subject == nil:
		return missing("subject")
	case e.Subject.Type == "":
		return missing("subject.type")
	case e.Subject.ID == "":
		return missing("subject.id")
	case e.Action == nil:
		return missing("action")
	case e.Action.Name == "":
		return missing("action.name")
	case e.Resource == nil:
		return missing("resource")
	case e.Resource.Type == "":
		return missing("resource.type")
	case e.Resource.ID == "":
		return missing("resource.id")
	}
	return nil
}

// contextValue is a context entry's string: a string as it is, anything else as its compact JSON text
// (numbers exactly as sent), so nothing a caller sent is silently dropped.
func contextValue(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		// Only values decoded from JSON reach here, and they always marshal.
		return fmt.Sprint(v)
	}
	return string(b)
}

var aiModes = map[string]tollgatev1.AIMode{
	"":          tollgatev1.AIMode_AI_MODE_UNSPECIFIED,
	"RECOMMEND": tollgatev1.AIMode_AI_MODE_RECOMMEND,
	"EXECUTE":   tollgatev1.AIMode_AI_MODE_EXECUTE,
}

// aiBlock maps context.ai to the request's ai block; the decision service refuses it for an actor
// that is not an AI agent, as over gRPC.
func aiBlock(v any) (*tollgatev1.AI, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, badRequest("context.ai: want an object")
	}
	ai := &tollgatev1.AI{}
	strs := map[string]*string{"use_case": &ai.UseCase, "explanation": &ai.Explanation, "model_version": &ai.ModelVersion}
	names := make([]string, 0, len(strs))
	for name := range strs {
		names = append(names, name)
	}
	sort.Strings(names) // the first bad field named is the same every time
	for _, name := range names {
		raw, ok := obj[name]
		if !ok {
			continue
		}
		s, ok := raw.(string)
		if !ok {
			return nil, badRequest("context.ai.%s: want a string", name)
		}
		*strs[name] = s
	}
	if raw, ok := obj["mode"]; ok {
		s, isString := raw.(string)
		mode, known := aiModes[s]
		if !isString || !known {
			return nil, badRequest("context.ai.mode: want RECOMMEND or EXECUTE")
		}
		ai.Mode = mode
	}
	if raw, ok := obj["confidence"]; ok {
		n, ok := raw.(json.Number)
		if !ok {
			return nil, badRequest("context.ai.confidence: want a number")
		}
		f, err := n.Float64()
		if err != nil {
			return nil, badRequest("context.ai.confidence: %s is not a finite number", n)
		}
		ai.Confidence = f
	}
	return ai, nil
}
