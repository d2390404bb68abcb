package tollgate.th_test

import data.tollgate.fixture
import data.tollgate.money

req(actor, action, attrs) := fixture.request(actor, action, attrs)

po(amount, changes) := req("u_buyer1", "PO.SUBMIT", object.union(fixture.po(amount), changes))

test_po_tiers_at_and_over_limits if {
	fixture.primary(po("5000.00", {})) == "PO_WITHIN_BUYER_LIMIT"
	fixture.decide(po("5000.00", {})).effect == "ALLOW"
	d2 := fixture.decide(po("5000.01", {}))
	d2.reasons[0].code == "PO_TIER_2_APPROVAL"
	d2.approvers == ["PROCUREMENT_MANAGER"]
	fixture.primary(po("25000.00", {})) == "PO_TIER_2_APPROVAL"
	d3 := fixture.decide(po("25000.01", {}))
	d3.reasons[0].code == "PO_TIER_3_APPROVAL"
	d3.approvers == ["PROCUREMENT_MANAGER", "DIRECTOR_SUPPLY_CHAIN"]
	fixture.primary(po("100000.00", {})) == "PO_TIER_3_APPROVAL"
	d4 := fixture.decide(po("100000.01", {}))
	d4.approvers == ["PROCUREMENT_MANAGER", "DIRECTOR_SUPPLY_CHAIN", "CFO"]
	fixture.primary(po("500000.00", {})) == "PO_TIER_4_APPROVAL"
	d5 := fixture.decide(po("500000.01", {}))
	d5.reasons[0].code == "PO_TIER_5_APPROVAL"
	d5.approvers == ["PROCUREMENT_MANAGER", "DIRECTOR_SUPPLY_CHAIN", "CFO", "CEO"]
}

test_po_branch_buyer_limit if {
	fixture.primary(po("2500.00", {"site_id": "BR1"})) == "PO_WITHIN_BUYER_LIMIT"
	fixture.primary(po("2500.01", {"site_id": "BR1"})) == "PO_TIER_2_APPROVAL"
}

test_po_capex_adds_finance_controller if {
	d := fixture.decide(po("30000.00", {"category": "CAPEX"}))
	d.approvers == ["PROCUREMENT_MANAGER", "DIRECTOR_SUPPLY_CHAIN", "FINANCE_CONTROLLER"]
	fixture.decide(po("30000.00", {"category": "IT"})).approvers == d.approvers
	fixture.decide(po("100.00", {"category": "IT"})).effect == "ALLOW"
}

line(po_price, price, qty, received) := {"line": 1, "item_id": "I1", "po_unit_price": po_price, "unit_price": price, "qty": qty, "qty_received": received}

match(lines) := req("u_clerk", "INVOICE.MATCH", {"supplier_id": "S1", "currency": "USD", "po_currency": "USD", "lines": lines})

test_match_within_tolerance if {
	# 2.0 % of 100.00 is 2.00 per unit; x 50 = 100.00 exactly.
	d := fixture.decide(match([line("100.00", "102.00", 50, 50)]))
	d.effect == "ALLOW"
	d.reasons[0].code == "MATCH_WITHIN_TOLERANCE"
}

test_match_favourable_passes if {
	fixture.primary(match([line("100.00", "50.00", 1000, 1000)])) == "MATCH_WITHIN_TOLERANCE"
}

test_match_percent_one_cent_over if {
	d := fixture.decide(match([line("100.00", "102.01", 1, 1)]))
	d.reasons[0].code == "PRICE_VARIANCE_OVER_TOLERANCE"
	d.approvers == ["AP_SUPERVISOR"]
}

test_match_amount_one_cent_over if {
	# 0.01 x 10001 = 100.01 while the percentage is tiny
	fixture.primary(match([line("100.00", "100.01", 10001, 10001)])) == "PRICE_VARIANCE_OVER_TOLERANCE"
	fixture.primary(match([line("100.00", "100.01", 10000, 10000)])) == "MATCH_WITHIN_TOLERANCE"
}

