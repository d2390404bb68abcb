package tollgate.dr_test

import data.tollgate.fixture

req(actor, action, attrs) := fixture.request(actor, action, attrs)

approve(actor, amount) := req(actor, "PO.APPROVE", object.union(fixture.po(amount), {"created_by": "u_buyer1"}))

as_deputy(r, delegator) := object.union(r, {"actor": {"on_behalf_of": delegator}})

test_inactive_user if {
	fixture.primary(req("u_gone", "PO.SUBMIT", fixture.po("1.00"))) == "USER_INACTIVE"
}

test_role_not_authorized if {
	d := fixture.decide(req("u_clerk", "PO.SUBMIT", fixture.po("1.00")))
	d.effect == "DENY"
	d.reasons[0].code == "ROLE_NOT_AUTHORIZED"
}

test_service_actor_judged_as_user if {
	r := object.union(req("svc_wms", "ASN.RECEIVE", {"supplier_id": "S1", "asn_no": "ASN-78", "purpose": "00"}), {"actor": {"type": "SERVICE"}})
	fixture.decide(r).effect == "ALLOW"
	r2 := object.union(r, {"action": "PO.SUBMIT", "resource": {"attributes": fixture.po("1.00")}})
	fixture.primary(r2) == "ROLE_NOT_AUTHORIZED"
}

test_self_approval if {
	r := req("u_pm1", "PO.APPROVE", object.union(fixture.po("10.00"), {"created_by": "u_pm1"}))
	fixture.primary(r) == "SELF_APPROVAL_PROHIBITED"
}

test_self_approval_through_delegator if {
	r := as_deputy(req("u_deputy", "PO.APPROVE", object.union(fixture.po("10.00"), {"created_by": "u_pm1"})), "u_pm1")
	fixture.codes(r) == {"SELF_APPROVAL_PROHIBITED", "DELEGATED_AUTHORITY_VALID"}
	fixture.primary(r) == "SELF_APPROVAL_PROHIBITED"
}

test_approve_within_limit if {
	d := fixture.decide(approve("u_pm1", "100000.00"))
	d.effect == "ALLOW"
	d.reasons[0].code == "ALLOWED"
}

test_approve_one_cent_over_limit if {
	fixture.primary(approve("u_pm1", "100000.01")) == "APPROVAL_LIMIT_EXCEEDED"
}

test_approve_limit_other_currency_fails_closed if {
	recs := fixture.with_record("user", "u_pm1", object.union(fixture.records.user.u_pm1, {"approval_limits": {"PO": {"amount": "999999.00", "currency": "EUR"}}}))
	fixture.primary(approve("u_pm1", "1.00")) == "APPROVAL_LIMIT_EXCEEDED" with fixture.records as recs
}

test_site_scope if {
	r := req("u_pm2", "PO.APPROVE", object.union(fixture.po("10.00"), {"created_by": "u_buyer1", "site_id": "BR1"}))
	fixture.primary(r) == "APPROVER_OUT_OF_SCOPE"
}

sod_records := fixture.with_record("supplier", "S1", object.union(fixture.records.supplier.S1, {
	"bank_changed_at": "2026-08-29T12:00:00Z", "bank_changed_by": "u_apsup", "bank_change_verified": true,
}))

inv_approve := req("u_apsup", "INVOICE.APPROVE", {"supplier_id": "S1", "amount": "10.00", "currency": "USD"})

test_sod_within_90_days if {
	# changed 89 days 23:59:59 before now
	recs := fixture.with_record("supplier", "S1", object.union(sod_records.supplier.S1, {"bank_changed_at": "2026-08-29T12:00:01Z"}))
	fixture.primary(inv_approve) == "SOD_VENDOR_MASTER_PAYMENT" with fixture.records as recs
}

test_sod_exactly_90_days_ago_passes if {
	fixture.decide(inv_approve).effect == "ALLOW" with fixture.records as sod_records
}

test_sod_other_user_passes if {
	recs := fixture.with_record("supplier", "S1", object.union(sod_records.supplier.S1, {"bank_changed_at": "2026-11-20T00:00:00Z", "bank_changed_by": "u_other"}))
	fixture.decide(inv_approve).effect == "ALLOW" with fixture.records as recs
}

test_delegation_valid if {
	r := as_deputy(approve("u_deputy", "50000.00"), "u_pm1")
	d := fixture.decide(r)
	d.effect == "ALLOW"
	d.reasons[0].code == "DELEGATED_AUTHORITY_VALID"
}

test_delegation_over_max if {
	fixture.primary(as_deputy(approve("u_deputy", "50000.01"), "u_pm1")) == "DELEGATION_SCOPE_EXCEEDED"
}

