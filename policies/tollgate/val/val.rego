# METADATA
# title: Input checks (VAL)
# description: |
#   Run first: the action is known, required fields are present and well
#   formed, referenced ids resolve, amounts are exact decimal strings in a
#   supported currency, quantities are integers. When any VAL finding denies,
#   the entry package evaluates no other family, so the later families may
#   rely on everything checked here.
package tollgate.val

import data.tollgate.md
import data.tollgate.money

# params is data.params read once per decision: indexing a value is cheaper
# than a store read per reference.
params := data.params

# attrs is resource.attributes, or {} when absent or not an object.
attrs := a if {
	a := input.resource.attributes
	is_object(a)
} else := {}

# spec is the action's entry in params.actions; undefined for an unknown action.
spec := params.actions[input.action] if is_string(input.action)

# The actor's fields, with defaults when absent (or input.actor is not an
# object). Note `not f(x)` with x undefined does not hold, so optional input
# is read through defaults.
actor_id := object.get(input, ["actor", "id"], null)

actor_type := object.get(input, ["actor", "type"], null)

on_behalf_of := object.get(input, ["actor", "on_behalf_of"], "")

# ai is input.ai, or null when absent or not an object.
ai := a if {
	a := input.ai
	is_object(a)
} else := null

is_ai if actor_type == "AI_AGENT"

is_user if actor_type in {"HUMAN", "SERVICE"}

required_fields := array.concat(spec.required, object.get(spec, "ai_required", [])) if {
	actor_type == "AI_AGENT"
} else := spec.required

# fields is every attribute the action names: required first, then optional.
fields := array.concat(required_fields, spec.optional)

# amount is the request's top-level amount in minor units of its currency,
# computed once per decision; undefined when the request has none.
amount := money.minor(attrs.amount, attrs.currency)

# A finding is [family, rule, sub, effect, code, message, approvers]: its
# first three elements are its order key, so sort(findings) is rule order.
_deny(rule, sub, code, msg) := [1, rule, sub, "DENY", code, msg, []]

# _missing(path, why) is a MISSING_REQUIRED_FIELD finding for path.
_missing(path, why) := _deny(2, path, "MISSING_REQUIRED_FIELD", concat(" ", [path, why]))

_malformed(p, t) := _missing(concat("", ["resource.attributes.", _path(p)]), concat("", ["is malformed (", t, " expected)"]))

# A field's path is its name at the top level, [list, index, name] inside a
# list; it is formatted only for a finding that fires.
_path(p) := p if is_string(p)

_path(p) := sprintf("%s[%d].%s", p) if is_array(p)

_unknown_rank := {"customer": 4, "supplier": 5, "item": 6, "site": 7}

_lines := attrs.lines if is_array(attrs.lines)

_affected := attrs.affected_customers if {
	"affected_customers" in fields
	is_array(attrs.affected_customers)
}

# findings are the VAL findings; every one denies.
findings contains _deny(1, "", "UNKNOWN_ACTION", sprintf("action %v is not known to the policy pack", [object.get(input, "action", null)])) if not spec

findings contains _missing(concat("", ["resource.attributes.", f]), "is required") if {
	some f in required_fields
	object.get(attrs, f, null) == null
}

# Each present attribute is checked once, by its type.
findings contains f if {
	some name in fields
	v := attrs[name]
	v != null
	f := _check(params.field_types[name], name, name, v)
}

findings contains f if {
	some i, line in _lines
	some f in _nested("lines", i, line, params.line_fields)
}

findings contains f if {
	some i, e in _affected
	some f in _nested("affected_customers", i, e, params.affected_fields)
}

_nested(list, i, obj, _) := {_missing(sprintf("resource.attributes.%s[%d]", [list, i]), "is malformed (object expected)")} if {
	not is_object(obj)
}

_nested(list, i, obj, types) := {f |
	some k, _ in types
	object.get(obj, k, null) == null
	f := _missing(sprintf("resource.attributes.%s[%d].%s", [list, i, k]), "is required")
} | {f |
	some k, t in types
	v := obj[k]
	v != null
	f := _check(t, k, [list, i, k], v)
} if is_object(obj)

# _check(type, name, path, v) is the finding that rejects value v of the
# attribute name at path; undefined when v is acceptable.
_check(t, name, p, v) := _deny(8, _path(p), code, sprintf("resource.attributes.%s: %v is not a valid amount (%s)", [_path(p), v, code])) if {
	t == "amount"
	code := money.problem(v, currency_of(name))
}

