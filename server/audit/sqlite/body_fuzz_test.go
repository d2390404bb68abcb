package sqlite

import (
	"bytes"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
)

// FuzzDecodeBody feeds arbitrary row bodies and hash columns to decode, as Get, List and Chain read
// them from a file anyone with disk access may have altered. It never panics; a body it rejects is
// reported as audit.ErrCorrupt; an accepted body keeps its own hash when it has one and otherwise takes
// the column's; and the canonical body of what it decoded decodes to the same record (a record read
// back hashes as it was written).
func FuzzDecodeBody(f *testing.F) {
	rec := &audit.Record{
		DecisionId: "01JDEC", ChainId: "c", Caller: "cn=x", Effect: tollgatev1.Effect_EFFECT_ALLOW,
		Request: &tollgatev1.DecideRequest{Actor: &tollgatev1.Actor{Id: "u_buyer1"}, Action: "PO.SUBMIT"},
		Reasons: []*tollgatev1.Reason{{Code: "PO_WITHIN_BUYER_LIMIT"}}, FactsJson: "[]",
	}
	if err := audit.Seal(rec, 3, audit.GenesisHash()); err != nil {
		f.Fatalf("seal: %v", err)
	}
	withHash, err := audit.Canonical(rec)
	if err != nil {
		f.Fatalf("canonical: %v", err)
	}
	withoutHash, err := audit.CanonicalBody(rec)
	if err != nil {
		f.Fatalf("canonical body: %v", err)
	}
	f.Add(string(withHash), rec.GetHash())
	f.Add(string(withoutHash), rec.GetHash())
	f.Add(`{"seq":"18446744073709551616"}`, []byte{1})
	f.Add(`{"evaluated_at":"10000-01-01T00:00:00Z","latency":"-315576000001s"}`, []byte(nil))
	f.Add(`{"request":{"resource":{"attributes":{"a":[{"b":null}]}}},"effect":7}`, []byte(nil))
	f.Add(`{"hash":"not base64"}`, []byte(nil))
	f.Add(``, []byte(nil))
	f.Fuzz(func(t *testing.T, body string, hash []byte) {
		r, err := decode(body, hash)
		if err != nil {
			if r != nil || !errors.Is(err, audit.ErrCorrupt) {
				t.Fatalf("decode error %v (record %v): want audit.ErrCorrupt and no record", err, r)
			}
			return
		}
		if r == nil {
			t.Fatal("decode returned neither a record nor an error")
		}
		if len(r.GetHash()) == 0 && len(hash) != 0 {
			t.Fatalf("decoded record has no hash, column hash %x", hash)
		}
		canon, err := audit.CanonicalBody(r)
		if err != nil {
			return // e.g. a Struct holding no value: protojson accepts it on input but cannot print it
		}
		again, err := decode(string(canon), r.GetHash())
		if err != nil {
			t.Fatalf("canonical body of a decoded record does not decode: %v\n%s", err, canon)
		}
		if !proto.Equal(r, again) {
			t.Fatalf("decode(canonical body) differs from the decoded record:\n%v\n%v", r, again)
		}
		h1, err1 := audit.Hash(r)
		h2, err2 := audit.Hash(again)
		if (err1 == nil) != (err2 == nil) || !bytes.Equal(h1, h2) {
			t.Fatalf("hash of decoded record %x (%v), of its re-decoded canonical body %x (%v)", h1, err1, h2, err2)
		}
	})
}
