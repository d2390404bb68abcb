// Package p2p is procure-to-pay on Temporal, governed by Tollgate: a workflow
// that asks Tollgate before every step of a purchase order's life (submit,
// goods receipt, an AI agent's allocation of the received stock, invoice
// match, invoice post, payment release), routes each REQUIRE_APPROVAL to the
// roles Tollgate names, and ends on the first DENY with its reasons.
//
// Every question is the [Activities.Decide] activity, whose idempotency key
// is derived from the workflow id and the step (and the approver, for an
// approval): Temporal's activity retries get the original decision back as a
// replay and never create a second one. The workflow id is the request's
// context.workflow_id, so `tollgatectl audit list --workflow ID` shows a
// workflow's decisions.
//
// Approvals arrive as signals ([SignalApproval]), one per named role; each
// approval is itself a decision asked as the approving user (PO.APPROVE for a
// purchase order). [Humans] plays the approvers for the demo and the test.
package p2p

import (
	"fmt"
	"time"
)

// Currency is the one currency of the demo data.
const Currency = "USD"

// Order is one procure-to-pay workflow's input: the purchase order and what
// will happen to it downstream (the goods receipt, the invoice the supplier
// sends, the allocation an AI agent proposes). It is immutable once the
// workflow has started: activity retries must send the same payload.
type Order struct {
	PO       string `json:"po"`
	Buyer    string `json:"buyer"`
	Supplier string `json:"supplier"`
	Site     string `json:"site"`
	Category string `json:"category"`
	Lines    []Line `json:"lines"`

	// ASN is the advance shipping notice number the goods arrive under.
	ASN string `json:"asn"`
	// Receiver is the user or service that books the goods receipt.
	Receiver string `json:"receiver"`

	// Allocation, when set, is an AI agent's proposal to allocate the
	// received stock to a backordered customer.
	Allocation *Allocation `json:"allocation,omitempty"`

	InvoiceRef  string `json:"invoice_ref"`
	InvoiceDate string `json:"invoice_date"`
	PostingDate string `json:"posting_date"`
	Company     string `json:"company"`
	APClerk     string `json:"ap_clerk"`
	Treasurer   string `json:"treasurer"`

	// ApprovalTimeout bounds the wait for each step's approvals; a step
	// still waiting then ends the workflow TIMED_OUT.
	ApprovalTimeout time.Duration `json:"approval_timeout"`
}

// Line is one purchase-order line: what was ordered, received and invoiced.
type Line struct {
	Item string `json:"item"`
	Qty  int64  `json:"qty"`
	// UnitPriceCents is the PO price; InvoicePriceCents what the supplier
	// invoices.
	UnitPriceCents    int64 `json:"unit_price_cents"`
	InvoicePriceCents int64 `json:"invoice_price_cents"`
	QtyReceived       int64 `json:"qty_received"`
	QtyInvoiced       int64 `json:"qty_invoiced"`
}

// Allocation is an AI agent's proposed allocation of received stock.
type Allocation struct {
	Agent        string  `json:"agent"`
	ModelVersion string  `json:"model_version"`
	Confidence   float64 `json:"confidence"`
	Explanation  string  `json:"explanation"`
	Customer     string  `json:"customer"`
	Item         string  `json:"item"`
	Qty          int64   `json:"qty"`
	ValueCents   int64   `json:"value_cents"`
	// TakeFrom, when set, is a customer whose allocation is reduced by Qty.
	TakeFrom string `json:"take_from,omitempty"`
}

// AmountCents is the PO value: the sum of qty × PO unit price.
func (o Order) AmountCents() int64 {
	var sum int64
	for _, l := range o.Lines {
		sum += l.Qty * l.UnitPriceCents
	}
	return sum
}

// InvoiceCents is the invoice value: the sum of invoiced qty × invoiced price.
func (o Order) InvoiceCents() int64 {
	var sum int64
	for _, l := range o.Lines {
		sum += l.QtyInvoiced * l.InvoicePriceCents
	}
	return sum
}

// Money formats cents as the decimal string Tollgate compares exactly.
func Money(cents int64) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s%d.%02d", sign, cents/100, cents%100)
}
