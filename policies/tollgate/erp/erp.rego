# METADATA
# title: ERP control points (ERP)
# description: |
#   Hard stops the ERP would enforce, for humans and AI agents alike:
#   customer holds, ATP, fiscal periods, supplier and item status, duplicate
#   invoices and ASNs, unverified bank changes.
package tollgate.erp

import data.tollgate.dr
import data.tollgate.md
import data.tollgate.prior
import data.tollgate.val

# params is data.params read once per decision: indexing a value is cheaper
# than a store read per reference.
params := data.params

attrs := val.attrs

ns_per_day := ((24 * 60) * 60) * 1000000000

_f(rule, sub, effect, code, msg, approvers) := [3, rule, sub, effect, code, msg, approvers]

_deny(rule, code, msg) := _f(rule, "", "DENY", code, msg, [])

# Rules are grouped under the condition they share, so a request that the
# condition excludes costs one rule evaluation for the whole group.
findings contains f if {
	_customer
	some f in _customer_findings
}

findings contains f if {
	_posting
	some f in _period_findings
}

findings contains f if {
	_supplier
	some f in _supplier_findings
}

findings contains f if {
	_item
	some f in _item_findings
}

# ERP-1 customer holds.
_customer := md.customer(attrs.customer_id) if input.action in params.erp.customer_hold_actions

_customer_findings contains _deny(1, "CUSTOMER_CREDIT_BLOCKED", sprintf("customer %s is credit blocked", [attrs.customer_id])) if {
	_customer.credit_status == "BLOCKED"
}

_customer_findings contains _deny(2, "CUSTOMER_CREDIT_HOLD", sprintf("customer %s is on credit hold", [attrs.customer_id])) if {
	_customer.credit_status == "HOLD"
}

_customer_findings contains _deny(3, "CUSTOMER_DELIVERY_BLOCKED", sprintf("customer %s has a delivery block", [attrs.customer_id])) if {
	_customer.delivery_block == true
}

_customer_findings contains _deny(4, "CUSTOMER_INACTIVE", sprintf("customer %s is %s", [attrs.customer_id, _customer.status])) if {
	_customer.status != "ACTIVE"
}

# ERP-2 ATP = on_hand - allocated - safety_stock - quality_hold, floored at 0;
# no inventory row means ATP 0.
atp := max({0, ((inv.on_hand - inv.allocated) - inv.safety_stock) - inv.quality_hold}) if {
	inv := md.inventory(attrs.site_id, attrs.item_id)
} else := 0

findings contains _deny(5, "ATP_SHORTFALL", sprintf("ATP of item %s at %s is %d, %d asked", [attrs.item_id, attrs.site_id, atp, attrs.qty])) if {
	input.action in params.erp.atp_actions
	attrs.qty > atp
}

# ERP-3 postings need an OPEN period. The company is the request's, else the
# site's; GOODS_ISSUE.POST is checked only when it carries a posting_date.
_company := attrs.company

_company := md.site(attrs.site_id).company if not attrs.company

_period := md.fiscal_period(_company, substring(attrs.posting_date, 0, 7))

_posting if {
	input.action in params.erp.posting_actions
	attrs.posting_date
}

_period_findings contains _deny(6, code, sprintf("fiscal period %s of %s is %s", [substring(attrs.posting_date, 0, 7), _company, _period.status])) if {
	_posting
	code := {"CLOSED": "PERIOD_CLOSED", "FUTURE": "PERIOD_NOT_OPEN"}[_period.status]
}

_period_findings contains _deny(6, "PERIOD_UNKNOWN", sprintf("no fiscal period %s for company %v", [substring(attrs.posting_date, 0, 7), _company])) if {
	_posting
	not _period
}

_period_findings contains _f(6, "", "REQUIRE_APPROVAL", "PERIOD_SOFT_CLOSED", sprintf("fiscal period %s of %s is soft-closed", [substring(attrs.posting_date, 0, 7), _company]), params.erp.period_soft_closed_approvers) if {
	_posting
	_period.status == "SOFT_CLOSED"
	not _override
}

_period_findings contains _f(6, "", "ALLOW", "PERIOD_SOFT_CLOSED", sprintf("fiscal period %s of %s is soft-closed; posting by %s", [substring(attrs.posting_date, 0, 7), _company, params.erp.period_override_role]), []) if {
	_posting
	_period.status == "SOFT_CLOSED"
	_override
}

