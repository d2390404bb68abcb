package audit_test

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
)

// TestPayloadHashIgnoresWantReceipt: asking for a receipt says how to answer, not what to decide,
// so a retry that asks for one is the same payload (a replay, not a conflict).
func TestPayloadHashIgnoresWantReceipt(t *testing.T) {
	req := audittest.Decision(1).Request
	withReceipt := proto.Clone(req).(*tollgatev1.DecideRequest)
	withReceipt.WantReceipt = true
	key, err := audit.GeneratePayloadKey()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(audit.PayloadHash(key, req), audit.PayloadHash(key, withReceipt)) {
		t.Errorf("want_receipt changed the payload hash")
	}
	if !bytes.Equal(audit.PlainPayloadHash(req), audit.PlainPayloadHash(withReceipt)) {
		t.Errorf("want_receipt changed the plain payload hash")
	}
}
