# A bundle with its own history view, which the service maintains without a code change: an actor's
# third refund within the window needs a supervisor; only allowed refunds count.
package tollgate

decision := {"effect": "ALLOW", "reasons": [{"code": "ALLOWED", "message": msg}], "approvers": []} if {
	input.action == "REFUND.ISSUE"
	h := tollgate.history("refunds", [input.actor.id])
	h.count < data.params.history.max_prior_refunds
	msg := sprintf("%d prior refunds", [h.count])
}

decision := {"effect": "REQUIRE_APPROVAL", "reasons": [{"code": "REFUND_VELOCITY", "message": msg}], "approvers": ["SUPERVISOR"]} if {
	input.action == "REFUND.ISSUE"
	h := tollgate.history("refunds", [input.actor.id])
	h.count >= data.params.history.max_prior_refunds
	msg := sprintf("%d prior refunds (%s) totalling %s", [h.count, concat(",", h.decision_ids), object.get(h.sums, input.resource.attributes.currency, "0")])
}

decision := {"effect": "ALLOW", "reasons": [{"code": "ALLOWED", "message": "not a refund"}], "approvers": []} if {
	input.action != "REFUND.ISSUE"
}
