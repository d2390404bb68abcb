package gatecorpus

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"

	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/engine"
)

// Request is one corpus request in the three forms the benchmarks send it.
type Request struct {
	// Family is the generator that made it ("PO.SUBMIT", "AI.ALLOCATION", …), for reports.
	Family string
	// Input is the policy input exactly as the engine builds it from Proto: actor with id, type and
	// on_behalf_of; action; resource with type, id and attributes; context; ai only for AI agents.
	Input map[string]any
	// Proto is the gRPC request Tollgate receives.
	Proto *tollgatev1.DecideRequest
	// Engine is the engine's form of Proto, for the in-process benchmarks.
	Engine *engine.Request
}

// Corpus returns n requests generated deterministically from seed over the demo master data plus
// Volume(volume): every action of policy-pack §2, humans, services and AI agents, amounts around every
// threshold, malformed values, missing fields and unknown ids. The same seed, n and volume give the same
// corpus. It fails only if a generated request does not parse, which is a bug in the generator.
func Corpus(seed uint64, n, volume int) ([]Request, error) {
	g := &gen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), volume: volume}
	out := make([]Request, 0, n)
	for i := range n {
		// Cycle through the families so that every one is present in any corpus of at least len(families).
		f := families[i%len(families)]
		in := f.make(g)
		in["context"] = map[string]any{"workflow_id": fmt.Sprintf("wf-%d", i)}
		g.mutate(in)
		req, err := NewRequest(f.name, in)
		if err != nil {
			return nil, fmt.Errorf("corpus request %d (%s): %w", i, f.name, err)
		}
		out = append(out, req)
	}
	return out, nil
}

// NewRequest builds a Request from the policy-pack §2 JSON form of a request, which must have the shape
// the engine gives the policy (see Request.Input).
func NewRequest(family string, in map[string]any) (Request, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return Request{}, fmt.Errorf("encode request: %w", err)
	}
	p, err := tollgate.ParseDecideRequestJSON(b)
	if err != nil {
		return Request{}, fmt.Errorf("parse request: %w", err)
	}
	// Round trip through JSON so that Input holds exactly what OPA's REST API will decode.
	var input map[string]any
	if err := json.Unmarshal(b, &input); err != nil {
		return Request{}, fmt.Errorf("decode request: %w", err)
	}
	return Request{Family: family, Input: input, Proto: p, Engine: engineRequest(p)}, nil
}

// engineRequest mirrors the API layer's conversion of a valid request.
func engineRequest(p *tollgatev1.DecideRequest) *engine.Request {
	types := map[tollgatev1.ActorType]string{
		tollgatev1.ActorType_ACTOR_TYPE_HUMAN:    engine.ActorHuman,
		tollgatev1.ActorType_ACTOR_TYPE_SERVICE:  engine.ActorService,
		tollgatev1.ActorType_ACTOR_TYPE_AI_AGENT: engine.ActorAIAgent,
	}
	modes := map[tollgatev1.AIMode]string{
		tollgatev1.AIMode_AI_MODE_RECOMMEND: engine.ModeRecommend,
		tollgatev1.AIMode_AI_MODE_EXECUTE:   engine.ModeExecute,
	}
	r := &engine.Request{
		Actor:  engine.Actor{ID: p.GetActor().GetId(), Type: types[p.GetActor().GetType()], OnBehalfOf: p.GetActor().GetOnBehalfOf()},
		Action: p.GetAction(),
		Resource: engine.Resource{
			Type: p.GetResource().GetType(), ID: p.GetResource().GetId(), Attributes: p.GetResource().GetAttributes(),
		},
		Context: p.GetContext(),
	}
	if ai := p.GetAi(); ai != nil {
		r.AI = &engine.AI{UseCase: ai.GetUseCase(), Mode: modes[ai.GetMode()], Confidence: ai.GetConfidence(),
			Explanation: ai.GetExplanation(), ModelVersion: ai.GetModelVersion()}
	}
	return r
}

// gen draws the values of one corpus.
type gen struct {
	r      *rand.Rand
	volume int
	n      int
}

func (g *gen) pick(vs ...string) string { return vs[g.r.IntN(len(vs))] }

func (g *gen) chance(p float64) bool { return g.r.Float64() < p }

