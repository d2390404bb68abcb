package tollgate

# decision is defined only for one action: anything else is undefined.
decision := {"effect": "ALLOW", "reasons": [{"code": "ALLOWED", "message": ""}]} if input.action == "ONLY.THIS"
