package tollgate.dr

# findings are the DR findings (not yet implemented).
findings := set()
