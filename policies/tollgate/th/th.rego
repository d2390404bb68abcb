# METADATA
# title: Approval thresholds (TH)
# description: |
#   Monetary tiers. Every comparison is on integer minor units; limits are
#   inclusive (exactly at a limit passes, one cent over does not). Pack
#   thresholds are in params.pack_currency; an amount in another currency, or
#   master data in a currency other than the request's, is treated as above
#   every tier (fail closed: the pack has no exchange rates).
package tollgate.th

import data.tollgate.md
import data.tollgate.money
import data.tollgate.prior
import data.tollgate.val

# params is data.params read once per decision: indexing a value is cheaper
# than a store read per reference.
params := data.params

attrs := val.attrs

_f(rule, sub, effect, code, msg, approvers) := [4, rule, sub, effect, code, msg, approvers]

_effect(approvers) := "ALLOW" if count(approvers) == 0

_effect(approvers) := "REQUIRE_APPROVAL" if count(approvers) > 0

# tier(tiers, amount, cur) is the index of the first tier whose max covers
# amount (minor units of cur); the last tier (max "") covers the rest.
tier(tiers, amount, cur) := min({i |
	some i, t in tiers
	_covers(t.max, amount, cur)
})

_covers("", _, _)

_covers(m, amount, cur) if {
	m != ""
	amount <= money.limit(m, cur)
}

# TH-1 PO submit.
_po_tiers := [t |
	some i, t0 in params.th.po.tiers
	t := _po_tier(i, t0)
]

_po_tier(0, t) := object.union(t, {"max": params.th.po.buyer_limit_by_site_type[md.site(attrs.site_id).type]})

_po_tier(i, t) := t if {
	i == 0
	not params.th.po.buyer_limit_by_site_type[md.site(attrs.site_id).type]
}

_po_tier(i, t) := t if i > 0

findings contains _f(1, "", _effect(approvers), t.code, sprintf("PO of %s %s (%s) at site %s", [attrs.amount, attrs.currency, attrs.category, attrs.site_id]), approvers) if {
	input.action == "PO.SUBMIT"
	t := _po_tiers[tier(_po_tiers, money.minor(attrs.amount, attrs.currency), attrs.currency)]
	extra := object.get(params.th.po.extra_approvers_by_category, attrs.category, [])
	approvers := _po_approvers(t.approvers, extra)
}

_po_approvers(base, _) := base if count(base) == 0

_po_approvers(base, extra) := array.concat(base, extra) if count(base) > 0

# TH-7 split purchase (policy-pack §6): the buyer's earlier POs for the same
# supplier and site in the po_split view's window, summed with this PO, reach
# a higher TH-1 tier than this PO alone. Only priors in this PO's currency are
# summed; priors in other currencies are ignored for the sum (the pack has no
# exchange rates). A prior whose amount the index could not read makes the
# combined tier the top one: the combined amount cannot be judged, so the
# approvers of every tier decide. The TH-1 finding for the PO alone stays.
findings contains _f(10, "", "REQUIRE_APPROVAL", "PO_SPLIT_SUSPECTED", msg, approvers) if {
	input.action == "PO.SUBMIT"
	h := prior.decisions("po_split", [val.actor_id, attrs.supplier_id, attrs.site_id])
	h.count > 0
	alone := tier(_po_tiers, val.amount, attrs.currency)
	[combined, amount] := _split(h)
	_split_suspected(h, combined, alone)
	approvers := _po_approvers(_po_tiers[combined].approvers, object.get(params.th.po.extra_approvers_by_category, attrs.category, []))
	msg := sprintf("%d prior PO(s) by %s for supplier %s at site %s in the last %s; %s: %s (this PO alone: %s)", [h.count, val.actor_id, attrs.supplier_id, attrs.site_id, params.history.views.po_split.window, amount, _po_tiers[combined].code, _po_tiers[alone].code])
}

