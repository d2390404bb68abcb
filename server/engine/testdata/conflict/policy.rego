package tollgate

# Two complete definitions that both hold: a runtime conflict error.
decision := {"effect": "ALLOW", "reasons": [{"code": "A", "message": ""}]} if input.action != ""

decision := {"effect": "DENY", "reasons": [{"code": "B", "message": ""}]} if input.action != ""
