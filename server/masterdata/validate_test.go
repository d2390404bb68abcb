package masterdata_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate/tollgate/server/masterdata"
)

func TestApplyAcceptsValidRecordOfEveryKind(t *testing.T) {
	for _, kind := range masterdata.Kinds() {
		t.Run(string(kind), func(t *testing.T) {
			s := newStore(t, masterdata.Config{})
			ev := validEvent(kind)
			res := mustApply(t, s, ev)
			if res.Revision != 1 {
				t.Errorf("revision = %d, want 1", res.Revision)
			}
			r, ok := s.Snapshot().Get(kind, ev.Key)
			if !ok {
				t.Fatalf("Get(%s, %s): not found after APPLIED", kind, ev.Key)
			}
			if r.Kind != kind || r.Version != 1 || r.EventID != ev.EventID || r.Deleted {
				t.Errorf("record header = %+v", r)
			}
			for name := range ev.Record {
				if _, ok := r.Fields[name]; !ok {
					t.Errorf("field %s lost", name)
				}
			}
		})
	}
}

// TestApplyRejectsInvalid mutates a valid record of each kind in one way per case; every case must be
// INVALID, name the field, match ErrInvalid, and leave the store untouched.
func TestApplyRejectsInvalid(t *testing.T) {
	type tc struct {
		name      string
		kind      masterdata.Kind
		edit      func(ev *masterdata.Event)
		wantField string
		wantMsg   string // substring of the error message
	}
	set := func(field string, v any) func(*masterdata.Event) {
		return func(ev *masterdata.Event) { ev.Record[field] = v }
	}
	del := func(field string) func(*masterdata.Event) {
		return func(ev *masterdata.Event) { delete(ev.Record, field) }
	}
	setIn := func(v any, path ...string) func(*masterdata.Event) {
		return func(ev *masterdata.Event) {
			m := ev.Record
			for _, p := range path[:len(path)-1] {
				m = m[p].(map[string]any)
			}
			m[path[len(path)-1]] = v
		}
	}
	key := func(k string) func(*masterdata.Event) { return func(ev *masterdata.Event) { ev.Key = k } }
	cases := []tc{
		// event level
		{"no event id", masterdata.KindSite, func(ev *masterdata.Event) { ev.EventID = "" }, "event_id", "is required"},
		{"unknown kind", "warehouse", nil, "kind", `"warehouse" is not a known kind`},
		{"version zero", masterdata.KindSite, func(ev *masterdata.Event) { ev.Version = 0 }, "version", "at least 1"},
		{"unknown op", masterdata.KindSite, func(ev *masterdata.Event) { ev.Op = "MERGE" }, "op", `"MERGE" is not UPSERT or DELETE`},
		{"empty key", masterdata.KindSite, key(""), "key", "is required"},
		{"key with slash", masterdata.KindSite, key("DC/1"), "key", "not a valid id"},
		{"key with space", masterdata.KindSite, key("DC 1"), "key", "not a valid id"},
		{"key with NUL", masterdata.KindSite, key("DC\x001"), "key", "not a valid id"},
		{"id field mismatch", masterdata.KindSite, set("id", "BR1"), "id", "does not match the key"},
		{"unknown field", masterdata.KindCustomer, set("credit_limt", "1.00"), "credit_limt", "is not a field of customer"},
		{"null record", masterdata.KindSite, func(ev *masterdata.Event) { ev.Record = nil }, "status", "is required"},
		// user
		{"user status enum", masterdata.KindUser, set("status", "active"), "status", `"active" is not one of ACTIVE, INACTIVE, TERMINATED`},
		{"user roles not a list", masterdata.KindUser, set("roles", "BUYER"), "roles", "want a list"},
		{"user role lower case", masterdata.KindUser, set("roles", []any{"BUYER", "buyer"}), "roles[1]", "UPPER_SNAKE"},
		{"user site not a string", masterdata.KindUser, set("sites", []any{json.Number("1")}), "sites[0]", "want a string, got number 1"},
		{"user limit kind", masterdata.KindUser, setIn(map[string]any{"amount": "1.00", "currency": "USD"}, "approval_limits", "SO"), "approval_limits.SO", "is not one of PO, CREDIT_MEMO, INVENTORY_ADJUST"},
		{"user limit amount", masterdata.KindUser, setIn("5,000.00", "approval_limits", "PO", "amount"), "approval_limits.PO.amount", "not a decimal amount"},
		{"user limit currency", masterdata.KindUser, setIn("XXX", "approval_limits", "PO", "currency"), "approval_limits.PO.currency", "not a supported currency"},
		{"user limit missing currency", masterdata.KindUser, func(ev *masterdata.Event) {
			delete(ev.Record["approval_limits"].(map[string]any)["PO"].(map[string]any), "currency")
		}, "approval_limits.PO.currency", "is required"},
		{"user limit extra field", masterdata.KindUser, setIn("x", "approval_limits", "PO", "note"), "approval_limits.PO.note", "is not a field"},
		// delegation
		{"delegation no actions", masterdata.KindDelegation, set("actions", []any{}), "actions", "must not be empty"},
		{"delegation bad action", masterdata.KindDelegation, set("actions", []any{"approve"}), "actions[0]", "action name"},
		{"delegation timestamp", masterdata.KindDelegation, set("valid_to", "2028-01-01"), "valid_to", "not an RFC 3339 timestamp"},
		{"delegation window", masterdata.KindDelegation, set("valid_to", "2026-10-01T00:00:00Z"), "valid_to", "must be after valid_from"},
		{"delegation to self", masterdata.KindDelegation, set("delegate_id", "u_pm1"), "delegate_id", "must differ"},
		{"delegation revoked not bool", masterdata.KindDelegation, set("revoked", "false"), "revoked", `want true or false, got "false"`},
		{"delegation amount float", masterdata.KindDelegation, set("max_amount", 20000.0), "max_amount", "want a string, got number 20000"},
		// customer
		{"customer amount", masterdata.KindCustomer, set("credit_limit", "12abc"), "credit_limit", `"12abc" is not a decimal amount`},
		{"customer amount exponent", masterdata.KindCustomer, set("open_ar", "1e3"), "open_ar", "not a decimal amount"},
		{"customer amount negative", masterdata.KindCustomer, set("open_ar", "-5.00"), "open_ar", "not a decimal amount"},
		{"customer amount precision", masterdata.KindCustomer, set("open_orders", "10.005"), "open_orders", "more decimals than USD allows (2)"},
		{"customer amount too large", masterdata.KindCustomer, set("credit_limit", "1000000000000.00"), "credit_limit", "too large"},
		{"customer currency", masterdata.KindCustomer, set("currency", "usd"), "currency", "not a supported currency"},
		{"customer tier fraction", masterdata.KindCustomer, set("tier", 2.5), "tier", "number 2.5 is not an integer"},
		{"customer tier fraction json", masterdata.KindCustomer, set("tier", json.Number("2.5")), "tier", "not an integer"},
		{"customer tier range", masterdata.KindCustomer, set("tier", json.Number("4")), "tier", "4 is out of range 1..3"},
		{"customer tier string", masterdata.KindCustomer, set("tier", "2"), "tier", "want an integer"},
		{"customer credit status", masterdata.KindCustomer, set("credit_status", "CLOSED"), "credit_status", "not one of OK, HOLD, BLOCKED"},
		{"customer missing open_ar", masterdata.KindCustomer, del("open_ar"), "open_ar", "is required"},
		{"customer empty status", masterdata.KindCustomer, set("status", ""), "status", "is required"},
		// supplier
		{"supplier status", masterdata.KindSupplier, set("status", "ACTIVE"), "status", "not one of APPROVED, PENDING, BLOCKED"},
		{"supplier bank changed at", masterdata.KindSupplier, set("bank_changed_at", "22.11.2026"), "bank_changed_at", "RFC 3339"},
		{"supplier watchlist", masterdata.KindSupplier, set("watchlist", json.Number("1")), "watchlist", "want true or false"},
		// item
		{"item status", masterdata.KindItem, set("status", "ON_HOLD"), "status", "not one of"},
		{"item abc", masterdata.KindItem, set("abc_class", "D"), "abc_class", "not one of A, B, C"},
		{"item cost precision JPY", masterdata.KindItem, func(ev *masterdata.Event) {
			ev.Record["currency"], ev.Record["unit_cost"] = "JPY", "1200.5"
		}, "unit_cost", "more decimals than JPY allows (0)"},
		{"item category control char", masterdata.KindItem, set("category", "A\tB"), "category", "control characters"},
		// site
		{"site type", masterdata.KindSite, set("type", "STORE"), "type", "not one of DC, BRANCH"},
		{"site company", masterdata.KindSite, set("company", "AC ME"), "company", "not a valid id"},
		// inventory
		{"inventory negative", masterdata.KindInventory, set("on_hand", json.Number("-1")), "on_hand", "out of range 0.."},
		{"inventory fraction", masterdata.KindInventory, set("allocated", 3.5), "allocated", "not an integer"},
		{"inventory key mismatch", masterdata.KindInventory, key("DC1/I2"), "key", `does not match the record's site_id/item_id "DC1/I1"`},
		{"inventory key not composite", masterdata.KindInventory, key("DC1"), "key", "not a composite key site_id/item_id"},
		{"inventory key three parts", masterdata.KindInventory, key("DC1/I1/X"), "key", "not a composite key"},
		// fiscal period
		{"fiscal period status", masterdata.KindFiscalPeriod, set("status", "OPENED"), "status", "not one of OPEN, SOFT_CLOSED, CLOSED, FUTURE"},
		{"fiscal period format", masterdata.KindFiscalPeriod, func(ev *masterdata.Event) {
			ev.Key, ev.Record["period"] = "ACME/2026-13", "2026-13"
		}, "key", "period (YYYY-MM)"},
		{"fiscal period field", masterdata.KindFiscalPeriod, set("period", "2026-1"), "period", "not a period (YYYY-MM)"},
		{"fiscal period key mismatch", masterdata.KindFiscalPeriod, key("ACME/2026-12"), "key", "does not match"},
		// ai agent
		{"ai agent enabled", masterdata.KindAIAgent, set("enabled", "yes"), "enabled", "want true or false"},
		{"ai agent floor above 1", masterdata.KindAIAgent, setIn(json.Number("1.01"), "use_cases", "backorder_allocation", "confidence_floor"), "use_cases.backorder_allocation.confidence_floor", "not a number in 0..1"},
		{"ai agent floor float above 1", masterdata.KindAIAgent, setIn(1.5, "use_cases", "backorder_allocation", "confidence_floor"), "use_cases.backorder_allocation.confidence_floor", "not a number in 0..1"},
		{"ai agent floor missing", masterdata.KindAIAgent, func(ev *masterdata.Event) {
			delete(ev.Record["use_cases"].(map[string]any)["backorder_allocation"].(map[string]any), "confidence_floor")
		}, "use_cases.backorder_allocation.confidence_floor", "is required"},
		{"ai agent autonomy", masterdata.KindAIAgent, setIn("FULL", "use_cases", "backorder_allocation", "autonomy"), "use_cases.backorder_allocation.autonomy", "not one of AUTONOMOUS"},
		{"ai agent cap", masterdata.KindAIAgent, setIn("10k", "use_cases", "backorder_allocation", "value_cap"), "use_cases.backorder_allocation.value_cap", "not a decimal amount"},
		{"ai agent owner", masterdata.KindAIAgent, setIn("planner", "use_cases", "backorder_allocation", "owner_role"), "use_cases.backorder_allocation.owner_role", "UPPER_SNAKE"},
		{"ai agent use case field", masterdata.KindAIAgent, setIn("x", "use_cases", "backorder_allocation", "floor"), "use_cases.backorder_allocation.floor", "not a field of a use case"},
		{"ai agent use case name", masterdata.KindAIAgent, setIn(map[string]any{}, "use_cases", "Backorder"), "use_cases.Backorder", "lower_snake"},
		{"ai agent daily cap", masterdata.KindAIAgent, set("daily_value_cap", "50000.001"), "daily_value_cap", "more decimals"},
		// ai control
		{"ai control key", masterdata.KindAIControl, key("local"), "key", `only key of ai_control`},
		{"ai control use case", masterdata.KindAIControl, set("suspended_use_cases", []any{"Case Routing"}), "suspended_use_cases[0]", "lower_snake"},
		// supplier invoice
		{"invoice date", masterdata.KindSupplierInvoice, set("invoice_date", "2026-11-31"), "invoice_date", "not a date (YYYY-MM-DD)"},
		{"invoice key mismatch", masterdata.KindSupplierInvoice, key("S1/INV00124"), "key", `"S1/INV00123"`},
		{"invoice supplier mismatch", masterdata.KindSupplierInvoice, key("S2/INV00123"), "key", "does not match"},
		{"invoice ref only zeros", masterdata.KindSupplierInvoice, func(ev *masterdata.Event) {
			ev.Key, ev.Record["invoice_ref"] = "S1/X", "000-0"
		}, "invoice_ref", "does not normalize"},
		{"invoice amount number", masterdata.KindSupplierInvoice, set("amount", json.Number("4200")), "amount", "want a string"},
		// asn
		{"asn received_at", masterdata.KindASN, set("received_at", "yesterday"), "received_at", "RFC 3339"},
		{"asn key mismatch", masterdata.KindASN, key("S1/ASN-7002"), "key", "does not match"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newStore(t, masterdata.Config{})
			var ev masterdata.Event
			if c.kind.Valid() {
				ev = validEvent(c.kind)
			} else {
				ev = masterdata.Event{EventID: "e1", Kind: c.kind, Key: "K1", Version: 1, Op: masterdata.OpUpsert}
			}
			if c.edit != nil {
				c.edit(&ev)
			}
			res := s.Apply([]masterdata.Event{ev})
			if diff := cmp.Diff([]masterdata.Outcome{masterdata.OutcomeInvalid}, outcomes(res)); diff != "" {
				t.Fatalf("outcomes (-want +got):\n%s", diff)
			}
			err := res.Results[0].Err
			if !errors.Is(err, masterdata.ErrInvalid) {
				t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
			}
			var verr *masterdata.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("error %v is not a *ValidationError", err)
			}
			if verr.Field != c.wantField {
				t.Errorf("field = %q, want %q (error: %v)", verr.Field, c.wantField, err)
			}
			if !strings.Contains(err.Error(), c.wantMsg) {
				t.Errorf("error %q does not contain %q", err, c.wantMsg)
			}
			if res.Revision != 0 || s.Status().Revision != 0 {
				t.Errorf("revision = %d/%d after an invalid event, want 0", res.Revision, s.Status().Revision)
			}
			if c.kind.Valid() {
				if _, ok := s.Snapshot().Get(c.kind, ev.Key); ok {
					t.Errorf("invalid record is readable")
				}
			}
		})
	}
}

