package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"iter"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// record builds a decision record evaluated i minutes after 09:00 UTC.
func record(i int, actor, action, resType, resID string, effect tollgatev1.Effect, reasons ...string) *tollgatev1.DecisionRecord {
	r := &tollgatev1.DecisionRecord{
		DecisionId:  fmt.Sprintf("01JQ000000000000000000%04d", i),
		ChainId:     "replica-a",
		Seq:         uint64(i),
		EvaluatedAt: timestamppb.New(time.Date(2026, 3, 2, 9, i, 0, 250_000_000, time.UTC)),
		Request: &tollgatev1.DecideRequest{
			Actor:    &tollgatev1.Actor{Id: actor, Type: tollgatev1.ActorType_ACTOR_TYPE_HUMAN},
			Action:   action,
			Resource: &tollgatev1.Resource{Type: resType, Id: resID},
		},
		Effect: effect,
		Kind:   tollgatev1.RecordKind_RECORD_KIND_DECISION,
	}
	for _, code := range reasons {
		r.Reasons = append(r.Reasons, &tollgatev1.Reason{Code: code})
	}
	return r
}

func TestRecordTable(t *testing.T) {
	replay := record(3, "u_buyer1", "PO.SUBMIT", "purchase_order", "PO-1", tollgatev1.Effect_EFFECT_ALLOW, "PO_WITHIN_LIMIT")
	replay.Kind, replay.ReplayOf = tollgatev1.RecordKind_RECORD_KIND_REPLAY, "01JQ0000000000000000000001"
	var buf bytes.Buffer
	tbl := newRecordTable(&buf)
	tbl.add([]*tollgatev1.DecisionRecord{
		replay,
		record(2, "agent_alloc", "BACKORDER.ALLOCATE", "backorder", "BO-77", tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL, "AI_NEEDS_HUMAN", "AI_LOW_CONFIDENCE"),
	})
	tbl.add([]*tollgatev1.DecisionRecord{
		record(1, "u_buyer1", "PO.SUBMIT", "purchase_order", "PO-1", tollgatev1.Effect_EFFECT_ALLOW, "PO_WITHIN_LIMIT"),
		{DecisionId: "01JQ0000000000000000000000"}, // nothing but an id: every column still has a value
	})
	if err := tbl.finish("tok-2"); err != nil {
		t.Fatalf("finish: %v", err)
	}
	want := `TIME                      DECISION                    ACTOR        ACTION              RESOURCE             EFFECT            REASON
2026-03-02T09:03:00.250Z  01JQ0000000000000000000003  u_buyer1     PO.SUBMIT           purchase_order/PO-1  ALLOW             PO_WITHIN_LIMIT (replay of 01JQ0000000000000000000001)
2026-03-02T09:02:00.250Z  01JQ0000000000000000000002  agent_alloc  BACKORDER.ALLOCATE  backorder/BO-77      REQUIRE_APPROVAL  AI_NEEDS_HUMAN
2026-03-02T09:01:00.250Z  01JQ0000000000000000000001  u_buyer1     PO.SUBMIT           purchase_order/PO-1  ALLOW             PO_WITHIN_LIMIT
-                         01JQ0000000000000000000000  -            -                   -                    UNSPECIFIED       -
next page: --page-token tok-2
`
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("table mismatch (-want +got):\n%s", diff)
	}
}

func TestRecordTableEmpty(t *testing.T) {
	var buf bytes.Buffer
	if err := newRecordTable(&buf).finish(""); err != nil {
		t.Fatalf("finish: %v", err)
	}
	if diff := cmp.Diff("no matching decisions\n", buf.String()); diff != "" {
		t.Errorf("output mismatch (-want +got):\n%s", diff)
	}
}

