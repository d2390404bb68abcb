package tollgate.th

# findings are the TH findings (not yet implemented).
findings := set()
