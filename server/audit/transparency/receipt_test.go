package transparency_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
	"github.com/tollgate/tollgate/server/audit/transparency"
)

// sealedChain returns n real sealed decision records of chain and a hash
// store holding their tree.
func sealedChain(t testing.TB, chain string, n int) ([]*audit.Record, *transparency.MemoryHashStore) {
	t.Helper()
	recs := make([]*audit.Record, n)
	for i := range recs {
		recs[i] = audittest.Decision(i)
	}
	recs, _ = audittest.Sealed(t, audit.Head{ChainID: chain}, recs...)
	return recs, storeWith(t, chain, recordLeaves(t, recs))
}

func recordLeaves(t testing.TB, recs []*audit.Record) []tlog.Hash {
	t.Helper()
	out := make([]tlog.Hash, len(recs))
	for i, r := range recs {
		h, err := transparency.HashFromBytes(r.Hash)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = h
	}
	return out
}

func receiptFor(t testing.TB, hs transparency.HashStore, rec *audit.Record, cp transparency.Checkpoint) transparency.Receipt {
	t.Helper()
	r, err := transparency.NewReceipt(context.Background(), hs, rec.DecisionId, rec.ChainId, rec.Seq, rec.Hash, cp)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReceiptVerifiesOffline(t *testing.T) {
	recs, hs := sealedChain(t, "r1", 21)
	cp := sign(t, testSigner(t), "tollgate/r1", 21, root(t, hs, "r1", 21))
	v := testVerifier(t)
	for _, rec := range recs {
		r := receiptFor(t, hs, rec, cp)
		// Through the JSON an auditor would hold.
		b, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		r2, err := transparency.DecodeReceipt(b)
		if err != nil {
			t.Fatal(err)
		}
		got, err := transparency.VerifyReceipt(r2, v, "")
		if err != nil {
			t.Fatalf("receipt of seq %d: %v", rec.Seq, err)
		}
		if got.Size != 21 || got.Root != cp.Root {
			t.Errorf("verified checkpoint %+v, want size 21", got)
		}
		body, err := audit.CanonicalBody(rec)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := transparency.VerifyReceiptRecord(r2, v, "tollgate/r1", body); err != nil {
			t.Errorf("receipt of seq %d with its record: %v", rec.Seq, err)
		}
	}
}

// TestReceiptEncodingIsStable pins the JSON form: field order, base64
// hashes, and decode then encode gives the same bytes.
func TestReceiptEncodingIsStable(t *testing.T) {
	recs, hs := sealedChain(t, "r1", 3)
	cp := sign(t, testSigner(t), "tollgate/r1", 3, root(t, hs, "r1", 3))
	r := receiptFor(t, hs, recs[2], cp)
	b, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := `"format": "tollgate-receipt/v1",
  "decision_id": "d002",
  "chain_id": "r1",
  "leaf_index": 2,
  "leaf_hash": "` + tlog.Hash(recs[2].Hash).String() + `",
  "inclusion_proof": [`
	if !strings.HasPrefix(string(b), "{\n  "+want) {
		t.Errorf("receipt JSON starts\n%s\nwant\n{\n  %s", b[:min(len(b), 400)], want)
	}
	r2, err := transparency.DecodeReceipt(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := r2.Encode()
	if !bytes.Equal(b, b2) {
		t.Errorf("decode then encode changed the receipt:\n%s\n%s", b, b2)
	}
}

// TestReceiptRejectsTampering: each part of a receipt is covered.
func TestReceiptRejectsTampering(t *testing.T) {
	recs, hs := sealedChain(t, "r1", 21)
	size := int64(21)
	cp := sign(t, testSigner(t), "tollgate/r1", size, root(t, hs, "r1", size))
	good := receiptFor(t, hs, recs[9], cp)
	v := testVerifier(t)
	if _, err := transparency.VerifyReceipt(good, v, ""); err != nil {
		t.Fatal(err)
	}
	edit := func(f func(r *transparency.Receipt)) transparency.Receipt {
		r := good
		r.InclusionProof = append([]tlog.Hash(nil), good.InclusionProof...)
		f(&r)
		return r
	}
	smaller := sign(t, testSigner(t), "tollgate/r1", 20, root(t, hs, "r1", 20))
	for _, c := range []struct {
		name string
		r    transparency.Receipt
		want error
	}{
		{"changed leaf", edit(func(r *transparency.Receipt) { r.LeafHash = tlog.Hash(recs[10].Hash) }), transparency.ErrProof},
		{"changed leaf index", edit(func(r *transparency.Receipt) { r.LeafIndex = 10 }), transparency.ErrProof},
		{"index beyond the tree", edit(func(r *transparency.Receipt) { r.LeafIndex = size }), transparency.ErrProof},
		{"changed proof hash", edit(func(r *transparency.Receipt) { r.InclusionProof[1][0] ^= 1 }), transparency.ErrProof},
		{"dropped proof hash", edit(func(r *transparency.Receipt) { r.InclusionProof = r.InclusionProof[1:] }), transparency.ErrProof},
		{"size edited in the note", edit(func(r *transparency.Receipt) {
			r.Checkpoint = strings.Replace(r.Checkpoint, "\n21\n", "\n22\n", 1)
		}), transparency.ErrBadSignature},
		{"root edited in the note", edit(func(r *transparency.Receipt) {
			r.Checkpoint = strings.Replace(r.Checkpoint, cp.Root.String(), smaller.Root.String(), 1)
		}), transparency.ErrBadSignature},
		{"checkpoint at another size", edit(func(r *transparency.Receipt) { r.Checkpoint = string(smaller.Note) }), transparency.ErrProof},
		{"checkpoint with another root", edit(func(r *transparency.Receipt) {
			r.Checkpoint = string(sign(t, testSigner(t), "tollgate/r1", size, leaf("x", 0)).Note)
		}), transparency.ErrProof},
		{"checkpoint of another origin", edit(func(r *transparency.Receipt) {
			r.Checkpoint = string(sign(t, testSigner(t), "tollgate/r2", size, cp.Root).Note)
		}), transparency.ErrOriginMismatch},
		{"changed chain id", edit(func(r *transparency.Receipt) { r.ChainID = "r2" }), transparency.ErrOriginMismatch},
		{"signed by another key", edit(func(r *transparency.Receipt) {
			r.Checkpoint = string(sign(t, otherSigner(t), "tollgate/r1", size, cp.Root).Note)
		}), transparency.ErrBadSignature},
		{"signature flipped", edit(func(r *transparency.Receipt) {
			r.Checkpoint = flipSignature(t, r.Checkpoint)
		}), transparency.ErrBadSignature},
		{"other format", edit(func(r *transparency.Receipt) { r.Format = "v0" }), transparency.ErrMalformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := transparency.VerifyReceipt(c.r, v, ""); !errors.Is(err, c.want) {
				t.Errorf("err = %v, want %v", err, c.want)
			}
		})
	}

	// The record itself: another record, or a changed one, does not match.
	body := func(r *audit.Record) []byte {
		b, err := audit.CanonicalBody(r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if _, err := transparency.VerifyReceiptRecord(good, v, "", body(recs[10])); !errors.Is(err, transparency.ErrRecordMismatch) {
		t.Errorf("another record: err = %v, want ErrRecordMismatch", err)
	}
	changed := audittest.Decision(9)
	changed.ChainId, changed.Seq, changed.PrevHash = recs[9].ChainId, recs[9].Seq, recs[9].PrevHash
	changed.Effect = recs[9].Effect + 1
	if _, err := transparency.VerifyReceiptRecord(good, v, "", body(changed)); !errors.Is(err, transparency.ErrRecordMismatch) {
		t.Errorf("changed record: err = %v, want ErrRecordMismatch", err)
	}
	wrongID := good
	wrongID.DecisionID = "d010"
	if _, err := transparency.VerifyReceiptRecord(wrongID, v, "", body(recs[9])); !errors.Is(err, transparency.ErrRecordMismatch) {
		t.Errorf("receipt naming another decision: err = %v, want ErrRecordMismatch", err)
	}
}

func TestDecodeReceiptRejectsMalformed(t *testing.T) {
	recs, hs := sealedChain(t, "r1", 2)
	cp := sign(t, testSigner(t), "tollgate/r1", 2, root(t, hs, "r1", 2))
	good, err := receiptFor(t, hs, recs[0], cp).Encode()
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]string{
		"empty":          "",
		"not JSON":       "receipt",
		"unknown field":  strings.Replace(string(good), `"format"`, `"extra": 1, "format"`, 1),
		"trailing data":  string(good) + "{}",
		"bad hash":       strings.Replace(string(good), `"leaf_hash": "`, `"leaf_hash": "AA`, 1),
		"no checkpoint":  strings.Replace(string(good), `"checkpoint": "`, `"checkpoint": "", "x": "`, 1),
		"negative index": strings.Replace(string(good), `"leaf_index": 0`, `"leaf_index": -1`, 1),
		"other format":   strings.Replace(string(good), transparency.ReceiptFormat, "tollgate-receipt/v9", 1),
		"huge":           string(good) + strings.Repeat(" ", transparency.MaxReceiptSize),
	} {
		if _, err := transparency.DecodeReceipt([]byte(b)); !errors.Is(err, transparency.ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func TestNewReceiptNeedsCoveringCheckpoint(t *testing.T) {
	recs, hs := sealedChain(t, "r1", 5)
	cp := sign(t, testSigner(t), "tollgate/r1", 3, root(t, hs, "r1", 3))
	if _, err := transparency.NewReceipt(context.Background(), hs, recs[4].DecisionId, "r1", recs[4].Seq, recs[4].Hash, cp); !errors.Is(err, transparency.ErrInvalidArgument) {
		t.Errorf("seq 5 against a checkpoint at 3: err = %v, want ErrInvalidArgument", err)
	}
}

// flipSignature changes one base64 character of the last signature in a note
// to another valid one, so the signature parses but does not verify.
func flipSignature(t testing.TB, n string) string {
	t.Helper()
	i := len(n) - 10 // inside the base64 of the last line, before any padding
	if n[i] == '\n' || n[i] == '=' {
		t.Fatal("bad test edit")
	}
	c := byte('A')
	if n[i] == 'A' {
		c = 'B'
	}
	return n[:i] + string(c) + n[i+1:]
}
