# Shared fixture of the Rego unit tests: master data, decision history, a
# fixed clock and base requests. Tests replace the engine's builtins with these:
#   with md.get as fixture.get with md.lookup as fixture.lookup
#   with tollgate.history as fixture.history
#   with time.now_ns as fixture.now
package tollgate.fixture

# now is 2026-11-27T12:00:00Z.
now := time.parse_rfc3339_ns("2026-11-27T12:00:00Z")

ns_per_day := ((24 * 60) * 60) * 1000000000

limit(amount) := {"amount": amount, "currency": "USD"}

records := {
	"user": {
		"u_buyer1": {"status": "ACTIVE", "roles": ["BUYER"], "sites": ["DC1", "BR1"], "approval_limits": {}},
		"u_pm1": {"status": "ACTIVE", "roles": ["PROCUREMENT_MANAGER"], "sites": ["DC1", "BR1"], "approval_limits": {"PO": limit("100000.00")}},
		"u_pm2": {"status": "ACTIVE", "roles": ["PROCUREMENT_MANAGER"], "sites": ["DC1"], "approval_limits": {"PO": limit("25000.00")}},
		"u_deputy": {"status": "ACTIVE", "roles": [], "sites": ["DC1"], "approval_limits": {}},
		"u_gone": {"status": "TERMINATED", "roles": ["BUYER"], "sites": ["DC1"], "approval_limits": {}},
		"u_clerk": {"status": "ACTIVE", "roles": ["AP_CLERK"], "sites": [], "approval_limits": {}},
		"u_ctrl": {"status": "ACTIVE", "roles": ["CONTROLLER"], "sites": [], "approval_limits": {}},
		"u_apsup": {"status": "ACTIVE", "roles": ["AP_SUPERVISOR"], "sites": [], "approval_limits": {}},
		"u_treas": {"status": "ACTIVE", "roles": ["TREASURY_CLERK"], "sites": [], "approval_limits": {}},
		"u_desk": {"status": "ACTIVE", "roles": ["ORDER_DESK"], "sites": ["DC1"], "approval_limits": {}},
		"u_wm": {"status": "ACTIVE", "roles": ["WAREHOUSE_MANAGER"], "sites": ["DC1"], "approval_limits": {"INVENTORY_ADJUST": limit("2500.00")}},
		"u_csr": {"status": "ACTIVE", "roles": ["CSR"], "sites": [], "approval_limits": {"CREDIT_MEMO": limit("500.00")}},
		"svc_wms": {"status": "ACTIVE", "roles": ["RECEIVING_CLERK"], "sites": ["DC1"], "approval_limits": {}},
	},
	"delegation": {
		"d_ok": {"delegator_id": "u_pm1", "delegate_id": "u_deputy", "actions": ["PO.APPROVE"], "max_amount": "50000.00", "currency": "USD", "valid_from": "2026-11-01T00:00:00Z", "valid_to": "2026-12-01T00:00:00Z", "revoked": false},
		"d_old": {"delegator_id": "u_pm2", "delegate_id": "u_deputy", "actions": ["PO.APPROVE"], "max_amount": "50000.00", "currency": "USD", "valid_from": "2026-10-01T00:00:00Z", "valid_to": "2026-11-27T12:00:00Z", "revoked": false},
	},
	"customer": {
		"C1": {"status": "ACTIVE", "tier": 2, "credit_status": "OK", "credit_limit": "100000.00", "open_ar": "40000.00", "open_orders": "10000.00", "currency": "USD", "delivery_block": false, "account_owner": "u_desk"},
		"C3": {"status": "ACTIVE", "tier": 1, "credit_status": "OK", "credit_limit": "500000.00", "open_ar": "0.00", "open_orders": "0.00", "currency": "USD", "delivery_block": false, "account_owner": "u_desk"},
	},
	"supplier": {"S1": {"status": "APPROVED", "purchasing_block": false, "payment_block": false, "bank_changed_at": "", "bank_changed_by": "", "bank_change_verified": false, "watchlist": false}},
	"item": {
		"I1": {"status": "ACTIVE", "category": "MRO", "abc_class": "A", "unit_cost": "10.00", "currency": "USD", "controlled": false},
		"I2": {"status": "ACTIVE", "category": "MRO", "abc_class": "B", "unit_cost": "2.50", "currency": "USD", "controlled": false},
	},
	"site": {
		"DC1": {"status": "ACTIVE", "type": "DC", "company": "ACME"},
		"BR1": {"status": "ACTIVE", "type": "BRANCH", "company": "ACME"},
	},
	"inventory": {"DC1/I1": {"site_id": "DC1", "item_id": "I1", "on_hand": 1000, "allocated": 200, "safety_stock": 100, "quality_hold": 0}},
	"fiscal_period": {
		"ACME/2026-09": {"company": "ACME", "period": "2026-09", "status": "CLOSED"},
		"ACME/2026-10": {"company": "ACME", "period": "2026-10", "status": "SOFT_CLOSED"},
		"ACME/2026-11": {"company": "ACME", "period": "2026-11", "status": "OPEN"},
		"ACME/2026-12": {"company": "ACME", "period": "2026-12", "status": "FUTURE"},
	},
	"ai_agent": {
		"agent_alloc": {"enabled": true, "model_versions": ["alloc-2.1"], "daily_value_cap": "50000.00", "currency": "USD", "use_cases": {
			"backorder_allocation": {"autonomy": "AUTONOMOUS", "confidence_floor": 0.9, "value_cap": "10000.00", "owner_role": "ALLOCATION_PLANNER"},
			"case_routing": {"autonomy": "AUTONOMOUS", "confidence_floor": 0.8, "value_cap": "0.00", "owner_role": "CS_SUPERVISOR"},
		}},
		"agent_ap": {"enabled": true, "model_versions": ["ap-1.0"], "daily_value_cap": "5000.00", "currency": "USD", "use_cases": {
			"invoice_discrepancy": {"autonomy": "AUTONOMOUS", "confidence_floor": 0.85, "value_cap": "250.00", "owner_role": "AP_SUPERVISOR"},
			"supplier_message": {"autonomy": "AUTONOMOUS", "confidence_floor": 0.9, "value_cap": "0.00", "owner_role": "BUYER"},
		}},
	},
	"ai_control": {"global": {"autonomy_suspended": false, "suspended_use_cases": []}},
	"supplier_invoice": {"S1/INV00123": {"supplier_id": "S1", "invoice_ref": "INV-00123", "company": "ACME", "amount": "900.00", "currency": "USD", "invoice_date": "2026-11-02"}},
	"asn": {"S1/ASN-77": {"supplier_id": "S1", "asn_no": "ASN-77", "received_at": "2026-11-20T08:00:00Z"}},
}