func TestListRequest(t *testing.T) {
	f := listFlags{
		from: "2026-03-02T09:00:00+01:00", to: "2026-03-02T09:30:00.5Z",
		actor: "u_buyer1", action: "PO.SUBMIT", resourceType: "purchase_order", resourceID: "PO-1",
		effect: "require_approval", reason: "PO_TIER_2_APPROVAL", bundle: "default-2026.03.1", workflow: "wf-77",
		limit: 20, pageToken: "tok",
	}
	got, err := f.request()
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	want := &tollgatev1.ListDecisionsRequest{
		From:           timestamppb.New(time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)),
		To:             timestamppb.New(time.Date(2026, 3, 2, 9, 30, 0, 500_000_000, time.UTC)),
		ActorId:        "u_buyer1",
		Action:         "PO.SUBMIT",
		ResourceType:   "purchase_order",
		ResourceId:     "PO-1",
		Effect:         tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL,
		ReasonCode:     "PO_TIER_2_APPROVAL",
		BundleRevision: "default-2026.03.1",
		WorkflowId:     "wf-77",
		PageSize:       20,
		PageToken:      "tok",
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("request mismatch (-want +got):\n%s", diff)
	}
	for _, spelling := range []string{"DENY", "deny", "EFFECT_DENY"} {
		f := listFlags{effect: spelling}
		got, err := f.request()
		if err != nil || got.GetEffect() != tollgatev1.Effect_EFFECT_DENY {
			t.Errorf("--effect %s: got %v, %v; want DENY", spelling, got.GetEffect(), err)
		}
	}
	empty, err := (&listFlags{}).request()
	if err != nil {
		t.Fatalf("request without flags: %v", err)
	}
	if diff := cmp.Diff(&tollgatev1.ListDecisionsRequest{}, empty, protocmp.Transform()); diff != "" {
		t.Errorf("request without flags is not empty (-want +got):\n%s", diff)
	}
}

func TestPrintVerify(t *testing.T) {
	for _, tc := range []struct {
		name    string
		chain   string
		resp    *tollgatev1.VerifyLogResponse
		want    string
		wantErr string
	}{
		{"ok, every chain", "", &tollgatev1.VerifyLogResponse{Ok: true, RecordsChecked: 1204},
			"OK: 1204 records checked (all chains)\ncheckpoints checked: 0\n", ""},
		{"ok, one chain", "replica-a", &tollgatev1.VerifyLogResponse{Ok: true, RecordsChecked: 3, ChainId: "replica-a",
			TreeSize: 3, RootHash: make([]byte, 32), CheckpointsChecked: 2},
			"OK: 3 records checked (chain replica-a)\ntree: size 3, root AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\ncheckpoints checked: 2\n", ""},
		{"broken", "", &tollgatev1.VerifyLogResponse{
			RecordsChecked: 11, FirstBadSeq: 12, FirstBadDecisionId: "01JQ0000000000000000000012",
			Problem: "hash mismatch:\nstored abc, computed def", ChainId: "replica-b",
		}, `FAILED: chain replica-b does not verify
first bad record: seq 12, decision 01JQ0000000000000000000012
problem: hash mismatch: stored abc, computed def
records checked: 11
checkpoints checked: 0
`, "chain replica-b does not verify at seq 12: hash mismatch: stored abc, computed def"},
		{"truncated tail", "replica-a", &tollgatev1.VerifyLogResponse{
			RecordsChecked: 40, FirstBadSeq: 41, Problem: "truncated tail: head is seq 45",
		}, `FAILED: chain replica-a does not verify
first bad record: seq 41, decision -
problem: truncated tail: head is seq 45
records checked: 40
checkpoints checked: 0
`, "chain replica-a does not verify at seq 41: truncated tail: head is seq 45"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := printVerify(&buf, tc.chain, "", tc.resp)
			if diff := cmp.Diff(tc.want, buf.String()); diff != "" {
				t.Errorf("output mismatch (-want +got):\n%s", diff)
			}
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if gotErr != tc.wantErr {
				t.Errorf("error = %q, want %q", gotErr, tc.wantErr)
			}
		})
	}
}

