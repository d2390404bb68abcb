# METADATA
# title: Tollgate distribution policy pack — entry
# description: |
#   data.tollgate.decision combines the findings of the families (VAL, DR,
#   ERP, TH, AI) per policy-pack §1: deny-overrides; approvers of the
#   REQUIRE_APPROVAL findings united in order without duplicates; reasons[0]
#   is the first finding of the winning effect in family then rule order,
#   every other finding follows in that order. It is defined for every input.
#
#   A finding is [family, rule, sub, effect, code, message, approvers]. effect INFO adds a reason that never decides and is never
#   primary (RECOUNT_REQUIRED).
package tollgate

import data.tollgate.ai
import data.tollgate.dr
import data.tollgate.erp
import data.tollgate.th
import data.tollgate.val

# findings are VAL's alone when VAL has any (every VAL finding denies, and
# later families assume valid input), else every family's. A finding is the
# array [family, rule, sub, effect, code, message, approvers]; its first three
# elements are its order key.
findings := val.findings if {
	count(val.findings) > 0
} else := (((val.findings | dr.findings) | erp.findings) | th.findings) | ai.findings

default decision := {
	"effect": "DENY",
	"reasons": [{"code": "POLICY_UNDEFINED", "message": "the policy produced no decision for this input"}],
	"approvers": [],
}

# decision is the answer the engine returns: {effect, reasons, approvers}.
# One body with local variables: every intermediate complete rule would cost
# a cache entry per decision.
decision := {"effect": effect, "reasons": reasons, "approvers": approvers} if {
	ordered := sort(findings)
	effects := {f[3] | some f in ordered}
	effect := array.concat([e | some e in ["DENY", "REQUIRE_APPROVAL"]; e in effects], ["ALLOW"])[0]

	# The primary reason is the first finding of the winning effect; an ALLOW
	# no rule spoke for has ALLOWED first.
	first := array.concat([i | some i, f in ordered; f[3] == effect], [-1])[0]
	primary := [{"code": ordered[first][4], "message": ordered[first][5]} | first >= 0]
	allowed := [{"code": "ALLOWED", "message": "no rule restricts this request"} | first < 0]
	others := [{"code": f[4], "message": f[5]} | some i, f in ordered; i != first]
	reasons := array.concat(array.concat(primary, allowed), others)

	# Approvers of the REQUIRE_APPROVAL findings in order, without duplicates.
	wanted := [r | effect == "REQUIRE_APPROVAL"; some f in ordered; f[3] == "REQUIRE_APPROVAL"; some r in f[6]]
	approvers := [r | some i, r in wanted; not r in array.slice(wanted, 0, i)]
}
