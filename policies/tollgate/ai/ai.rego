# METADATA
# title: AI boundaries (AI)
# description: |
#   Judges AI_AGENT actors: registration and entitlement (AI-1), actions never
#   allowed to AI (AI-2), autonomy (AI-3), confidence and explanation (AI-4),
#   value caps (AI-5), the human-in-the-loop cases (AI-6..AI-9) and the
#   daily value cap over the agent's decision history (AI-10). The
#   agent's registry entry is its entitlement. Floors and caps are the
#   stricter of the registry entry and params.ai.use_cases. Confidence floors
#   are inclusive. A RECOMMEND is judged by AI-1, AI-2 and the confidence
#   checks; the autonomy, explanation, cap and hand-over rules apply to EXECUTE.
package tollgate.ai

import data.tollgate.md
import data.tollgate.money
import data.tollgate.prior
import data.tollgate.val

# params is data.params read once per decision: indexing a value is cheaper
# than a store read per reference.
params := data.params

attrs := val.attrs

use_case := val.ai.use_case

mode := val.ai.mode

confidence := object.get(val.ai, "confidence", 0)

execute if mode == "EXECUTE"

agent := md.ai_agent(val.actor_id)

entry := agent.use_cases[use_case]

owner := [entry.owner_role]

_p := params.ai.use_cases[use_case]

_f(rule, effect, code, msg, approvers) := [5, rule, "", effect, code, msg, approvers]

_deny(rule, code, msg) := _f(rule, "DENY", code, msg, [])

_ask(rule, code, msg) := _f(rule, "REQUIRE_APPROVAL", code, msg, owner)

findings := all if {
	val.is_ai
	all := _base | _within
} else := set()

# AI_WITHIN_AUTONOMY speaks only when no other AI rule restricted the request.
_within contains _f(20, "ALLOW", "AI_WITHIN_AUTONOMY", sprintf("agent %s may execute %s within its autonomy", [val.actor_id, use_case]), []) if {
	execute
	every f in _base {
		f[3] == "ALLOW"
	}
}

# The rules that judge an EXECUTE only, evaluated only for one.
_base contains f if {
	execute
	some f in _execute
}

# AI-1
_base contains _deny(1, "AI_AGENT_NOT_REGISTERED", sprintf("agent %s is not registered", [val.actor_id])) if not agent

_base contains _deny(2, "AI_AGENT_DISABLED", sprintf("agent %s is disabled", [val.actor_id])) if agent.enabled == false

_base contains _deny(3, "AI_MODEL_VERSION_NOT_APPROVED", sprintf("model version %v of agent %s is not approved", [object.get(val.ai, "model_version", null), val.actor_id])) if {
	agent
	not object.get(val.ai, "model_version", null) in agent.model_versions
}

_base contains _deny(4, "AI_USE_CASE_NOT_PERMITTED", sprintf("agent %s is not permitted %s for %s", [val.actor_id, use_case, input.action])) if {
	agent
	not _permitted
}

_permitted if {
	entry
	input.action in params.ai.use_case_actions[use_case]
	_p
}

# AI-2
_base contains _deny(5, "AI_ACTION_PROHIBITED", sprintf("%s is never allowed to an AI agent", [input.action])) if _prohibited

_prohibited if input.action in params.ai.prohibited_actions

_prohibited if {
	some s in params.ai.prohibited_suffixes
	endswith(input.action, s)
}

_prohibited if {
	some p in params.ai.prohibited_prefixes
	startswith(input.action, p)
}

# AI-3
_base contains _f(6, "ALLOW", "AI_RECOMMENDATION_ONLY", sprintf("agent %s recommends; a human decides", [val.actor_id]), []) if mode == "RECOMMEND"

_execute contains _ask(7, "AI_HUMAN_APPROVAL_REQUIRED", sprintf("use case %s runs under autonomy %s", [use_case, entry.autonomy])) if {
	_permitted
	entry.autonomy in {"HUMAN_APPROVAL_REQUIRED", "RECOMMEND_ONLY"}
}

_execute contains _ask(8, "AI_AUTONOMY_SUSPENDED", sprintf("autonomy is suspended for %s", [use_case])) if {
	_permitted
	_suspended
}

_suspended if md.ai_control.autonomy_suspended == true

_suspended if use_case in md.ai_control.suspended_use_cases

# AI-4
_base contains _deny(9, "AI_CONFIDENCE_INVALID", sprintf("confidence %v is not a number in [0,1]", [confidence])) if not _confidence_valid

_confidence_valid if {
	is_number(confidence)
	confidence >= 0
	confidence <= 1
}

floor := max({entry.confidence_floor, _p.confidence_floor, _execute_floor})

_execute_floor := _p.execute_confidence_floor if execute

_execute_floor := 0 if not execute

_base contains _ask(10, "AI_CONFIDENCE_BELOW_FLOOR", sprintf("confidence %v is below the floor %v of %s", [confidence, floor, use_case])) if {
	_permitted
	_confidence_valid
	confidence < floor
}

