package tollgate

# Deliberately slow (a few hundred milliseconds of iteration) so a test can catch decisions in flight.
decision := {"effect": "ALLOW", "reasons": [{"code": "ALLOWED", "message": "slowly"}]} if {
	count([1 | some i in numbers.range(1, 200); some j in numbers.range(1, 200); i != j]) > 0
}
