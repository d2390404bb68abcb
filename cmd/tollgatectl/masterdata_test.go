package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

func result3(outcomes ...tollgatev1.EventOutcome) *tollgatev1.ApplyResponse {
	resp := &tollgatev1.ApplyResponse{Revision: 17}
	for i, o := range outcomes {
		r := &tollgatev1.EventResult{EventId: []string{"erp-1", "erp-22", "erp-333"}[i], Outcome: o}
		switch o {
		case tollgatev1.EventOutcome_EVENT_OUTCOME_INVALID:
			r.Error = "supplier S10: status: \"WEIRD\" is not one of APPROVED, PENDING, BLOCKED"
		case tollgatev1.EventOutcome_EVENT_OUTCOME_STALE:
			r.Error = "version 3 is not newer than 5"
		}
		resp.Results = append(resp.Results, r)
	}
	return resp
}

const (
	applied   = tollgatev1.EventOutcome_EVENT_OUTCOME_APPLIED
	duplicate = tollgatev1.EventOutcome_EVENT_OUTCOME_DUPLICATE
	stale     = tollgatev1.EventOutcome_EVENT_OUTCOME_STALE
	invalid   = tollgatev1.EventOutcome_EVENT_OUTCOME_INVALID
)

func TestPrintResults(t *testing.T) {
	var buf bytes.Buffer
	if err := printResults(&buf, result3(applied, invalid, stale).GetResults()); err != nil {
		t.Fatalf("printResults: %v", err)
	}
	want := `erp-1    APPLIED
erp-22   INVALID  supplier S10: status: "WEIRD" is not one of APPROVED, PENDING, BLOCKED
erp-333  STALE    version 3 is not newer than 5
`
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("output mismatch (-want +got):\n%s", diff)
	}
}

func TestApplyOutcome(t *testing.T) {
	for _, tc := range []struct {
		name string
		sent int
		resp *tollgatev1.ApplyResponse
		want string // "" for success
	}{
		{"all applied", 3, result3(applied, applied, applied), ""},
		{"duplicate and stale are fine", 3, result3(applied, duplicate, stale), ""},
		{"one invalid", 3, result3(applied, invalid, stale), "1 of 3 events INVALID"},
		{"all invalid", 2, result3(invalid, invalid), "2 of 2 events INVALID"},
		{"unknown outcome", 3, result3(invalid, tollgatev1.EventOutcome_EVENT_OUTCOME_UNSPECIFIED, applied),
			"2 of 3 events not applied (INVALID 1, UNSPECIFIED 1)"},
		{"missing outcomes", 3, result3(applied, applied), "server reported 2 outcomes for 3 events"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := applyOutcome(tc.sent, tc.resp)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("applyOutcome() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPrintStatus(t *testing.T) {
	var buf bytes.Buffer
	err := printStatus(&buf, &tollgatev1.StatusResponse{
		Revision:      42,
		LastEventId:   "erp-88121",
		LastAppliedAt: timestamppb.New(time.Date(2026, 3, 2, 9, 30, 0, 500, time.UTC)),
		Counts: []*tollgatev1.KindCount{
			{Kind: "user", Count: 32}, {Kind: "supplier_invoice", Count: 1}, {Kind: "inventory", Count: 1200},
		},
	})
	if err != nil {
		t.Fatalf("printStatus: %v", err)
	}
	want := `revision         42
last event       erp-88121
last applied at  2026-03-02T09:30:00.0000005Z

KIND              COUNT
user              32
supplier_invoice  1
inventory         1200
`
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("output mismatch (-want +got):\n%s", diff)
	}
}

func TestPrintStatusEmpty(t *testing.T) {
	var buf bytes.Buffer
	if err := printStatus(&buf, &tollgatev1.StatusResponse{}); err != nil {
		t.Fatalf("printStatus: %v", err)
	}
	want := "revision  0\n\nKIND  COUNT\n"
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("output mismatch (-want +got):\n%s", diff)
	}
}
