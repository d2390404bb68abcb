package transparency_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/tollgate/tollgate/server/audit/transparency"
)

// FuzzVerifyCheckpoint: any bytes either verify as a checkpoint that re-signs
// to the same text, or fail with one of the package's errors; never a panic.
func FuzzVerifyCheckpoint(f *testing.F) {
	good := sign(f, testSigner(f), "tollgate/c", 42, leaf("c", 1))
	f.Add(good.Note)
	f.Add([]byte("tollgate/c\n42\n" + leaf("c", 1).String() + "\nextension\n\n— tollgate-test AAAA\n"))
	f.Add([]byte(""))
	v := testVerifier(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		cp, err := transparency.VerifyCheckpoint(b, v, "tollgate/c")
		if err != nil {
			if !errors.Is(err, transparency.ErrMalformed) && !errors.Is(err, transparency.ErrBadSignature) &&
				!errors.Is(err, transparency.ErrOriginMismatch) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if cp.Origin != "tollgate/c" || cp.Size < 0 || !bytes.Equal(cp.Note, b) {
			t.Fatalf("verified %+v from %q", cp, b)
		}
		if !bytes.HasPrefix(b, []byte(cp.Text())) {
			t.Fatalf("verified checkpoint %q does not start with its text %q", b, cp.Text())
		}
	})
}

// FuzzDecodeReceipt: DecodeReceipt never panics; what it accepts encodes
// and decodes back to the same bytes, and verifying it never panics.
func FuzzDecodeReceipt(f *testing.F) {
	recs, hs := sealedChain(f, "r1", 5)
	cp := sign(f, testSigner(f), "tollgate/r1", 5, root(f, hs, "r1", 5))
	good, err := receiptFor(f, hs, recs[3], cp).Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"format":"tollgate-receipt/v1","decision_id":"d","chain_id":"c","leaf_index":0,"leaf_hash":"` +
		leaf("c", 0).String() + `","inclusion_proof":[],"checkpoint":"x"}`))
	f.Add([]byte(`{}`))
	v := testVerifier(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := transparency.DecodeReceipt(b)
		if err != nil {
			if !errors.Is(err, transparency.ErrMalformed) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		enc, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		r2, err := transparency.DecodeReceipt(enc)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", enc, err)
		}
		if enc2, _ := r2.Encode(); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable:\n%s\n%s", enc, enc2)
		}
		_, _ = transparency.VerifyReceipt(r, v, "")
	})
}

// FuzzReadCheckpointFile: the witness file reader never panics and returns
// only whole entries.
func FuzzReadCheckpointFile(f *testing.F) {
	f.Add([]byte("checkpoint 2026-12-03T10:00:00Z 3\nabc\n"))
	f.Add([]byte("checkpoint 2026-12-03T10:00:00Z 99999999999\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := transparency.ReadCheckpointFile(bytes.NewReader(b))
		if err != nil && !errors.Is(err, transparency.ErrMalformed) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		total := 0
		for _, e := range entries {
			total += len(e.Note)
		}
		if total > len(b) {
			t.Fatalf("entries hold %d note bytes from %d input bytes", total, len(b))
		}
	})
}