# get stands in for the engine's md.get over records.
get(kind, key) := r if {
	r := records[kind][key]
} else := null

# lookup stands in for md.lookup("delegation", "pair", "<delegator>/<delegate>").
lookup("delegation", "pair", value) := [d |
	some d in records.delegation
	concat("/", [d.delegator_id, d.delegate_id]) == value
]

# histories holds the answers of the history mock by view and key (the key
# array as JSON): a test sets it with `with fixture.histories as {...}`. The
# mock answers only for the exact view and key order given, so a rule that
# asks with another view or key order sees no history and its test fails.
histories := {}

# history stands in for tollgate.history: what histories holds for view and
# key, else an empty answer, as the index gives for a key with no decisions.
history(view, key) := h if {
	h := histories[view][json.marshal(key)]
} else := prior([], {})

# prior(ids, sums) is a history answer counting the decisions ids with the
# sums by currency given.
prior(ids, sums) := {"count": count(ids), "sums": sums, "decision_ids": ids, "unvalued": []}

# at(view, key, h) is histories holding answer h for view and key alone.
at(view, key, h) := {view: {json.marshal(key): h}}

# with_record(kind, key, rec) is records with one record replaced or added.
with_record(kind, key, rec) := object.union(records, {kind: {key: rec}})

# request(actor, action, attributes) is a HUMAN request.
request(actor, action, attributes) := {
	"actor": {"id": actor, "type": "HUMAN", "on_behalf_of": ""},
	"action": action,
	"resource": {"type": "x", "id": "X-1", "attributes": attributes},
	"context": {},
}

po(amount) := {"amount": amount, "currency": "USD", "category": "MRO", "site_id": "DC1", "supplier_id": "S1"}

# decide(req) is the pack's decision for req over the fixture at now.
decide(req) := d if {
	d := data.tollgate.decision with input as req
		with md.get as get
		with md.lookup as lookup
		with tollgate.history as history
		with time.now_ns as now
}

# decide_without_history(req) is decide(req) with tollgate.history not
# mocked: any history lookup is an evaluation error (there is no index in a
# test), so a test passing through it shows the decision read no history.
decide_without_history(req) := d if {
	d := data.tollgate.decision with input as req
		with md.get as get
		with md.lookup as lookup
		with time.now_ns as now
}

# primary(req) is the decision's reasons[0].code.
primary(req) := decide(req).reasons[0].code

# codes(req) is the set of every reason code of the decision.
codes(req) := {r.code | some r in decide(req).reasons}
