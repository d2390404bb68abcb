package tollgate

# A small policy that exercises every engine path a real pack uses: master-data reads through both
# builtins, the clock, and all three effects.

customer := c if {
	c := md.get("customer", input.resource.attributes.customer_id)
	c != null
}

default decision := {"effect": "ALLOW", "reasons": [{"code": "ALLOWED", "message": "nothing to say"}]}

decision := {"effect": "DENY", "reasons": [{"code": "UNKNOWN_CUSTOMER", "message": "no such customer"}]} if {
	input.action == "SO.RELEASE"
	not customer
}

decision := {"effect": "REQUIRE_APPROVAL", "reasons": [{"code": "CUSTOMER_CREDIT_HOLD", "message": "on hold"}], "approvers": ["CREDIT_MANAGER"]} if {
	input.action == "SO.RELEASE"
	customer.credit_status == "HOLD"
}

decision := {"effect": "ALLOW", "reasons": [{"code": "DELEGATED_AUTHORITY_VALID", "message": sprintf("%d delegations", [count(ds)])}]} if {
	input.action == "PO.APPROVE"
	ds := md.lookup("delegation", "pair", sprintf("%s/%s", [input.actor.on_behalf_of, input.actor.id]))
	count(ds) > 0
}

decision := {"effect": "ALLOW", "reasons": [{"code": "CLOCK", "message": sprintf("%d", [time.now_ns()])}]} if {
	input.action == "CLOCK.READ"
}
