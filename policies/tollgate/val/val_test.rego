package tollgate.val_test

import data.tollgate.fixture

po_submit(amount) := fixture.request("u_buyer1", "PO.SUBMIT", fixture.po(amount))

test_well_formed_po_submit_allows if {
	d := fixture.decide(po_submit("100.00"))
	d.effect == "ALLOW"
	d.approvers == []
}

test_unknown_action_denies if {
	d := fixture.decide(fixture.request("u_buyer1", "PO.BURN", fixture.po("100.00")))
	d.effect == "DENY"
	d.reasons[0].code == "UNKNOWN_ACTION"
}

test_non_string_action_denies if {
	fixture.primary(fixture.request("u_buyer1", 7, {})) == "UNKNOWN_ACTION"
}

test_empty_input_denies if {
	d := fixture.decide({})
	d.effect == "DENY"
	d.reasons[0].code == "UNKNOWN_ACTION"
	"MISSING_REQUIRED_FIELD" in {r.code | some r in d.reasons}
}

test_missing_field_names_it if {
	attrs := object.remove(fixture.po("100.00"), ["category"])
	d := fixture.decide(fixture.request("u_buyer1", "PO.SUBMIT", attrs))
	d.effect == "DENY"
	d.reasons[0].code == "MISSING_REQUIRED_FIELD"
	contains(d.reasons[0].message, "resource.attributes.category")
}

test_null_field_is_missing if {
	attrs := object.union(fixture.po("100.00"), {"supplier_id": null})
	fixture.primary(fixture.request("u_buyer1", "PO.SUBMIT", attrs)) == "MISSING_REQUIRED_FIELD"
}

test_bad_enum_is_malformed if {
	attrs := object.union(fixture.po("100.00"), {"category": "TOYS"})
	d := fixture.decide(fixture.request("u_buyer1", "PO.SUBMIT", attrs))
	d.reasons[0].code == "MISSING_REQUIRED_FIELD"
	contains(d.reasons[0].message, "malformed")
}

test_missing_actor_fields if {
	req := object.union(fixture.request("u_buyer1", "PO.SUBMIT", fixture.po("1.00")), {"actor": {"id": "", "type": "ROBOT"}})
	d := fixture.decide(req)
	d.reasons[0].code == "MISSING_REQUIRED_FIELD"
	count([r | some r in d.reasons; r.code == "MISSING_REQUIRED_FIELD"]) == 2
}

test_ai_requires_ai_block if {
	req := object.union(fixture.request("agent_alloc", "CASE.ROUTE", {"customer_id": "C1", "case_tags": []}), {"actor": {"id": "agent_alloc", "type": "AI_AGENT"}})
	d := fixture.decide(req)
	d.reasons[0].code == "MISSING_REQUIRED_FIELD"
	contains(d.reasons[0].message, "ai")
}

test_ai_requires_use_case_and_mode if {
	req := object.union(fixture.request("agent_alloc", "CASE.ROUTE", {"customer_id": "C1", "case_tags": []}), {
		"actor": {"id": "agent_alloc", "type": "AI_AGENT"},
		"ai": {"use_case": "", "mode": "DANCE", "confidence": 0.9},
	})
	msgs := {r.message | some r in fixture.decide(req).reasons}
	some m1 in msgs
	startswith(m1, "ai.use_case")
	some m2 in msgs
	startswith(m2, "ai.mode")
}

test_on_behalf_of_must_be_string if {
	req := object.union(fixture.request("u_deputy", "PO.SUBMIT", fixture.po("1.00")), {"actor": {"on_behalf_of": 5}})
	fixture.primary(req) == "MISSING_REQUIRED_FIELD"
}

test_unknown_user if {
	fixture.primary(fixture.request("u_nobody", "PO.SUBMIT", fixture.po("1.00"))) == "UNKNOWN_USER"
}

test_unknown_delegator if {
	req := object.union(fixture.request("u_deputy", "PO.SUBMIT", fixture.po("1.00")), {"actor": {"on_behalf_of": "u_ghost"}})
	fixture.primary(req) == "UNKNOWN_USER"
}

