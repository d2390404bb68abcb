# Reads the "orders" history view with the key the request names; the key values come from
# input.resource.attributes.key so a test can pass a malformed one.
package tollgate

decision := {"effect": "ALLOW", "reasons": [{"code": "SEEN", "message": msg}], "approvers": []} if {
	h := tollgate.history(input.resource.attributes.view, input.resource.attributes.key)
	msg := sprintf("%d %s %s %d", [h.count, object.get(h.sums, "USD", "-"), concat(",", h.decision_ids), count(h.unvalued)])
}
