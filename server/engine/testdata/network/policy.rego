package tollgate

# Calls built-ins that reach the network and the host; refused under the default capabilities.

decision := {"effect": "ALLOW", "reasons": [{"code": "FETCHED", "message": sprintf("%v", [fetched.status_code])}]}

fetched := http.send({"method": "GET", "url": input.resource.attributes.url})

runtime_config := opa.runtime().config
