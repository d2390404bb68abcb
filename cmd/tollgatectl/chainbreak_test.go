package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// TestRecordTableChainBreak: a chain-break record has no request and no effect; its row says what it
// is and who accepted what instead of UNSPECIFIED and dashes.
func TestRecordTableChainBreak(t *testing.T) {
	var buf bytes.Buffer
	tbl := newRecordTable(&buf)
	tbl.add([]*tollgatev1.DecisionRecord{{
		DecisionId: "chain-break-default-41", ChainId: "default", Seq: 41,
		EvaluatedAt: timestamppb.New(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)),
		Kind:        tollgatev1.RecordKind_RECORD_KIND_CHAIN_BREAK,
		ChainBreak:  &tollgatev1.ChainBreak{AcceptedBy: "ops@host-1", Problem: "records after seq 33 are missing: the head names seq 40"},
	}})
	if err := tbl.finish(""); err != nil {
		t.Fatal(err)
	}
	row := strings.Split(buf.String(), "\n")[1]
	for _, want := range []string{"chain-break-default-41", "CHAIN_BREAK", "accepted by ops@host-1: records after seq 33 are missing: the head names seq 40"} {
		if !strings.Contains(row, want) {
			t.Errorf("row %q lacks %q", row, want)
		}
	}
	if strings.Contains(row, "UNSPECIFIED") {
		t.Errorf("row %q shows an effect for a record that has none", row)
	}
}
