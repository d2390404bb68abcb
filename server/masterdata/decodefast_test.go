package masterdata

import (
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate/tollgate/bundles/demo"
)

// FuzzDecodeFast checks decodeFast against encoding/json (decodeJSON): whatever line decodeFast accepts,
// encoding/json accepts too and decodes to the same Event. Lines it declines are encoding/json's alone.
func FuzzDecodeFast(f *testing.F) {
	files, err := fs.Glob(demo.FS, "*.ndjson")
	if err != nil || len(files) == 0 {
		f.Fatalf("list demo data: %v (%d files)", err, len(files))
	}
	for _, name := range files {
		raw, err := fs.ReadFile(demo.FS, name)
		if err != nil {
			f.Fatal(err)
		}
		for line := range strings.SplitSeq(strings.TrimSpace(string(raw)), "\n") {
			f.Add([]byte(line))
		}
	}
	for _, s := range fastDecodeCases {
		f.Add([]byte(s.line))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := decodeFast(b)
		if !ok {
			return
		}
		want, err := decodeJSON(b)
		if err != nil {
			t.Fatalf("decodeFast accepted %q, encoding/json: %v", b, err)
		}
		if diff := cmp.Diff(want, fast); diff != "" {
			t.Fatalf("%q (-encoding/json +decodeFast):\n%s", b, diff)
		}
	})
}

// fastDecodeCases are lines decodeFast must take itself (fast) or leave to encoding/json.
var fastDecodeCases = []struct {
	line string
	fast bool
}{
	{`{"event_id":"e","kind":"site","key":"DC1","version":7,"op":"UPSERT","record":{"status":"ACTIVE","n":-1.5e+3,"l":[],"o":{},"x":[true,false,null,{"a":[0]}]}}`, true},
	{` { "version" : 18446744073709551615 , "record" : null } `, true},
	{`{}`, true},
	{`{"record":{"a":1,"a":2}}`, true}, // the last value wins in both
	{`{"key":"Grüße – ✓"}`, true},
	{`{"version":18446744073709551616}`, false}, // overflows uint64
	{`{"version":1.0}`, false},
	{`{"version":-0}`, false},
	{`{"version":"1"}`, false},
	{`{"key":null}`, false},
	{`{"Key":"K"}`, false}, // encoding/json folds case
	{`{"key":"a","key":"b"}`, false},
	{`{"unknown":1}`, false},
	{`{"key":"a\u0041"}`, false},
	{`{"key":"a\"b"}`, false},
	{"{\"key\":\"\xff\"}", false},
	{"{\"key\":\"a\tb\"}", false},
	{`{"record":{"n":01}}`, false},
	{`{"record":{"n":1.}}`, false},
	{`{"record":{"n":.5}}`, false},
	{`{"record":{"n":1e}}`, false},
	{`{"record":[1]}`, false},
	{`{"record":{"a":1,}}`, false},
	{`{"record":{"a":[1,]}}`, false},
	{`{"key":"a",}`, false},
	{`{"key":"a"} x`, false},
	{`{"key":"a"}{}`, false},
	{`[]`, false},
	{`{"record":` + strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 41), false}, // deeper than maxFastDepth
}

func TestDecodeFast(t *testing.T) {
	for _, tt := range fastDecodeCases {
		_, ok := decodeFast([]byte(tt.line))
		if ok != tt.fast {
			t.Errorf("decodeFast(%q) ok = %v, want %v", tt.line, ok, tt.fast)
		}
	}
}

// TestDecodeFastShares: one parser reads many lines, sharing the strings and numbers it read before, and
// still decodes each line as encoding/json does: a string and a number of the same text stay apart, and
// past maxShared distinct values new ones are read but no longer kept.
func TestDecodeFastShares(t *testing.T) {
	var p fastParser
	for i := range maxShared + 500 {
		line := fmt.Sprintf(`{"event_id":"e%d","kind":"site","key":"K%d","version":1,"op":"UPSERT",`+
			`"record":{"s":"v%d","n":%d,"t":"1","u":1,"f%d":"ACTIVE","l":["1",1]}}`, i, i, i, i, i%7)
		fast, ok := p.decode([]byte(line))
		if !ok {
			t.Fatalf("line %d: decodeFast declined %s", i, line)
		}
		want, err := decodeJSON([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, fast); diff != "" {
			t.Fatalf("line %d (-encoding/json +decodeFast):\n%s", i, diff)
		}
	}
	if len(p.strings) != maxShared || len(p.numbers) != maxShared {
		t.Errorf("parser keeps %d strings and %d numbers, want %d each", len(p.strings), len(p.numbers), maxShared)
	}
}
