package perf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/tollgate/tollgate/server/bundles"
	"github.com/tollgate/tollgate/server/history"
)

// WriteWithoutHistoryViews writes into dir the policy pack in pack (a bundle file system: .manifest,
// data.json, tollgate/**.rego) with params.history.views removed from its data: the pack's rules then
// make no history look-ups, and the service takes no per-key locks and observes nothing, so it is the
// baseline that the cost of history is measured against. The rest of the data (the rules' other
// history parameters among it) is kept as it is, the manifest's revision gets "+no-history-views" so
// its records are told apart, and the pack's Rego tests are left out: they test the pack with its
// views (a rule that fires on a mocked look-up), which this variant deliberately is not, and the
// activation gate would refuse it for them. It returns the names of the views removed.
func WriteWithoutHistoryViews(dir string, pack fs.FS) ([]string, error) {
	raw, err := fs.ReadFile(pack, "data.json")
	if err != nil {
		return nil, fmt.Errorf("read pack data: %w", err)
	}
	data, err := decodeJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("decode pack data: %w", err)
	}
	views, err := HistoryViews(raw)
	if err != nil {
		return nil, err
	}
	if params, ok := data["params"].(map[string]any); ok {
		if h, ok := params["history"].(map[string]any); ok {
			delete(h, "views")
		}
	}
	err = fs.WalkDir(pack, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path == "data.json" || bundles.TestFile(path) {
			return err
		}
		src, err := fs.ReadFile(pack, path)
		if err != nil {
			return err
		}
		if path == ".manifest" {
			if src, err = reviseManifest(src, "+no-history-views"); err != nil {
				return err
			}
		}
		out := filepath.Join(dir, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(out, src, 0o644)
	})
	if err != nil {
		return nil, fmt.Errorf("copy pack: %w", err)
	}
	if err := writeJSON(filepath.Join(dir, "data.json"), data); err != nil {
		return nil, err
	}
	return views, nil
}

// HistoryViews returns the names of the history views the bundle data in data declares, sorted; none
// when it declares none. Malformed views are an error, as at the activation gate.
func HistoryViews(data []byte) ([]string, error) {
	vs, err := history.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("pack history views: %w", err)
	}
	return slices.Sorted(slices.Values(vs.Names())), nil
}

// HistoryCoverage returns, per view of the bundle data in data, how many corpus requests it would count
// (Views.Keys: the action matches, its conditions hold and every key field is present) and on how many
// distinct keys: what the history-on server looks up, locks and observes for this corpus. Views no
// request reaches are present with zero counts.
func HistoryCoverage(data []byte, corpus []Request) (map[string]ViewCoverage, error) {
	vs, err := history.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("pack history views: %w", err)
	}
	out := map[string]ViewCoverage{}
	keys := map[history.ViewKey]bool{}
	for _, name := range vs.Names() {
		out[name] = ViewCoverage{}
	}
	for _, r := range corpus {
		for _, vk := range vs.Keys(r.Proto) {
			c := out[vk.View]
			c.Requests++
			if !keys[vk] {
				keys[vk] = true
				c.Keys++
			}
			out[vk.View] = c
		}
	}
	return out, nil
}

// ViewCoverage is how much of a corpus one history view counts.
type ViewCoverage struct {
	Requests int // corpus requests with a key in the view
	Keys     int // distinct keys among them
}

// decodeJSON decodes a JSON object keeping numbers as written (json.Number), so that re-encoding it
// changes no threshold.
func decodeJSON(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// reviseManifest appends suffix to a bundle manifest's revision, keeping its other fields.
func reviseManifest(src []byte, suffix string) ([]byte, error) {
	m, err := decodeJSON(src)
	if err != nil {
		return nil, fmt.Errorf("decode pack manifest: %w", err)
	}
	rev, _ := m["revision"].(string)
	m["revision"] = rev + suffix
	return json.Marshal(m)
}