# _split(h) is [the combined TH-1 tier, the combined amount as the message
# states it].
_split(h) := [tier(_po_tiers, total, cur), sprintf("combined with this PO %s %s", [money.format(total, cur), cur])] if {
	cur := attrs.currency
	prior.judgeable(h, cur)
	total := prior.sum(h, cur) + val.amount
} else := [count(_po_tiers) - 1, "their amounts cannot all be read, so the combined amount cannot be judged"]

_split_suspected(_, combined, alone) if combined > alone

_split_suspected(h, _, _) if not prior.judgeable(h, attrs.currency)

# TH-8 credit-memo velocity (policy-pack §6): the customer already had
# max_prior or more credit memos in the credit_memo_velocity view's window.
findings contains _f(11, "", "REQUIRE_APPROVAL", "CREDIT_MEMO_VELOCITY", msg, p.approvers) if {
	input.action == "CREDIT_MEMO.ISSUE"
	p := params.history.credit_memo_velocity
	h := prior.decisions("credit_memo_velocity", [attrs.customer_id])
	h.count >= p.max_prior
	msg := sprintf("customer %s already had %d credit memo(s) in the last %s; from memo %d on, %s approve(s)", [attrs.customer_id, h.count, params.history.views.credit_memo_velocity.window, p.max_prior + 1, concat(", ", p.approvers)])
}

# TH-2 price variance per line, TH-3 quantity and currency.
_match := params.th.match

findings contains _f(2, "", "ALLOW", "MATCH_WITHIN_TOLERANCE", sprintf("all %d lines within price tolerance", [count(attrs.lines)]), []) if {
	input.action == "INVOICE.MATCH"
	attrs.currency == attrs.po_currency
	every line in attrs.lines {
		_line_class(line) == 0
	}
}

findings contains _f(2, sprintf("%v", [i]), "REQUIRE_APPROVAL", code, msg, approvers) if {
	input.action == "INVOICE.MATCH"
	attrs.currency == attrs.po_currency
	some i, line in attrs.lines
	cls := _line_class(line)
	cls > 0
	code := ["", "PRICE_VARIANCE_OVER_TOLERANCE", "PRICE_VARIANCE_MAJOR"][cls]
	approvers := ["", _match.minor_approvers, _match.major_approvers][cls]
	msg := sprintf("line %v: unit price %s against PO %s for %d units", [object.get(line, "line", i), line.unit_price, line.po_unit_price, line.qty])
}

# _line_class(line) is 0 within tolerance, 1 over tolerance, 2 major.
_line_class(line) := 0 if {
	_line_diff(line) <= 0
} else := 0 if {
	_line_within(line, _match.tolerance_bp, _match.tolerance_amount)
} else := 1 if {
	_line_within(line, _match.minor_bp, _match.minor_amount)
} else := 2

_line_diff(line) := money.minor(line.unit_price, attrs.currency) - money.minor(line.po_unit_price, attrs.po_currency)

_line_within(line, bp, amount) if {
	d := _line_diff(line)
	(d * 10000) <= bp * money.minor(line.po_unit_price, attrs.po_currency)
	d * line.qty <= money.limit(amount, attrs.currency)
}

findings contains _f(3, sprintf("%v", [i]), "DENY", "QTY_INVOICED_EXCEEDS_RECEIVED", sprintf("line %v: %d invoiced, %d received", [object.get(line, "line", i), line.qty, line.qty_received]), []) if {
	input.action == "INVOICE.MATCH"
	some i, line in attrs.lines
	line.qty > line.qty_received
}

findings contains _f(3, "", "DENY", "CURRENCY_MISMATCH", sprintf("invoice currency %s differs from PO currency %s", [attrs.currency, attrs.po_currency]), []) if {
	input.action == "INVOICE.MATCH"
	attrs.currency != attrs.po_currency
}

# TH-4 credit exposure = open_ar + open_orders + order amount.
_credit := params.th.credit

findings contains _f(4, "", effect, code, msg, approvers) if {
	input.action in _credit.actions
	c := md.customer(attrs.customer_id)
	[code, approvers] := _credit_class(c)
	effect := _effect(approvers)
	msg := sprintf("customer %s: open AR %s + open orders %s + order %s %s against limit %s %s", [attrs.customer_id, c.open_ar, c.open_orders, attrs.amount, attrs.currency, c.credit_limit, c.currency])
}

