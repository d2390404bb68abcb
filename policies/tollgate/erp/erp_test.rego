package tollgate.erp_test

import data.tollgate.fixture

req(actor, action, attrs) := fixture.request(actor, action, attrs)

cust(changes) := fixture.with_record("customer", "C1", object.union(fixture.records.customer.C1, changes))

release := req("u_desk", "SO.RELEASE", {"customer_id": "C1", "site_id": "DC1", "amount": "100.00", "currency": "USD"})

delivery := req("u_desk", "DELIVERY.CREATE", {"customer_id": "C1", "site_id": "DC1", "item_id": "I1"})

test_customer_ok_releases if {
	fixture.decide(release).effect == "ALLOW"
	fixture.primary(release) == "WITHIN_CREDIT_LIMIT"
}

test_customer_credit_blocked if {
	fixture.primary(release) == "CUSTOMER_CREDIT_BLOCKED" with fixture.records as cust({"credit_status": "BLOCKED"})
}

test_customer_credit_hold if {
	fixture.primary(delivery) == "CUSTOMER_CREDIT_HOLD" with fixture.records as cust({"credit_status": "HOLD"})
}

test_customer_delivery_blocked if {
	fixture.primary(delivery) == "CUSTOMER_DELIVERY_BLOCKED" with fixture.records as cust({"delivery_block": true})
}

test_customer_inactive if {
	fixture.primary(delivery) == "CUSTOMER_INACTIVE" with fixture.records as cust({"status": "INACTIVE"})
}

test_customer_hold_not_for_so_create if {
	r := object.union(release, {"action": "SO.CREATE"})
	fixture.decide(r).effect == "ALLOW" with fixture.records as cust({"credit_status": "HOLD"})
}

alloc(qty) := req("u_desk", "ALLOCATION.CREATE", {"customer_id": "C1", "item_id": "I1", "site_id": "DC1", "qty": qty})

test_atp_equal_passes if {
	# ATP = 1000 - 200 - 100 - 0 = 700
	fixture.decide(alloc(700)).effect == "ALLOW"
}

test_atp_shortfall if {
	d := fixture.decide(alloc(701))
	d.reasons[0].code == "ATP_SHORTFALL"
	contains(d.reasons[0].message, "700")
	contains(d.reasons[0].message, "701")
}

test_atp_floored_at_zero_and_missing_row if {
	recs := fixture.with_record("inventory", "DC1/I1", object.union(fixture.records.inventory["DC1/I1"], {"quality_hold": 5000}))
	fixture.primary(alloc(1)) == "ATP_SHORTFALL" with fixture.records as recs
	r := req("u_desk", "ALLOCATION.CREATE", {"customer_id": "C1", "item_id": "I2", "site_id": "DC1", "qty": 1})
	fixture.primary(r) == "ATP_SHORTFALL"
}

post(date) := req("u_clerk", "INVOICE.POST", {"supplier_id": "S1", "company": "ACME", "invoice_ref": "INV-9", "invoice_date": "2026-11-02", "posting_date": date, "amount": "10.00", "currency": "USD"})

test_period_open if {
	fixture.decide(post("2026-11-27")).effect == "ALLOW"
}

test_period_closed if {
	fixture.primary(post("2026-09-30")) == "PERIOD_CLOSED"
}

test_period_future if {
	fixture.primary(post("2026-12-01")) == "PERIOD_NOT_OPEN"
}

test_period_unknown if {
	fixture.primary(post("2025-01-15")) == "PERIOD_UNKNOWN"
}

test_period_soft_closed_needs_controller if {
	d := fixture.decide(post("2026-10-31"))
	d.effect == "REQUIRE_APPROVAL"
	d.reasons[0].code == "PERIOD_SOFT_CLOSED"
	d.approvers == ["CONTROLLER"]
}

test_period_soft_closed_controller_posts if {
	r := object.union(post("2026-10-31"), {"actor": {"id": "u_ctrl"}})
	d := fixture.decide(r)
	d.effect == "ALLOW"
	d.reasons[0].code == "PERIOD_SOFT_CLOSED"
}

test_goods_issue_period_from_site if {
	gi := req("u_desk", "GOODS_ISSUE.POST", {"customer_id": "C1", "site_id": "DC1", "item_id": "I1", "posting_date": "2026-09-01"})
	fixture.primary(gi) == "PERIOD_CLOSED"
	fixture.decide(object.union(gi, {"resource": {"attributes": {"posting_date": "2026-11-27"}}})).effect == "ALLOW"
}

sup(changes) := fixture.with_record("supplier", "S1", object.union(fixture.records.supplier.S1, changes))

po := req("u_buyer1", "PO.SUBMIT", fixture.po("10.00"))

pay(amount) := req("u_treas", "PAYMENT.RELEASE", {"supplier_id": "S1", "amount": amount, "currency": "USD"})

test_supplier_blocked if {
	fixture.primary(po) == "SUPPLIER_BLOCKED" with fixture.records as sup({"status": "BLOCKED"})
	fixture.primary(pay("1.00")) == "SUPPLIER_BLOCKED" with fixture.records as sup({"status": "BLOCKED"})
}

test_supplier_purchasing_block if {
	fixture.primary(po) == "SUPPLIER_BLOCKED" with fixture.records as sup({"purchasing_block": true})
	fixture.decide(pay("1.00")).effect == "ALLOW" with fixture.records as sup({"purchasing_block": true})
}

test_supplier_pending if {
	fixture.primary(po) == "SUPPLIER_NOT_APPROVED" with fixture.records as sup({"status": "PENDING"})
}