test_match_minor_limits if {
	fixture.primary(match([line("100.00", "110.00", 100, 100)])) == "PRICE_VARIANCE_OVER_TOLERANCE"
	fixture.primary(match([line("100.00", "110.01", 1, 1)])) == "PRICE_VARIANCE_MAJOR"
	fixture.primary(match([line("100.00", "101.00", 1000, 1000)])) == "PRICE_VARIANCE_OVER_TOLERANCE"
	d := fixture.decide(match([line("100.00", "101.00", 1001, 1001)]))
	d.reasons[0].code == "PRICE_VARIANCE_MAJOR"
	d.approvers == ["BUYER", "AP_MANAGER"]
}

test_match_zero_po_price if {
	fixture.primary(match([line("0.00", "0.01", 1, 1)])) == "PRICE_VARIANCE_MAJOR"
}

test_match_worst_line_and_union if {
	d := fixture.decide(match([line("100.00", "100.00", 1, 1), line("100.00", "105.00", 1, 1), line("100.00", "150.00", 1, 1)]))
	d.effect == "REQUIRE_APPROVAL"
	d.reasons[0].code == "PRICE_VARIANCE_OVER_TOLERANCE"
	d.approvers == ["AP_SUPERVISOR", "BUYER", "AP_MANAGER"]
}

test_match_qty_exceeds_received if {
	fixture.primary(match([line("1.00", "1.00", 6, 5)])) == "QTY_INVOICED_EXCEEDS_RECEIVED"
	fixture.primary(match([line("1.00", "1.00", 5, 5)])) == "MATCH_WITHIN_TOLERANCE"
}

test_match_currency_mismatch if {
	r := object.union(match([line("1.00", "1.00", 1, 1)]), {"resource": {"attributes": {"po_currency": "EUR"}}})
	fixture.primary(r) == "CURRENCY_MISMATCH" with data.params.currencies as {"USD": 2, "EUR": 2}
}

so(amount) := req("u_desk", "SO.CREATE", {"customer_id": "C1", "site_id": "DC1", "amount": amount, "currency": "USD"})

test_credit_tiers if {
	# C1: limit 100000.00, open AR 40000.00, open orders 10000.00
	fixture.primary(so("50000.00")) == "WITHIN_CREDIT_LIMIT"
	d := fixture.decide(so("50000.01"))
	d.reasons[0].code == "CREDIT_LIMIT_EXCEEDED_MINOR"
	d.approvers == ["CREDIT_ANALYST"]
	fixture.primary(so("60000.00")) == "CREDIT_LIMIT_EXCEEDED_MINOR"
	d2 := fixture.decide(so("60000.01"))
	d2.reasons[0].code == "CREDIT_LIMIT_EXCEEDED_MAJOR"
	d2.approvers == ["CREDIT_MANAGER"]
}

test_credit_minor_absolute_cap if {
	# limit 500000.00: 10 % is 50000.00 but the absolute cap is 25000.00
	recs := fixture.with_record("customer", "C1", object.union(fixture.records.customer.C1, {"credit_limit": "500000.00"}))
	fixture.primary(so("475000.00")) == "CREDIT_LIMIT_EXCEEDED_MINOR" with fixture.records as recs
	fixture.primary(so("475000.01")) == "CREDIT_LIMIT_EXCEEDED_MAJOR" with fixture.records as recs
}

test_credit_other_currency_is_major if {
	recs := fixture.with_record("customer", "C1", object.union(fixture.records.customer.C1, {"currency": "EUR"}))
	fixture.primary(so("1.00")) == "CREDIT_LIMIT_EXCEEDED_MAJOR" with fixture.records as recs
}

memo(amount, net, credited) := req("u_csr", "CREDIT_MEMO.ISSUE", {"customer_id": "C1", "amount": amount, "currency": "USD", "ref_invoice_id": "INV-1", "ref_invoice_net": net, "ref_invoice_credited": credited})

test_credit_memo_tiers if {
	fixture.primary(memo("500.00", "90000.00", "0.00")) == "CREDIT_MEMO_WITHIN_LIMIT"
	fixture.decide(memo("500.01", "90000.00", "0.00")).approvers == ["CS_SUPERVISOR"]
	fixture.primary(memo("5000.00", "90000.00", "0.00")) == "CREDIT_MEMO_TIER_2"
	fixture.decide(memo("5000.01", "90000.00", "0.00")).approvers == ["CS_SUPERVISOR", "AR_MANAGER"]
	fixture.primary(memo("25000.00", "90000.00", "0.00")) == "CREDIT_MEMO_TIER_3"
	d := fixture.decide(memo("25000.01", "90000.00", "0.00"))
	d.reasons[0].code == "CREDIT_MEMO_TIER_4"
	d.approvers == ["AR_MANAGER", "FINANCE_DIRECTOR"]
}

