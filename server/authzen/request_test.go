package authzen_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	tollgate "github.com/tollgate/tollgate/clients/go"
	"github.com/tollgate/tollgate/server/authzen"
)

// TestDecideRequest runs the mapping cases of testdata/mapping.json: an evaluation and the decision
// request it maps to (in tollgatectl's JSON form), or the 400 message it is refused with.
func TestDecideRequest(t *testing.T) {
	data, err := os.ReadFile("testdata/mapping.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Name       string          `json:"name"`
		Evaluation json.RawMessage `json:"evaluation"`
		Request    json.RawMessage `json:"request"`
		Error      string          `json:"error"`
	}
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			e, err := authzen.DecodeEvaluation(tc.Evaluation)
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.DecideRequest()
			if tc.Error != "" {
				if err == nil || !strings.Contains(err.Error(), tc.Error) {
					t.Fatalf("error %v, want one saying %q", err, tc.Error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want, err := tollgate.ParseDecideRequestJSON(tc.Request)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
				t.Fatalf("mapped request (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEvaluationsItem: an item's entity replaces the default whole; what it leaves out comes from the
// defaults; an item that does not decode is an error of its own.
func TestEvaluationsItem(t *testing.T) {
	r, err := authzen.DecodeEvaluations([]byte(`{
		"subject": {"type": "user", "id": "alice", "properties": {"dept": "x"}},
		"action": {"name": "can_read"},
		"context": {"time": "t1"},
		"evaluations": [
			{"resource": {"type": "doc", "id": "1"}},
			{"subject": {"type": "user", "id": "bob"}, "resource": {"type": "doc", "id": "2"}, "context": {}},
			"not an object"
		]}`))
	if err != nil {
		t.Fatal(err)
	}
	first, err := r.Item(0)
	if err != nil {
		t.Fatal(err)
	}
	if first.Subject.ID != "alice" || first.Subject.Properties["dept"] != "x" || first.Action.Name != "can_read" || first.Context["time"] != "t1" {
		t.Fatalf("item 0 %+v: want every default", first)
	}
	second, err := r.Item(1)
	if err != nil {
		t.Fatal(err)
	}
	if second.Subject.ID != "bob" || second.Subject.Properties != nil || len(second.Context) != 0 || second.Action.Name != "can_read" {
		t.Fatalf("item 1 %+v: want its own subject and empty context whole, the default action", second)
	}
	if _, err := r.Item(2); err == nil || !strings.Contains(err.Error(), "want a JSON object") {
		t.Fatalf("item 2: %v, want it refused", err)
	}
}
