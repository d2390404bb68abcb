# METADATA
# title: Input checks (VAL)
# description: |
#   Run first: the action is known, required fields are present and well
#   formed, referenced ids resolve, amounts are exact decimal strings in a
#   supported currency, quantities are integers. When any VAL finding denies,
#   the entry package evaluates no other family, so the later families may
#   rely on everything checked here.
package tollgate.val

import data.params
import data.tollgate.md
import data.tollgate.money

# attrs is resource.attributes, or {} when absent or not an object.
attrs := a if {
	a := input.resource.attributes
	is_object(a)
} else := {}

# spec is the action's entry in params.actions; undefined for an unknown action.
spec := params.actions[input.action] if is_string(input.action)

# actor is input.actor, or {} when absent. Note `not f(x)` with x undefined
# does not hold, so optional input is read through defaults.
actor := a if {
	a := input.actor
	is_object(a)
} else := {}

actor_id := object.get(actor, "id", null)

actor_type := object.get(actor, "type", null)

on_behalf_of := object.get(actor, "on_behalf_of", "")

# ai is input.ai, or null when absent or not an object.
ai := a if {
	a := input.ai
	is_object(a)
} else := null

is_ai if actor_type == "AI_AGENT"

is_user if actor_type in {"HUMAN", "SERVICE"}

# fields is every attribute the action names: required first, then optional.
required_fields := array.concat(spec.required, object.get(spec, "ai_required", [])) if is_ai

required_fields := spec.required if not is_ai

fields := array.concat(required_fields, spec.optional)

_present(obj, k) if {
	v := obj[k]
	v != null
}

# entries are the attribute values to check, top-level and nested, each with
# its path (for messages), name (to find its type and currency) and type.
entries contains {"path": f, "name": f, "type": params.field_types[f], "value": attrs[f]} if {
	some f in fields
	_present(attrs, f)
}

entries contains {"path": sprintf("lines[%d].%s", [i, k]), "name": k, "type": t, "value": line[k]} if {
	is_array(attrs.lines)
	some i, line in attrs.lines
	is_object(line)
	some k, t in params.line_fields
	_present(line, k)
}

entries contains {"path": sprintf("affected_customers[%d].%s", [i, k]), "name": k, "type": t, "value": e[k]} if {
	"affected_customers" in fields
	is_array(attrs.affected_customers)
	some i, e in attrs.affected_customers
	is_object(e)
	some k, t in params.affected_fields
	_present(e, k)
}

# missing is every required path that is absent or malformed, with why.
missing contains [sprintf("resource.attributes.%s", [f]), "is required"] if {
	some f in required_fields
	not _present(attrs, f)
}

missing contains [sprintf("resource.attributes.%s", [e.path]), sprintf("is malformed (%s expected)", [e.type])] if {
	some e in entries
	not _well_formed(e.type, e.name, e.value)
}

missing contains [sprintf("resource.attributes.lines[%d].%s", [i, k]), "is required"] if {
	is_array(attrs.lines)
	some i, line in attrs.lines
	is_object(line)
	some k, _ in params.line_fields
	not _present(line, k)
}

missing contains [sprintf("resource.attributes.lines[%d]", [i]), "is malformed (object expected)"] if {
	is_array(attrs.lines)
	some i, line in attrs.lines
	not is_object(line)
}

missing contains [sprintf("resource.attributes.affected_customers[%d].%s", [i, k]), "is required"] if {
	"affected_customers" in fields
	is_array(attrs.affected_customers)
	some i, e in attrs.affected_customers
	is_object(e)
	some k, _ in params.affected_fields
	not _present(e, k)
}

missing contains [sprintf("resource.attributes.affected_customers[%d]", [i]), "is malformed (object expected)"] if {
	"affected_customers" in fields
	is_array(attrs.affected_customers)
	some i, e in attrs.affected_customers
	not is_object(e)
}

missing contains ["actor.id", "is required"] if not _non_empty(actor_id)

missing contains ["actor.type", "is required (HUMAN, SERVICE or AI_AGENT)"] if not actor_type in params.actor_types

missing contains ["ai", "is required for an AI_AGENT"] if {
	is_ai
	ai == null
}

