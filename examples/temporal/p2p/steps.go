package p2p

import "fmt"

// The workflow's steps, in order. A step name is part of every idempotency
// key and of the request's context.step.
const (
	StepPOSubmit     = "po.submit"
	StepGoodsReceipt = "goods.receipt"
	StepAllocation   = "allocation"
	StepInvoiceMatch = "invoice.match"
	StepInvoicePost  = "invoice.post"
	StepPayment      = "payment.release"
)

// Ask is one question to Tollgate as the workflow hands it to
// [Activities.Decide]. Attribute values are JSON values (strings, numbers,
// lists, objects) so the activity's payload, and with it the idempotency
// payload, is the same on every attempt.
type Ask struct {
	WorkflowID   string         `json:"workflow_id"`
	Step         string         `json:"step"`
	Key          string         `json:"key"`
	Actor        string         `json:"actor"`
	ActorType    string         `json:"actor_type"`
	Action       string         `json:"action"`
	ResourceType string         `json:"resource_type"`
	ResourceID   string         `json:"resource_id"`
	Attributes   map[string]any `json:"attributes"`
	AI           *AI            `json:"ai,omitempty"`
}

// AI is the ai block of an AI agent's request.
type AI struct {
	UseCase      string  `json:"use_case"`
	Mode         string  `json:"mode"`
	Confidence   float64 `json:"confidence"`
	Explanation  string  `json:"explanation"`
	ModelVersion string  `json:"model_version"`
}

// Actor types as the Tollgate API names them in JSON.
const (
	Human   = "HUMAN"
	Service = "SERVICE"
	AIAgent = "AI_AGENT"
)

// step is one governed step: the question it asks, and how an approver (or,
// for a human task, the human taking over) answers a REQUIRE_APPROVAL.
type step struct {
	name string
	ask  func(Order) Ask
	// approve builds the approving user's own decision for role.
	approve func(o Order, role, user string) Ask
	// humanTask: Tollgate's REQUIRE_APPROVAL hands the whole step to one
	// human of the first named role, who does it as themselves; otherwise
	// every named role approves.
	humanTask bool
}

// steps lists the order's steps; the allocation only when one is proposed.
func (o Order) steps() []step {
	steps := []step{
		{name: StepPOSubmit, ask: Order.poSubmit, approve: Order.poApprove},
		{name: StepGoodsReceipt, ask: Order.goodsReceipt, approve: sameActionAs(Order.goodsReceipt)},
	}
	if o.Allocation != nil {
		steps = append(steps, step{name: StepAllocation, ask: Order.aiAllocation, approve: Order.humanAllocation, humanTask: true})
	}
	return append(steps,
		step{name: StepInvoiceMatch, ask: Order.invoiceMatch, approve: Order.invoiceApprove},
		step{name: StepInvoicePost, ask: Order.invoicePost, approve: sameActionAs(Order.invoicePost)},
		step{name: StepPayment, ask: Order.paymentRelease, approve: sameActionAs(Order.paymentRelease)},
	)
}

// StepKey is the idempotency key of a step's own decision.
func StepKey(workflowID, step string) string { return workflowID + "/" + step }

// ApprovalKey is the idempotency key of role's approval of a step by user.
func ApprovalKey(workflowID, step, role, user string) string {
	return fmt.Sprintf("%s/%s/approve/%s/%s", workflowID, step, role, user)
}

func (o Order) poAttributes() map[string]any {
	return map[string]any{
		"amount": Money(o.AmountCents()), "currency": Currency, "category": o.Category,
		"site_id": o.Site, "supplier_id": o.Supplier,
	}
}

func (o Order) poSubmit() Ask {
	return Ask{Actor: o.Buyer, ActorType: Human, Action: "PO.SUBMIT",
		ResourceType: "purchase_order", ResourceID: o.PO, Attributes: o.poAttributes()}
}

// poApprove is PO.APPROVE by the approving user, naming the buyer as the
// creator so Tollgate can refuse a self-approval.
func (o Order) poApprove(_, user string) Ask {
	attrs := o.poAttributes()
	attrs["created_by"] = o.Buyer
	return Ask{Actor: user, ActorType: Human, Action: "PO.APPROVE",
		ResourceType: "purchase_order", ResourceID: o.PO, Attributes: attrs}
}

