package transparency_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/tollgate/tollgate/server/audit/transparency"
)

// Fixed test keys, so the committed fuzz seeds carry valid signatures.
const (
	testSignerKey   = "PRIVATE+KEY+tollgate-test+d53d0056+Aco5W1cm8FjQ550/B0T19LO2upFMeHF72rTrcLeDPz2h"
	testVerifierKey = "tollgate-test+d53d0056+AYP31MxgKpDLUzRqy/MapahjVBY1lk6T0p6CARhuf43S"
	otherSignerKey  = "PRIVATE+KEY+other-test+f25b0b71+Ad1NcAwKzZah5MP8f7uZs58WHIF491TNPkQHZtudb+PC"
)

func testSigner(tb testing.TB) note.Signer {
	tb.Helper()
	return mustSigner(tb, testSignerKey)
}

func otherSigner(tb testing.TB) note.Signer {
	tb.Helper()
	return mustSigner(tb, otherSignerKey)
}

func mustSigner(tb testing.TB, key string) note.Signer {
	tb.Helper()
	s, err := note.NewSigner(key)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func testVerifier(tb testing.TB) note.Verifier {
	tb.Helper()
	v, err := transparency.ParseVerifier(testVerifierKey)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// leaf is a stand-in record hash: SHA-256 of "record <chain> <i>".
func leaf(chain string, i int) tlog.Hash {
	return sha256.Sum256(fmt.Appendf(nil, "record %s %d", chain, i))
}

func leaves(chain string, from, to int) []tlog.Hash {
	var out []tlog.Hash
	for i := from; i < to; i++ {
		out = append(out, leaf(chain, i))
	}
	return out
}

// appendLeaves appends hs to chain in s and fails the test on an error.
func appendLeaves(tb testing.TB, s transparency.HashStore, chain string, hs []tlog.Hash) int64 {
	tb.Helper()
	n, err := transparency.Append(context.Background(), s, chain, hs)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// storeWith returns a memory store holding chain with hs as its leaves.
func storeWith(tb testing.TB, chain string, hs []tlog.Hash) *transparency.MemoryHashStore {
	tb.Helper()
	s := transparency.NewMemoryHashStore()
	appendLeaves(tb, s, chain, hs)
	return s
}

func root(tb testing.TB, s transparency.HashStore, chain string, size int64) tlog.Hash {
	tb.Helper()
	h, err := transparency.TreeRoot(context.Background(), s, chain, size)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

func sign(tb testing.TB, s note.Signer, origin string, size int64, r tlog.Hash) transparency.Checkpoint {
	tb.Helper()
	cp, err := transparency.SignCheckpoint(s, origin, size, r, testTime)
	if err != nil {
		tb.Fatal(err)
	}
	return cp
}