test_credit_exceeds_invoice if {
	fixture.primary(memo("100.00", "150.00", "50.00")) == "CREDIT_MEMO_WITHIN_LIMIT"
	fixture.primary(memo("100.01", "150.00", "50.00")) == "CREDIT_EXCEEDS_INVOICE"
}

adjust(item, qty) := req("u_wm", "INVENTORY.ADJUST", {"site_id": "DC1", "item_id": item, "qty_delta": qty, "reason": "DAMAGE"})

inv(on_hand) := fixture.with_record("inventory", "DC1/I1", object.union(fixture.records.inventory["DC1/I1"], {"on_hand": on_hand}))

test_adjust_within_tolerance if {
	# I1 costs 10.00; 25 x 10.00 = 250.00; on hand 1000, 10 % = 100
	d := fixture.decide(adjust("I1", -25))
	d.effect == "ALLOW"
	d.reasons[0].code == "ADJUSTMENT_WITHIN_TOLERANCE"
	fixture.primary(adjust("I1", 25)) == "ADJUSTMENT_WITHIN_TOLERANCE"
}

test_adjust_value_one_cent_over if {
	# 101 x 2.50 = 252.50 with I2 unit cost 2.50 (no row: on hand 0 -> recount)
	recs := fixture.with_record("item", "I1", object.union(fixture.records.item.I1, {"unit_cost": "10.01"}))
	d := fixture.decide(adjust("I1", -25)) with fixture.records as recs
	d.reasons[0].code == "WRITE_OFF_TIER_2"
	d.approvers == ["WAREHOUSE_MANAGER"]
	count(d.reasons) == 1
}

test_adjust_share_of_on_hand if {
	fixture.primary(adjust("I1", -10)) == "ADJUSTMENT_WITHIN_TOLERANCE" with fixture.records as inv(100)
	d := fixture.decide(adjust("I1", -11)) with fixture.records as inv(100)
	[r.code | some r in d.reasons] == ["WRITE_OFF_TIER_2", "RECOUNT_REQUIRED"]
}

test_adjust_tiers if {
	fixture.primary(adjust("I1", -250)) == "WRITE_OFF_TIER_2"
	d3 := fixture.decide(adjust("I1", -251))
	d3.reasons[0].code == "WRITE_OFF_TIER_3"
	d3.approvers == ["WAREHOUSE_MANAGER", "FINANCE_CONTROLLER"]
	fixture.primary(adjust("I1", -2500)) == "WRITE_OFF_TIER_3"
	d4 := fixture.decide(adjust("I1", -2501))
	d4.reasons[0].code == "WRITE_OFF_TIER_4"
	d4.approvers == ["OPERATIONS_DIRECTOR", "CFO"]
}

test_adjust_controlled if {
	recs := fixture.with_record("item", "I1", object.union(fixture.records.item.I1, {"controlled": true}))
	d := fixture.decide(adjust("I1", -1)) with fixture.records as recs
	d.effect == "REQUIRE_APPROVAL"
	[r.code | some r in d.reasons] == ["CONTROLLED_ITEM_ADJUSTMENT", "ADJUSTMENT_WITHIN_TOLERANCE"]
	d.approvers == ["WAREHOUSE_MANAGER"]
	d4 := fixture.decide(adjust("I1", -2501)) with fixture.records as recs
	d4.approvers == ["OPERATIONS_DIRECTOR", "CFO", "WAREHOUSE_MANAGER"]
	d4.reasons[0].code == "WRITE_OFF_TIER_4"
}

# TH-7 split purchase and TH-8 credit-memo velocity read the decision history
# (policy-pack §6); fixture.histories gives the answers of tollgate.history
# for one view and key, so every test also checks the view and key order the
# rule asks with. The TH-7 amounts are set relative to the bundle's TH-1 tier
# limits (limit(i) is tier i's max in cents, usd(c) cents as an amount), so
# these tests judge TH-7 whatever the tier numbers; TH-1's own test pins them.

split_key := ["u_buyer1", "S1", "DC1"]

