# METADATA
# title: Master data access
# description: |
#   The one place that reads master data. Every function is an index lookup
#   through the engine's non-deterministic builtins md.get / md.lookup (so the
#   engine records each fact read); none scans a table. Each function is
#   undefined when the record is absent, so callers write `not md.customer(id)`.
#   Records carry the fields of policy-pack §3: amounts as decimal strings,
#   integers as numbers, booleans always present, timestamps RFC 3339.
package tollgate.md

# record(kind, key) is the record of kind under key; undefined when absent.
# Each accessor below inlines it: a function call per read is measurable.
record(kind, key) := r if {
	is_string(key)
	r := md.get(kind, key)
	r != null
}

user(id) := r if {
	is_string(id)
	r := md.get("user", id)
	r != null
}

customer(id) := r if {
	is_string(id)
	r := md.get("customer", id)
	r != null
}

supplier(id) := r if {
	is_string(id)
	r := md.get("supplier", id)
	r != null
}

item(id) := r if {
	is_string(id)
	r := md.get("item", id)
	r != null
}

site(id) := r if {
	is_string(id)
	r := md.get("site", id)
	r != null
}

ai_agent(id) := r if {
	is_string(id)
	r := md.get("ai_agent", id)
	r != null
}

# ai_control is the global AI switchboard; undefined when none is loaded.
ai_control := r if {
	r := md.get("ai_control", "global")
	r != null
}

# inventory(site, item) is the stock row of item at site.
inventory(site_id, item_id) := record("inventory", concat("/", [site_id, item_id])) if {
	is_string(site_id)
	is_string(item_id)
}

# fiscal_period(company, period) is the period row; period is YYYY-MM.
fiscal_period(company, period) := record("fiscal_period", concat("/", [company, period])) if {
	is_string(company)
	is_string(period)
}

# supplier_invoice(supplier, ref) is the posted invoice of supplier whose
# normalized ref equals the normalized ref given.
supplier_invoice(supplier_id, ref) := record("supplier_invoice", concat("/", [supplier_id, normalize_ref(ref)])) if {
	is_string(supplier_id)
	is_string(ref)
}

# asn(supplier, asn_no) is the received ASN; undefined when not received.
asn(supplier_id, asn_no) := record("asn", concat("/", [supplier_id, asn_no])) if {
	is_string(supplier_id)
	is_string(asn_no)
}

# delegations(delegator, delegate) is the array of delegation records from
# delegator to delegate (possibly empty; never undefined for string ids).
delegations(delegator, delegate) := md.lookup("delegation", "pair", concat("/", [delegator, delegate])) if {
	is_string(delegator)
	is_string(delegate)
}

# normalize_ref is the invoice reference normalization of spec ERP-6:
# upper-case, spaces and dashes removed, leading zeros stripped.
normalize_ref(ref) := trim_left(replace(replace(upper(ref), " ", ""), "-", ""), "0")