missing contains ["ai.use_case", "is required for an AI_AGENT"] if {
	is_ai
	ai != null
	not _non_empty(object.get(ai, "use_case", null))
}

missing contains ["ai.mode", "is required for an AI_AGENT (RECOMMEND or EXECUTE)"] if {
	is_ai
	ai != null
	not object.get(ai, "mode", null) in params.ai_modes
}

missing contains ["actor.on_behalf_of", "is malformed (string expected)"] if {
	not is_string(on_behalf_of)
}

# Types whose failures have their own codes are always "well formed" here.
_well_formed(t, _, _) if t in {"amount", "currency", "positive_integer", "nonzero_integer", "nonnegative_integer"}

_well_formed("string", _, v) if _non_empty(v)

_well_formed("ref", _, v) if _non_empty(v)

_well_formed("text", _, v) if is_string(v)

_well_formed("boolean", _, v) if is_boolean(v)

_well_formed("enum", name, v) if v in params.enums[name]

_well_formed("date", _, v) if {
	is_string(v)
	regex.match(`^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$`, v)
}

_well_formed("strings", _, v) if {
	is_array(v)
	every s in v {
		is_string(s)
	}
}

_well_formed("lines", _, v) if {
	is_array(v)
	count(v) > 0
}

_well_formed("affected", _, v) if is_array(v)

_non_empty(v) if {
	is_string(v)
	v != ""
}

# integer(v) holds for a JSON number with no fraction.
integer(v) if {
	is_number(v)
	v == round(v)
}

_quantity_ok("positive_integer", v) if {
	integer(v)
	v > 0
}

_quantity_ok("nonzero_integer", v) if {
	integer(v)
	v != 0
}

_quantity_ok("nonnegative_integer", v) if {
	integer(v)
	v >= 0
}

# currency_of(name) is the currency an amount field is expressed in: the
# top-level attribute params.amount_currency_field names, else "currency".
currency_of(name) := attrs[object.get(params.amount_currency_field, name, "currency")]

_deny(rule, sub, code, msg) := {
	"order": [1, rule, sub],
	"effect": "DENY",
	"code": code,
	"message": msg,
	"approvers": [],
}

_unknown_rank := {"customer": 4, "supplier": 5, "item": 6, "site": 7}

# findings are the VAL findings; every one denies.
findings contains _deny(1, "", "UNKNOWN_ACTION", sprintf("action %v is not known to the policy pack", [object.get(input, "action", null)])) if not spec

findings contains _deny(2, m[0], "MISSING_REQUIRED_FIELD", sprintf("%s %s", m)) if some m in missing

findings contains _deny(3, "actor", "UNKNOWN_USER", sprintf("actor %v is not a known user", [actor_id])) if {
	is_user
	_non_empty(actor_id)
	not md.user(actor_id)
}

findings contains _deny(3, "on_behalf_of", "UNKNOWN_USER", sprintf("delegator %v is not a known user", [on_behalf_of])) if {
	_non_empty(on_behalf_of)
	not md.user(on_behalf_of)
}

findings contains _deny(_unknown_rank[kind], e.path, code, msg) if {
	some e in entries
	e.type == "ref"
	_non_empty(e.value)
	kind := params.ref_kinds[e.name]
	not md.record(kind, e.value)
	code := sprintf("UNKNOWN_%s", [upper(kind)])
	msg := sprintf("%s %s (resource.attributes.%s) does not resolve", [kind, e.value, e.path])
}

findings contains _deny(8, e.path, code, msg) if {
	some e in entries
	e.type == "amount"
	code := money.problem(e.value, currency_of(e.name))
	msg := sprintf("resource.attributes.%s: %v is not a valid amount (%s)", [e.path, e.value, code])
}

findings contains _deny(9, e.path, "UNSUPPORTED_CURRENCY", sprintf("resource.attributes.%s: currency %v is not supported", [e.path, e.value])) if {
	some e in entries
	e.type == "currency"
	not money.supported(e.value)
}

findings contains _deny(10, e.path, "INVALID_QUANTITY", sprintf("resource.attributes.%s: %v is not a valid quantity (%s)", [e.path, e.value, e.type])) if {
	some e in entries
	e.type in {"positive_integer", "nonzero_integer", "nonnegative_integer"}
	not _quantity_ok(e.type, e.value)
}
