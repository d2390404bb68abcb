package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	tollgate "github.com/tollgate/tollgate/clients/go"
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
		SeenEventIds:  1233,
		Tombstones:    7,
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
seen event ids   1233
tombstones       7

KIND              COUNT
user              32
supplier_invoice  1
inventory         1200
`
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("output mismatch (-want +got):\n%s", diff)
	}
}

func TestPrintStatusStream(t *testing.T) {
	var buf bytes.Buffer
	err := printStatus(&buf, &tollgatev1.StatusResponse{
		Revision: 40,
		Stream: &tollgatev1.StreamStatus{
			Url: "nats://127.0.0.1:4222", Stream: "TOLLGATE_MASTERDATA", Subject: "tollgate.masterdata",
			Head: 42, HeadSeenAt: timestamppb.New(time.Date(2026, 3, 2, 9, 30, 1, 0, time.UTC)), Lag: 2,
			RejectedEvents: 1,
			LastRejected:   &tollgatev1.RejectedEvent{Sequence: 17, Error: "unparseable: decode event: EOF"},
		},
	})
	if err != nil {
		t.Fatalf("printStatus: %v", err)
	}
	want := `revision         40
seen event ids   0
tombstones       0
stream           nats://127.0.0.1:4222 TOLLGATE_MASTERDATA (subject tollgate.masterdata)
connected        false
head             42 (seen at 2026-03-02T09:30:01Z)
lag              2
rejected events  1
last rejected    sequence 17 (unparseable): unparseable: decode event: EOF

KIND  COUNT
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
	want := "revision        0\nseen event ids  0\ntombstones      0\n\nKIND  COUNT\n"
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("output mismatch (-want +got):\n%s", diff)
	}
}

// failingMasterData is a MasterDataService at the network boundary that
// applies every batch until call failAt, which fails with Unavailable.
type failingMasterData struct {
	tollgatev1.UnimplementedMasterDataServiceServer
	failAt int

	mu    sync.Mutex
	calls []int // events per call
}

func (s *failingMasterData) Apply(_ context.Context, req *tollgatev1.ApplyRequest) (*tollgatev1.ApplyResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, len(req.GetEvents()))
	if len(s.calls) == s.failAt {
		return nil, status.Error(codes.Unavailable, "audit store unavailable")
	}
	resp := &tollgatev1.ApplyResponse{Revision: uint64(len(s.calls))}
	for _, ev := range req.GetEvents() {
		resp.Results = append(resp.Results, &tollgatev1.EventResult{EventId: ev.GetEventId(), Outcome: applied})
	}
	return resp, nil
}

func startMasterData(t testing.TB, srv tollgatev1.MasterDataServiceServer) string {
	t.Helper()
	s := grpc.NewServer()
	tollgatev1.RegisterMasterDataServiceServer(s, srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(lis) //nolint:errcheck // Serve returns when Stop runs
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

func TestApplyBatchFails(t *testing.T) {
	var events strings.Builder
	for i := 1; i <= 5; i++ {
		fmt.Fprintf(&events, `{"event_id": "e%d", "kind": "site", "key": "X%d", "version": 1, "op": "UPSERT", "record": {}}`+"\n", i, i)
	}
	t.Run("text", func(t *testing.T) {
		srv := &failingMasterData{failAt: 2}
		got := runCmd(t, nil, events.String(), "--addr", startMasterData(t, srv), "masterdata", "apply", "--batch", "2", "-f", "-")
		if got.code != exitError {
			t.Errorf("exit status = %d, want %d", got.code, exitError)
		}
		if diff := cmp.Diff("tollgatectl: masterdata apply: batch 2 of 3 (events 3-4) not applied: Unavailable: audit store unavailable; later batches not sent\n", got.stderr); diff != "" {
			t.Errorf("stderr mismatch (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff("e1  APPLIED\ne2  APPLIED\n", got.stdout); diff != "" {
			t.Errorf("stdout mismatch (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]int{2, 2}, srv.calls); diff != "" {
			t.Errorf("events per call (-want +got):\n%s", diff)
		}
	})
	t.Run("json", func(t *testing.T) {
		srv := &failingMasterData{failAt: 3}
		got := runCmd(t, nil, events.String(), "--addr", startMasterData(t, srv), "masterdata", "apply", "--batch", "2", "--json", "-f", "-")
		if got.code != exitError || !strings.Contains(got.stderr, "batch 3 of 3 (events 5-5) not applied") {
			t.Errorf("exit %d, stderr %q", got.code, got.stderr)
		}
		resp := &tollgatev1.ApplyResponse{}
		if err := tollgate.ParseJSON([]byte(got.stdout), resp); err != nil {
			t.Fatalf("stdout is not the JSON of the applied batches: %v\n%s", err, got.stdout)
		}
		if len(resp.GetResults()) != 4 || resp.GetRevision() != 2 {
			t.Errorf("JSON holds %d results and revision %d, want 4 and 2", len(resp.GetResults()), resp.GetRevision())
		}
	})
	t.Run("single batch fails as before", func(t *testing.T) {
		srv := &failingMasterData{failAt: 1}
		got := runCmd(t, nil, events.String(), "--addr", startMasterData(t, srv), "masterdata", "apply", "-f", "-")
		wantFailure(t, got, exitError, "tollgatectl: masterdata apply: Unavailable: audit store unavailable")
		if diff := cmp.Diff([]int{5}, srv.calls); diff != "" {
			t.Errorf("events per call (-want +got):\n%s", diff)
		}
	})
}
