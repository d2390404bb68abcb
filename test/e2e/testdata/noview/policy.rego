# Reads a history view it does not declare: every decision must fail closed.
package tollgate

decision := {"effect": "ALLOW", "reasons": [{"code": "ALLOWED", "message": "no refunds yet"}], "approvers": []} if {
	tollgate.history("refunds", [input.actor.id]).count == 0
}