test_unknown_ids_in_spec_order if {
	attrs := object.union(fixture.po("1.00"), {"site_id": "NOPE", "supplier_id": "NOPE", "item_id": "NOPE"})
	d := fixture.decide(fixture.request("u_buyer1", "PO.SUBMIT", attrs))
	[r.code | some r in d.reasons] == ["UNKNOWN_SUPPLIER", "UNKNOWN_ITEM", "UNKNOWN_SITE"]
}

test_unknown_customer if {
	attrs := {"customer_id": "C404", "site_id": "DC1", "amount": "1.00", "currency": "USD"}
	fixture.primary(fixture.request("u_desk", "SO.CREATE", attrs)) == "UNKNOWN_CUSTOMER"
}

test_unknown_item_in_invoice_line if {
	attrs := {"supplier_id": "S1", "currency": "USD", "po_currency": "USD", "lines": [{"line": 1, "item_id": "I404", "po_unit_price": "1.00", "unit_price": "1.00", "qty": 1, "qty_received": 1}]}
	fixture.primary(fixture.request("u_clerk", "INVOICE.MATCH", attrs)) == "UNKNOWN_ITEM"
}

test_unknown_affected_customer if {
	attrs := {"customer_id": "C1", "item_id": "I1", "site_id": "DC1", "qty": 1, "affected_customers": [{"customer_id": "C404", "qty_delta": -1}]}
	fixture.primary(fixture.request("u_desk", "ALLOCATION.CREATE", attrs)) == "UNKNOWN_CUSTOMER"
}

amount_code(a) := fixture.primary(po_submit(a))

test_amount_format if {
	amount_code("12abc") == "INVALID_AMOUNT_FORMAT"
	amount_code("1e3") == "INVALID_AMOUNT_FORMAT"
	amount_code("NaN") == "INVALID_AMOUNT_FORMAT"
	amount_code("") == "INVALID_AMOUNT_FORMAT"
	amount_code("1.") == "INVALID_AMOUNT_FORMAT"
	amount_code(".5") == "INVALID_AMOUNT_FORMAT"
	amount_code(" 1.00") == "INVALID_AMOUNT_FORMAT"
	amount_code("１２") == "INVALID_AMOUNT_FORMAT"
	amount_code(100) == "INVALID_AMOUNT_FORMAT"
	amount_code(true) == "INVALID_AMOUNT_FORMAT"
}

test_amount_negative if {
	amount_code("-100.00") == "INVALID_AMOUNT_NEGATIVE"
	amount_code("-0") == "INVALID_AMOUNT_NEGATIVE"
}

test_amount_precision if {
	amount_code("10.005") == "INVALID_AMOUNT_PRECISION"
	fixture.decide(po_submit("10.5")).effect == "ALLOW"
	fixture.decide(po_submit("10")).effect == "ALLOW"
}

test_amount_range if {
	amount_code("123456789012345678901234567890") == "AMOUNT_OUT_OF_RANGE"
	amount_code("123456789012345678901234567890.00") == "AMOUNT_OUT_OF_RANGE"
	amount_code("1000000000.01") == "AMOUNT_OUT_OF_RANGE"
	fixture.primary(po_submit("1000000000.00")) != "AMOUNT_OUT_OF_RANGE"
	fixture.primary(po_submit("0001000000000.00")) != "AMOUNT_OUT_OF_RANGE"
}

test_amount_in_line_checked if {
	attrs := {"supplier_id": "S1", "currency": "USD", "po_currency": "USD", "lines": [{"line": 1, "item_id": "I1", "po_unit_price": "1.001", "unit_price": "1.00", "qty": 1, "qty_received": 1}]}
	fixture.primary(fixture.request("u_clerk", "INVOICE.MATCH", attrs)) == "INVALID_AMOUNT_PRECISION"
}