# split(h) is histories holding h as the buyer's earlier POs for S1 at DC1.
split(h) := fixture.at("po_split", split_key, h)

prior_usd(ids, cents) := fixture.prior(ids, {"USD": usd(cents)})

limit(i) := money.minor(data.params.th.po.tiers[i].max, "USD")

usd(cents) := money.format(cents, "USD")

tier_code(i) := data.params.th.po.tiers[i].code

test_split_combined_tier_higher if {
	d := fixture.decide(po(usd(limit(0) - 100000), {})) with fixture.histories as split(prior_usd(["01A"], 200000))
	d.effect == "REQUIRE_APPROVAL"
	[r.code | some r in d.reasons] == ["PO_SPLIT_SUSPECTED", tier_code(0)]
	d.approvers == data.params.th.po.tiers[1].approvers
	msg := d.reasons[0].message
	contains(msg, "1 prior PO(s) by u_buyer1 for supplier S1 at site DC1 in the last 24h")
	contains(msg, sprintf("combined with this PO %s USD: %s", [usd(limit(0) + 100000), tier_code(1)]))
	contains(msg, sprintf("this PO alone: %s", [tier_code(0)]))
}

test_split_equal_to_limit_passes_one_cent_over_fails if {
	this := usd(limit(0) - 100000)
	d := fixture.decide(po(this, {})) with fixture.histories as split(prior_usd(["01A", "01B"], 100000))
	d.effect == "ALLOW"
	[r.code | some r in d.reasons] == [tier_code(0)]
	d2 := fixture.decide(po(this, {})) with fixture.histories as split(prior_usd(["01A", "01B"], 100001))
	d2.reasons[0].code == "PO_SPLIT_SUSPECTED"
	contains(d2.reasons[0].message, "2 prior PO(s)")
	contains(d2.reasons[0].message, sprintf("%s USD", [usd(limit(0) + 1)]))
}

test_split_same_tier_no_finding if {
	h := split(prior_usd(["01A"], (limit(1) - limit(0)) - 1))
	d := fixture.decide(po(usd(limit(0) + 1), {})) with fixture.histories as h
	[r.code | some r in d.reasons] == [tier_code(1)]
}

test_split_keeps_th1_finding_and_unites_approvers if {
	h := split(prior_usd(["01A"], limit(1) - limit(0)))
	d := fixture.decide(po(usd(limit(0) + 1), {})) with fixture.histories as h
	[r.code | some r in d.reasons] == [tier_code(1), "PO_SPLIT_SUSPECTED"]
	d.approvers == data.params.th.po.tiers[2].approvers
}

test_split_category_extra_approvers if {
	d := fixture.decide(po(usd(limit(0)), {"category": "CAPEX"})) with fixture.histories as split(prior_usd(["01A"], 1))
	d.reasons[0].code == "PO_SPLIT_SUSPECTED"
	d.approvers == array.concat(data.params.th.po.tiers[1].approvers, ["FINANCE_CONTROLLER"])
}

test_split_branch_buyer_limit_applies_to_both_tiers if {
	branch := money.minor(data.params.th.po.buyer_limit_by_site_type.BRANCH, "USD")
	key := ["u_buyer1", "S1", "BR1"]
	fixture.primary(po(usd(branch - 50000), {"site_id": "BR1"})) == tier_code(0) with fixture.histories as fixture.at("po_split", key, prior_usd(["01A"], 50000))
	fixture.primary(po(usd(branch - 50000), {"site_id": "BR1"})) == "PO_SPLIT_SUSPECTED" with fixture.histories as fixture.at("po_split", key, prior_usd(["01A"], 50001))
}

test_split_other_currencies_not_combined if {
	h := split(fixture.prior(["01A", "01B"], {"EUR": "900000.00", "USD": "1000.00"}))
	fixture.decide(po(usd(limit(0) - 100000), {})).effect == "ALLOW" with fixture.histories as h

	# only EUR priors: nothing in USD to combine
	fixture.decide(po(usd(limit(0)), {})).effect == "ALLOW" with fixture.histories as split(fixture.prior(["01A"], {"EUR": "1.00"}))
}

