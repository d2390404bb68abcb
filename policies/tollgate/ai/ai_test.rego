package tollgate.ai_test

import data.tollgate.fixture

ai_req(agent, action, attrs, ai) := {
	"actor": {"id": agent, "type": "AI_AGENT", "on_behalf_of": ""},
	"action": action,
	"resource": {"type": "x", "id": "X-1", "attributes": attrs},
	"ai": object.union({"use_case": "", "mode": "EXECUTE", "confidence": 0.99, "explanation": "because", "model_version": ""}, ai),
	"context": {},
}

alloc_attrs := {"customer_id": "C1", "item_id": "I1", "site_id": "DC1", "qty": 5, "value": "50.00", "currency": "USD", "affected_customers": []}

alloc(changes, ai) := ai_req("agent_alloc", "ALLOCATION.CREATE", object.union(alloc_attrs, changes), object.union({"use_case": "backorder_allocation", "model_version": "alloc-2.1"}, ai))

agent(changes) := fixture.with_record("ai_agent", "agent_alloc", object.union(fixture.records.ai_agent.agent_alloc, changes))

test_execute_within_autonomy if {
	d := fixture.decide(alloc({}, {}))
	d.effect == "ALLOW"
	[r.code | some r in d.reasons] == ["AI_WITHIN_AUTONOMY"]
}

test_recommend_only if {
	d := fixture.decide(alloc({}, {"mode": "RECOMMEND", "explanation": ""}))
	d.effect == "ALLOW"
	d.reasons[0].code == "AI_RECOMMENDATION_ONLY"
}

test_not_registered if {
	r := object.union(alloc({}, {}), {"actor": {"id": "agent_ghost"}})
	fixture.primary(r) == "AI_AGENT_NOT_REGISTERED"
}

test_disabled if {
	fixture.primary(alloc({}, {})) == "AI_AGENT_DISABLED" with fixture.records as agent({"enabled": false})
}

test_model_version if {
	fixture.primary(alloc({}, {"model_version": "alloc-9"})) == "AI_MODEL_VERSION_NOT_APPROVED"
}

test_use_case_not_permitted if {
	fixture.primary(alloc({}, {"use_case": "invoice_discrepancy"})) == "AI_USE_CASE_NOT_PERMITTED"
	# permitted use case, wrong action for it
	r := ai_req("agent_alloc", "SO.CREATE", {"customer_id": "C1", "site_id": "DC1", "amount": "1.00", "currency": "USD"}, {"use_case": "backorder_allocation", "model_version": "alloc-2.1"})
	fixture.primary(r) == "AI_USE_CASE_NOT_PERMITTED"
}

test_prohibited_actions if {
	pay := ai_req("agent_ap", "PAYMENT.RELEASE", {"supplier_id": "S1", "amount": "1.00", "currency": "USD"}, {"use_case": "invoice_discrepancy", "model_version": "ap-1.0", "confidence": 1})
	fixture.codes(pay) == {"AI_USE_CASE_NOT_PERMITTED", "AI_ACTION_PROHIBITED", "SUPPLIER_BLOCKED"} with fixture.records as fixture.with_record("supplier", "S1", object.union(fixture.records.supplier.S1, {"status": "BLOCKED"}))
	fixture.decide(pay).effect == "DENY"
	approve := ai_req("agent_ap", "INVOICE.APPROVE", {"supplier_id": "S1", "amount": "1.00", "currency": "USD"}, {"use_case": "invoice_discrepancy", "model_version": "ap-1.0"})
	"AI_ACTION_PROHIBITED" in fixture.codes(approve)
	post := ai_req("agent_ap", "INVOICE.POST", {"supplier_id": "S1", "company": "ACME", "invoice_ref": "Z9", "invoice_date": "2026-11-02", "posting_date": "2026-11-27", "amount": "1.00", "currency": "USD"}, {"use_case": "invoice_discrepancy", "model_version": "ap-1.0"})
	"AI_ACTION_PROHIBITED" in fixture.codes(post)
	# a future master-data action, once known to the pack, is still prohibited
	md_action := ai_req("agent_ap", "MASTERDATA.UPDATE", {}, {"use_case": "invoice_discrepancy", "model_version": "ap-1.0"})
	"AI_ACTION_PROHIBITED" in fixture.codes(md_action) with data.params.actions["MASTERDATA.UPDATE"] as {"roles": [], "required": [], "optional": []}
}

