// Package gatecorpus is the corpus of requests the engine's exactness gate decides on both evaluation
// paths before a bundle may use the faster one (engine.Gate), and the generator of the perf corpus,
// which is part of it and which the benchmarks in test/perf send.
//
// The gate decides, over the embedded demo master data at one fixed instant:
//   - the 1,200-request perf corpus (Corpus with GateSeed, no generated volume): every action of the
//     pack, amounts around every threshold, malformed values, missing fields, unknown ids;
//   - the request of every decision case of the pack (policies.CasesFS), with the cases' prior
//     decisions in the gate's history index;
//   - the README tour's demo requests (bundles/demo/requests).
//
// The corpus is fixed, so a bundle's verdict does not depend on the day or the data it was activated
// with; CI runs the same comparisons at every case's own data and instant (policies TestDecisionCases)
// and a differential fuzz target (engine FuzzPaths) beyond them.
package gatecorpus

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tollgate/tollgate/bundles/demo"
	tollgate "github.com/tollgate/tollgate/clients/go"
	"github.com/tollgate/tollgate/policies"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/engine"
	"github.com/tollgate/tollgate/server/masterdata"
)

// GateSeed and GateSize are the perf corpus the gate decides.
const (
	GateSeed = 1
	GateSize = 1200
)

// GateAt is the instant of every gate decision: the decision cases' own.
var GateAt = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// Default returns the gate the service runs on every bundle it compiles. It is built once per process.
var Default = sync.OnceValues(build)

func build() (*engine.Gate, error) {
	store, err := masterdata.New(masterdata.Config{Prepare: engine.PrepareRecord})
	if err != nil {
		return nil, err
	}
	if _, err := store.LoadDir(demo.FS); err != nil {
		return nil, fmt.Errorf("gate corpus: load demo data: %w", err)
	}
	g := &engine.Gate{Snapshot: store.Snapshot(), At: GateAt}
	corpus, err := Corpus(GateSeed, GateSize, 0)
	if err != nil {
		return nil, fmt.Errorf("gate corpus: %w", err)
	}
	for _, r := range corpus {
		g.Requests = append(g.Requests, r.Engine)
	}
	cases, prior, err := caseRequests()
	if err != nil {
		return nil, err
	}
	g.Requests = append(g.Requests, cases...)
	g.Prior = prior
	tour, err := demoRequests()
	if err != nil {
		return nil, err
	}
	g.Requests = append(g.Requests, tour...)
	return g, nil
}

// decisionCase is the part of a policies/testdata/cases row the gate reads.
type decisionCase struct {
	Name    string          `json:"name"`
	Request json.RawMessage `json:"request"`
	History []struct {
		DecisionID  string          `json:"decision_id"`
		EvaluatedAt time.Time       `json:"evaluated_at"`
		Effect      string          `json:"effect"`
		Request     json.RawMessage `json:"request"`
	} `json:"history"`
}

func caseRequests() ([]*engine.Request, []*audit.Record, error) {
	files, err := fs.Glob(policies.CasesFS, "testdata/cases/*.json")
	if err != nil || len(files) == 0 {
		return nil, nil, fmt.Errorf("gate corpus: list decision cases: %v (%d files)", err, len(files))
	}
	sort.Strings(files)
	var reqs []*engine.Request
	var prior []*audit.Record
	for _, f := range files {
		raw, err := fs.ReadFile(policies.CasesFS, f)
		if err != nil {
			return nil, nil, err
		}
		var cases []decisionCase
		if err := json.Unmarshal(raw, &cases); err != nil {
			return nil, nil, fmt.Errorf("gate corpus: %s: %w", f, err)
		}
		for _, c := range cases {
			r, err := requestJSON(c.Request)
			if err != nil {
				return nil, nil, fmt.Errorf("gate corpus: %s case %s: %w", f, c.Name, err)
			}
			reqs = append(reqs, r.Engine)
			for _, h := range c.History {
				effect, ok := tollgatev1.Effect_value["EFFECT_"+h.Effect]
				if !ok {
					return nil, nil, fmt.Errorf("gate corpus: %s case %s: effect %q", f, c.Name, h.Effect)
				}
				p, err := tollgate.ParseDecideRequestJSON(h.Request)
				if err != nil {
					return nil, nil, fmt.Errorf("gate corpus: %s case %s history %s: %w", f, c.Name, h.DecisionID, err)
				}
				prior = append(prior, &audit.Record{Kind: tollgatev1.RecordKind_RECORD_KIND_DECISION,
					DecisionId: c.Name + "/" + h.DecisionID, EvaluatedAt: timestamppb.New(h.EvaluatedAt),
					Effect: tollgatev1.Effect(effect), Request: p})
			}
		}
	}
	return reqs, prior, nil
}

func demoRequests() ([]*engine.Request, error) {
	files, err := fs.Glob(demo.RequestsFS, "requests/*.json")
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var reqs []*engine.Request
	for _, f := range files {
		if path.Base(f) == "expected.json" || !strings.HasSuffix(f, ".json") {
			continue
		}
		raw, err := fs.ReadFile(demo.RequestsFS, f)
		if err != nil {
			return nil, err
		}
		r, err := requestJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("gate corpus: %s: %w", f, err)
		}
		reqs = append(reqs, r.Engine)
	}
	if len(reqs) == 0 {
		return nil, fmt.Errorf("gate corpus: no demo requests")
	}
	return reqs, nil
}

// requestJSON reads a request in the policy-pack §2 JSON form.
func requestJSON(raw []byte) (Request, error) {
	var in map[string]any
	if err := json.Unmarshal(raw, &in); err != nil {
		return Request{}, err
	}
	return NewRequest("case", in)
}
