package tollgate

# Parses, but does not compile: the function does not exist.
decision := x if {
	x := no_such_function(1)
}
