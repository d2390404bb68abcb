package engine_test

import (
	"bytes"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/tollgate/tollgate/server/bundles"
	"github.com/tollgate/tollgate/server/engine"
)

// fuzzBundleDirs are the test bundles whose files seed the bundle fuzzers.
var fuzzBundleDirs = []string{"ok", "broken", "conflict", "malformed", "uncompilable", "undefined"}

// FuzzDeserialize feeds arbitrary bytes to Deserialize, which reads bundles from the audit log and from
// bundle servers. It never panics; an accepted bundle serializes, and what it serializes to reads back
// and serializes to the same bytes (Serialize is deterministic on what Deserialize produced).
func FuzzDeserialize(f *testing.F) {
	for _, name := range fuzzBundleDirs {
		b, err := bundles.ReadDir(filepath.Join("testdata", name), nil)
		if err != nil {
			continue // broken on purpose: its files still seed FuzzLoadFS
		}
		data, err := engine.Serialize(b)
		if err != nil {
			f.Fatalf("serialize %s: %v", name, err)
		}
		f.Add(data)
	}
	f.Add([]byte{})
	f.Add([]byte("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := bundles.ReadTarball(data, nil)
		if err != nil {
			if b != nil {
				t.Fatalf("Deserialize returned a bundle with error %v", err)
			}
			return
		}
		once, err := engine.Serialize(b)
		if err != nil {
			t.Fatalf("serialize an accepted bundle: %v", err)
		}
		b2, err := bundles.ReadTarball(once, nil)
		if err != nil {
			t.Fatalf("serialized bundle does not read back: %v", err)
		}
		twice, err := engine.Serialize(b2)
		if err != nil {
			t.Fatalf("serialize the re-read bundle: %v", err)
		}
		if !bytes.Equal(once, twice) {
			t.Fatalf("Serialize(Deserialize(Serialize(b))) differs from Serialize(b): %d vs %d bytes", len(once), len(twice))
		}
	})
}

// FuzzLoadFS loads bundles from file systems built from fuzz input: NUL-separated pairs of a file name
// and its content (names that are not valid fs paths are dropped). It never panics and an error comes
// without a bundle.
func FuzzLoadFS(f *testing.F) {
	for _, name := range fuzzBundleDirs {
		dir := filepath.Join("testdata", name)
		var enc []byte
		err := fs.WalkDir(os.DirFS(dir), ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			content, err := fs.ReadFile(os.DirFS(dir), p)
			enc = append(append(append(append(enc, p...), 0), content...), 0)
			return err
		})
		if err != nil {
			f.Fatalf("read %s: %v", dir, err)
		}
		f.Add(enc)
	}
	f.Add([]byte(".manifest\x00{\"roots\":[\"a\"],\"revision\":\"r\"}\x00a/data.json\x00{\"x\":1}\x00b/data.json\x00[]\x00"))
	f.Add([]byte("x/.manifest\x00{}\x00x/p.rego\x00package x\n\nimport rego.v1\n\np if true\n\x00data.yaml\x00a: [1, 2]\x00"))
	f.Add([]byte(".signatures.json\x00{\"signatures\":[\"e30.e30.e30\"]}\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := fstest.MapFS{}
		parts := bytes.Split(data, []byte{0})
		for i := 0; i+1 < len(parts); i += 2 {
			name := path.Clean(string(parts[i]))
			if fs.ValidPath(name) && name != "." {
				fsys[name] = &fstest.MapFile{Data: parts[i+1], Mode: 0o644}
			}
		}
		b, err := bundles.ReadFS(fsys, nil)
		if err != nil {
			if b != nil {
				t.Fatalf("LoadFS returned a bundle with error %v", err)
			}
			return
		}
		if b == nil {
			t.Fatal("LoadFS returned neither a bundle nor an error")
		}
	})
}

// FuzzDecodeFacts feeds arbitrary bytes to DecodeFacts, which reads the facts_json of stored audit
// records for replay. It never panics; accepted facts re-encode, and decoding the encoding gives the
// same encoding again.
func FuzzDecodeFacts(f *testing.F) {
	for _, s := range []string{
		`[]`, `null`,
		`[{"builtin":"tollgate.md.get","args":["user","u_buyer1"],"result":{"id":"u_buyer1","status":"ACTIVE","roles":["BUYER"],"n":12.50}}]`,
		`[{"builtin":"tollgate.md.lookup","args":["delegation","pair","u1/u2"],"result":[]},{"builtin":"tollgate.md.get","args":["site","X"],"result":null}]`,
		`[{"builtin":"b","args":1e400,"result":-0}]`,
		`[{"builtin":"b","args":["a"],"result":1},{"builtin":"b","args":["a"],"result":2}]`,
		`[{"builtin":"","args":{"k":[true,false,{"z":"\u0000"}]}}]`,
		`[{"builtin":"b<&>","args":["\u2028 é \ud800 \"q\" \\"],"result":{"b":1,"a":[1.5e3,-0.0,null],"<":{}}}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cache, err := engine.DecodeFacts(data)
		if err != nil {
			return
		}
		once, err := engine.EncodeFacts(cache)
		if err != nil {
			t.Fatalf("encode decoded facts: %v", err)
		}
		if ref, err := engine.EncodeFactsReference(cache); err != nil || !bytes.Equal(once, ref) {
			t.Fatalf("facts encoding differs from encoding/json's (%v):\n%s\n%s", err, once, ref)
		}
		again, err := engine.DecodeFacts(once)
		if err != nil {
			t.Fatalf("encoded facts do not decode: %v\n%s", err, once)
		}
		twice, err := engine.EncodeFacts(again)
		if err != nil {
			t.Fatalf("encode re-decoded facts: %v", err)
		}
		if !bytes.Equal(once, twice) {
			t.Fatalf("facts encoding is not stable:\n%s\n%s", once, twice)
		}
	})
}
