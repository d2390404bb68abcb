package history_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/history"
)

func TestParsePackViews(t *testing.T) {
	vs := packViews(t)
	want := []string{"ai_daily_value", "credit_memo_velocity", "invoice_posted", "po_split"}
	if diff := cmp.Diff(want, vs.Names()); diff != "" {
		t.Fatalf("names (-want +got):\n%s", diff)
	}
	windows := map[string]history.Window{
		"po_split":             {Duration: 24 * time.Hour},
		"credit_memo_velocity": {Duration: 168 * time.Hour},
		"invoice_posted":       {Duration: 720 * time.Hour},
		"ai_daily_value":       {UTCDay: true},
	}
	for name, w := range windows {
		v, ok := vs.View(name)
		if !ok || v.Window() != w {
			t.Errorf("%s: window %v, want %v", name, v.Window(), w)
		}
	}
	if got := vs.Retention(); got != 720*time.Hour {
		t.Errorf("Retention = %v, want 720h", got)
	}
	ai, _ := vs.View("ai_daily_value")
	if diff := cmp.Diff([]string{"ALLOCATION.CREATE", "INVOICE.RESOLVE_DISCREPANCY"}, ai.Actions()); diff != "" {
		t.Errorf("ai actions (-want +got):\n%s", diff)
	}
	inv, _ := vs.View("invoice_posted")
	if inv.Counts(approval) || inv.Counts(deny) || !inv.Counts(allow) {
		t.Error("invoice_posted must count ALLOW only")
	}
}

func TestPaths(t *testing.T) {
	want := []string{
		"actor.id", "actor.type", "ai.mode",
		"resource.attributes.amount", "resource.attributes.currency", "resource.attributes.customer_id",
		"resource.attributes.invoice_ref", "resource.attributes.site_id", "resource.attributes.supplier_id",
		"resource.attributes.value", "resource.attributes.variance_amount",
	}
	if diff := cmp.Diff(want, packViews(t).Paths()); diff != "" {
		t.Fatalf("Paths (-want +got):\n%s", diff)
	}
}

// TestParseShippedPack: the pack's data as shipped parses (it declares no
// views yet), so wiring Parse into the gate refuses no bundle that works.
func TestParseShippedPack(t *testing.T) {
	data, err := os.ReadFile("../../policies/data.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := history.Parse(data); err != nil {
		t.Fatalf("Parse(policies/data.json) = %v", err)
	}
}

func TestParseWithoutViews(t *testing.T) {
	for _, doc := range []string{`{}`, `{"params":{}}`, `{"params":{"history":{}}}`, `{"params":{"history":{"views":null}}}`} {
		vs, err := history.Parse([]byte(doc))
		if err != nil || len(vs.Names()) != 0 || vs.Retention() != 0 {
			t.Errorf("Parse(%s) = %v, %v; want no views", doc, vs.Names(), err)
		}
	}
}

