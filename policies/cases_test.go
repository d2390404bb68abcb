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
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/types/known/timestamppb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
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
	// History are earlier decisions the service recorded, which the
	// history-aware rules (policy-pack §6) read; none when absent.
	History []priorDecision `json:"history"`
	Expect  outcome         `json:"expect"`
	file    string
}

// priorDecision is an earlier decision record of a case's history.
type priorDecision struct {
	DecisionID  string          `json:"decision_id"`
	EvaluatedAt time.Time       `json:"evaluated_at"`
	Effect      string          `json:"effect"`
	Request     json.RawMessage `json:"request"`
}

// record is p as the audit log holds it (the request as the API parses it).
func (p priorDecision) record(tb testing.TB) *audit.Record {
	tb.Helper()
	effect, ok := tollgatev1.Effect_value["EFFECT_"+p.Effect]
	if !ok {
		tb.Fatalf("history %s: unknown effect %q", p.DecisionID, p.Effect)
	}
	return &audit.Record{
		Kind:        tollgatev1.RecordKind_RECORD_KIND_DECISION,
		DecisionId:  p.DecisionID,
		EvaluatedAt: timestamppb.New(p.EvaluatedAt),
		Effect:      tollgatev1.Effect(effect),
		Request:     parseRequest(tb, p.Request),
	}
}

type caseEvent struct {
	EventID string         `json:"event_id"`
	Kind    string         `json:"kind"`
	Key     string         `json:"key"`
	Version uint64         `json:"version"`
	Op      string         `json:"op"`
	Record  map[string]any `json:"record"`
}

func (e caseEvent) event() masterdata.Event {
	return masterdata.Event{EventID: e.EventID, Kind: masterdata.Kind(e.Kind), Key: e.Key,
		Version: e.Version, Op: masterdata.Op(e.Op), Record: e.Record}
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

// TestDecisionCases runs every case of testdata/cases through the real
// decision service (API validation, engine, the embedded pack, go-memdb
// master data loaded from testdata/fixture plus the case's own events) at the
// case's evaluation time, reading a real history index that has observed the
// case's earlier decisions. It fails when any reason code of the spec
// (testdata/reason_codes.json) is neither primary nor secondary in some case.
func TestDecisionCases(t *testing.T) {
	compiled := compilePack(t)
	cases := loadCases(t)
	if len(cases) < 120 {
		t.Errorf("%d cases, want at least 120", len(cases))
	}
	shared := newStore(t, os.DirFS(filepath.Join(packDir(t), "testdata", "fixture")), nil)
	views := packViews(t)

	seen := map[string]bool{}
	names := map[string]bool{}
	for _, c := range cases {
		if names[c.Name] {
			t.Errorf("duplicate case name %q", c.Name)
		}
		names[c.Name] = true
		t.Run(c.Name, func(t *testing.T) {
			store := shared
			if len(c.MasterData) > 0 {
				evs := make([]masterdata.Event, len(c.MasterData))
				for i, e := range c.MasterData {
					evs[i] = e.event()
				}
				store = newStore(t, os.DirFS(filepath.Join(packDir(t), "testdata", "fixture")), evs)
			}
			prior := make([]*audit.Record, len(c.History))
			for i, p := range c.History {
				prior[i] = p.record(t)
			}
			srv := newServer(t, compiled, store, c.Now)
			got, codes := decide(t, withHistory(views, prior...), srv, c.Request)
			for _, code := range codes {
				seen[code] = true
			}
			if diff := cmp.Diff(c.Expect, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("%s: decision mismatch (-want +got):\n%s\nall reasons: %v", c.file, diff, codes)
			}
			// The exactness gate at the case's own data, history and instant: the IR path decides
			// exactly as topdown, facts included.
			if d := compiled.Compare(context.Background(), engineRequest(t, c.Request), store.Snapshot(), c.Now, historyIndex(views, prior...)); d != "" {
				t.Errorf("%s: the IR path differs from topdown: %s", c.file, d)
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