func TestValidationErrorMessage(t *testing.T) {
	s := newStore(t, masterdata.Config{})
	ev := validEvent(masterdata.KindCustomer)
	ev.Record["credit_limit"] = "12abc"
	res := s.Apply([]masterdata.Event{ev})
	want := `customer C1: credit_limit: "12abc" is not a decimal amount`
	if got := res.Results[0].Err.Error(); got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
}

// TestNormalization checks what a stored record looks like: numbers as json.Number (never float64),
// omitted booleans false, omitted optional strings "", omitted lists empty, and the id field set.
func TestNormalization(t *testing.T) {
	s := newStore(t, masterdata.Config{})
	mustApply(t, s,
		upsert("e1", masterdata.KindCustomer, "C1", 1, map[string]any{
			"status": "ACTIVE", "tier": 3.0, "credit_status": "OK", "credit_limit": "100", "open_ar": "0",
			"open_orders": "0.5", "currency": "EUR",
		}),
		upsert("e2", masterdata.KindAIAgent, "a1", 1, map[string]any{
			"currency": "USD", "daily_value_cap": "10.00",
			"use_cases": map[string]any{"case_routing": map[string]any{
				"autonomy": "AUTONOMOUS", "confidence_floor": 0.8, "owner_role": "CS_SUPERVISOR",
			}},
		}),
		upsert("e3", masterdata.KindInventory, "DC1/I1", 1, map[string]any{
			"site_id": "DC1", "item_id": "I1", "on_hand": json.Number("10.0"), "allocated": 2,
			"safety_stock": int64(0), "quality_hold": float64(1),
		}),
		upsert("e4", masterdata.KindUser, "u1", 1, map[string]any{"id": "u1", "status": "ACTIVE", "roles": []string{"BUYER"}}),
	)
	sn := s.Snapshot()
	tests := []struct {
		kind masterdata.Kind
		key  string
		want map[string]any
	}{
		{masterdata.KindCustomer, "C1", map[string]any{
			"id": "C1", "status": "ACTIVE", "tier": json.Number("3"), "credit_status": "OK", "credit_limit": "100",
			"open_ar": "0", "open_orders": "0.5", "currency": "EUR", "delivery_block": false, "account_owner": "",
		}},
		{masterdata.KindAIAgent, "a1", map[string]any{
			"id": "a1", "enabled": false, "model_versions": []any{}, "currency": "USD", "daily_value_cap": "10.00",
			"use_cases": map[string]any{"case_routing": map[string]any{
				"autonomy": "AUTONOMOUS", "confidence_floor": json.Number("0.8"), "owner_role": "CS_SUPERVISOR",
				"value_cap": "",
			}},
		}},
		{masterdata.KindInventory, "DC1/I1", map[string]any{
			"site_id": "DC1", "item_id": "I1", "on_hand": json.Number("10"), "allocated": json.Number("2"),
			"safety_stock": json.Number("0"), "quality_hold": json.Number("1"),
		}},
		{masterdata.KindUser, "u1", map[string]any{
			"id": "u1", "status": "ACTIVE", "roles": []any{"BUYER"}, "sites": []any{},
			"approval_limits": map[string]any{},
		}},
	}
	for _, tt := range tests {
		r, ok := sn.Get(tt.kind, tt.key)
		if !ok {
			t.Fatalf("Get(%s, %s): not found", tt.kind, tt.key)
		}
		if diff := cmp.Diff(tt.want, r.Fields); diff != "" {
			t.Errorf("%s %s fields (-want +got):\n%s", tt.kind, tt.key, diff)
		}
	}
}

