package tollgate

decision := {"effect": "MAYBE", "reasons": [{"code": "HMM", "message": ""}]} if input.action == "X.MAYBE"

decision := {"effect": "ALLOW", "reasons": []} if input.action == "X.NOREASON"

decision := {"effect": "REQUIRE_APPROVAL", "reasons": [{"code": "WHO", "message": ""}]} if input.action == "X.NOAPPROVER"

decision := "yes" if input.action == "X.STRING"
