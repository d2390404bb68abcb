package perf_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate/tollgate/policies"
	"github.com/tollgate/tollgate/server/bundles"
	"github.com/tollgate/tollgate/server/engine"
	"github.com/tollgate/tollgate/server/history"
	"github.com/tollgate/tollgate/test/perf"
)

// packViewNames are the views of server/history/testdata/pack_views.json, policy-pack §6's four.
var packViewNames = []string{"ai_daily_value", "credit_memo_velocity", "invoice_posted", "po_split"}

// packWithViews returns the embedded pack with its data.json extended by the views of
// server/history/testdata/pack_views.json and a rule parameter beside them under params.history: the
// pack as it is once it declares §6's views, whatever the pack on this branch declares.
func packWithViews(tb testing.TB) (fstest.MapFS, map[string]any) {
	tb.Helper()
	pack := fstest.MapFS{}
	err := fs.WalkDir(policies.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(policies.FS, path)
		pack[path] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	data := decode(tb, pack["data.json"].Data)
	views := decode(tb, readFile(tb, filepath.Join("..", "..", "server", "history", "testdata", "pack_views.json")))
	params := data["params"].(map[string]any)
	h, _ := params["history"].(map[string]any)
	if h == nil {
		h = map[string]any{}
		params["history"] = h
	}
	h["views"] = views["params"].(map[string]any)["history"].(map[string]any)["views"]
	h["credit_memo_velocity"] = map[string]any{"max_prior": json.Number("3")}
	b, err := json.Marshal(data)
	if err != nil {
		tb.Fatal(err)
	}
	pack["data.json"] = &fstest.MapFile{Data: b}
	return pack, data
}

func decode(tb testing.TB, b []byte) map[string]any {
	tb.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		tb.Fatal(err)
	}
	return v
}

func readFile(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestWriteWithoutHistoryViews: the variant is the pack with params.history.views gone and nothing
// else of its data changed, every Rego module but the tests byte for byte, a revision that says what
// it is; the engine compiles it and it declares no views, and stock OPA's bundle can be written from
// it but not from the pack with views.
func TestWriteWithoutHistoryViews(t *testing.T) {
	pack, data := packWithViews(t)
	dir := t.TempDir()
	names, err := perf.WriteWithoutHistoryViews(dir, pack)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(packViewNames, names); diff != "" {
		t.Errorf("views removed (-want +got):\n%s", diff)
	}

	got := decode(t, readFile(t, filepath.Join(dir, "data.json")))
	delete(data["params"].(map[string]any)["history"].(map[string]any), "views")
	if diff := cmp.Diff(data, got); diff != "" {
		t.Errorf("data.json (-pack without views +written):\n%s", diff)
	}
	if vs, err := history.Parse(readFile(t, filepath.Join(dir, "data.json"))); err != nil || len(vs.Names()) != 0 {
		t.Errorf("written data declares views %v (err %v), want none", vs.Names(), err)
	}

	modules, tests := 0, 0
	for path, f := range pack {
		switch {
		case path == "data.json":
		case path == ".manifest":
			m := decode(t, readFile(t, filepath.Join(dir, ".manifest")))
			if rev, _ := m["revision"].(string); !strings.HasSuffix(rev, "+no-history-views") || len(m["roots"].([]any)) != 2 {
				t.Errorf(".manifest written as %v", m)
			}
		case bundles.TestFile(path):
			tests++
			if _, err := os.Stat(filepath.Join(dir, path)); !os.IsNotExist(err) {
				t.Errorf("%s: the pack's Rego test was written (stat: %v)", path, err)
			}
		default:
			modules++
			if b, err := os.ReadFile(filepath.Join(dir, path)); err != nil || !bytes.Equal(b, f.Data) {
				t.Errorf("%s: not copied as it is (err %v)", path, err)
			}
		}
	}
	if modules < 5 || tests == 0 {
		t.Fatalf("the pack has %d modules and %d test files: the fixture tests nothing", modules, tests)
	}

	b, err := bundles.ReadDir(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Compile(context.Background(), b); err != nil {
		t.Fatalf("engine does not compile the variant: %v", err)
	}

	extra := map[string]any{"masterdata": map[string]any{}}
	if err := perf.WriteOPABundle(t.TempDir(), os.DirFS(dir), os.DirFS("opa"), extra); err != nil {
		t.Errorf("stock-OPA bundle of the variant: %v", err)
	}
	err = perf.WriteOPABundle(t.TempDir(), pack, os.DirFS("opa"), extra)
	if err == nil || !strings.Contains(err.Error(), "history views") {
		t.Errorf("stock-OPA bundle of the pack with views: err %v, want a refusal naming its history views", err)
	}
}

// TestCorpusExercisesHistory: the perf corpus reaches every view of policy-pack §6 on more than one
// key, so the server with views looks up, locks and observes for each of the four rules.
func TestCorpusExercisesHistory(t *testing.T) {
	corpus, err := perf.Corpus(corpusSeed, 1200, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	pack, _ := packWithViews(t)
	cov, err := perf.HistoryCoverage(pack["data.json"].Data, corpus)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range packViewNames {
		if c := cov[v]; c.Requests < 10 || c.Keys < 2 {
			t.Errorf("view %s: %d corpus requests on %d keys, want at least 10 on 2", v, c.Requests, c.Keys)
		}
	}
	t.Logf("coverage of %d requests: %+v", len(corpus), cov)
}

// TestOPATwinPrior: test/perf/opa/prior.rego defines what the pack's prior.rego defines, when the
// pack has one (the history rules), so the stock-OPA bundle keeps up with it.
func TestOPATwinPrior(t *testing.T) {
	if _, err := fs.Stat(policies.FS, "tollgate/prior.rego"); err != nil {
		t.Skip("the pack has no tollgate/prior.rego (no history rules yet)")
	}
	extra := map[string]any{"masterdata": map[string]any{}}
	if err := perf.WriteOPABundle(t.TempDir(), packWithoutViews(t), os.DirFS("opa"), extra); err != nil {
		t.Fatal(err)
	}
}