test_supplier_payment_block if {
	fixture.primary(pay("1.00")) == "SUPPLIER_PAYMENT_BLOCKED" with fixture.records as sup({"payment_block": true})
	fixture.decide(po).effect == "ALLOW" with fixture.records as sup({"payment_block": true})
}

item(changes) := fixture.with_record("item", "I1", object.union(fixture.records.item.I1, changes))

test_item_blocked if {
	fixture.primary(delivery) == "ITEM_BLOCKED" with fixture.records as item({"status": "BLOCKED"})
}

test_item_quality_hold if {
	fixture.primary(alloc(1)) == "ITEM_QUALITY_HOLD" with fixture.records as item({"status": "QUALITY_HOLD"})
	adj := req("u_wm", "INVENTORY.ADJUST", {"site_id": "DC1", "item_id": "I1", "qty_delta": -1, "reason": "DAMAGE"})
	fixture.decide(adj).effect == "ALLOW" with fixture.records as item({"status": "QUALITY_HOLD"})
}

test_item_discontinued if {
	r := req("u_buyer1", "PO.SUBMIT", object.union(fixture.po("10.00"), {"item_id": "I1"}))
	fixture.primary(r) == "ITEM_DISCONTINUED" with fixture.records as item({"status": "DISCONTINUED"})
	fixture.decide(delivery).effect == "ALLOW" with fixture.records as item({"status": "DISCONTINUED"})
}

test_duplicate_invoice_normalized if {
	r := object.union(post("2026-11-27"), {"resource": {"attributes": {"invoice_ref": "inv 00123"}}})
	d := fixture.decide(r)
	d.reasons[0].code == "DUPLICATE_INVOICE"
	r2 := object.union(post("2026-11-27"), {"resource": {"attributes": {"invoice_ref": "00INV-00123"}}})
	fixture.primary(r2) == "DUPLICATE_INVOICE"
}

asn(no, purpose) := req("svc_wms", "ASN.RECEIVE", {"supplier_id": "S1", "asn_no": no, "purpose": purpose})

test_duplicate_asn if {
	fixture.primary(asn("ASN-77", "00")) == "DUPLICATE_ASN"
	fixture.decide(asn("ASN-77", "05")).effect == "ALLOW"
	fixture.decide(asn("ASN-78", "00")).effect == "ALLOW"
	fixture.primary(asn("ASN-78", "02")) == "MISSING_REQUIRED_FIELD"
}

test_bank_change_unverified if {
	recs := sup({"bank_changed_at": "2026-11-13T12:00:01Z", "bank_changed_by": "u_x", "bank_change_verified": false})
	d := fixture.decide(pay("1.00")) with fixture.records as recs
	d.effect == "REQUIRE_APPROVAL"
	d.reasons[0].code == "BANK_CHANGE_UNVERIFIED"
	d.approvers == ["TREASURY_MANAGER"]
}

test_bank_change_14_days_ago_passes if {
	recs := sup({"bank_changed_at": "2026-11-13T12:00:00Z", "bank_changed_by": "u_x", "bank_change_verified": false})
	fixture.decide(pay("1.00")).effect == "ALLOW" with fixture.records as recs
}

test_bank_change_verified_passes if {
	recs := sup({"bank_changed_at": "2026-11-26T12:00:00Z", "bank_changed_by": "u_x", "bank_change_verified": true})
	fixture.decide(pay("1.00")).effect == "ALLOW" with fixture.records as recs
}

# ERP-6 against history (policy-pack §6): an earlier decision that allowed the
# same supplier and invoice ref to post. The built-in normalizes the ref, so
# the mock is asked with the ref as the request has it.
posted(ref, ids) := fixture.at("invoice_posted", ["S1", ref], fixture.prior(ids, {"USD": "10.00"}))

test_duplicate_invoice_against_history if {
	d := fixture.decide(post("2026-11-27")) with fixture.histories as posted("INV-9", ["01JDPOST0000000000000000A1", "01JDPOST0000000000000000B2"])
	d.effect == "DENY"
	[r.code | some r in d.reasons] == ["DUPLICATE_INVOICE"]
	msg := d.reasons[0].message
	contains(msg, "invoice INV-9 of supplier S1 was already allowed to post by decision 01JDPOST0000000000000000A1")
	contains(msg, "2 posting decision(s) in the last 720h")
}

test_duplicate_invoice_no_history_posts if {
	fixture.decide(post("2026-11-27")).effect == "ALLOW" with fixture.histories as posted("INV-8", ["01JDPOST0000000000000000A1"])
}

# One finding when both checks match: the master-data one, history unread.
test_duplicate_invoice_master_data_and_history_one_finding if {
	r := object.union(post("2026-11-27"), {"resource": {"attributes": {"invoice_ref": "INV-00123"}}})
	d := fixture.decide(r) with fixture.histories as posted("INV-00123", ["01JDPOST0000000000000000A1"])
	[r.code | some r in d.reasons] == ["DUPLICATE_INVOICE"]
	contains(d.reasons[0].message, "is already posted (as INV-00123)")
	fixture.decide_without_history(r).reasons[0].code == "DUPLICATE_INVOICE"
}

test_duplicate_invoice_view_dropped_no_lookup if {
	views := object.remove(data.params.history.views, ["invoice_posted"])
	fixture.decide_without_history(post("2026-11-27")).effect == "ALLOW" with data.params.history.views as views
}

# Only postings with effect ALLOW count (policy-pack §6): a DENY'd one never.
test_duplicate_invoice_view_declaration if {
	v := data.params.history.views.invoice_posted
	v.effects == ["ALLOW"]
	v.window == "720h"
	v.key == [{"path": "resource.attributes.supplier_id"}, {"path": "resource.attributes.invoice_ref", "normalize": "invoice_ref"}]
	[a.action | some a in v.actions] == ["INVOICE.POST"]
}