test_human_approval_required_autonomy if {
	recs := agent({"use_cases": {"backorder_allocation": object.union(fixture.records.ai_agent.agent_alloc.use_cases.backorder_allocation, {"autonomy": "HUMAN_APPROVAL_REQUIRED"})}})
	d := fixture.decide(alloc({}, {})) with fixture.records as recs
	d.effect == "REQUIRE_APPROVAL"
	d.reasons[0].code == "AI_HUMAN_APPROVAL_REQUIRED"
	d.approvers == ["ALLOCATION_PLANNER"]
	fixture.decide(alloc({}, {"mode": "RECOMMEND"})).effect == "ALLOW" with fixture.records as recs
}

test_autonomy_suspended if {
	g := fixture.with_record("ai_control", "global", {"autonomy_suspended": true, "suspended_use_cases": []})
	fixture.primary(alloc({}, {})) == "AI_AUTONOMY_SUSPENDED" with fixture.records as g
	u := fixture.with_record("ai_control", "global", {"autonomy_suspended": false, "suspended_use_cases": ["backorder_allocation"]})
	fixture.primary(alloc({}, {})) == "AI_AUTONOMY_SUSPENDED" with fixture.records as u
	fixture.decide(alloc({}, {"mode": "RECOMMEND"})).effect == "ALLOW" with fixture.records as u
}

test_confidence_invalid if {
	fixture.primary(alloc({}, {"confidence": 1.01})) == "AI_CONFIDENCE_INVALID"
	fixture.primary(alloc({}, {"confidence": -0.01})) == "AI_CONFIDENCE_INVALID"
	fixture.primary(alloc({}, {"confidence": "high"})) == "AI_CONFIDENCE_INVALID"
	fixture.primary(alloc({}, {"confidence": 1})) == "AI_WITHIN_AUTONOMY"
}

test_confidence_floor_inclusive if {
	fixture.primary(alloc({}, {"confidence": 0.9})) == "AI_WITHIN_AUTONOMY"
	d := fixture.decide(alloc({}, {"confidence": 0.8999}))
	d.reasons[0].code == "AI_CONFIDENCE_BELOW_FLOOR"
	d.approvers == ["ALLOCATION_PLANNER"]
}

test_confidence_floor_stricter_of_registry_and_pack if {
	recs := agent({"use_cases": {"backorder_allocation": object.union(fixture.records.ai_agent.agent_alloc.use_cases.backorder_allocation, {"confidence_floor": 0.5})}})
	fixture.primary(alloc({}, {"confidence": 0.89})) == "AI_CONFIDENCE_BELOW_FLOOR" with fixture.records as recs
}

resolve(changes, ai) := ai_req("agent_ap", "INVOICE.RESOLVE_DISCREPANCY", object.union({"supplier_id": "S1", "discrepancy_class": "PRICE", "variance_amount": "250.00", "currency": "USD"}, changes), object.union({"use_case": "invoice_discrepancy", "model_version": "ap-1.0"}, ai))

test_invoice_auto_resolve_floor if {
	fixture.primary(resolve({}, {"confidence": 0.95})) == "AI_WITHIN_AUTONOMY"
	fixture.primary(resolve({}, {"confidence": 0.9499})) == "AI_CONFIDENCE_BELOW_FLOOR"
	fixture.primary(resolve({}, {"mode": "RECOMMEND", "confidence": 0.85})) == "AI_RECOMMENDATION_ONLY"
	fixture.primary(resolve({}, {"mode": "RECOMMEND", "confidence": 0.8499})) == "AI_CONFIDENCE_BELOW_FLOOR"
}

test_explanation_missing if {
	d := fixture.decide(alloc({}, {"explanation": "  "}))
	d.reasons[0].code == "AI_EXPLANATION_MISSING"
	fixture.primary(alloc({}, {"explanation": null})) == "AI_EXPLANATION_MISSING"
}

test_value_cap if {
	fixture.primary(alloc({"value": "10000.00"}, {})) == "AI_WITHIN_AUTONOMY"
	fixture.primary(alloc({"value": "10000.01"}, {})) == "AI_VALUE_CAP_EXCEEDED"
	fixture.primary(resolve({"variance_amount": "250.01"}, {})) == "AI_VALUE_CAP_EXCEEDED"
	recs := agent({"use_cases": {"backorder_allocation": object.union(fixture.records.ai_agent.agent_alloc.use_cases.backorder_allocation, {"value_cap": "99.99"})}})
	fixture.primary(alloc({"value": "100.00"}, {})) == "AI_VALUE_CAP_EXCEEDED" with fixture.records as recs
	eur := agent({"currency": "EUR"})
	fixture.primary(alloc({}, {})) == "AI_VALUE_CAP_EXCEEDED" with fixture.records as eur
}

