package masterdata_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/tollgate/tollgate/server/masterdata"
)

// newStore returns an empty store with the given config.
func newStore(tb testing.TB, cfg masterdata.Config) *masterdata.Store {
	tb.Helper()
	s, err := masterdata.New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return s
}

// validEvent returns a fresh, valid UPSERT of kind at version 1 with a fresh record map.
func validEvent(kind masterdata.Kind) masterdata.Event {
	key, rec := validRecord(kind)
	return masterdata.Event{
		EventID: fmt.Sprintf("ev-%s-%s-1", kind, key), Kind: kind, Key: key, Version: 1,
		Op: masterdata.OpUpsert, Record: rec,
	}
}

// validRecord returns a key and a valid record of kind, as decoded JSON.
func validRecord(kind masterdata.Kind) (string, map[string]any) {
	switch kind {
	case masterdata.KindUser:
		return "u1", map[string]any{
			"status": "ACTIVE", "roles": []any{"BUYER"}, "sites": []any{"DC1"},
			"approval_limits": map[string]any{"PO": map[string]any{"amount": "5000.00", "currency": "USD"}},
		}
	case masterdata.KindDelegation:
		return "D1", map[string]any{
			"delegator_id": "u_pm1", "delegate_id": "u_buyer1", "actions": []any{"PO.APPROVE"},
			"max_amount": "20000.00", "currency": "USD", "valid_from": "2026-11-01T00:00:00Z",
			"valid_to": "2028-01-01T00:00:00Z", "revoked": false,
		}
	case masterdata.KindCustomer:
		return "C1", map[string]any{
			"status": "ACTIVE", "tier": json.Number("2"), "credit_status": "OK", "credit_limit": "50000.00",
			"open_ar": "20000.00", "open_orders": "5000.00", "currency": "USD", "delivery_block": false,
			"account_owner": "u_sm1",
		}
	case masterdata.KindSupplier:
		return "S1", map[string]any{
			"status": "APPROVED", "purchasing_block": false, "payment_block": false,
			"bank_changed_at": "2026-11-22T09:30:00Z", "bank_changed_by": "u_ap1", "bank_change_verified": false,
			"watchlist": false,
		}
	case masterdata.KindItem:
		return "I1", map[string]any{
			"status": "ACTIVE", "category": "FASTENERS", "abc_class": "A", "unit_cost": "12.50",
			"currency": "USD", "controlled": false,
		}
	case masterdata.KindSite:
		return "DC1", map[string]any{"status": "ACTIVE", "type": "DC", "company": "ACME"}
	case masterdata.KindInventory:
		return "DC1/I1", map[string]any{
			"site_id": "DC1", "item_id": "I1", "on_hand": json.Number("1000"), "allocated": json.Number("200"),
			"safety_stock": json.Number("100"), "quality_hold": json.Number("0"),
		}
	case masterdata.KindFiscalPeriod:
		return "ACME/2026-11", map[string]any{"company": "ACME", "period": "2026-11", "status": "OPEN"}
	case masterdata.KindAIAgent:
		return "agent_alloc", map[string]any{
			"enabled": true, "model_versions": []any{"alloc-2026.11"}, "daily_value_cap": "50000.00",
			"currency": "USD",
			"use_cases": map[string]any{"backorder_allocation": map[string]any{
				"autonomy": "AUTONOMOUS", "confidence_floor": json.Number("0.90"), "value_cap": "10000.00",
				"owner_role": "ALLOCATION_PLANNER",
			}},
		}
	case masterdata.KindAIControl:
		return "global", map[string]any{"autonomy_suspended": false, "suspended_use_cases": []any{}}
	case masterdata.KindSupplierInvoice:
		return "S1/INV00123", map[string]any{
			"supplier_id": "S1", "invoice_ref": "INV-00123", "company": "ACME", "amount": "4200.00",
			"currency": "USD", "invoice_date": "2026-11-10",
		}
	case masterdata.KindASN:
		return "S1/ASN-7001", map[string]any{"supplier_id": "S1", "asn_no": "ASN-7001", "received_at": "2026-11-20T14:05:00Z"}
	}
	panic("no valid record for kind " + string(kind))
}

// upsert builds an UPSERT event.
func upsert(id string, kind masterdata.Kind, key string, version uint64, rec map[string]any) masterdata.Event {
	return masterdata.Event{EventID: id, Kind: kind, Key: key, Version: version, Op: masterdata.OpUpsert, Record: rec}
}

// outcomes lists the outcomes of res in order.
func outcomes(res masterdata.ApplyResult) []masterdata.Outcome {
	out := make([]masterdata.Outcome, len(res.Results))
	for i, r := range res.Results {
		out[i] = r.Outcome
	}
	return out
}

// mustApply applies events and fails the test unless every event is APPLIED.
func mustApply(tb testing.TB, s *masterdata.Store, events ...masterdata.Event) masterdata.ApplyResult {
	tb.Helper()
	res := s.Apply(events)
	for _, r := range res.Results {
		if r.Outcome != masterdata.OutcomeApplied {
			tb.Fatalf("event %s: %s: %v", r.EventID, r.Outcome, r.Err)
		}
	}
	return res
}