test_unsupported_currency if {
	attrs := object.union(fixture.po("1.00"), {"currency": "XXX"})
	fixture.primary(fixture.request("u_buyer1", "PO.SUBMIT", attrs)) == "UNSUPPORTED_CURRENCY"
	attrs2 := object.union(fixture.po("1.00"), {"currency": 840})
	fixture.primary(fixture.request("u_buyer1", "PO.SUBMIT", attrs2)) == "UNSUPPORTED_CURRENCY"
}

alloc(qty) := fixture.request("u_desk", "ALLOCATION.CREATE", {"customer_id": "C1", "item_id": "I1", "site_id": "DC1", "qty": qty})

test_invalid_quantity if {
	fixture.primary(alloc(0)) == "INVALID_QUANTITY"
	fixture.primary(alloc(-3)) == "INVALID_QUANTITY"
	fixture.primary(alloc(2.5)) == "INVALID_QUANTITY"
	fixture.primary(alloc("3")) == "INVALID_QUANTITY"
	fixture.primary(alloc(3)) != "INVALID_QUANTITY"
}

test_invalid_quantity_in_line if {
	attrs := {"supplier_id": "S1", "currency": "USD", "po_currency": "USD", "lines": [{"line": 1, "item_id": "I1", "po_unit_price": "1.00", "unit_price": "1.00", "qty": 1, "qty_received": -1}]}
	fixture.primary(fixture.request("u_clerk", "INVOICE.MATCH", attrs)) == "INVALID_QUANTITY"
}

test_line_shape if {
	attrs := {"supplier_id": "S1", "currency": "USD", "po_currency": "USD", "lines": [{"line": 1}, "x"]}
	d := fixture.decide(fixture.request("u_clerk", "INVOICE.MATCH", attrs))
	d.reasons[0].code == "MISSING_REQUIRED_FIELD"
	count(d.reasons) == 6
	empty := object.union(attrs, {"lines": []})
	fixture.primary(fixture.request("u_clerk", "INVOICE.MATCH", empty)) == "MISSING_REQUIRED_FIELD"
}

test_affected_customers_shape if {
	attrs := {"customer_id": "C1", "item_id": "I1", "site_id": "DC1", "qty": 1, "affected_customers": [{"customer_id": "C1"}, 7]}
	d := fixture.decide(fixture.request("u_desk", "ALLOCATION.CREATE", attrs))
	[r.code | some r in d.reasons] == ["MISSING_REQUIRED_FIELD", "MISSING_REQUIRED_FIELD"]
}

test_field_types if {
	bad_date := {"supplier_id": "S1", "company": "ACME", "invoice_ref": "X1", "invoice_date": "2026-13-01", "posting_date": "2026-11-27", "amount": "1.00", "currency": "USD"}
	fixture.primary(fixture.request("u_clerk", "INVOICE.POST", bad_date)) == "MISSING_REQUIRED_FIELD"
	bad_bool := {"supplier_id": "S1", "template_id": "", "commits_terms": "no"}
	fixture.primary(fixture.request("u_buyer1", "SUPPLIER.MESSAGE", bad_bool)) == "MISSING_REQUIRED_FIELD"
	bad_tags := {"customer_id": "C1", "case_tags": ["A", 1]}
	fixture.primary(fixture.request("u_csr", "CASE.ROUTE", bad_tags)) == "MISSING_REQUIRED_FIELD"
	bad_text := {"supplier_id": "S1", "template_id": 3, "commits_terms": false}
	fixture.primary(fixture.request("u_buyer1", "SUPPLIER.MESSAGE", bad_text)) == "MISSING_REQUIRED_FIELD"
}

test_val_deny_stops_other_families if {
	# u_gone is TERMINATED (DR) but the amount is malformed: only VAL speaks.
	d := fixture.decide(fixture.request("u_gone", "PO.SUBMIT", fixture.po("12abc")))
	[r.code | some r in d.reasons] == ["INVALID_AMOUNT_FORMAT"]
}

test_attributes_not_object if {
	req := object.union(fixture.request("u_buyer1", "PO.SUBMIT", {}), {"resource": {"attributes": "x"}})
	fixture.primary(req) == "MISSING_REQUIRED_FIELD"
}