// amount is a decimal string near one of the thresholds (one cent under, at, one cent over) or anywhere
// below the largest.
func (g *gen) amount(thresholds ...float64) string {
	if g.chance(0.25) {
		return fmt.Sprintf("%.2f", g.r.Float64()*thresholds[len(thresholds)-1])
	}
	t := thresholds[g.r.IntN(len(thresholds))]
	return fmt.Sprintf("%.2f", t+[]float64{-0.01, 0, 0.01}[g.r.IntN(3)])
}

// customer is a demo customer, a generated one or an unknown id.
func (g *gen) customer() string {
	switch x := g.r.IntN(10); {
	case x < 5:
		return g.pick("C1", "C2", "C3", "C4", "C5", "C6")
	case x < 9 && g.volume > 0:
		return VolumeCustomer(g.r.IntN(g.volume))
	default:
		return fmt.Sprintf("C_UNKNOWN%d", g.r.IntN(1000))
	}
}

// item is a demo item, a generated one or an unknown id.
func (g *gen) item() string {
	switch x := g.r.IntN(10); {
	case x < 5:
		return g.pick("I1", "I2", "I3", "I4", "I5", "I6")
	case x < 9 && g.volume > 0:
		return VolumeItem(g.r.IntN(g.volume))
	default:
		return fmt.Sprintf("I_UNKNOWN%d", g.r.IntN(1000))
	}
}

func (g *gen) supplier() string {
	if g.chance(0.1) {
		return "S_UNKNOWN"
	}
	return g.pick("S1", "S1", "S2", "S3", "S4", "S5", "S6", "S7")
}

func (g *gen) id(prefix string) string {
	g.n++
	return fmt.Sprintf("%s-%d", prefix, g.n)
}

func human(id string) map[string]any {
	return map[string]any{"id": id, "type": "HUMAN", "on_behalf_of": ""}
}

func actor(id, typ string) map[string]any {
	return map[string]any{"id": id, "type": typ, "on_behalf_of": ""}
}

func request(a map[string]any, action, rtype, rid string, attrs map[string]any) map[string]any {
	return map[string]any{
		"actor":    a,
		"action":   action,
		"resource": map[string]any{"type": rtype, "id": rid, "attributes": attrs},
	}
}

func aiBlock(useCase, mode string, confidence float64, explanation, model string) map[string]any {
	return map[string]any{"use_case": useCase, "mode": mode, "confidence": confidence, "explanation": explanation, "model_version": model}
}

// malformedAmounts exercise every amount check of the VAL family.
var malformedAmounts = []any{"12abc", "1e3", "NaN", 100, "-5.00", "1.001", "1000000000.01", "123456789012345678901234567890", ""}

// mutate breaks a few requests on purpose: a missing required field, a malformed amount, an unsupported
// currency, a wrong actor type for the action.
func (g *gen) mutate(in map[string]any) {
	attrs, _ := in["resource"].(map[string]any)["attributes"].(map[string]any)
	if attrs == nil {
		return
	}
	switch x := g.r.IntN(100); {
	case x < 4:
		keys := make([]string, 0, len(attrs))
		for k := range attrs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if len(keys) > 0 {
			delete(attrs, keys[g.r.IntN(len(keys))])
		}
	case x < 9:
		if _, ok := attrs["amount"]; ok {
			attrs["amount"] = malformedAmounts[g.r.IntN(len(malformedAmounts))]
		}
	case x < 11:
		if _, ok := attrs["currency"]; ok {
			attrs["currency"] = g.pick("XXX", "JPY", "EUR", "usd")
		}
	}
}

// family generates requests for one action (or one AI use case).
type family struct {
	name string
	make func(g *gen) map[string]any
}