_execute contains _ask(11, "AI_EXPLANATION_MISSING", "an EXECUTE needs an explanation") if {
	_permitted
	not _explained
}

_explained if {
	e := val.ai.explanation
	is_string(e)
	trim_space(e) != ""
}

# AI-5 value cap: the stricter of the registry cap and the pack's.
_execute contains _ask(12, "AI_VALUE_CAP_EXCEEDED", sprintf("value %s %s exceeds the cap of %s", [v, attrs.currency, use_case])) if {
	_permitted
	v := attrs[_p.value_field]
	not _within_cap(money.minor(v, attrs.currency))
}

_within_cap(value) if {
	value <= money.limit(_p.value_cap, attrs.currency)
	agent.currency == attrs.currency
	value <= money.minor(entry.value_cap, agent.currency)
}

# AI-6 stock taken from a tier-1 customer.
_execute contains _f(13, "REQUIRE_APPROVAL", "AI_TIER1_CUSTOMER_HUMAN_REQUIRED", sprintf("allocation takes %d from tier-1 customer %s", [e.qty_delta, e.customer_id]), params.ai.tier1_allocation_approvers) if {
	input.action == "ALLOCATION.CREATE"
	some e in object.get(attrs, "affected_customers", [])
	e.qty_delta < 0
	md.customer(e.customer_id).tier == params.ai.tier1
}

# AI-7 sensitive discrepancy classes and watchlisted suppliers.
_execute contains _f(14, "REQUIRE_APPROVAL", "AI_SENSITIVE_CLASS_HUMAN_REQUIRED", sprintf("discrepancy %s for supplier %s needs a human", [attrs.discrepancy_class, attrs.supplier_id]), params.ai.sensitive_discrepancy_approvers) if {
	input.action == "INVOICE.RESOLVE_DISCREPANCY"
	_sensitive_discrepancy
}

_sensitive_discrepancy if attrs.discrepancy_class in params.ai.sensitive_discrepancy_classes

_sensitive_discrepancy if md.supplier(attrs.supplier_id).watchlist == true

# AI-8 supplier messages.
_execute contains _f(15, "REQUIRE_APPROVAL", "AI_COMMERCIAL_COMMITMENT", "the message commits commercial terms", params.ai.commercial_approvers) if {
	input.action == "SUPPLIER.MESSAGE"
	attrs.commits_terms == true
}

_execute contains _f(16, "REQUIRE_APPROVAL", "AI_NON_TEMPLATE_MESSAGE", "the message uses no approved template", params.ai.commercial_approvers) if {
	input.action == "SUPPLIER.MESSAGE"
	attrs.template_id == ""
}

# AI-9 sensitive cases.
_execute contains _f(17, "REQUIRE_APPROVAL", "AI_SENSITIVE_CASE_HUMAN_REQUIRED", sprintf("case for customer %s is sensitive (tags %v)", [attrs.customer_id, attrs.case_tags]), params.ai.sensitive_case_approvers) if {
	input.action == "CASE.ROUTE"
	_sensitive_case
}

_sensitive_case if {
	some t in attrs.case_tags
	t in params.ai.sensitive_case_tags
}

_sensitive_case if md.customer(attrs.customer_id).tier == params.ai.tier1

# AI-10 daily value cap (policy-pack §6): spent, the agent's values allowed
# since 00:00 UTC (the ai_daily_value view), plus this value must stay within
# the agent's daily_value_cap; equal passes. This value is read as the view
# reads it for this action (its value path, absolute when the view says abs),
# so it is measured like the spent it is added to. A value in a currency other
# than the cap's, or a counted decision whose value the index could not read,
# cannot be judged: the owner decides. An agent without a cap is not capped.
_execute contains _ask(18, "AI_DAILY_CAP_EXCEEDED", msg) if {
	_permitted
	some a in params.history.views.ai_daily_value.actions
	a.action == input.action
	cap := agent.daily_value_cap
	cap != ""
	msg := _daily_cap_exceeded(_daily_value(a), cap)
}

_daily_value(a) := trim_prefix(v, "-") if {
	a.abs == true
	v := object.get(input, split(a.value, "."), null)
} else := object.get(input, split(a.value, "."), null)

_daily_cap_exceeded(v, cap) := sprintf("value %s %s is not in the currency of the daily cap %s %s of agent %s: it cannot be judged", [v, attrs.currency, cap, agent.currency, val.actor_id]) if {
	attrs.currency != agent.currency
} else := sprintf("agent %s: the values allowed today cannot all be read, so spent today cannot be judged against the daily cap %s %s (value %s)", [val.actor_id, cap, agent.currency, v]) if {
	h := prior.decisions("ai_daily_value", [val.actor_id])
	not prior.judgeable(h, agent.currency)
} else := sprintf("agent %s spent %s %s today; value %s %s would exceed the daily cap %s %s", [val.actor_id, money.format(spent, cur), cur, v, cur, cap, cur]) if {
	cur := agent.currency
	h := prior.decisions("ai_daily_value", [val.actor_id])
	spent := prior.sum(h, cur)
	spent + money.minor(v, cur) > money.minor(cap, cur)
}
