// Package authzen serves the OpenID AuthZEN Authorization API 1.0 over HTTP: the Access Evaluation
// and Access Evaluations endpoints and the PDP metadata document. It is a second front door to the same
// decision path as gRPC, not a second decision path: every evaluation is mapped to a
// tollgatev1.DecideRequest and handed, in process, to the DecisionService implementation through the
// gRPC Guard's own interceptor, so authentication (bearer tokens from the callers file), roles, rate
// limits, deadlines, the engine, idempotency, history locks, metrics and the hash-chained audit record
// are the ones a gRPC Decide gets.
//
// The mapping (docs/authzen.md, the README's "AuthZEN" section):
//
//	subject.type        user, identity → HUMAN; service → SERVICE; agent → AI_AGENT; else 400
//	subject.id          actor.id
//	subject.properties  on_behalf_of → actor.on_behalf_of; every other one → context "subject.<name>"
//	action.name         action
//	action.properties   context "action.<name>"
//	resource.type/id    resource.type/id
//	resource.properties resource.attributes
//	context             context (strings as they are, other values as their JSON text), except
//	                    context.ai → ai (AI agents) and context.idempotency_key → idempotency_key
//
// The answer's decision is true only for ALLOW; its context carries the decision_id (the audit
// record's), the effect, the reasons and, for REQUIRE_APPROVAL, reason "approval_required" and the
// approver roles (the Access Request & Approval profile's requestable denial).
package authzen