func TestParseRefusesMalformed(t *testing.T) {
	const ok = `"actions":[{"action":"PO.SUBMIT","value":"resource.attributes.amount","currency":"resource.attributes.currency"}],"key":[{"path":"actor.id"}],"effects":["ALLOW"],"window":"24h"`
	doc := func(view string) string { return `{"params":{"history":{"views":{` + view + `}}}}` }
	cases := []struct {
		name, doc, want string
	}{
		{"not json", `{`, "params.history"},
		{"views not object", `{"params":{"history":{"views":[1]}}}`, "params.history.views"},
		{"bad name", doc(`"Bad-Name":{` + ok + `}`), `view "Bad-Name": name`},
		{"unknown field", doc(`"v":{` + ok + `,"efects":["DENY"]}`), `view "v": declaration: json: unknown field "efects"`},
		{"no window", doc(`"v":{"actions":[{"action":"A"}],"key":[{"path":"actor.id"}],"effects":["ALLOW"]}`), `view "v": window: required`},
		{"bad window", doc(`"v":{"actions":[{"action":"A"}],"key":[{"path":"actor.id"}],"effects":["ALLOW"],"window":"a day"}`), `view "v": window: "a day"`},
		{"negative window", doc(`"v":{"actions":[{"action":"A"}],"key":[{"path":"actor.id"}],"effects":["ALLOW"],"window":"-1h"}`), `view "v": window: "-1h" must be positive`},
		{"huge window", doc(`"v":{"actions":[{"action":"A"}],"key":[{"path":"actor.id"}],"effects":["ALLOW"],"window":"9000h"}`), `view "v": window:`},
		{"no actions", doc(`"v":{"actions":[],"key":[{"path":"actor.id"}],"effects":["ALLOW"],"window":"1h"}`), `view "v": actions:`},
		{"empty action", doc(`"v":{"actions":[{"action":""}],"key":[{"path":"actor.id"}],"effects":["ALLOW"],"window":"1h"}`), `view "v": actions[0].action`},
		{"twice action", doc(`"v":{"actions":[{"action":"A"},{"action":"A"}],"key":[{"path":"actor.id"}],"effects":["ALLOW"],"window":"1h"}`), `view "v": actions[1].action: "A" declared twice`},
		{"value no currency", doc(`"v":{"actions":[{"action":"A","value":"resource.attributes.amount"}],"key":[{"path":"actor.id"}],"effects":["ALLOW"],"window":"1h"}`), `view "v": actions[0].currency: required`},
		{"currency no value", doc(`"v":{"actions":[{"action":"A","currency":"resource.attributes.currency"}],"key":[{"path":"actor.id"}],"effects":["ALLOW"],"window":"1h"}`), `view "v": actions[0].value: required`},
		{"abs alone", doc(`"v":{"actions":[{"action":"A","abs":true}],"key":[{"path":"actor.id"}],"effects":["ALLOW"],"window":"1h"}`), `view "v": actions[0].abs`},
		{"bad value path", doc(`"v":{"actions":[{"action":"A","value":"resource.amount","currency":"resource.attributes.currency"}],"key":[{"path":"actor.id"}],"effects":["ALLOW"],"window":"1h"}`), `view "v": actions[0].value: unknown request path "resource.amount"`},
		{"bad where path", doc(`"v":{"actions":[{"action":"A","where":{"ai.moode":"EXECUTE"}}],"key":[{"path":"actor.id"}],"effects":["ALLOW"],"window":"1h"}`), `view "v": actions[0].where["ai.moode"]`},
		{"no key", doc(`"v":{"actions":[{"action":"A"}],"key":[],"effects":["ALLOW"],"window":"1h"}`), `view "v": key:`},
		{"bad key path", doc(`"v":{"actions":[{"action":"A"}],"key":[{"path":"actor.id"},{"path":"resource.attributes..x"}],"effects":["ALLOW"],"window":"1h"}`), `view "v": key[1].path`},
		{"bad normalizer", doc(`"v":{"actions":[{"action":"A"}],"key":[{"path":"actor.id","normalize":"lower"}],"effects":["ALLOW"],"window":"1h"}`), `view "v": key[0].normalize: unknown normalizer "lower"`},
		{"no effects", doc(`"v":{"actions":[{"action":"A"}],"key":[{"path":"actor.id"}],"effects":[],"window":"1h"}`), `view "v": effects`},
		{"bad effect", doc(`"v":{"actions":[{"action":"A"}],"key":[{"path":"actor.id"}],"effects":["PERMIT"],"window":"1h"}`), `view "v": effects[0]: unknown effect "PERMIT"`},
		{"twice effect", doc(`"v":{"actions":[{"action":"A"}],"key":[{"path":"actor.id"}],"effects":["ALLOW","EFFECT_ALLOW"],"window":"1h"}`), `view "v": effects[1]`},
		{"not an object", doc(`"v":[]`), `view "v": declaration`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := history.Parse([]byte(tc.doc))
			if !errors.Is(err, history.ErrInvalidViews) {
				t.Fatalf("Parse = %v, want ErrInvalidViews", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse = %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestKeyOf(t *testing.T) {
	vs := packViews(t)
	k := mustKey(t, vs, "po_split", po(t, "u1", "10.00", "USD"))
	if k != `["u1","S1","DC1"]` {
		t.Errorf("po_split key = %s", k)
	}
	if _, ok := vs.KeyOf("po_split", req(t, "u1", "PO.SUBMIT", map[string]any{"supplier_id": "S1"})); ok {
		t.Error("a request without site_id has no key")
	}
	if _, ok := vs.KeyOf("po_split", req(t, "u1", "PO.SUBMIT", map[string]any{"supplier_id": "S1", "site_id": 7.0})); ok {
		t.Error("a non-string key field has no key")
	}
	if _, ok := vs.KeyOf("po_split", req(t, "u1", "PO.APPROVE", map[string]any{"supplier_id": "S1", "site_id": "DC1"})); ok {
		t.Error("another action has no po_split key")
	}
	if _, ok := vs.KeyOf("nope", po(t, "u1", "1.00", "USD")); ok {
		t.Error("an unknown view has no key")
	}

	// ERP-6 refs are compared as master data normalizes them.
	inv := func(ref string) *tollgatev1.DecideRequest {
		return req(t, "clerk", "INVOICE.POST", map[string]any{"supplier_id": "S1", "invoice_ref": ref, "amount": "1.00", "currency": "USD"})
	}
	a, b := mustKey(t, vs, "invoice_posted", inv("inv-00123")), mustKey(t, vs, "invoice_posted", inv("INV 00123"))
	if a != b || a != `["S1","INV00123"]` {
		t.Errorf("invoice keys %s and %s, want both [\"S1\",\"INV00123\"]", a, b)
	}
	if _, ok := vs.KeyOf("invoice_posted", inv("000-0")); ok {
		t.Error("a ref that normalizes to empty has no key")
	}
	if k, err := vs.KeyFromValues("invoice_posted", []string{"S1", "inv 00123"}); err != nil || k != a {
		t.Errorf("KeyFromValues = %s, %v; want %s", k, err, a)
	}
	if _, err := vs.KeyFromValues("invoice_posted", []string{"S1"}); err == nil {
		t.Error("KeyFromValues with one value of two: no error")
	}
	if _, err := vs.KeyFromValues("nope", nil); !errors.Is(err, history.ErrUnknownView) {
		t.Errorf("KeyFromValues(nope) = %v, want ErrUnknownView", err)
	}

	// AI-10 counts an agent's EXECUTE requests only.
	exec := aiReq(t, "agent1", "ALLOCATION.CREATE", tollgatev1.AIMode_AI_MODE_EXECUTE, map[string]any{"value": "5.00", "currency": "USD"})
	if k := mustKey(t, vs, "ai_daily_value", exec); k != `["agent1"]` {
		t.Errorf("ai key = %s", k)
	}
	rec := aiReq(t, "agent1", "ALLOCATION.CREATE", tollgatev1.AIMode_AI_MODE_RECOMMEND, map[string]any{"value": "5.00", "currency": "USD"})
	if _, ok := vs.KeyOf("ai_daily_value", rec); ok {
		t.Error("a RECOMMEND request has an ai_daily_value key")
	}
	if _, ok := vs.KeyOf("ai_daily_value", req(t, "agent1", "ALLOCATION.CREATE", map[string]any{"value": "5.00"})); ok {
		t.Error("a human's allocation has an ai_daily_value key")
	}
}

func TestKeys(t *testing.T) {
	vs := packViews(t)
	got := vs.Keys(po(t, "u1", "1.00", "USD"))
	want := []history.ViewKey{{View: "po_split", Key: `["u1","S1","DC1"]`}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Keys (-want +got):\n%s", diff)
	}
	if got[0].LockKey() == (history.ViewKey{View: "credit_memo_velocity", Key: got[0].Key}).LockKey() {
		t.Error("lock keys of two views collide")
	}
	if got := vs.Keys(req(t, "u1", "SO.CREATE", nil)); len(got) != 0 {
		t.Errorf("Keys(SO.CREATE) = %v, want none", got)
	}
}
