package audit_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"math"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
)

// FuzzHash checks Canonical, Hash and Seal on decision records unmarshalled from arbitrary protobuf
// bytes (as a corrupted or hostile store could hand them back). They never panic and are
// deterministic; Hash does not modify its record, ignores the hash field and is SHA-256 of the
// canonical form without it; the canonical form is JSON that protojson decodes (as the store decodes
// a body) to a record with the same hash; a sealed record's hash is Hash of it.
func FuzzHash(f *testing.F) {
	attrs, err := structpb.NewStruct(map[string]any{
		"amount": "8000.00", "currency": "USD", "lines": []any{map[string]any{"qty": 2.0, "ok": true, "x": nil}},
		"big": 1e300, "tiny": 5e-324, "neg": -0.0,
	})
	if err != nil {
		f.Fatalf("struct: %v", err)
	}
	rec := &audit.Record{
		DecisionId: "01JDEC", ChainId: "replica-1",
		EvaluatedAt: timestamppb.New(time.Date(2026, 11, 20, 10, 0, 0, 123456789, time.UTC)),
		Caller:      "cn=orchestrator",
		Request: &tollgatev1.DecideRequest{
			Actor:    &tollgatev1.Actor{Id: "u_buyer1", Type: tollgatev1.ActorType_ACTOR_TYPE_HUMAN},
			Action:   "PO.SUBMIT",
			Resource: &tollgatev1.Resource{Type: "purchase_order", Id: "PO-1001", Attributes: attrs},
			Context:  map[string]string{"workflow_id": "wf-77", "é": "\u2028<>&"},
			Ai:       &tollgatev1.AI{Confidence: 1e21, Mode: tollgatev1.AIMode_AI_MODE_EXECUTE},
		},
		Effect:             tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL,
		Reasons:            []*tollgatev1.Reason{{Code: "PO_TIER_2_APPROVAL", Message: "8000.00 > 5000.00"}},
		Approvers:          []string{"PROCUREMENT_MANAGER"},
		BundleRevision:     "r1@abcdef",
		MasterdataRevision: math.MaxUint64,
		FactsJson:          `[{"builtin":"tollgate.md.get","args":["user","u_buyer1"],"result":null}]`,
		IdempotencyKey:     "evt-0001",
		PayloadHash:        bytes.Repeat([]byte{7}, 32),
		Latency:            durationpb.New(1234567 * time.Nanosecond),
		Kind:               tollgatev1.RecordKind(1),
		ReplayOf:           "01JOLD",
	}
	if err := audit.Seal(rec, 42, audit.GenesisHash()); err != nil {
		f.Fatalf("seal seed: %v", err)
	}
	for _, m := range []*audit.Record{rec, {}, {Seq: 1, PrevHash: audit.GenesisHash()}} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatalf("marshal seed: %v", err)
		}
		f.Add(b, uint64(7), []byte{1, 2, 3})
	}
	f.Add([]byte{0x42, 0x00}, uint64(0), []byte(nil))

	f.Fuzz(func(t *testing.T, data []byte, seq uint64, prev []byte) {
		rec := &audit.Record{}
		if err := proto.Unmarshal(data, rec); err != nil {
			return
		}
		orig := proto.Clone(rec).(*audit.Record)

		c1, err1 := audit.Canonical(rec)
		c2, err2 := audit.Canonical(rec)
		if (err1 == nil) != (err2 == nil) || !bytes.Equal(c1, c2) {
			t.Fatalf("Canonical is not deterministic: %q (%v) vs %q (%v)", c1, err1, c2, err2)
		}
		h1, err1 := audit.Hash(rec)
		h2, err2 := audit.Hash(rec)
		if (err1 == nil) != (err2 == nil) || !bytes.Equal(h1, h2) {
			t.Fatalf("Hash is not deterministic: %x (%v) vs %x (%v)", h1, err1, h2, err2)
		}
		if !proto.Equal(orig, rec) {
			t.Fatal("Canonical or Hash modified the record")
		}
		other := proto.Clone(rec).(*audit.Record)
		other.Hash = append(other.Hash, 0xAB)
		if h, err := audit.Hash(other); (err == nil) != (err1 == nil) || !bytes.Equal(h, h1) {
			t.Fatalf("Hash depends on the hash field: %x vs %x", h, h1)
		}
		if err1 != nil {
			return // not encodable (e.g. a NaN in a Struct or an out-of-range timestamp): an error, not a panic
		}

		unhashed := proto.Clone(rec).(*audit.Record)
		unhashed.Hash = nil
		body, err := audit.Canonical(unhashed)
		if err != nil {
			t.Fatalf("Hash succeeded but Canonical of the record without hash fails: %v", err)
		}
		if sum := sha256.Sum256(body); !bytes.Equal(sum[:], h1) {
			t.Fatalf("Hash %x is not SHA-256 of the canonical form without hash %x", h1, sum)
		}
		if !json.Valid(body) {
			t.Fatalf("canonical form is not JSON: %q", body)
		}
		back := &audit.Record{}
		if err := protojson.Unmarshal(body, back); err != nil {
			t.Fatalf("canonical form does not decode: %v\n%s", err, body)
		}
		if h, err := audit.Hash(back); err != nil || !bytes.Equal(h, h1) {
			t.Fatalf("decoded canonical form hashes to %x (%v), want %x\n%s", h, err, h1, body)
		}

		sealed := proto.Clone(rec).(*audit.Record)
		if err := audit.Seal(sealed, seq, prev); err != nil {
			t.Fatalf("Seal fails where Hash succeeds: %v", err)
		}
		if sealed.GetSeq() != seq || !bytes.Equal(sealed.GetPrevHash(), prev) {
			t.Fatalf("Seal set seq %d prev %x, want %d %x", sealed.GetSeq(), sealed.GetPrevHash(), seq, prev)
		}
		if h, err := audit.Hash(sealed); err != nil || !bytes.Equal(h, sealed.GetHash()) {
			t.Fatalf("sealed hash %x, Hash gives %x (%v)", sealed.GetHash(), h, err)
		}
	})
}
