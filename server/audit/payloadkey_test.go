package audit_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
)

// testPayloadKey returns a fixed key; equal n, equal key.
func testPayloadKey(tb testing.TB, n byte) *audit.PayloadKey {
	tb.Helper()
	k, err := audit.NewPayloadKey(bytes.Repeat([]byte{n}, audit.PayloadKeySize))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func TestNewPayloadKey(t *testing.T) {
	if _, err := audit.NewPayloadKey(make([]byte, audit.PayloadKeySize-1)); err == nil {
		t.Errorf("a 31-byte key was accepted")
	}
	a, b := testPayloadKey(t, 1), testPayloadKey(t, 2)
	if len(a.ID()) != 16 || bytes.Equal(a.ID(), b.ID()) || !bytes.Equal(a.ID(), testPayloadKey(t, 1).ID()) {
		t.Errorf("key ids %x, %x: want 16 bytes, equal for equal keys only", a.ID(), b.ID())
	}
	if bytes.Contains(a.ID(), a.Secret()[:8]) {
		t.Errorf("the key id shows the secret")
	}
	g1, err := audit.GeneratePayloadKey()
	if err != nil {
		t.Fatal(err)
	}
	g2, _ := audit.GeneratePayloadKey()
	if len(g1.Secret()) != audit.PayloadKeySize || bytes.Equal(g1.Secret(), g2.Secret()) {
		t.Errorf("generated keys: want %d random bytes each", audit.PayloadKeySize)
	}
}

// accountRequest is a keyed request whose bank account ends in the four digits n.
func accountRequest(n int) *tollgatev1.DecideRequest {
	req := audittest.Decision(1).Request
	req.Resource.Attributes.Fields["bank_account"] = structpb.NewStringValue(fmt.Sprintf("DE4450010517540732%04d", n))
	req.IdempotencyKey = "evt-1"
	return req
}

// TestPayloadHashResistsEnumeration logs a decision whose bank account is masked and tries every
// value of its four unknown digits against the stored payload hash, as someone reading the log
// would: with the plain SHA-256 of the payload (what payload_hash was before it was keyed) no value
// may match; with the key the right one does, so the enumeration itself is sound.
func TestPayloadHashResistsEnumeration(t *testing.T) {
	ctx := context.Background()
	key := testPayloadKey(t, 7)
	s := openStore(t, t.TempDir())
	w := newWriter(t, audit.Config{PayloadKey: key, MaskPaths: []string{"resource.attributes.bank_account"}}, s)
	rec := audittest.Decision(1)
	rec.Request = accountRequest(4931)
	rec.IdempotencyKey = "evt-1"
	if _, _, err := w.Write(ctx, rec); err != nil {
		t.Fatal(err)
	}
	stored, err := s.Get(ctx, rec.DecisionId)
	if err != nil {
		t.Fatal(err)
	}
	if got := stored.GetRequest().GetResource().GetAttributes().GetFields()["bank_account"].GetStringValue(); got != audit.Masked {
		t.Fatalf("stored bank_account = %q, want it masked", got)
	}
	var plain, keyed []int
	for n := range 10000 {
		guess := accountRequest(n)
		c := proto.Clone(guess).(*tollgatev1.DecideRequest)
		c.IdempotencyKey = ""
		b, err := audit.Canonical(c)
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(b); bytes.Equal(sum[:], stored.PayloadHash) {
			plain = append(plain, n)
		}
		if bytes.Equal(audit.PayloadHash(key, guess), stored.PayloadHash) {
			keyed = append(keyed, n)
		}
	}
	if len(plain) != 0 {
		t.Errorf("the plain hash of account digits %v matches the stored payload hash: the masked field is recoverable", plain)
	}
	if len(keyed) != 1 || keyed[0] != 4931 {
		t.Errorf("with the key the enumeration found %v, want [4931]", keyed)
	}
}

// TestIdempotencyOfPlainHashedRecords stores a keyed decision as the code before keyed payload
// hashes wrote it (payload_hash the plain SHA-256 of the payload), then retries it through a
// writer with a key: the same payload must be recognised as the retry, another payload as a
// conflict, also across a restart of the writer.
func TestIdempotencyOfPlainHashedRecords(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	old := audittest.Decision(1)
	old.Request = accountRequest(4931)
	old.IdempotencyKey, old.Caller = "evt-1", "erp (token)"
	c := proto.Clone(old.Request).(*tollgatev1.DecideRequest)
	c.IdempotencyKey = ""
	b, err := audit.Canonical(c)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	old.PayloadHash = sum[:]
	sealed, _ := audittest.Sealed(t, audit.Head{ChainID: "test"}, old)
	if err := s.Append(ctx, audit.Head{ChainID: "test"}, audittest.Entries(t, sealed...)); err != nil {
		t.Fatal(err)
	}

	key := testPayloadKey(t, 3)
	for restart := range 2 {
		w := newWriter(t, audit.Config{PayloadKey: key}, s)
		retry := audittest.Decision(2)
		retry.DecisionId = fmt.Sprintf("retry-%d", restart)
		retry.Request, retry.IdempotencyKey, retry.Caller = accountRequest(4931), "evt-1", "erp (token)"
		marker, replayOf, err := w.Write(ctx, retry)
		if err != nil || replayOf.GetDecisionId() != old.DecisionId || marker.GetKind() != tollgatev1.RecordKind_RECORD_KIND_REPLAY {
			t.Errorf("start %d: retry of a plain-hashed decision: marker %v, replayOf %q, err %v; want a replay of %s",
				restart, marker.GetKind(), replayOf.GetDecisionId(), err, old.DecisionId)
		}
		conflict := proto.Clone(retry).(*audit.Record)
		conflict.DecisionId = fmt.Sprintf("conflict-%d", restart)
		conflict.Request = accountRequest(4932)
		var ce *audit.ConflictError
		if _, _, err := w.Write(ctx, conflict); !errors.As(err, &ce) || ce.OriginalID != old.DecisionId {
			t.Errorf("start %d: another payload under the key: err = %v, want a ConflictError naming %s", restart, err, old.DecisionId)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if rep := verify(t, s, "test"); !rep.OK || rep.RecordsChecked != 3 {
		t.Errorf("Verify = %+v; want OK with the decision and two markers", rep)
	}
}

// TestIdempotencyNeedsTheSameKey shows why the key must be kept: a writer with another key cannot
// tell a retry from a conflict, and fails closed by refusing it as a conflict.
func TestIdempotencyNeedsTheSameKey(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	w := newWriter(t, audit.Config{PayloadKey: testPayloadKey(t, 1)}, s)
	rec := audittest.Decision(1)
	rec.IdempotencyKey = "k"
	if _, _, err := w.Write(ctx, rec); err != nil {
		t.Fatal(err)
	}
	w.Close()
	w2 := newWriter(t, audit.Config{PayloadKey: testPayloadKey(t, 2)}, s)
	retry := proto.Clone(rec).(*audit.Record)
	retry.DecisionId = "retry"
	if _, _, err := w2.Write(ctx, retry); !errors.Is(err, audit.ErrDuplicate) {
		t.Errorf("retry under another key: err = %v, want a conflict (ErrDuplicate)", err)
	}
}

// BenchmarkPayloadHash compares the keyed payload hash of a decision's request with the plain
// SHA-256 it replaced; both are dominated by the canonical encoding.
func BenchmarkPayloadHash(b *testing.B) {
	req := accountRequest(4931)
	key := testPayloadKey(b, 1)
	b.Run("plain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			audit.PlainPayloadHash(req)
		}
	})
	b.Run("keyed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			audit.PayloadHash(key, req)
		}
	})
}
