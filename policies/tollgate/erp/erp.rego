package tollgate.erp

# findings are the ERP findings (not yet implemented).
findings := set()