// families cover every action of policy-pack §2 and every rule family of §4; thresholds are the pack's
// defaults.
var families = []family{
	{"UNKNOWN_ACTION", func(g *gen) map[string]any {
		return request(human(g.pick("u_buyer1", "u_pm1")), g.pick("PO.BURN", "po.submit", "INVOICE.DELETE"), "x", g.id("X"),
			map[string]any{"amount": "1.00", "currency": "USD"})
	}},
	{"PO.SUBMIT", func(g *gen) map[string]any {
		a := human(g.pick("u_buyer1", "u_buyer1", "u_buyer2", "u_buyer9", "u_pm1", "u_od1", "u_nobody"))
		return request(a, "PO.SUBMIT", "purchase_order", g.id("PO"), map[string]any{
			"amount":      g.amount(2500, 5000, 25000, 100000, 500000, 600000),
			"currency":    "USD",
			"category":    g.pick("MRO", "RESALE", "CAPEX", "IT", "SERVICES", "TOYS"),
			"site_id":     g.pick("DC1", "DC1", "BR1", "DC9", "SITE_X"),
			"supplier_id": g.supplier(),
		})
	}},
	{"PO.APPROVE", func(g *gen) map[string]any {
		a := human(g.pick("u_pm1", "u_pm2", "u_dir1", "u_cfo1", "u_term1", "u_buyer1", "u_buyer2", "u_pm2"))
		switch a["id"] {
		case "u_buyer1", "u_buyer2":
			a["on_behalf_of"] = "u_pm1"
		case "u_pm2":
			if g.chance(0.5) {
				a["on_behalf_of"] = "u_dir1"
			}
		}
		return request(a, "PO.APPROVE", "purchase_order", g.id("PO"), map[string]any{
			"amount":      g.amount(5000, 20000, 25000, 100000, 500000),
			"currency":    "USD",
			"category":    g.pick("MRO", "RESALE", "CAPEX", "IT"),
			"site_id":     g.pick("DC1", "DC1", "BR1"),
			"supplier_id": g.supplier(),
			"created_by":  g.pick("u_buyer1", "u_buyer2", "u_pm1", "u_dir1"),
		})
	}},
	{"INVOICE.MATCH", func(g *gen) map[string]any {
		lines := []any{}
		for i := range 1 + g.r.IntN(3) {
			price := []float64{10, 100, 1000, 12.5}[g.r.IntN(4)]
			variance := []float64{0, 0.01, 0.02, 0.021, 0.05, 0.10, 0.11, -0.05}[g.r.IntN(8)]
			qty := 1 + g.r.IntN(50)
			received := qty
			if g.chance(0.15) {
				received = qty - 1
			}
			lines = append(lines, map[string]any{
				"line": i + 1, "item_id": g.item(),
				"po_unit_price": fmt.Sprintf("%.2f", price), "unit_price": fmt.Sprintf("%.2f", price*(1+variance)),
				"qty": qty, "qty_received": received,
			})
		}
		return request(human(g.pick("u_ap1", "u_apsup1", "u_ctrl1", "u_od1")), "INVOICE.MATCH", "supplier_invoice", g.id("INV"), map[string]any{
			"supplier_id": g.supplier(), "currency": "USD", "po_currency": g.pick("USD", "USD", "USD", "EUR"), "lines": lines,
		})
	}},
	{"INVOICE.POST", func(g *gen) map[string]any {
		ref := g.pick("INV-00123", "inv 00123", "INV-123", fmt.Sprintf("INV-%d", 5000+g.r.IntN(100000)))
		return request(human(g.pick("u_ap1", "u_ctrl1", "u_apsup1", "u_treas1")), "INVOICE.POST", "supplier_invoice", g.id("INV"), map[string]any{
			"supplier_id": g.pick("S1", "S1", "S3", "S5"), "company": g.pick("ACME", "ACME", "ACME", "OTHERCO"),
			"invoice_ref": ref, "invoice_date": "2026-11-10",
			"posting_date": g.pick("2026-11-20", "2026-11-20", "2026-10-15", "2026-12-05", "2026-03-01", "2025-06-01"),
			"amount":       g.amount(1000, 4200, 50000), "currency": "USD",
		})
	}},
	{"INVOICE.APPROVE", func(g *gen) map[string]any {
		a := human(g.pick("u_apsup1", "u_apmgr1", "u_ap1", "u_treas2"))
		if a["id"] == "u_apsup1" && g.chance(0.3) {
			a["on_behalf_of"] = "u_apmgr1"
		}
		return request(a, "INVOICE.APPROVE", "supplier_invoice", g.id("INV"), map[string]any{
			"supplier_id": g.supplier(), "amount": g.amount(1000, 50000), "currency": "USD",
		})
	}},
	{"PAYMENT.RELEASE", func(g *gen) map[string]any {
		return request(human(g.pick("u_treas1", "u_treas2", "u_tmgr1", "u_ap1")), "PAYMENT.RELEASE", "payment", g.id("PAY"), map[string]any{
			"supplier_id": g.pick("S1", "S2", "S3", "S3", "S6"), "amount": g.amount(1000, 100000), "currency": "USD",
		})
	}},
	{"SO", func(g *gen) map[string]any {
		a := human(g.pick("u_od1", "u_sm1", "u_buyer1"))
		if g.chance(0.3) {
			a = actor("svc_orchestrator", "SERVICE")
		}
		return request(a, g.pick("SO.CREATE", "SO.RELEASE"), "sales_order", g.id("SO"), map[string]any{
			"customer_id": g.customer(), "site_id": g.pick("DC1", "DC1", "BR1"),
			"amount": g.amount(1000, 2500, 25000, 27500, 30000), "currency": "USD",
		})
	}},
	{"ALLOCATION.CREATE", func(g *gen) map[string]any {
		return request(human(g.pick("u_od1", "u_planner1", "u_wm1", "u_csr1")), "ALLOCATION.CREATE", "allocation", g.id("AL"), map[string]any{
			"customer_id": g.customer(), "item_id": g.item(), "site_id": g.pick("DC1", "DC1", "DC1", "BR1"),
			"qty": []int{1, 10, 16, 17, 40, 80, 81, 700, 701}[g.r.IntN(9)],
		})
	}},
	{"DELIVERY", func(g *gen) map[string]any {
		return request(human(g.pick("u_wm1", "u_od1", "u_rc1")), g.pick("DELIVERY.CREATE", "GOODS_ISSUE.POST"), "delivery", g.id("DL"), map[string]any{
			"customer_id": g.customer(), "site_id": g.pick("DC1", "DC1", "BR1"), "item_id": g.item(),
		})
	}},
	{"CREDIT_MEMO.ISSUE", func(g *gen) map[string]any {
		amount := g.amount(500, 5000, 25000, 30000)
		return request(human(g.pick("u_csr1", "u_cssup1", "u_armgr1", "u_findir1", "u_od1")), "CREDIT_MEMO.ISSUE", "credit_memo", g.id("CM"), map[string]any{
			"customer_id": g.customer(), "amount": amount, "currency": "USD", "ref_invoice_id": g.id("AR"),
			"ref_invoice_net": g.pick("1000.00", "10000.00", "40000.00"), "ref_invoice_credited": g.pick("0.00", "500.00"),
		})
	}},
	{"INVENTORY.ADJUST", func(g *gen) map[string]any {
		delta := []int{-1, -2, -5, -10, -20, -100, 1, 3, 20, -300}[g.r.IntN(10)]
		return request(human(g.pick("u_ic1", "u_wm1", "u_od1")), "INVENTORY.ADJUST", "inventory", g.id("ADJ"), map[string]any{
			"site_id": g.pick("DC1", "DC1", "BR1"), "item_id": g.item(), "qty_delta": delta,
			"reason": g.pick("DAMAGE", "SHRINK", "EXPIRED", "COUNT", "FOUND", "THEFT"),
		})
	}},
	{"ASN.RECEIVE", func(g *gen) map[string]any {
		a := human(g.pick("u_rc1", "u_wm1", "u_ap1"))
		if g.chance(0.4) {
			a = actor("svc_edi", "SERVICE")
		}
		return request(a, "ASN.RECEIVE", "asn", g.id("ASN"), map[string]any{
			"supplier_id": g.pick("S1", "S1", "S2", "S4"), "asn_no": g.pick("ASN-7001", fmt.Sprintf("ASN-%d", 8000+g.r.IntN(10000))),
			"purpose": g.pick("00", "00", "05", "01", "99"),
		})
	}},
	{"AI.ALLOCATION", func(g *gen) map[string]any {
		agent := g.pick("agent_alloc", "agent_alloc", "agent_alloc", "agent_legacy", "agent_ghost")
		model := g.pick("alloc-2026.11", "alloc-2026.10", "alloc-2025.01")
		affected := []any{map[string]any{"customer_id": g.customer(), "qty_delta": []int{-5, 5, 10}[g.r.IntN(3)]}}
		if g.chance(0.3) {
			affected = append(affected, map[string]any{"customer_id": "C3", "qty_delta": -3})
		}
		in := request(actor(agent, "AI_AGENT"), "ALLOCATION.CREATE", "allocation", g.id("AL"), map[string]any{
			"customer_id": g.customer(), "item_id": g.item(), "site_id": "DC1", "qty": []int{1, 10, 80, 81}[g.r.IntN(4)],
			"affected_customers": affected, "value": g.amount(1000, 10000, 12000), "currency": "USD",
		})
		in["ai"] = aiBlock("backorder_allocation", g.pick("EXECUTE", "EXECUTE", "RECOMMEND"),
			[]float64{0.5, 0.89, 0.9, 0.95, 1, 1.2}[g.r.IntN(6)], g.pick("ATP rebalanced across backorders", ""), model)
		return in
	}},
	{"AI.INVOICE", func(g *gen) map[string]any {
		in := request(actor(g.pick("agent_ap", "agent_ap", "agent_msg"), "AI_AGENT"), "INVOICE.RESOLVE_DISCREPANCY", "supplier_invoice", g.id("INV"), map[string]any{
			"supplier_id": g.pick("S1", "S1", "S5", "S3"), "discrepancy_class": g.pick("PRICE_ROUNDING", "FREIGHT", "FRAUD_SUSPECTED", "TAX_DISCREPANCY"),
			"variance_amount": g.amount(100, 250, 1000), "currency": "USD",
		})
		in["ai"] = aiBlock("invoice_discrepancy", g.pick("EXECUTE", "RECOMMEND"), []float64{0.8, 0.85, 0.95, 0.97}[g.r.IntN(4)],
			"variance within rounding", g.pick("ap-2026.11", "ap-2026.10"))
		return in
	}},
	{"AI.MESSAGE", func(g *gen) map[string]any {
		in := request(actor("agent_msg", "AI_AGENT"), "SUPPLIER.MESSAGE", "supplier_message", g.id("MSG"), map[string]any{
			"supplier_id": g.supplier(), "template_id": g.pick("TPL-ETA", "TPL-ETA", ""), "commits_terms": g.chance(0.2),
		})
		in["ai"] = aiBlock("supplier_message", g.pick("EXECUTE", "RECOMMEND"), []float64{0.85, 0.9, 0.99}[g.r.IntN(3)],
			"asking for an updated ETA", g.pick("msg-2026.11", "msg-2024.01"))
		return in
	}},
	{"AI.CASE", func(g *gen) map[string]any {
		tags := []any{g.pick("BILLING", "SHIPPING", "SAFETY", "LEGAL")}
		in := request(actor("agent_cs", "AI_AGENT"), "CASE.ROUTE", "case", g.id("CASE"), map[string]any{
			"customer_id": g.customer(), "case_tags": tags,
		})
		in["ai"] = aiBlock("case_routing", "EXECUTE", []float64{0.7, 0.8, 0.9}[g.r.IntN(3)], "routing by tag", "cs-2026.11")
		return in
	}},
	{"AI.PROHIBITED", func(g *gen) map[string]any {
		action := g.pick("PAYMENT.RELEASE", "PO.APPROVE", "INVOICE.POST", "INVOICE.APPROVE")
		in := request(actor(g.pick("agent_ap", "agent_alloc"), "AI_AGENT"), action, "x", g.id("X"), map[string]any{
			"supplier_id": "S1", "amount": "100.00", "currency": "USD", "category": "MRO", "site_id": "DC1", "created_by": "u_buyer1",
			"company": "ACME", "invoice_ref": "INV-9", "invoice_date": "2026-11-10", "posting_date": "2026-11-20",
		})
		in["ai"] = aiBlock("invoice_discrepancy", "EXECUTE", 0.99, "sure", "ap-2026.11")
		return in
	}},
}

// Families returns the names of the corpus generators in the order Corpus cycles through them.
func Families() []string {
	out := make([]string, len(families))
	for i, f := range families {
		out[i] = f.name
	}
	return out
}

// VolumeCustomer is the key of the i-th generated customer (test/perf's VolumeEvents makes them).
func VolumeCustomer(i int) string { return fmt.Sprintf("GC%07d", i) }

// VolumeItem is the key of the i-th generated item; each has an inventory row at DC1.
func VolumeItem(i int) string { return fmt.Sprintf("GI%07d", i) }