test_value_required_for_ai_allocation if {
	r := ai_req("agent_alloc", "ALLOCATION.CREATE", {"customer_id": "C1", "item_id": "I1", "site_id": "DC1", "qty": 5}, {"use_case": "backorder_allocation", "model_version": "alloc-2.1"})
	fixture.primary(r) == "MISSING_REQUIRED_FIELD"
}

test_tier1_customer if {
	d := fixture.decide(alloc({"affected_customers": [{"customer_id": "C1", "qty_delta": -5}, {"customer_id": "C3", "qty_delta": -1}]}, {}))
	d.reasons[0].code == "AI_TIER1_CUSTOMER_HUMAN_REQUIRED"
	d.approvers == ["ALLOCATION_PLANNER", "KEY_ACCOUNT_MANAGER"]
	fixture.primary(alloc({"affected_customers": [{"customer_id": "C3", "qty_delta": 5}]}, {})) == "AI_WITHIN_AUTONOMY"
}

test_erp_applies_to_ai if {
	fixture.primary(alloc({"qty": 701}, {})) == "ATP_SHORTFALL"
}

test_sensitive_discrepancy if {
	d := fixture.decide(resolve({"discrepancy_class": "FRAUD_SUSPECTED"}, {}))
	d.reasons[0].code == "AI_SENSITIVE_CLASS_HUMAN_REQUIRED"
	d.approvers == ["AP_SUPERVISOR"]
	w := fixture.with_record("supplier", "S1", object.union(fixture.records.supplier.S1, {"watchlist": true}))
	fixture.primary(resolve({}, {})) == "AI_SENSITIVE_CLASS_HUMAN_REQUIRED" with fixture.records as w
}

msg(changes) := ai_req("agent_ap", "SUPPLIER.MESSAGE", object.union({"supplier_id": "S1", "template_id": "T-ETA", "commits_terms": false}, changes), {"use_case": "supplier_message", "model_version": "ap-1.0"})

test_supplier_message if {
	fixture.primary(msg({})) == "AI_WITHIN_AUTONOMY"
	d := fixture.decide(msg({"commits_terms": true, "template_id": ""}))
	[r.code | some r in d.reasons] == ["AI_COMMERCIAL_COMMITMENT", "AI_NON_TEMPLATE_MESSAGE"]
	d.approvers == ["BUYER"]
}

case(changes) := ai_req("agent_alloc", "CASE.ROUTE", object.union({"customer_id": "C1", "case_tags": ["BILLING"]}, changes), {"use_case": "case_routing", "model_version": "alloc-2.1", "confidence": 0.8})

test_case_routing if {
	fixture.primary(case({})) == "AI_WITHIN_AUTONOMY"
	d := fixture.decide(case({"case_tags": ["BILLING", "RECALL"]}))
	d.reasons[0].code == "AI_SENSITIVE_CASE_HUMAN_REQUIRED"
	d.approvers == ["CS_SUPERVISOR"]
	fixture.primary(case({"customer_id": "C3"})) == "AI_SENSITIVE_CASE_HUMAN_REQUIRED"
}

test_dr_does_not_judge_ai if {
	# agent_alloc has no user record and no role: DR does not apply.
	not "ROLE_NOT_AUTHORIZED" in fixture.codes(alloc({}, {}))
}

# AI-10 daily value cap (policy-pack §6) over the ai_daily_value view, keyed
# by the agent's id. agent_alloc's daily cap is 50000.00 USD, agent_ap's
# 5000.00 USD.
spent(agent_id, h) := fixture.at("ai_daily_value", [agent_id], h)

spent_usd(agent_id, amount) := spent(agent_id, fixture.prior(["01D1", "01D2"], {"USD": amount}))

test_daily_cap_equal_passes_one_cent_over_fails if {
	d := fixture.decide(alloc({}, {})) with fixture.histories as spent_usd("agent_alloc", "49950.00")
	[r.code | some r in d.reasons] == ["AI_WITHIN_AUTONOMY"]
	d2 := fixture.decide(alloc({}, {})) with fixture.histories as spent_usd("agent_alloc", "49950.01")
	d2.effect == "REQUIRE_APPROVAL"
	[r.code | some r in d2.reasons] == ["AI_DAILY_CAP_EXCEEDED"]
	d2.approvers == ["ALLOCATION_PLANNER"]
	d2.reasons[0].message == "agent agent_alloc spent 49950.01 USD today; value 50.00 USD would exceed the daily cap 50000.00 USD"
}

test_daily_cap_discrepancy_value if {
	fixture.primary(resolve({"variance_amount": "100.00"}, {})) == "AI_WITHIN_AUTONOMY" with fixture.histories as spent_usd("agent_ap", "4900.00")
	d := fixture.decide(resolve({"variance_amount": "100.00"}, {})) with fixture.histories as spent_usd("agent_ap", "4900.01")
	d.reasons[0].code == "AI_DAILY_CAP_EXCEEDED"
	d.approvers == ["AP_SUPERVISOR"]
}