func TestPrintReplay(t *testing.T) {
	allow := &tollgatev1.DecideResponse{
		Effect:         tollgatev1.Effect_EFFECT_ALLOW,
		Reasons:        []*tollgatev1.Reason{{Code: "PO_WITHIN_LIMIT"}},
		BundleRevision: "default-2026.03.1",
	}
	approval := &tollgatev1.DecideResponse{
		Effect:         tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL,
		Reasons:        []*tollgatev1.Reason{{Code: "PO_TIER_2_APPROVAL"}, {Code: "PO_NEW_SUPPLIER"}},
		Approvers:      []string{"PROCUREMENT_MANAGER"},
		BundleRevision: "default-2026.03.1",
	}
	for _, tc := range []struct {
		name string
		resp *tollgatev1.ReplayDecisionResponse
		want string
	}{
		{"identical", &tollgatev1.ReplayDecisionResponse{Identical: true, Original: allow, Replayed: allow},
			"identical: decision D1 replays to ALLOW [PO_WITHIN_LIMIT] under bundle default-2026.03.1\n"},
		{"different", &tollgatev1.ReplayDecisionResponse{Original: allow, Replayed: approval, Differences: []string{
			"effect: ALLOW -> REQUIRE_APPROVAL",
			`reasons: [PO_WITHIN_LIMIT] -> [PO_TIER_2_APPROVAL PO_NEW_SUPPLIER]`,
			"approvers: [] -> [PROCUREMENT_MANAGER]",
		}}, `DIFFERENT: decision D1 replays differently
recorded: ALLOW [PO_WITHIN_LIMIT] under bundle default-2026.03.1
replayed: REQUIRE_APPROVAL [PO_TIER_2_APPROVAL, PO_NEW_SUPPLIER] approvers [PROCUREMENT_MANAGER] under bundle default-2026.03.1
differences:
  effect: ALLOW -> REQUIRE_APPROVAL
  reasons: [PO_WITHIN_LIMIT] -> [PO_TIER_2_APPROVAL PO_NEW_SUPPLIER]
  approvers: [] -> [PROCUREMENT_MANAGER]
`},
		{"different without a list", &tollgatev1.ReplayDecisionResponse{Original: allow, Replayed: allow}, `DIFFERENT: decision D1 replays differently
recorded: ALLOW [PO_WITHIN_LIMIT] under bundle default-2026.03.1
replayed: ALLOW [PO_WITHIN_LIMIT] under bundle default-2026.03.1
differences:
  (the server listed no differences)
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := printReplay(&buf, "D1", tc.resp); err != nil {
				t.Fatalf("printReplay: %v", err)
			}
			if diff := cmp.Diff(tc.want, buf.String()); diff != "" {
				t.Errorf("output mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// exportPagesOf yields pages of records, as ExportPages does, then err if it
// is not nil.
func exportPagesOf(err error, pages ...[]*tollgatev1.DecisionRecord) iter.Seq2[*tollgatev1.ExportDecisionsResponse, error] {
	return func(yield func(*tollgatev1.ExportDecisionsResponse, error) bool) {
		for _, p := range pages {
			if !yield(&tollgatev1.ExportDecisionsResponse{Records: p}, nil) {
				return
			}
		}
		if err != nil {
			yield(nil, err)
		}
	}
}

// ndjsonIDs parses NDJSON records and returns their decision ids in order.
func ndjsonIDs(t testing.TB, data string) []string {
	t.Helper()
	var ids []string
	sc := bufio.NewScanner(strings.NewReader(data))
	for sc.Scan() {
		rec := &tollgatev1.DecisionRecord{}
		if err := tollgate.ParseJSON(sc.Bytes(), rec); err != nil {
			t.Fatalf("line %q does not read back as a record: %v", sc.Text(), err)
		}
		ids = append(ids, rec.GetDecisionId())
	}
	return ids
}

func TestExportSpooled(t *testing.T) {
	recs := make([]*tollgatev1.DecisionRecord, 8)
	for i := range recs {
		recs[i] = record(i+1, "u1", "PO.SUBMIT", "purchase_order", fmt.Sprint("PO-", i+1), tollgatev1.Effect_EFFECT_DENY, "PO_OVER_LIMIT")
	}
	var buf bytes.Buffer
	if err := exportSpooled(&buf, exportPagesOf(nil, recs[:3], recs[3:6], recs[6:])); err != nil {
		t.Fatalf("exportSpooled: %v", err)
	}
	var want []string
	for _, r := range recs {
		want = append(want, r.GetDecisionId())
	}
	if diff := cmp.Diff(want, ndjsonIDs(t, buf.String())); diff != "" {
		t.Errorf("export order mismatch (-want +got):\n%s", diff)
	}
	// Each line is the whole record, with short enum names.
	first := strings.SplitN(buf.String(), "\n", 2)[0]
	line, err := tollgate.FormatJSONLine(recs[0])
	if err != nil {
		t.Fatal(err)
	}
	if first != string(line) || !strings.Contains(first, `"effect":"DENY"`) {
		t.Errorf("first line = %s\nwant %s", first, line)
	}
}

func TestExportSpooledEdges(t *testing.T) {
	t.Run("no records", func(t *testing.T) {
		var buf bytes.Buffer
		if err := exportSpooled(&buf, exportPagesOf(nil, nil)); err != nil {
			t.Fatalf("exportSpooled: %v", err)
		}
		if buf.Len() != 0 {
			t.Errorf("output = %q, want nothing", buf.String())
		}
	})
	t.Run("error on a later page prints nothing", func(t *testing.T) {
		boom := errors.New("boom")
		var buf bytes.Buffer
		err := exportSpooled(&buf, exportPagesOf(boom, []*tollgatev1.DecisionRecord{record(1, "u1", "A", "t", "i", tollgatev1.Effect_EFFECT_ALLOW)}))
		if !errors.Is(err, boom) {
			t.Errorf("error = %v, want boom", err)
		}
		if buf.Len() != 0 {
			t.Errorf("a failed export printed %q; an archive must not get a partial export", buf.String())
		}
	})
}
