# METADATA
# title: Master data access (stock OPA version)
# description: |
#   The data.* twin of policies/tollgate/md.rego, for running the pack in a
#   stock OPA server in the side-by-side benchmark (test/perf). Same function
#   names and the same meaning; the records are read from the bundle's
#   data.json instead of the engine's md.get / md.lookup builtins:
#   data.masterdata.<kind>[key] holds every live record under its canonical
#   key, and data.masterdata_index.delegation_pair["<delegator>/<delegate>"]
#   the delegations of a pair ordered by key (the index md.lookup reads).
#   Each function is undefined when the record is absent.
package tollgate.md

record(kind, key) := data.masterdata[kind][key] if is_string(key)

user(id) := data.masterdata.user[id] if is_string(id)

customer(id) := data.masterdata.customer[id] if is_string(id)

supplier(id) := data.masterdata.supplier[id] if is_string(id)

item(id) := data.masterdata.item[id] if is_string(id)

site(id) := data.masterdata.site[id] if is_string(id)

ai_agent(id) := data.masterdata.ai_agent[id] if is_string(id)

ai_control := data.masterdata.ai_control.global

inventory(site_id, item_id) := data.masterdata.inventory[concat("/", [site_id, item_id])] if {
	is_string(site_id)
	is_string(item_id)
}

fiscal_period(company, period) := data.masterdata.fiscal_period[concat("/", [company, period])] if {
	is_string(company)
	is_string(period)
}

supplier_invoice(supplier_id, ref) := data.masterdata.supplier_invoice[concat("/", [supplier_id, normalize_ref(ref)])] if {
	is_string(supplier_id)
	is_string(ref)
}

asn(supplier_id, asn_no) := data.masterdata.asn[concat("/", [supplier_id, asn_no])] if {
	is_string(supplier_id)
	is_string(asn_no)
}

delegations(delegator, delegate) := object.get(data.masterdata_index.delegation_pair, concat("/", [delegator, delegate]), []) if {
	is_string(delegator)
	is_string(delegate)
}

normalize_ref(ref) := trim_left(replace(replace(upper(ref), " ", ""), "-", ""), "0")
