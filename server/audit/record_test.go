package audit_test

import (
	"bytes"
	"encoding/hex"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
)

// TestCanonicalForm pins the documented encoding: JCS over protojson with
// proto names, unpopulated fields omitted, keys sorted, no whitespace.
func TestCanonicalForm(t *testing.T) {
	attrs, _ := structpb.NewStruct(map[string]any{"z": 1.5, "a": "x", "n": 100.0})
	rec := &audit.Record{
		DecisionId:  "01J0",
		ChainId:     "c",
		Seq:         7,
		PrevHash:    []byte{0xff, 0x00},
		EvaluatedAt: timestamppb.New(time.Date(2026, 3, 1, 12, 0, 0, 500_000_000, time.UTC)),
		Request: &tollgatev1.DecideRequest{
			Action:   "po.approve",
			Resource: &tollgatev1.Resource{Type: "po", Attributes: attrs},
			Context:  map[string]string{"b": "2", "a": "1"},
		},
		Effect: tollgatev1.Effect_EFFECT_DENY,
		Kind:   tollgatev1.RecordKind_RECORD_KIND_DECISION,
	}
	got, err := audit.Canonical(rec)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"chain_id":"c","decision_id":"01J0","effect":"EFFECT_DENY","evaluated_at":"2026-03-01T12:00:00.500Z",` +
		`"kind":"RECORD_KIND_DECISION","prev_hash":"/wA=","request":{"action":"po.approve","context":{"a":"1","b":"2"},` +
		`"resource":{"attributes":{"a":"x","n":100,"z":1.5},"type":"po"}},"seq":"7"}`
	if string(got) != want {
		t.Errorf("Canonical:\n got %s\nwant %s", got, want)
	}
}

func TestHashCoversEveryFieldButHash(t *testing.T) {
	rec := audittest.Decision(1)
	if err := audit.Seal(rec, 1, audit.GenesisHash()); err != nil {
		t.Fatal(err)
	}
	again, err := audit.Hash(rec)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, rec.Hash) {
		t.Fatalf("Hash of a sealed record = %x, sealed with %x", again, rec.Hash)
	}
	changes := map[string]func(r *audit.Record){
		"seq":       func(r *audit.Record) { r.Seq = 2 },
		"prev_hash": func(r *audit.Record) { r.PrevHash = bytes.Repeat([]byte{1}, 32) },
		"effect":    func(r *audit.Record) { r.Effect = tollgatev1.Effect_EFFECT_ALLOW },
		"attribute": func(r *audit.Record) {
			r.Request.Resource.Attributes.Fields["amount"] = structpb.NewStringValue("5000.01")
		},
		"facts":  func(r *audit.Record) { r.FactsJson = "[]" },
		"caller": func(r *audit.Record) { r.Caller = "10.0.0.1:1" },
	}
	for name, change := range changes {
		c := proto.Clone(rec).(*audit.Record)
		change(c)
		h, err := audit.Hash(c)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(h, rec.Hash) {
			t.Errorf("changing %s left the hash unchanged", name)
		}
	}
	c := proto.Clone(rec).(*audit.Record)
	c.Hash = []byte("anything")
	if h, _ := audit.Hash(c); !bytes.Equal(h, rec.Hash) {
		t.Errorf("the hash field itself changed the hash")
	}
}

func TestPayloadHash(t *testing.T) {
	key := testPayloadKey(t, 1)
	req := audittest.Decision(1).Request
	withKey := proto.Clone(req).(*tollgatev1.DecideRequest)
	withKey.IdempotencyKey = "k1"
	withKey.WantReceipt = true
	if !bytes.Equal(audit.PayloadHash(key, req), audit.PayloadHash(key, withKey)) {
		t.Errorf("idempotency_key or want_receipt changed the payload hash")
	}
	other := proto.Clone(req).(*tollgatev1.DecideRequest)
	other.Context["workflow_id"] = "other"
	if bytes.Equal(audit.PayloadHash(key, req), audit.PayloadHash(key, other)) {
		t.Errorf("a different context left the payload hash unchanged")
	}
	if bytes.Equal(audit.PayloadHash(key, req), audit.PayloadHash(testPayloadKey(t, 2), req)) {
		t.Errorf("another key gave the same payload hash")
	}
	got := audit.PayloadHash(key, req)
	if len(got) != 33 || got[0] != audit.PayloadHashKeyed {
		t.Errorf("payload hash %s: want the keyed tag and 32 bytes of HMAC-SHA-256", hex.EncodeToString(got))
	}
	if plain := hex.EncodeToString(audit.PlainPayloadHash(req)); len(plain) != 64 {
		t.Errorf("plain payload hash %s is not SHA-256", plain)
	}
}

// TestSealPreparedEqualsSeal checks the committer's fast path against the
// definition, including values crafted to look like the placeholders.
func TestSealPreparedEqualsSeal(t *testing.T) {
	tricky := audittest.Decision(7)
	tricky.Request.Resource.Attributes.Fields["seq"] = structpb.NewStringValue("18446744073709551615")
	tricky.Request.Resource.Attributes.Fields["prev_hash"] = structpb.NewStringValue("//////////////////////////////////////////8=")
	tricky.Request.Context["zzz"] = `"seq":"18446744073709551615"}`
	tricky.FactsJson = `{"prev_hash":"//////////////////////////////////////////8=","seq":"18446744073709551615"}`
	marker := audittest.Decision(3)
	marker.Kind, marker.ReplayOf = tollgatev1.RecordKind_RECORD_KIND_REPLAY, "d001"
	recs := []*audit.Record{audittest.Decision(0), audittest.Decision(1), tricky, marker, {DecisionId: "bare"}}
	prev := audit.GenesisHash()
	for i, r := range recs {
		prep, err := audit.Prepare(r)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasSuffix(prep, []byte(`"seq":"18446744073709551615"}`)) {
			t.Errorf("record %s: prepared form does not end with the seq placeholder; the fast path is not taken", r.DecisionId)
		}
		fast := proto.Clone(r).(*audit.Record)
		body, err := audit.SealPrepared(fast, prep, uint64(i+1), prev)
		if err != nil {
			t.Fatal(err)
		}
		slow := proto.Clone(r).(*audit.Record)
		if err := audit.Seal(slow, uint64(i+1), prev); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fast.Hash, slow.Hash) || fast.Seq != slow.Seq || !bytes.Equal(fast.PrevHash, slow.PrevHash) {
			t.Errorf("record %s: fast seal hash %x, Seal %x", r.DecisionId, fast.Hash, slow.Hash)
		}
		if want, err := audit.CanonicalBody(slow); err != nil || !bytes.Equal(body, want) {
			t.Errorf("record %s: fast seal body\n%s\nwant CanonicalBody\n%s (%v)", r.DecisionId, body, want, err)
		}
		prev = slow.Hash
	}
}
