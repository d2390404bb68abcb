package policies_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/tollgate/tollgate/server/masterdata"
)

// decisionCase is one row of testdata/cases/*.json.
type decisionCase struct {
	Name    string          `json:"name"`
	Request json.RawMessage `json:"request"`
	Now     time.Time       `json:"now"`
	// MasterData are change events applied on top of the shared fixture for
	// this case only.
	MasterData []caseEvent `json:"masterdata"`
	Expect     expectation `json:"expect"`
	file       string
}

type caseEvent struct {
	EventID string         `json:"event_id"`
	Kind    string         `json:"kind"`
	Key     string         `json:"key"`
	Version uint64         `json:"version"`
	Op      string         `json:"op"`
	Record  map[string]any `json:"record"`
}

type expectation struct {
	Effect    string   `json:"effect"`
	Primary   string   `json:"primary"`
	Approvers []string `json:"approvers"`
}

type outcome struct {
	Effect    string   `json:"effect"`
	Primary   string   `json:"primary"`
	Approvers []string `json:"approvers"`
	Codes     []string `json:"-"`
}

func loadCases(tb testing.TB) []decisionCase {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(packDir(tb), "testdata", "cases", "*.json"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("list cases: %v (%d files)", err, len(files))
	}
	var all []decisionCase
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			tb.Fatalf("read cases: %v", err)
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		var cs []decisionCase
		if err := dec.Decode(&cs); err != nil {
			tb.Fatalf("decode %s: %v", f, err)
		}
		for i := range cs {
			cs[i].file = filepath.Base(f)
		}
		all = append(all, cs...)
	}
	return all
}

// inputOf is the policy input of a case request, numbers kept exact.
func inputOf(tb testing.TB, req json.RawMessage) ast.Value {
	tb.Helper()
	v, err := ast.ValueFromReader(bytes.NewReader(req))
	if err != nil {
		tb.Fatalf("parse request: %v", err)
	}
	return v
}

func decide(tb testing.TB, pq rego.PreparedEvalQuery, input ast.Value, now time.Time) outcome {
	tb.Helper()
	rs, err := pq.Eval(context.Background(), rego.EvalParsedInput(input), rego.EvalTime(now))
	if err != nil {
		tb.Fatalf("eval: %v", err)
	}
	if len(rs) != 1 {
		tb.Fatalf("eval: %d results, want 1 (decision must be defined)", len(rs))
	}
	raw, err := json.Marshal(rs[0].Expressions[0].Value)
	if err != nil {
		tb.Fatalf("encode decision: %v", err)
	}
	var d struct {
		Effect    string `json:"effect"`
		Reasons   []struct{ Code, Message string }
		Approvers []string `json:"approvers"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		tb.Fatalf("decode decision %s: %v", raw, err)
	}
	if len(d.Reasons) == 0 {
		tb.Fatalf("decision without reasons: %s", raw)
	}
	o := outcome{Effect: d.Effect, Primary: d.Reasons[0].Code, Approvers: d.Approvers}
	for _, r := range d.Reasons {
		o.Codes = append(o.Codes, r.Code)
	}
	return o
}

// TestDecisionCases evaluates every case of testdata/cases against the pack,
// over a real go-memdb master-data store loaded from testdata/fixture, at the
// case's evaluation time. It fails when any reason code of the spec
// (testdata/reason_codes.json) is neither primary nor secondary in some case.
func TestDecisionCases(t *testing.T) {
	b := loadPack(t)
	cases := loadCases(t)
	if len(cases) < 120 {
		t.Errorf("%d cases, want at least 120", len(cases))
	}
	shared := newStore(t, nil)
	sharedPQ := prepare(t, b, shared.Snapshot())

	seen := map[string]bool{}
	names := map[string]bool{}
	for _, c := range cases {
		if names[c.Name] {
			t.Errorf("duplicate case name %q", c.Name)
		}
		names[c.Name] = true
		t.Run(c.Name, func(t *testing.T) {
			pq := sharedPQ
			if len(c.MasterData) > 0 {
				var evs []masterdata.Event
				for _, e := range c.MasterData {
					evs = append(evs, masterdata.Event{EventID: e.EventID, Kind: masterdata.Kind(e.Kind), Key: e.Key,
						Version: e.Version, Op: masterdata.Op(e.Op), Record: e.Record})
				}
				pq = prepare(t, b, newStore(t, evs).Snapshot())
			}
			got := decide(t, pq, inputOf(t, c.Request), c.Now)
			for _, code := range got.Codes {
				seen[code] = true
			}
			want := outcome{Effect: c.Expect.Effect, Primary: c.Expect.Primary, Approvers: c.Expect.Approvers}
			if diff := cmp.Diff(want, got, cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "Codes" }, cmp.Ignore())); diff != "" {
				t.Errorf("%s: decision mismatch (-want +got):\n%s\nall reasons: %v", c.file, diff, got.Codes)
			}
		})
	}

	raw, err := os.ReadFile(filepath.Join(packDir(t), "testdata", "reason_codes.json"))
	if err != nil {
		t.Fatalf("read reason codes: %v", err)
	}
	var spec struct{ Codes []string }
	if err := json.Unmarshal(raw, &spec); err != nil {
		t.Fatalf("decode reason codes: %v", err)
	}
	var uncovered []string
	for _, code := range spec.Codes {
		if !seen[code] {
			uncovered = append(uncovered, code)
		}
	}
	sort.Strings(uncovered)
	if len(uncovered) > 0 {
		t.Errorf("spec reason codes no case produces: %s", strings.Join(uncovered, ", "))
	}
	t.Logf("%d cases; %d of %d spec reason codes produced", len(cases), len(spec.Codes)-len(uncovered), len(spec.Codes))
}