test_daily_cap_after_value_cap if {
	d := fixture.decide(alloc({"value": "10000.01"}, {})) with fixture.histories as spent_usd("agent_alloc", "45000.00")
	[r.code | some r in d.reasons] == ["AI_VALUE_CAP_EXCEEDED", "AI_DAILY_CAP_EXCEEDED"]
}

test_daily_cap_in_a_currency_without_minor_units if {
	recs := agent({"currency": "JPY", "daily_value_cap": "50000"})
	h := spent("agent_alloc", fixture.prior(["01D1"], {"JPY": "49951"}))
	d := fixture.decide(alloc({"value": "50", "currency": "JPY"}, {})) with fixture.records as recs with fixture.histories as h
	some r in d.reasons
	r.message == "agent agent_alloc spent 49951 JPY today; value 50 JPY would exceed the daily cap 50000 JPY"
	h2 := spent("agent_alloc", fixture.prior(["01D1"], {"JPY": "49950"}))
	not "AI_DAILY_CAP_EXCEEDED" in fixture.codes(alloc({"value": "50", "currency": "JPY"}, {})) with fixture.records as recs with fixture.histories as h2
}

test_daily_cap_other_currencies_not_combined if {
	h := spent("agent_alloc", fixture.prior(["01D1", "01D2"], {"EUR": "99999.00", "USD": "49950.00"}))
	fixture.primary(alloc({}, {})) == "AI_WITHIN_AUTONOMY" with fixture.histories as h
}

test_daily_cap_value_in_other_currency if {
	d := fixture.decide(alloc({"currency": "EUR"}, {}))
	d.approvers == ["ALLOCATION_PLANNER"]
	some r in d.reasons
	r.code == "AI_DAILY_CAP_EXCEEDED"
	r.message == "value 50.00 EUR is not in the currency of the daily cap 50000.00 USD of agent agent_alloc: it cannot be judged"
}

test_daily_cap_unvalued_fails_closed if {
	h := spent("agent_alloc", {"count": 2, "sums": {"USD": "10.00"}, "decision_ids": ["01D1", "01D2"], "unvalued": ["01D2"]})
	d := fixture.decide(alloc({}, {})) with fixture.histories as h
	d.reasons[0].code == "AI_DAILY_CAP_EXCEEDED"
	contains(d.reasons[0].message, "cannot be judged")
}

test_daily_cap_no_cap_not_capped if {
	recs := json.remove(fixture.records, ["ai_agent/agent_alloc/daily_value_cap"])
	fixture.primary(alloc({}, {})) == "AI_WITHIN_AUTONOMY" with fixture.records as recs with fixture.histories as spent_usd("agent_alloc", "900000.00")
}

# RECOMMEND is not capped and reads no history; nor does a human's allocation.
test_daily_cap_only_execute if {
	d := fixture.decide_without_history(alloc({}, {"mode": "RECOMMEND"}))
	[r.code | some r in d.reasons] == ["AI_RECOMMENDATION_ONLY"]
	human := fixture.request("u_desk", "ALLOCATION.CREATE", {"customer_id": "C1", "item_id": "I1", "site_id": "DC1", "qty": 5, "value": "50.00", "currency": "USD"})
	fixture.decide_without_history(human).effect == "ALLOW"
}

test_daily_cap_view_dropped_no_lookup if {
	views := object.remove(data.params.history.views, ["ai_daily_value"])
	fixture.primary(alloc({}, {})) == "AI_WITHIN_AUTONOMY" with fixture.histories as spent_usd("agent_alloc", "900000.00")
		with data.params.history.views as views
	fixture.primary(alloc({}, {})) == "AI_WITHIN_AUTONOMY" with data.params.history.views as views
}

# Only ALLOWed EXECUTEs of an agent count, since 00:00 UTC; the view sums
# |variance_amount|.
test_daily_cap_view_declaration if {
	v := data.params.history.views.ai_daily_value
	v.effects == ["ALLOW"]
	v.window == "utc_day"
	v.key == [{"path": "actor.id"}]
	[[a.action, a.value, object.get(a, "abs", false), a.where] | some a in v.actions] == [
		["ALLOCATION.CREATE", "resource.attributes.value", false, {"actor.type": "AI_AGENT", "ai.mode": "EXECUTE"}],
		["INVOICE.RESOLVE_DISCREPANCY", "resource.attributes.variance_amount", true, {"actor.type": "AI_AGENT", "ai.mode": "EXECUTE"}],
	]
}