func (o Order) goodsReceipt() Ask {
	actorType := Human
	if o.Receiver == "svc_edi" {
		actorType = Service
	}
	return Ask{Actor: o.Receiver, ActorType: actorType, Action: "ASN.RECEIVE",
		ResourceType: "asn", ResourceID: o.ASN,
		Attributes: map[string]any{"supplier_id": o.Supplier, "asn_no": o.ASN, "purpose": "00"}}
}

func (o Order) allocationAttributes() map[string]any {
	a := o.Allocation
	attrs := map[string]any{
		"customer_id": a.Customer, "item_id": a.Item, "site_id": o.Site, "qty": a.Qty,
		"value": Money(a.ValueCents), "currency": Currency,
	}
	if a.TakeFrom != "" {
		attrs["affected_customers"] = []any{
			map[string]any{"customer_id": a.Customer, "qty_delta": a.Qty},
			map[string]any{"customer_id": a.TakeFrom, "qty_delta": -a.Qty},
		}
	}
	return attrs
}

func (o Order) aiAllocation() Ask {
	a := o.Allocation
	return Ask{Actor: a.Agent, ActorType: AIAgent, Action: "ALLOCATION.CREATE",
		ResourceType: "allocation", ResourceID: "AL-" + o.PO, Attributes: o.allocationAttributes(),
		AI: &AI{UseCase: "backorder_allocation", Mode: "EXECUTE", Confidence: a.Confidence,
			Explanation: a.Explanation, ModelVersion: a.ModelVersion}}
}

// humanAllocation is the human task the AI step hands over to: the same
// allocation, asked by the human who takes it over.
func (o Order) humanAllocation(_, user string) Ask {
	return Ask{Actor: user, ActorType: Human, Action: "ALLOCATION.CREATE",
		ResourceType: "allocation", ResourceID: "AL-" + o.PO, Attributes: o.allocationAttributes()}
}

func (o Order) invoiceMatch() Ask {
	lines := make([]any, len(o.Lines))
	for i, l := range o.Lines {
		lines[i] = map[string]any{
			"line": i + 1, "item_id": l.Item, "po_unit_price": Money(l.UnitPriceCents),
			"unit_price": Money(l.InvoicePriceCents), "qty": l.QtyInvoiced, "qty_received": l.QtyReceived,
		}
	}
	return Ask{Actor: o.APClerk, ActorType: Human, Action: "INVOICE.MATCH",
		ResourceType: "supplier_invoice", ResourceID: o.InvoiceRef,
		Attributes: map[string]any{"supplier_id": o.Supplier, "currency": Currency, "po_currency": Currency, "lines": lines}}
}

// invoiceApprove is INVOICE.APPROVE by the approving user: accepting a price
// variance is approving the invoice.
func (o Order) invoiceApprove(_, user string) Ask {
	return Ask{Actor: user, ActorType: Human, Action: "INVOICE.APPROVE",
		ResourceType: "supplier_invoice", ResourceID: o.InvoiceRef,
		Attributes: map[string]any{"supplier_id": o.Supplier, "amount": Money(o.InvoiceCents()), "currency": Currency}}
}

func (o Order) invoicePost() Ask {
	return Ask{Actor: o.APClerk, ActorType: Human, Action: "INVOICE.POST",
		ResourceType: "supplier_invoice", ResourceID: o.InvoiceRef,
		Attributes: map[string]any{
			"supplier_id": o.Supplier, "company": o.Company, "invoice_ref": o.InvoiceRef,
			"invoice_date": o.InvoiceDate, "posting_date": o.PostingDate,
			"amount": Money(o.InvoiceCents()), "currency": Currency,
		}}
}

func (o Order) paymentRelease() Ask {
	return Ask{Actor: o.Treasurer, ActorType: Human, Action: "PAYMENT.RELEASE",
		ResourceType: "payment", ResourceID: "PAY-" + o.InvoiceRef,
		Attributes: map[string]any{"supplier_id": o.Supplier, "amount": Money(o.InvoiceCents()), "currency": Currency}}
}

// sameActionAs makes the approval of a step the step itself asked by the
// approver: a CONTROLLER posts into a soft-closed period, a TREASURY_MANAGER
// releases a payment held for unverified bank details.
func sameActionAs(ask func(Order) Ask) func(Order, string, string) Ask {
	return func(o Order, _, user string) Ask {
		a := ask(o)
		a.Actor, a.ActorType = user, Human
		return a
	}
}