_check(t, _, p, v) := _deny(9, _path(p), "UNSUPPORTED_CURRENCY", sprintf("resource.attributes.%s: currency %v is not supported", [_path(p), v])) if {
	t == "currency"
	not money.supported(v)
}

_check(t, name, p, v) := _malformed(p, "ref") if {
	t == "ref"
	not _non_empty(v)
}

_check(t, name, p, v) := _deny(_unknown_rank[kind], _path(p), concat("", ["UNKNOWN_", upper(kind)]), sprintf("%s %s (resource.attributes.%s) does not resolve", [kind, v, _path(p)])) if {
	t == "ref"
	is_string(v)
	v != ""
	kind := params.ref_kinds[name]
	not md.record(kind, v)
}

_check(t, _, p, v) := _malformed(p, "string") if {
	t == "string"
	not _non_empty(v)
}

_check(t, _, p, v) := _malformed(p, "text") if {
	t == "text"
	not is_string(v)
}

_check(t, _, p, v) := _malformed(p, "boolean") if {
	t == "boolean"
	not is_boolean(v)
}

_check(t, name, p, v) := _malformed(p, "enum") if {
	t == "enum"
	not v in params.enums[name]
}

_check(t, _, p, v) := _malformed(p, "date") if {
	t == "date"
	not _date(v)
}

_check(t, _, p, v) := _malformed(p, "strings") if {
	t == "strings"
	not _strings(v)
}

_check(t, _, p, v) := _malformed(p, "lines") if {
	t == "lines"
	not _non_empty_array(v)
}

_check(t, _, p, v) := _malformed(p, "affected") if {
	t == "affected"
	not is_array(v)
}

_check(t, _, p, v) := _bad_quantity(p, v, "positive_integer") if {
	t == "positive_integer"
	not _positive(v)
}

_check(t, _, p, v) := _bad_quantity(p, v, "nonzero_integer") if {
	t == "nonzero_integer"
	not _nonzero(v)
}

_check(t, _, p, v) := _bad_quantity(p, v, "nonnegative_integer") if {
	t == "nonnegative_integer"
	not _nonnegative(v)
}

_bad_quantity(p, v, t) := _deny(10, _path(p), "INVALID_QUANTITY", sprintf("resource.attributes.%s: %v is not a valid quantity (%s)", [_path(p), v, t]))

_date(v) if {
	is_string(v)
	regex.match(`^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$`, v)
}

_strings(v) if {
	is_array(v)
	every s in v {
		is_string(s)
	}
}

_non_empty_array(v) if {
	is_array(v)
	count(v) > 0
}

_non_empty(v) if {
	is_string(v)
	v != ""
}

# integer(v) holds for a JSON number with no fraction.
integer(v) if {
	is_number(v)
	v == round(v)
}

_positive(v) if {
	integer(v)
	v > 0
}

_nonzero(v) if {
	integer(v)
	v != 0
}

_nonnegative(v) if {
	integer(v)
	v >= 0
}

# currency_of(name) is the currency an amount field is expressed in: the
# top-level attribute params.amount_currency_field names, else "currency".
currency_of(name) := attrs[object.get(params.amount_currency_field, name, "currency")]

findings contains _missing("actor.id", "is required") if not _non_empty(actor_id)

findings contains _missing("actor.type", "is required (HUMAN, SERVICE or AI_AGENT)") if not actor_type in params.actor_types

findings contains f if {
	is_ai
	some f in _ai_missing
}

_ai_missing contains _missing("ai", "is required for an AI_AGENT") if {
	ai == null
}

_ai_missing contains _missing("ai.use_case", "is required for an AI_AGENT") if {
	ai != null
	not _non_empty(object.get(ai, "use_case", null))
}

_ai_missing contains _missing("ai.mode", "is required for an AI_AGENT (RECOMMEND or EXECUTE)") if {
	ai != null
	not object.get(ai, "mode", null) in params.ai_modes
}

findings contains _missing("actor.on_behalf_of", "is malformed (string expected)") if {
	not is_string(on_behalf_of)
}

findings contains _deny(3, "actor", "UNKNOWN_USER", sprintf("actor %v is not a known user", [actor_id])) if {
	is_user
	is_string(actor_id)
	actor_id != ""
	not md.user(actor_id)
}

findings contains _deny(3, "on_behalf_of", "UNKNOWN_USER", sprintf("delegator %v is not a known user", [on_behalf_of])) if {
	on_behalf_of != ""
	is_string(on_behalf_of)
	not md.user(on_behalf_of)
}