test_split_unvalued_fails_closed if {
	h := split(object.union(prior_usd(["01A", "01B"], 10000), {"unvalued": ["01B"]}))
	d := fixture.decide(po("100.00", {})) with fixture.histories as h
	d.reasons[0].code == "PO_SPLIT_SUSPECTED"
	d.approvers == data.params.th.po.tiers[count(data.params.th.po.tiers) - 1].approvers
	contains(d.reasons[0].message, "their amounts cannot all be read, so the combined amount cannot be judged")

	# already at the top tier alone: the finding still says it cannot be judged
	top := limit(count(data.params.th.po.tiers) - 2) + 1
	d5 := fixture.decide(po(usd(top), {})) with fixture.histories as h
	[r.code | some r in d5.reasons] == [tier_code(count(data.params.th.po.tiers) - 1), "PO_SPLIT_SUSPECTED"]
}

test_split_other_key_order_is_another_key if {
	h := fixture.at("po_split", ["S1", "u_buyer1", "DC1"], prior_usd(["01A"], limit(1)))
	fixture.decide(po("1.00", {})).effect == "ALLOW" with fixture.histories as h
}

# A bundle whose data drops the view does not run TH-7: the decision reads no
# history at all (an unmocked tollgate.history call would be an error).
test_split_view_dropped_no_lookup if {
	views := object.remove(data.params.history.views, ["po_split"])
	d := fixture.decide_without_history(po("1.00", {})) with data.params.history.views as views
	[r.code | some r in d.reasons] == [tier_code(0)]
}

# DENY'd POs are not prior POs: the view counts ALLOW and REQUIRE_APPROVAL only.
test_split_view_declaration if {
	v := data.params.history.views.po_split
	v.effects == ["ALLOW", "REQUIRE_APPROVAL"]
	v.window == "24h"
	[k.path | some k in v.key] == ["actor.id", "resource.attributes.supplier_id", "resource.attributes.site_id"]
	[a.action | some a in v.actions] == ["PO.SUBMIT"]
}

memos(n) := fixture.at("credit_memo_velocity", ["C1"], fixture.prior([sprintf("01M%d", [i]) | some i in numbers.range(1, n)], {"USD": "300.00"}))

test_credit_memo_velocity_third_passes_fourth_needs_ar_manager if {
	d2 := fixture.decide(memo("100.00", "90000.00", "0.00")) with fixture.histories as memos(2)
	d2.effect == "ALLOW"
	[r.code | some r in d2.reasons] == ["CREDIT_MEMO_WITHIN_LIMIT"]
	d3 := fixture.decide(memo("100.00", "90000.00", "0.00")) with fixture.histories as memos(3)
	d3.effect == "REQUIRE_APPROVAL"
	[r.code | some r in d3.reasons] == ["CREDIT_MEMO_VELOCITY", "CREDIT_MEMO_WITHIN_LIMIT"]
	d3.approvers == ["AR_MANAGER"]
	contains(d3.reasons[0].message, "customer C1 already had 3 credit memo(s) in the last 168h")
}

test_credit_memo_velocity_with_tier if {
	d := fixture.decide(memo("600.00", "90000.00", "0.00")) with fixture.histories as memos(5)
	[r.code | some r in d.reasons] == ["CREDIT_MEMO_TIER_2", "CREDIT_MEMO_VELOCITY"]
	d.approvers == ["CS_SUPERVISOR", "AR_MANAGER"]
}

test_credit_memo_velocity_limit_is_data if {
	d := fixture.decide(memo("100.00", "90000.00", "0.00")) with fixture.histories as memos(3)
		with data.params.history.credit_memo_velocity.max_prior as 4
	d.effect == "ALLOW"
}

test_credit_memo_velocity_view_dropped_no_lookup if {
	views := object.remove(data.params.history.views, ["credit_memo_velocity"])
	d := fixture.decide_without_history(memo("100.00", "90000.00", "0.00")) with data.params.history.views as views
	[r.code | some r in d.reasons] == ["CREDIT_MEMO_WITHIN_LIMIT"]
}

test_credit_memo_velocity_view_declaration if {
	v := data.params.history.views.credit_memo_velocity
	v.effects == ["ALLOW", "REQUIRE_APPROVAL"]
	v.window == "168h"
	[k.path | some k in v.key] == ["resource.attributes.customer_id"]
	[a.action | some a in v.actions] == ["CREDIT_MEMO.ISSUE"]
	data.params.history.credit_memo_velocity.max_prior == 3
}
