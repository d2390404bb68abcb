package p2p

import (
	"fmt"
	"math/rand/v2"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// Orders makes n orders for the demo data (bundles/demo) with a realistic
// mix: mostly small POs a buyer may place alone, some that need one to three
// approvers, a few for blocked or unapproved suppliers, price variances,
// short deliveries, an invoice already posted, a posting into a soft-closed
// period, payments held for unverified bank details or blocked, and AI
// allocations that act alone or hand over to a planner. The same seed gives
// the same orders. run names the run in PO, ASN and invoice numbers so that
// runs against the same Tollgate do not collide.
//
// Each order's buyer is one of the demo buyers [BuyerEvents] registers,
// chosen so that no buyer places two POs with the same supplier and site in
// one run: the pack's split-purchase control (policy-pack.md §6, TH-7) would
// otherwise sum them.
func Orders(run string, n int, seed uint64) []Order {
	buyersUsed := map[[2]string]int{}
	orders := make([]Order, n)
	for i := range orders {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		o := Order{
			PO:              fmt.Sprintf("PO-%s-%03d", run, i+1),
			Supplier:        pick(rng, []string{"S1", "S3", "S5", "S6", "S2", "S4", "S7"}, []int{55, 15, 12, 6, 4, 4, 4}),
			Site:            pick(rng, []string{"DC1", "BR1"}, []int{85, 15}),
			Category:        pick(rng, []string{"MRO", "RESALE", "SERVICES"}, []int{60, 30, 10}),
			ASN:             fmt.Sprintf("ASN-%s-%03d", run, i+1),
			Receiver:        pick(rng, []string{"svc_edi", "u_rc1"}, []int{50, 50}),
			InvoiceRef:      fmt.Sprintf("INV-%s-%03d", run, i+1),
			InvoiceDate:     "2026-11-20",
			PostingDate:     pick(rng, []string{"2026-11-30", "2026-10-31"}, []int{90, 10}),
			Company:         "ACME",
			APClerk:         "u_ap1",
			Treasurer:       pick(rng, []string{"u_treas1", "u_treas2"}, []int{90, 10}),
			ApprovalTimeout: 2 * time.Minute,
		}
		combo := [2]string{o.Supplier, o.Site}
		buyersUsed[combo]++
		o.Buyer = demoBuyer(buyersUsed[combo])
		o.Lines = []Line{line(rng)}
		if o.Supplier == "S1" && rng.IntN(100) < 4 {
			o.ASN = "ASN-7001" // already received in the demo data
		}
		if o.Supplier == "S1" && rng.IntN(100) < 4 {
			o.InvoiceRef = "INV 00123" // posted as INV-00123 in the demo data
		}
		if o.Site == "DC1" && rng.IntN(100) < 60 {
			o.Allocation = allocation(rng, o.Lines[0].Item)
		}
		orders[i] = o
	}
	return orders
}

// item is a demo item and its unit cost in cents.
type item struct {
	id   string
	cost int64
	// allocQty is what an allocation of it takes: small enough to stay
	// within ATP and, summed over a demo run, within the agent's daily cap.
	allocQty int64
}

// line makes the PO line: its amount tier decides the approvals, then what
// is received and invoiced against it.
func line(rng *rand.Rand) Line {
	var it item
	var qty int64
	switch pick(rng, []string{"buyer", "tier2", "tier3", "tier4"}, []int{62, 22, 12, 4}) {
	case "buyer": // 500.00 to 4,875.00
		it, qty = item{"I1", 1250, 20}, 40+rng.Int64N(351)
	case "tier2": // 5,600.00 to 24,000.00
		it, qty = item{"I5", 8000, 5}, 70+rng.Int64N(231)
	case "tier3": // 30,000.00 to 96,000.00
		it, qty = item{"I6", 120000, 1}, 25+rng.Int64N(56)
	default: // 120,000.00 to 288,000.00: above the procurement manager's own limit
		it, qty = item{"I6", 120000, 1}, 100+rng.Int64N(141)
	}
	l := Line{Item: it.id, Qty: qty, UnitPriceCents: it.cost, InvoicePriceCents: it.cost, QtyReceived: qty, QtyInvoiced: qty}
	switch pick(rng, []string{"exact", "within", "over", "short"}, []int{75, 10, 10, 5}) {
	case "within": // at most 1 % and 50.00 over the line: within tolerance
		l.InvoicePriceCents += max(1, min(it.cost/100, 5000/qty))
	case "over": // at most 4 % and 900.00 over the line: the AP supervisor decides
		// 4 % is beyond the 2 % tolerance; when 900.00 is the smaller bound,
		// the line is beyond the 100.00 one.
		l.InvoicePriceCents += min(it.cost*4/100, 90000/qty)
	case "short": // invoiced in full, a few short on delivery
		l.QtyReceived = qty - 1 - rng.Int64N(5)
	}
	return l
}

// allocation is the AI agent's proposal for the received item: mostly one it
// may execute alone, some that Tollgate hands over to a planner (low
// confidence, stock taken from a key account, value above the use case's
// cap) or refuses (a disabled agent, a customer on credit hold).
func allocation(rng *rand.Rand, itemID string) *Allocation {
	costs := map[string]item{"I1": {"I1", 1250, 20}, "I5": {"I5", 8000, 5}, "I6": {"I6", 120000, 1}}
	it := costs[itemID]
	a := &Allocation{
		Agent: "agent_alloc", ModelVersion: "alloc-2026.11", Confidence: 0.95,
		Explanation: "C1's backorder is the oldest open one for this item",
		Customer:    "C1", Item: it.id, Qty: it.allocQty,
	}
	switch pick(rng, []string{"alone", "unsure", "key-account", "over-cap", "disabled", "credit-hold"}, []int{70, 10, 6, 6, 4, 4}) {
	case "unsure":
		a.Confidence = 0.82
	case "key-account":
		a.TakeFrom = "C3" // a tier-1 customer
	case "over-cap":
		if it.id == "I6" {
			a.Qty = 9 // 10,800.00, above the use case's 10,000.00
		}
	case "disabled":
		a.Agent, a.ModelVersion = "agent_legacy", "legacy-2026.11"
	case "credit-hold":
		a.Customer = "C4"
	}
	a.ValueCents = a.Qty * it.cost
	return a
}

// pick chooses one of choices with the given weights.
func pick(rng *rand.Rand, choices []string, weights []int) string {
	total := 0
	for _, w := range weights {
		total += w
	}
	n := rng.IntN(total)
	for i, w := range weights {
		if n < w {
			return choices[i]
		}
		n -= w
	}
	return choices[len(choices)-1]
}

// demoBuyer names the i-th demo buyer (1-based).
func demoBuyer(i int) string { return fmt.Sprintf("u_p2p_buyer%02d", i) }

// BuyerEvents are the master-data change events that register the orders'
// buyers in Tollgate (users with role BUYER at DC1 and BR1, limit 5,000.00):
// the demo data has two buyers, and the orders need more to stay clear of
// the split-purchase control. Applying them again is a no-op (DUPLICATE).
func BuyerEvents(orders []Order) ([]*tollgatev1.ChangeEvent, error) {
	seen := map[string]bool{}
	var events []*tollgatev1.ChangeEvent
	for _, o := range orders {
		if seen[o.Buyer] {
			continue
		}
		seen[o.Buyer] = true
		record, err := structpb.NewStruct(map[string]any{
			"status": "ACTIVE", "roles": []any{"BUYER"}, "sites": []any{"DC1", "BR1"},
			"approval_limits": map[string]any{"PO": map[string]any{"amount": "5000.00", "currency": Currency}},
		})
		if err != nil {
			return nil, fmt.Errorf("buyer %s: %w", o.Buyer, err)
		}
		events = append(events, &tollgatev1.ChangeEvent{
			EventId: "p2p-demo-user-" + o.Buyer + "-v1", Kind: "user", Key: o.Buyer, Version: 1,
			Op: tollgatev1.ChangeOp_CHANGE_OP_UPSERT, Record: record,
		})
	}
	return events, nil
}
