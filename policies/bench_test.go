package policies_test

import (
	"os"
	"path/filepath"
	"testing"
)

// benchCases names one representative decision case per family.
var benchCases = []struct{ family, cas string }{
	{"VAL", "amount_precision"},
	{"DR", "delegation_valid"},
	{"ERP", "duplicate_invoice_normalized"},
	{"TH", "match_mixed_lines"},
	{"AI", "ai_tier1_taken"},
}

// BenchmarkPack measures one decision per action family through the real
// decision service, unaudited: API validation, the engine's prepared query
// over the embedded pack, go-memdb snapshot builtins and fact recording.
func BenchmarkPack(b *testing.B) {
	ctx := emptyHistory(b)
	compiled := compilePack(b)
	store := newStore(b, os.DirFS(filepath.Join(packDir(b), "testdata", "fixture")), nil)
	byName := map[string]decisionCase{}
	for _, c := range loadCases(b) {
		byName[c.Name] = c
	}
	for _, bc := range benchCases {
		c, ok := byName[bc.cas]
		if !ok {
			b.Fatalf("no case %q", bc.cas)
		}
		srv := newServer(b, compiled, store, c.Now)
		req := parseRequest(b, c.Request)
		b.Run(bc.family, func(b *testing.B) {
			if got, codes := decide(b, ctx, srv, c.Request); got.Primary != c.Expect.Primary {
				b.Fatalf("decide %s: primary %s, want %s (%v)", bc.cas, got.Primary, c.Expect.Primary, codes)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := srv.Decide(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
