# METADATA
# title: Decision rights (DR)
# description: |
#   Who may do what: DR-1 active and entitled, DR-2 no self-approval, DR-3
#   segregation of vendor-master and payment duties, DR-4 delegation, DR-5
#   site scope, DR-6 personal PO limit. Judges HUMAN and SERVICE actors; an AI
#   agent is judged by the AI family (it may never act as a delegate).
#   With on_behalf_of, the delegator is the principal whose roles, sites and
#   limits count; the acting user must still be ACTIVE.
package tollgate.dr

import data.tollgate.md
import data.tollgate.money
import data.tollgate.val

# params is data.params read once per decision: indexing a value is cheaper
# than a store read per reference.
params := data.params

attrs := val.attrs

delegated if val.on_behalf_of != ""

# principal_id is whose authority is used: the delegator, else the actor.
principal_id := val.on_behalf_of if delegated

principal_id := val.actor_id if not delegated

principal := md.user(principal_id)

actor := md.user(val.actor_id)

_f(rule, sub, effect, code, msg) := [2, rule, sub, effect, code, msg, []]

_deny(rule, sub, code, msg) := _f(rule, sub, "DENY", code, msg)

ns_per_day := ((24 * 60) * 60) * 1000000000

# amount is the request amount in minor units; undefined when it has none.
amount := money.minor(attrs.amount, attrs.currency)

# within(amount_limit) holds when the request amount is within a
# {amount, currency} limit (or the action has no amount). A limit in
# another currency is never within: the pack has no exchange rates.
within(_) if not attrs.amount

within(l) if {
	l.currency == attrs.currency
	amount <= money.minor(l.amount, l.currency)
}

findings contains f if {
	val.is_user
	some f in _user_findings
}

findings contains _deny(4, "ai", "DELEGATION_NOT_FOUND", "an AI agent is never a delegate") if {
	val.is_ai
	delegated
}

# DR-1 active
_user_findings contains _deny(1, "actor", "USER_INACTIVE", sprintf("user %s is %s", [val.actor_id, actor.status])) if {
	actor.status != "ACTIVE"
}

_user_findings contains _deny(1, "principal", "USER_INACTIVE", sprintf("delegator %s is %s", [principal_id, principal.status])) if {
	delegated
	principal.status != "ACTIVE"
}

# DR-1 entitled
_user_findings contains _deny(2, "", "ROLE_NOT_AUTHORIZED", sprintf("%s holds none of the roles %v entitled to %s", [principal_id, val.spec.roles, input.action])) if {
	not _entitled
}

_entitled if {
	some r in principal.roles
	r in val.spec.roles
}

# DR-2 no self-approval (actor or the delegator acted for).
_user_findings contains _deny(3, "", "SELF_APPROVAL_PROHIBITED", sprintf("%s may not approve what %s created", [who, attrs.created_by])) if {
	input.action in params.dr.approval_actions
	some who in {val.actor_id, principal_id}
	who == attrs.created_by
}

# DR-3 segregation of duties: bank details changed by this user recently.
_user_findings contains _deny(4, "", "SOD_VENDOR_MASTER_PAYMENT", sprintf("%s changed the bank details of supplier %s within %d days", [who, attrs.supplier_id, params.dr.sod_bank_change_days])) if {
	input.action in params.dr.sod_bank_change_actions
	s := md.supplier(attrs.supplier_id)
	s.bank_changed_at != ""
	some who in {val.actor_id, principal_id}
	who == s.bank_changed_by
	time.now_ns() < time.parse_rfc3339_ns(s.bank_changed_at) + (params.dr.sod_bank_change_days * ns_per_day)
}

# DR-4 delegation. A valid delegation allows; otherwise the failure of the
# delegation that got furthest through the checks denies.
_user_findings contains _f(5, "", "ALLOW", "DELEGATED_AUTHORITY_VALID", sprintf("%s acts for %s under delegation", [val.actor_id, principal_id])) if {
	delegated
	"VALID" in _statuses
}

_user_findings contains _deny(5, "", code, sprintf("no valid delegation from %s to %s for %s (%s)", [principal_id, val.actor_id, input.action, code])) if {
	delegated
	not "VALID" in _statuses
	code := _worst_problem
}

_delegations := md.delegations(principal_id, val.actor_id)

# _statuses holds, per delegation, "VALID" or the problem that voids it; each
# delegation is judged once.
_statuses := [st |
	some d in _delegations
	st := _status(d)
]

_status(d) := p if {
	p := _delegation_problem(d)
} else := "VALID"

_stage := {"DELEGATION_NOT_FOUND": 0, "DELEGATION_REVOKED": 1, "DELEGATION_EXPIRED": 2, "DELEGATION_NOT_YET_VALID": 3, "DELEGATION_SCOPE_EXCEEDED": 4}

_worst_problem := "DELEGATION_NOT_FOUND" if {
	count(_delegations) == 0
} else := code if {
	best := max({_stage[st] | some st in _statuses})
	some code, s in _stage
	s == best
}

_delegation_problem(d) := "DELEGATION_REVOKED" if {
	d.revoked
} else := "DELEGATION_EXPIRED" if {
	time.now_ns() >= time.parse_rfc3339_ns(d.valid_to)
} else := "DELEGATION_NOT_YET_VALID" if {
	time.now_ns() < time.parse_rfc3339_ns(d.valid_from)
} else := "DELEGATION_SCOPE_EXCEEDED" if {
	not input.action in d.actions
} else := "DELEGATION_SCOPE_EXCEEDED" if {
	not within({"amount": d.max_amount, "currency": d.currency})
} else := "DELEGATION_SCOPE_EXCEEDED" if {
	not _delegator_limit_ok
}

_delegator_limit_ok if not params.dr.limit_kind_by_action[input.action]

_delegator_limit_ok if {
	kind := params.dr.limit_kind_by_action[input.action]
	within(principal.approval_limits[kind])
}

# DR-5 site scope.
_user_findings contains _deny(6, "", "APPROVER_OUT_OF_SCOPE", sprintf("%s does not act for site %s", [principal_id, attrs.site_id])) if {
	input.action in params.dr.site_scoped_actions
	not attrs.site_id in principal.sites
}

# DR-6 personal limit.
_user_findings contains _deny(7, "", "APPROVAL_LIMIT_EXCEEDED", sprintf("%s %s exceeds the %s limit of %s", [attrs.amount, attrs.currency, kind, principal_id])) if {
	kind := params.dr.personal_limit_actions[input.action]
	not _personal_limit_ok(kind)
}

_personal_limit_ok(kind) if within(principal.approval_limits[kind])
