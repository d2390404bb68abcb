package api

import (
	"testing"
)

// FuzzExportToken feeds arbitrary page tokens to ExportDecisions' decoder, which parses caller input:
// it must never panic, and whatever it accepts must name a real position (seq above zero, a chain id)
// that encodes back to a token decoding to the same position.
func FuzzExportToken(f *testing.F) {
	f.Add(encodeExportToken(exportPosition{chainID: "default", seq: 1}))
	f.Add(encodeExportToken(exportPosition{chainID: "replica|a b", seq: 18446744073709551615}))
	f.Add("")
	f.Add("ZTA")          // "e0"
	f.Add("ZTF8")         // "e1|"
	f.Add("MTcwMDAwfGFi") // a ListDecisions-style token
	f.Add("!!not-base64!!")
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := decodeExportToken(tok)
		if err != nil {
			return
		}
		if p.seq == 0 || p.chainID == "" {
			t.Fatalf("decodeExportToken(%q) accepted %+v", tok, p)
		}
		again, err := decodeExportToken(encodeExportToken(p))
		if err != nil || again != p {
			t.Fatalf("position %+v does not survive a round trip: %+v, %v", p, again, err)
		}
	})
}