_credit_class(c) := ["WITHIN_CREDIT_LIMIT", []] if {
	_over(c) <= 0
} else := ["CREDIT_LIMIT_EXCEEDED_MINOR", _credit.minor_approvers] if {
	over := _over(c)
	(over * 10000) <= _credit.minor_bp * money.minor(c.credit_limit, c.currency)
	over <= money.limit(_credit.minor_amount, attrs.currency)
} else := ["CREDIT_LIMIT_EXCEEDED_MAJOR", _credit.major_approvers]

# _over(c) is exposure minus limit, in minor units; undefined (so: major)
# when the customer's currency is not the order's.
_over(c) := ((money.minor(c.open_ar, cur) + money.minor(c.open_orders, cur)) + money.minor(attrs.amount, cur)) - money.minor(c.credit_limit, cur) if {
	cur := attrs.currency
	c.currency == cur
}

# TH-5 credit memo.
findings contains _f(5, "", "DENY", "CREDIT_EXCEEDS_INVOICE", sprintf("credit %s exceeds invoice %s net %s less credited %s", [attrs.amount, attrs.ref_invoice_id, attrs.ref_invoice_net, attrs.ref_invoice_credited]), []) if {
	input.action == "CREDIT_MEMO.ISSUE"
	cur := attrs.currency
	money.minor(attrs.amount, cur) > money.minor(attrs.ref_invoice_net, cur) - money.minor(attrs.ref_invoice_credited, cur)
}

findings contains _f(6, "", _effect(t.approvers), t.code, sprintf("credit memo of %s %s", [attrs.amount, attrs.currency]), t.approvers) if {
	input.action == "CREDIT_MEMO.ISSUE"
	tiers := params.th.credit_memo.tiers
	t := tiers[tier(tiers, money.minor(attrs.amount, attrs.currency), attrs.currency)]
}

# TH-6 inventory adjustment, value = |qty_delta| x unit_cost.
_adjust := params.th.adjust

_adj_item := md.item(attrs.item_id) if input.action == "INVENTORY.ADJUST"

_on_hand := inv.on_hand if {
	inv := md.inventory(attrs.site_id, attrs.item_id)
} else := 0

_adj_value := abs(attrs.qty_delta) * money.minor(_adj_item.unit_cost, _adj_item.currency)

_adj_over_on_hand if (abs(attrs.qty_delta) * 10000) > _adjust.on_hand_bp * _on_hand

_adj_within if {
	not _adj_over_on_hand
	_adj_value <= money.limit(_adjust.tolerance_amount, _adj_item.currency)
}

_adj_msg := sprintf("adjustment of %d x item %s (unit cost %s %s) at %s, on hand %d", [attrs.qty_delta, attrs.item_id, _adj_item.unit_cost, _adj_item.currency, attrs.site_id, _on_hand])

findings contains _f(7, "", "ALLOW", "ADJUSTMENT_WITHIN_TOLERANCE", _adj_msg, []) if {
	input.action == "INVENTORY.ADJUST"
	_adj_item
	_adj_within
}

findings contains _f(7, "", "REQUIRE_APPROVAL", t.code, _adj_msg, t.approvers) if {
	input.action == "INVENTORY.ADJUST"
	_adj_item
	not _adj_within
	t := _adjust.tiers[tier(_adjust.tiers, _adj_value, _adj_item.currency)]
}

findings contains _f(8, "", "INFO", "RECOUNT_REQUIRED", sprintf("%d is more than the tolerated share of on-hand %d: recount", [attrs.qty_delta, _on_hand]), []) if {
	input.action == "INVENTORY.ADJUST"
	_adj_item
	_adj_over_on_hand
}

findings contains _f(9, "", "REQUIRE_APPROVAL", "CONTROLLED_ITEM_ADJUSTMENT", sprintf("item %s is controlled", [attrs.item_id]), _adjust.controlled_approvers) if {
	input.action == "INVENTORY.ADJUST"
	_adj_item.controlled == true
}
