package tollgate

decision := {"effect": "ALLOW" if {