# A CONTROLLER may post into a soft-closed period (the user acted for, when delegated).
_override if {
	val.is_user
	params.erp.period_override_role in md.user(dr.principal_id).roles
}

# ERP-4 supplier status.
_supplier := md.supplier(attrs.supplier_id)

_supplier_findings contains _deny(7, "SUPPLIER_BLOCKED", sprintf("supplier %s is blocked", [attrs.supplier_id])) if {
	input.action in params.erp.supplier_blocked_actions
	_supplier.status == "BLOCKED"
}

_supplier_findings contains _deny(7, "SUPPLIER_BLOCKED", sprintf("supplier %s has a purchasing block", [attrs.supplier_id])) if {
	input.action in params.erp.purchasing_actions
	_supplier.purchasing_block == true
}

_supplier_findings contains _deny(8, "SUPPLIER_NOT_APPROVED", sprintf("supplier %s is not approved yet", [attrs.supplier_id])) if {
	input.action in params.erp.purchasing_actions
	_supplier.status == "PENDING"
}

_supplier_findings contains _deny(9, "SUPPLIER_PAYMENT_BLOCKED", sprintf("supplier %s has a payment block", [attrs.supplier_id])) if {
	input.action in params.erp.payment_actions
	_supplier.payment_block == true
}

# ERP-5 item status.
_item := md.item(attrs.item_id)

_item_findings contains _deny(10, "ITEM_BLOCKED", sprintf("item %s is blocked", [attrs.item_id])) if {
	_item.status == "BLOCKED"
}

_item_findings contains _deny(11, "ITEM_QUALITY_HOLD", sprintf("item %s is on quality hold", [attrs.item_id])) if {
	input.action in params.erp.item_quality_hold_actions
	_item.status == "QUALITY_HOLD"
}

_item_findings contains _deny(12, "ITEM_DISCONTINUED", sprintf("item %s is discontinued", [attrs.item_id])) if {
	input.action in params.erp.purchasing_actions
	_item.status == "DISCONTINUED"
}

# ERP-6 duplicate supplier invoice (refs compared normalized): posted in the
# ERP (master data), or, against history (policy-pack §6), allowed to post by
# an earlier decision in the invoice_posted view's window, which catches two
# retries with different idempotency keys before the ERP has recorded the
# first. One finding when both match: the master-data one, and then history
# is not read.
findings contains _deny(13, "DUPLICATE_INVOICE", msg) if {
	input.action in params.erp.duplicate_invoice_actions
	msg := _duplicate_invoice
}

_duplicate_invoice := sprintf("invoice %s of supplier %s is already posted (as %s)", [attrs.invoice_ref, attrs.supplier_id, inv.invoice_ref]) if {
	inv := md.supplier_invoice(attrs.supplier_id, attrs.invoice_ref)
} else := sprintf("invoice %s of supplier %s was already allowed to post by decision %s (%d posting decision(s) in the last %s)", [attrs.invoice_ref, attrs.supplier_id, h.decision_ids[0], h.count, params.history.views.invoice_posted.window]) if {
	h := prior.decisions("invoice_posted", [attrs.supplier_id, attrs.invoice_ref])
	h.count > 0
}

# ERP-7 duplicate ASN.
findings contains _deny(14, "DUPLICATE_ASN", sprintf("ASN %s of supplier %s was already received at %s", [attrs.asn_no, attrs.supplier_id, a.received_at])) if {
	input.action == "ASN.RECEIVE"
	attrs.purpose == params.erp.asn_original_purpose
	a := md.asn(attrs.supplier_id, attrs.asn_no)
}

# ERP-8 unverified recent bank change before a payment.
_supplier_findings contains _f(15, "", "REQUIRE_APPROVAL", "BANK_CHANGE_UNVERIFIED", sprintf("bank details of supplier %s changed at %s and are not verified", [attrs.supplier_id, _supplier.bank_changed_at]), params.erp.bank_change_approvers) if {
	input.action in params.erp.payment_actions
	_supplier.bank_changed_at != ""
	_supplier.bank_change_verified == false
	time.now_ns() < time.parse_rfc3339_ns(_supplier.bank_changed_at) + (params.erp.bank_change_unverified_days * ns_per_day)
}
