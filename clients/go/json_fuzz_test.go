package tollgate_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	tollgate "github.com/tollgate/tollgate/clients/go"
)

// FuzzParseDecideRequestJSON feeds arbitrary bytes to ParseDecideRequestJSON. A rejection must be a
// *FieldError; an accepted request must print (FormatJSON and FormatJSONLine) and parse back to an
// equal message, so what tollgatectl prints is what it would send.
func FuzzParseDecideRequestJSON(f *testing.F) {
	for _, seed := range []string{
		specRequestJSON,
		`{"actor":{"id":"agent_alloc","type":"AI_AGENT"},"action":"ALLOCATION.CREATE",` +
			`"resource":{"type":"allocation","id":"A-1","attributes":{"customer_id":"C1","qty":5,` +
			`"affected_customers":[{"customer_id":"C3","qty_delta":-2}],"value":"120.00","currency":"USD"}},` +
			`"ai":{"use_case":"backorder_allocation","mode":"EXECUTE","confidence":0.93,"explanation":"x","model_version":"m-1"}}`,
		`{"actor":{"id":"u1","type":"ACTOR_TYPE_SERVICE","onBehalfOf":"u2"},"action":"SO.CREATE","idempotencyKey":"k"}`,
		`{"actor":{"id":"u1","type":""},"resource":{"attributes":{"n":null,"b":true,"l":[[[]]],"o":{"p":{}}}}}`,
		`{"ai":{"confidence":"NaN"}}`,
		`{"ai":{"confidence":1e308,"mode":"AI_MODE_RECOMMEND"}}`,
		`{"context":{"a":"b","":""}}`,
		`{"actor":{"id":"x"},"actor":{"id":"y"}}`,
		`{"actor":{"type":7}}`,
		`{"resource":{"attributes":{"amount":1.0e-400}}}`,
		`{"action":"\ud800"}`,
		`[]`, `null`, ``, `{} {}`, "{\n} x\n", `{"unknown":1}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := tollgate.ParseDecideRequestJSON(data)
		if err != nil {
			if fe := new(tollgate.FieldError); !errors.As(err, &fe) {
				t.Fatalf("error %T %q is not a *FieldError", err, err)
			}
			return
		}
		for name, format := range map[string]func(proto.Message) ([]byte, error){
			"FormatJSON": tollgate.FormatJSON, "FormatJSONLine": tollgate.FormatJSONLine,
		} {
			out, err := format(req)
			if err != nil {
				t.Fatalf("%s of an accepted request: %v\nrequest: %v", name, err, req)
			}
			again, err := tollgate.ParseDecideRequestJSON(out)
			if err != nil {
				t.Fatalf("%s output does not parse: %v\n%s", name, err, out)
			}
			if !proto.Equal(req, again) {
				t.Fatalf("%s round trip changed the request (-parsed +reparsed):\n%s\nprinted: %s",
					name, cmp.Diff(req, again, protocmp.Transform(), cmpopts.EquateNaNs()), out)
			}
		}
	})
}

// FuzzParseChangeEventsNDJSON feeds arbitrary bytes to ParseChangeEventsNDJSON. A rejection must be a
// *LineError wrapping a *FieldError (or a read error, which bytes.Reader never gives); accepted events
// must print one per line (FormatJSONLine) and parse back to equal events.
func FuzzParseChangeEventsNDJSON(f *testing.F) {
	files, _ := filepath.Glob("../../bundles/demo/*.ndjson")
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			f.Fatalf("read seed: %v", err)
		}
		f.Add(raw)
	}
	for _, seed := range []string{
		`{"event_id":"e1","kind":"customer","key":"C1","version":"18446744073709551615","op":"OP_DELETE"}`,
		`{"event_id":"e1","kind":"customer","key":"C1","version":-1,"op":"UPSERT"}`,
		`{"event_id":"e1","version":1.5}`,
		`{"eventId":"e1","record":{"a":[1,{"b":null}],"c":1e999}}` + "\n\n" + `{"event_id":"e2"}`,
		"\r\n{}\r\n",
		`{"record":"x"}`, `{"op":"MERGE"}`, `}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		events, err := tollgate.ParseChangeEventsNDJSON(bytes.NewReader(data))
		if err != nil {
			var le *tollgate.LineError
			var fe *tollgate.FieldError
			if !errors.As(err, &le) || !errors.As(err, &fe) || le.Line < 1 {
				t.Fatalf("error %T %q is not a *LineError (line >= 1) wrapping a *FieldError", err, err)
			}
			return
		}
		var buf bytes.Buffer
		for _, ev := range events {
			line, err := tollgate.FormatJSONLine(ev)
			if err != nil {
				t.Fatalf("FormatJSONLine of an accepted event: %v\nevent: %v", err, ev)
			}
			if bytes.ContainsRune(line, '\n') {
				t.Fatalf("FormatJSONLine printed more than one line: %q", line)
			}
			buf.Write(line)
			buf.WriteByte('\n')
		}
		again, err := tollgate.ParseChangeEventsNDJSON(&buf)
		if err != nil {
			t.Fatalf("printed events do not parse: %v\n%s", err, buf.String())
		}
		if diff := cmp.Diff(events, again, protocmp.Transform(), cmpopts.EquateNaNs(), cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip changed the events (-parsed +reparsed):\n%s", diff)
		}
	})
}
