package tollgate.other

# Compiles, but defines no data.tollgate.decision: every decision would be POLICY_UNDEFINED.

decision := {"effect": "ALLOW", "reasons": [{"code": "ALLOWED", "message": "wrong package"}]}
