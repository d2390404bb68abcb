package tollgate

# Built-in errors must fail closed. Were a built-in error an undefined expression, the DENY rules below
# would not hold for a malformed amount or document, and the default would ALLOW it.

default decision := {"effect": "ALLOW", "reasons": [{"code": "ALLOWED", "message": "within limits"}]}

decision := {"effect": "DENY", "reasons": [{"code": "TOO_LARGE", "message": "over 100"}]} if {
	input.action == "NUMBER.CHECK"
	to_number(input.resource.attributes.amount) > 100
}

decision := {"effect": "DENY", "reasons": [{"code": "FLAGGED", "message": "flagged document"}]} if {
	input.action == "JSON.CHECK"
	json.unmarshal(input.resource.attributes.doc).flagged
}