func TestApplyDoesNotRetainCallerRecord(t *testing.T) {
	s := newStore(t, masterdata.Config{})
	ev := validEvent(masterdata.KindUser)
	mustApply(t, s, ev)
	ev.Record["status"] = "TERMINATED"
	ev.Record["roles"].([]any)[0] = "CEO"
	r, _ := s.Snapshot().Get(masterdata.KindUser, ev.Key)
	if r.Fields["status"] != "ACTIVE" || r.Fields["roles"].([]any)[0] != "BUYER" {
		t.Errorf("stored record changed with the caller's map: %v", r.Fields)
	}
}

func TestNormalizeInvoiceRef(t *testing.T) {
	for in, want := range map[string]string{
		"INV-00123":  "INV00123",
		"inv 00123":  "INV00123",
		"00123":      "123",
		"0-0-123-4":  "1234",
		"-0 0A-1":    "A1",
		"INV00123":   "INV00123",
		"000":        "",
		"ré-001":     "RÉ001",
		"  12 34  ":  "1234",
		"INV--0-0-1": "INV001",
	} {
		if got := masterdata.NormalizeInvoiceRef(in); got != want {
			t.Errorf("NormalizeInvoiceRef(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCurrencyDigits(t *testing.T) {
	for code, want := range map[string]int{"USD": 2, "EUR": 2, "GBP": 2, "CHF": 2, "JPY": 0, "KWD": 3} {
		if got, ok := masterdata.CurrencyDigits(code); !ok || got != want {
			t.Errorf("CurrencyDigits(%s) = %d, %v; want %d, true", code, got, ok, want)
		}
	}
	if _, ok := masterdata.CurrencyDigits("XYZ"); ok {
		t.Errorf("CurrencyDigits(XYZ) ok, want unsupported")
	}
}
