package e2e_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/app"
)

// jsonRequest parses a request as tollgatectl reads it.
func jsonRequest(t testing.TB, format string, args ...any) *tollgatev1.DecideRequest {
	t.Helper()
	req, err := tollgate.ParseDecideRequestJSON([]byte(fmt.Sprintf(format, args...)))
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	return req
}

// reasonCodesOf returns a decision's reason codes in order.
func reasonCodesOf(resp *tollgatev1.DecideResponse) []string {
	var out []string
	for _, r := range resp.GetReasons() {
		out = append(out, r.GetCode())
	}
	return out
}

func hasCode(resp *tollgatev1.DecideResponse, code string) bool {
	for _, c := range reasonCodesOf(resp) {
		if c == code {
			return true
		}
	}
	return false
}

// TestPackHistoryRules runs the default pack's four history-aware rules (policy-pack §6) through the
// real service over gRPC, each as the sequence of requests that trips it, on the demo master data.
func TestPackHistoryRules(t *testing.T) {
	srv := startServer(t, app.Config{})
	ctx := context.Background()
	decide := func(req *tollgatev1.DecideRequest) *tollgatev1.DecideResponse {
		t.Helper()
		resp, err := srv.Client.Decide(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	t.Run("TH-7 split purchase", func(t *testing.T) {
		po := func(id, amount string) *tollgatev1.DecideRequest {
			return jsonRequest(t, `{"actor": {"id": "u_buyer1", "type": "HUMAN"}, "action": "PO.SUBMIT",
				"resource": {"type": "purchase_order", "id": %q, "attributes": {"amount": %q, "currency": "USD",
				"category": "MRO", "site_id": "DC1", "supplier_id": "S8"}}}`, id, amount)
		}
		first := decide(po("PO-H1", "4000.00"))
		if first.GetEffect() != tollgatev1.Effect_EFFECT_ALLOW || hasCode(first, "PO_SPLIT_SUSPECTED") {
			t.Fatalf("first PO: %s %v", first.GetEffect(), reasonCodesOf(first))
		}
		// A retry of the first is the same decision: it neither counts twice nor is judged against itself.
		retry := po("PO-H1", "4000.00")
		retry.IdempotencyKey = "po-h1"
		keyed := decide(retry)
		again := decide(retry)
		if !again.GetReplay() || again.GetDecisionId() != keyed.GetDecisionId() {
			t.Fatalf("retry: replay %v", again.GetReplay())
		}
		second := decide(po("PO-H2", "1000.00"))
		if second.GetEffect() != tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL || reasonCodesOf(second)[0] != "PO_SPLIT_SUSPECTED" ||
			!strings.Contains(second.GetReasons()[0].GetMessage(), "2 prior") || !strings.Contains(second.GetReasons()[0].GetMessage(), "9000.00") {
			t.Fatalf("second PO: %s %v %q, want PO_SPLIT_SUSPECTED over 2 prior POs and 9000.00", second.GetEffect(), reasonCodesOf(second), second.GetReasons()[0].GetMessage())
		}
		if fmt.Sprint(second.GetApprovers()) != "[PROCUREMENT_MANAGER]" {
			t.Fatalf("approvers %v, want the combined tier's [PROCUREMENT_MANAGER]", second.GetApprovers())
		}
	})

	t.Run("TH-8 credit-memo velocity", func(t *testing.T) {
		memo := func(i int) *tollgatev1.DecideRequest {
			return jsonRequest(t, `{"actor": {"id": "u_csr1", "type": "HUMAN"}, "action": "CREDIT_MEMO.ISSUE",
				"resource": {"type": "credit_memo", "id": "CM-%d", "attributes": {"customer_id": "C1", "amount": "50.00",
				"currency": "USD", "ref_invoice_id": "INV-5", "ref_invoice_net": "90000.00", "ref_invoice_credited": "0.00"}}}`, i)
		}
		for i := 1; i <= 3; i++ {
			if resp := decide(memo(i)); hasCode(resp, "CREDIT_MEMO_VELOCITY") || resp.GetEffect() == tollgatev1.Effect_EFFECT_DENY {
				t.Fatalf("memo %d: %s %v, want no velocity finding", i, resp.GetEffect(), reasonCodesOf(resp))
			}
		}
		fourth := decide(memo(4))
		if fourth.GetEffect() != tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL || !hasCode(fourth, "CREDIT_MEMO_VELOCITY") ||
			!strings.Contains(fmt.Sprint(fourth.GetApprovers()), "AR_MANAGER") {
			t.Fatalf("fourth memo: %s %v %v, want REQUIRE_APPROVAL with CREDIT_MEMO_VELOCITY for AR_MANAGER", fourth.GetEffect(), reasonCodesOf(fourth), fourth.GetApprovers())
		}
	})

	t.Run("ERP-6 duplicate invoice across retries", func(t *testing.T) {
		// The demo data's open fiscal period is 2026-11.
		post := func(ref, key string) *tollgatev1.DecideRequest {
			req := jsonRequest(t, `{"actor": {"id": "u_ap1", "type": "HUMAN"}, "action": "INVOICE.POST",
				"resource": {"type": "invoice", "id": "IP-1", "attributes": {"supplier_id": "S1", "company": "ACME",
				"invoice_ref": %q, "invoice_date": "2026-11-02", "posting_date": "2026-11-27", "amount": "420.00", "currency": "USD"}}}`,
				ref)
			req.IdempotencyKey = key
			return req
		}
		first := decide(post("inv 0042", "mw-attempt-1"))
		if first.GetEffect() != tollgatev1.Effect_EFFECT_ALLOW {
			t.Fatalf("first posting: %s %v %v", first.GetEffect(), reasonCodesOf(first), first.GetReasons())
		}
		// Two middleware retries of the same invoice with different idempotency keys, the reference
		// spelt differently: the second is the duplicate, before the ERP knows the first.
		dup := decide(post("INV-0042", "mw-attempt-2"))
		if dup.GetEffect() != tollgatev1.Effect_EFFECT_DENY || reasonCodesOf(dup)[0] != "DUPLICATE_INVOICE" ||
			!strings.Contains(dup.GetReasons()[0].GetMessage(), first.GetDecisionId()) {
			t.Fatalf("retry with another key: %s %v, want DENY DUPLICATE_INVOICE naming %s", dup.GetEffect(), dup.GetReasons(), first.GetDecisionId())
		}
		if n := strings.Count(strings.Join(reasonCodesOf(dup), ","), "DUPLICATE_INVOICE"); n != 1 {
			t.Fatalf("%d DUPLICATE_INVOICE findings, want one", n)
		}
	})

	t.Run("AI-10 daily value cap", func(t *testing.T) {
		if now := time.Now().UTC(); now.Hour() == 23 && now.Minute() >= 58 {
			t.Skip("too close to midnight UTC: the day's spend would reset mid-test")
		}
		alloc := func(i int, value string) *tollgatev1.DecideRequest {
			return jsonRequest(t, `{"actor": {"id": "agent_alloc", "type": "AI_AGENT"}, "action": "ALLOCATION.CREATE",
				"resource": {"type": "allocation", "id": "AL-%d", "attributes": {"customer_id": "C1", "item_id": "I1",
				"site_id": "DC1", "qty": 1, "value": %q, "currency": "USD"}},
				"ai": {"use_case": "backorder_allocation", "mode": "EXECUTE", "confidence": 0.95,
				"explanation": "oldest backorder", "model_version": "alloc-2026.11"}}`, i, value)
		}
		// agent_alloc's daily cap is 50,000.00: five of 10,000.00 reach it exactly, which passes.
		for i := 1; i <= 5; i++ {
			if resp := decide(alloc(i, "10000.00")); resp.GetEffect() != tollgatev1.Effect_EFFECT_ALLOW {
				t.Fatalf("allocation %d: %s %v", i, resp.GetEffect(), resp.GetReasons())
			}
		}
		over := decide(alloc(6, "0.01"))
		if over.GetEffect() != tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL || reasonCodesOf(over)[0] != "AI_DAILY_CAP_EXCEEDED" ||
			fmt.Sprint(over.GetApprovers()) != "[ALLOCATION_PLANNER]" || !strings.Contains(over.GetReasons()[0].GetMessage(), "50000.00") {
			t.Fatalf("allocation over the cap: %s %v %v", over.GetEffect(), over.GetReasons(), over.GetApprovers())
		}
		// A recommendation is not capped and does not spend.
		rec := alloc(7, "0.01")
		rec.Ai.Mode = tollgatev1.AIMode_AI_MODE_RECOMMEND
		if resp := decide(rec); hasCode(resp, "AI_DAILY_CAP_EXCEEDED") {
			t.Fatalf("a RECOMMEND request was capped: %v", reasonCodesOf(resp))
		}
	})

	if v, err := srv.Client.VerifyLog(ctx, ""); err != nil || !v.GetOk() {
		t.Fatalf("verify: %v %v", v, err)
	}
}
