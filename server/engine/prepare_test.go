package engine

import (
	"encoding/json"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// preparedRecords are records as masterdata stores them: strings, json.Numbers, booleans, lists and
// nested objects, and the empty record.
var preparedRecords = []map[string]any{
	{},
	{
		"id": "C1", "status": "ACTIVE", "tier": json.Number("2"), "credit_status": "OK", "currency": "USD",
		"credit_limit": "50000.00", "open_ar": "20000.00", "open_orders": "5000.00", "delivery_block": false,
		"account_owner": "u_sm1",
	},
	{
		"id": "u1", "status": "ACTIVE", "roles": []any{"BUYER", "PLANNER"}, "sites": []any{}, "none": nil,
		"ratio": json.Number("0.9"), "big": json.Number("123456789012345678901234567890"),
		"approval_limits": map[string]any{"PO": map[string]any{"amount": "5000.00", "currency": "USD"}},
	},
}

// TestRecordObject: PrepareRecord's object equals ast.InterfaceToValue's, which it replaces.
func TestRecordObject(t *testing.T) {
	for _, rec := range preparedRecords {
		want, err := ast.InterfaceToValue(rec)
		if err != nil {
			t.Fatal(err)
		}
		got, err := recordObject(rec)
		if err != nil {
			t.Fatal(err)
		}
		if ast.Compare(want, got) != 0 || want.Hash() != got.Hash() || want.String() != got.String() {
			t.Errorf("recordObject = %v, want %v", got, want)
		}
	}
	if _, err := recordObject(map[string]any{"bad": make(chan int)}); err == nil {
		t.Error("recordObject of a channel: no error")
	}
}

// BenchmarkPrepareRecord converts one customer record, the commonest kind of a large load.
func BenchmarkPrepareRecord(b *testing.B) {
	rec := preparedRecords[1]
	b.Run("interface-to-value", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ast.InterfaceToValue(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("record-object", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := recordObject(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
}
