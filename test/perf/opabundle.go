package perf

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tollgate/tollgate/server/masterdata"
)

// ExportMasterdata returns the master data of sn in the layout test/perf/opa/md.rego reads:
// {"masterdata": {kind: {key: fields}}, "masterdata_index": {"delegation_pair": {"<delegator>/<delegate>":
// [records ordered by key]}}}. Fields are the stored (normalized) records, so OPA sees exactly what the
// engine's md.get returns.
func ExportMasterdata(sn *masterdata.Snapshot) map[string]any {
	md := map[string]any{}
	pairs := map[string][]any{}
	for _, kind := range masterdata.Kinds() {
		recs := map[string]any{}
		for _, r := range sn.All(kind) {
			recs[r.Key] = r.Fields
			if kind == masterdata.KindDelegation {
				pair := fmt.Sprintf("%v/%v", r.Fields["delegator_id"], r.Fields["delegate_id"])
				pairs[pair] = append(pairs[pair], r.Fields) // All iterates in key order
			}
		}
		md[string(kind)] = recs
	}
	return map[string]any{"masterdata": md, "masterdata_index": map[string]any{"delegation_pair": pairs}}
}

// mdRegoPath is where the pack keeps its one master-data access package.
const mdRegoPath = "tollgate/md.rego"

// WriteOPABundle writes into dir the stock-OPA form of the policy pack in pack (a bundle file system:
// .manifest, data.json, tollgate/**.rego): every non-test Rego file as is, except those twins (the
// directory test/perf/opa) has a file of the same name for, which it replaces: md.rego, whose
// md.get / md.lookup built-ins stock OPA lacks (the twin reads data.masterdata), and prior.rego, whose
// tollgate.history it lacks (the twin never looks up: it is for a pack without history views, see
// WriteWithoutHistoryViews); data.json with the pack's data plus extra (ExportMasterdata); a .manifest
// whose roots also cover extra's top-level keys. It refuses a twin that does not define the same rules
// as the pack's file, so a change to the pack's accessors cannot silently diverge, a pack without
// md.rego, and a pack that declares history views.
func WriteOPABundle(dir string, pack, twins fs.FS, extra map[string]any) error {
	if _, err := fs.Stat(pack, mdRegoPath); err != nil {
		return fmt.Errorf("read pack md.rego: %w", err)
	}
	err := fs.WalkDir(pack, "tollgate", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".rego") || strings.HasSuffix(path, "_test.rego") {
			return err
		}
		src, err := fs.ReadFile(pack, path)
		if err != nil {
			return err
		}
		if twin, err := fs.ReadFile(twins, filepath.Base(path)); err == nil {
			if err := sameRules(path, src, twin); err != nil {
				return err
			}
			src = twin
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		out := filepath.Join(dir, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(out, src, 0o644)
	})
	if err != nil {
		return fmt.Errorf("copy pack policies: %w", err)
	}

	var data map[string]any
	raw, err := fs.ReadFile(pack, "data.json")
	if err != nil {
		return fmt.Errorf("read pack data: %w", err)
	}
	if err := json.Unmarshal(raw, &data); err != nil {
		return fmt.Errorf("decode pack data: %w", err)
	}
	views, err := HistoryViews(raw)
	if err != nil {
		return err
	}
	if len(views) > 0 {
		return fmt.Errorf("stock OPA cannot look up history, and the pack declares history views %v: write the pack with WriteWithoutHistoryViews first", views)
	}
	var manifest struct {
		Revision string   `json:"revision"`
		Roots    []string `json:"roots"`
	}
	if raw, err := fs.ReadFile(pack, ".manifest"); err == nil {
		if err := json.Unmarshal(raw, &manifest); err != nil {
			return fmt.Errorf("decode pack manifest: %w", err)
		}
	}
	for k, v := range extra {
		if _, dup := data[k]; dup {
			return fmt.Errorf("pack data already has %q", k)
		}
		data[k] = v
		manifest.Roots = append(manifest.Roots, k)
	}
	if err := writeJSON(filepath.Join(dir, "data.json"), data); err != nil {
		return err
	}
	if len(manifest.Roots) > len(extra) { // the pack had a manifest: keep its roots, add ours
		manifest.Revision += "+perf-opa"
		if err := writeJSON(filepath.Join(dir, ".manifest"), manifest); err != nil {
			return err
		}
	}
	return nil
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

// sameRules checks that the pack's module at path and its twin define the same package and rule names.
func sameRules(path string, pack, twin []byte) error {
	names := func(src []byte) ([]string, error) {
		m, err := ast.ParseModuleWithOpts(path, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return nil, err
		}
		set := map[string]bool{"package " + m.Package.Path.String(): true}
		for _, r := range m.Rules {
			set[r.Head.Ref().String()] = true
		}
		return slices.Sorted(maps.Keys(set)), nil
	}
	base := filepath.Base(path)
	a, err := names(pack)
	if err != nil {
		return fmt.Errorf("parse pack %s: %w", path, err)
	}
	b, err := names(twin)
	if err != nil {
		return fmt.Errorf("parse opa %s: %w", base, err)
	}
	if !slices.Equal(a, b) {
		return fmt.Errorf("opa %s defines %v, the pack's %s %v: update test/perf/opa/%s", base, b, path, a, base)
	}
	return nil
}
