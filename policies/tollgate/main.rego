# METADATA
# title: Tollgate distribution policy pack — entry
# description: |
#   data.tollgate.decision combines the findings of the families (VAL, DR,
#   ERP, TH, AI) per policy-pack §1: deny-overrides; approvers of the
#   REQUIRE_APPROVAL findings united in order without duplicates; reasons[0]
#   is the first finding of the winning effect in family then rule order,
#   every other finding follows in that order. It is defined for every input.
#
#   A finding is {order: [family, rule, sub], effect, code, message,
#   approvers}. effect INFO adds a reason that never decides and is never
#   primary (RECOUNT_REQUIRED).
package tollgate

import data.tollgate.ai
import data.tollgate.dr
import data.tollgate.erp
import data.tollgate.th
import data.tollgate.val

_val_denied if {
	some f in val.findings
	f.effect == "DENY"
}

# findings are VAL's alone when VAL denies (later families assume valid
# input), else every family's.
findings := val.findings if {
	_val_denied
} else := (((val.findings | dr.findings) | erp.findings) | th.findings) | ai.findings

# ordered is findings sorted by their order key.
ordered := [f | some p in sort([[f.order, f] | some f in findings]); f := p[1]]

effect := "DENY" if {
	some f in findings
	f.effect == "DENY"
} else := "REQUIRE_APPROVAL" if {
	some f in findings
	f.effect == "REQUIRE_APPROVAL"
} else := "ALLOW"

_allowed := {"code": "ALLOWED", "message": "no rule restricts this request"}

_reason(f) := {"code": f.code, "message": f.message}

# primary_index is the index in ordered of the primary reason; undefined for
# an ALLOW that no rule spoke for.
primary_index := min({i | some i, f in ordered; f.effect == effect})

reasons := array.concat([_reason(ordered[primary_index])], [_reason(f) | some i, f in ordered; i != primary_index]) if {
	primary_index
} else := array.concat([_allowed], [_reason(f) | some f in ordered])

_approver_list := [r | some f in ordered; f.effect == "REQUIRE_APPROVAL"; some r in f.approvers]

approvers := [r | some i, r in _approver_list; not _seen_before(r, i)] if {
	effect == "REQUIRE_APPROVAL"
} else := []

_seen_before(r, i) if {
	some j, s in _approver_list
	j < i
	s == r
}

default decision := {
	"effect": "DENY",
	"reasons": [{"code": "POLICY_UNDEFINED", "message": "the policy produced no decision for this input"}],
	"approvers": [],
}

# decision is the answer the engine returns: {effect, reasons, approvers}.
decision := {"effect": effect, "reasons": reasons, "approvers": approvers}