test_delegation_over_delegator_limit if {
	recs := fixture.with_record("delegation", "d_ok", object.union(fixture.records.delegation.d_ok, {"max_amount": "900000.00"}))
	fixture.primary(as_deputy(approve("u_deputy", "100000.01"), "u_pm1")) == "DELEGATION_SCOPE_EXCEEDED" with fixture.records as recs
	fixture.primary(as_deputy(approve("u_deputy", "100000.00"), "u_pm1")) == "DELEGATED_AUTHORITY_VALID" with fixture.records as recs
}

test_delegation_delegator_without_limit if {
	recs := fixture.with_record("delegation", "d_ok", object.union(fixture.records.delegation.d_ok, {"actions": ["CREDIT_MEMO.ISSUE"]}))
	r := as_deputy(req("u_deputy", "CREDIT_MEMO.ISSUE", {"customer_id": "C1", "amount": "1.00", "currency": "USD", "ref_invoice_id": "X", "ref_invoice_net": "10.00", "ref_invoice_credited": "0.00"}), "u_pm1")
	# u_pm1 holds no CSR role either; the missing CREDIT_MEMO limit is what scopes the delegation.
	fixture.codes(r) == {"ROLE_NOT_AUTHORIZED", "DELEGATION_SCOPE_EXCEEDED", "CREDIT_MEMO_WITHIN_LIMIT"} with fixture.records as recs
}

test_delegation_action_not_covered if {
	fixture.primary(as_deputy(req("u_deputy", "PO.SUBMIT", fixture.po("1.00")), "u_pm1")) == "DELEGATION_SCOPE_EXCEEDED"
}

test_delegation_expired_at_valid_to if {
	# d_old ends exactly now: half-open window, so expired.
	fixture.primary(as_deputy(approve("u_deputy", "1.00"), "u_pm2")) == "DELEGATION_EXPIRED"
}

test_delegation_not_yet_valid if {
	recs := fixture.with_record("delegation", "d_ok", object.union(fixture.records.delegation.d_ok, {"valid_from": "2026-11-27T12:00:00.000000001Z"}))
	fixture.primary(as_deputy(approve("u_deputy", "1.00"), "u_pm1")) == "DELEGATION_NOT_YET_VALID" with fixture.records as recs
	recs2 := fixture.with_record("delegation", "d_ok", object.union(fixture.records.delegation.d_ok, {"valid_from": "2026-11-27T12:00:00Z"}))
	fixture.primary(as_deputy(approve("u_deputy", "1.00"), "u_pm1")) == "DELEGATED_AUTHORITY_VALID" with fixture.records as recs2
}

test_delegation_revoked if {
	recs := fixture.with_record("delegation", "d_ok", object.union(fixture.records.delegation.d_ok, {"revoked": true}))
	fixture.primary(as_deputy(approve("u_deputy", "1.00"), "u_pm1")) == "DELEGATION_REVOKED" with fixture.records as recs
}

test_delegation_best_of_several if {
	recs := fixture.with_record("delegation", "d_rev", object.union(fixture.records.delegation.d_ok, {"revoked": true}))
	fixture.primary(as_deputy(approve("u_deputy", "50000.01"), "u_pm1")) == "DELEGATION_SCOPE_EXCEEDED" with fixture.records as recs
	fixture.primary(as_deputy(approve("u_deputy", "1.00"), "u_pm1")) == "DELEGATED_AUTHORITY_VALID" with fixture.records as recs
}

test_delegation_not_found if {
	fixture.primary(as_deputy(req("u_buyer1", "PO.SUBMIT", fixture.po("1.00")), "u_pm1")) == "DELEGATION_NOT_FOUND"
}

test_inactive_delegator if {
	recs := fixture.with_record("user", "u_pm1", object.union(fixture.records.user.u_pm1, {"status": "INACTIVE"}))
	fixture.primary(as_deputy(approve("u_deputy", "1.00"), "u_pm1")) == "USER_INACTIVE" with fixture.records as recs
}

test_ai_never_a_delegate if {
	r := {
		"actor": {"id": "agent_alloc", "type": "AI_AGENT", "on_behalf_of": "u_desk"},
		"action": "CASE.ROUTE", "resource": {"type": "case", "id": "K1", "attributes": {"customer_id": "C1", "case_tags": []}},
		"ai": {"use_case": "case_routing", "mode": "EXECUTE", "confidence": 0.95, "explanation": "x", "model_version": "alloc-2.1"},
	}
	fixture.primary(r) == "DELEGATION_NOT_FOUND"
}
