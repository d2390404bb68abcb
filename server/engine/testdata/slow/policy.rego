package tollgate

# Millions of iterations before it can answer: the engine must cut it off.
decision := {"effect": "ALLOW", "reasons": [{"code": "ALLOWED", "message": ""}]} if {
	some i in numbers.range(1, 5000)
	some j in numbers.range(1, 5000)
	i * j == -1
}
