package tollgate.ai

# findings are the AI findings (not yet implemented).
findings := set()
