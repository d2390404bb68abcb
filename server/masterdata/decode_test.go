package masterdata_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate/tollgate/server/masterdata"
)

func TestDecodeEvents(t *testing.T) {
	in := `{"event_id":"e1","kind":"site","key":"DC1","version":7,"op":"UPSERT","record":{"status":"ACTIVE","type":"DC","company":"ACME"}}

   
{"event_id":"e2","kind":"inventory","key":"DC1/I1","version":18446744073709551615,"op":"DELETE"}
{"event_id":"e3","kind":"customer","key":"C1","version":1,"op":"UPSERT","record":{"tier":2,"x":[1.5,null,true]}}
`
	got, err := masterdata.DecodeEvents(strings.NewReader(in))
	if err != nil {
		t.Fatalf("DecodeEvents: %v", err)
	}
	want := []masterdata.Event{
		{EventID: "e1", Kind: masterdata.KindSite, Key: "DC1", Version: 7, Op: masterdata.OpUpsert,
			Record: map[string]any{"status": "ACTIVE", "type": "DC", "company": "ACME"}},
		{EventID: "e2", Kind: masterdata.KindInventory, Key: "DC1/I1", Version: 1<<64 - 1, Op: masterdata.OpDelete},
		{EventID: "e3", Kind: masterdata.KindCustomer, Key: "C1", Version: 1, Op: masterdata.OpUpsert,
			Record: map[string]any{"tier": json.Number("2"), "x": []any{json.Number("1.5"), nil, true}}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestDecodeEventsReportsLine(t *testing.T) {
	good := `{"event_id":"e1","kind":"site","key":"DC1","version":1,"op":"UPSERT","record":{}}`
	tests := []struct {
		name, line, want string
	}{
		{"malformed JSON", `{"event_id":"e2",`, "line 4: decode event"},
		{"unknown member", `{"event_id":"e2","kind":"site","key":"DC1","version":1,"op":"UPSERT","recrod":{}}`, `line 4: decode event: json: unknown field "recrod"`},
		{"negative version", `{"event_id":"e2","kind":"site","key":"DC1","version":-1,"op":"UPSERT"}`, "line 4: decode event"},
		{"string version", `{"event_id":"e2","kind":"site","key":"DC1","version":"1","op":"UPSERT"}`, "line 4: decode event"},
		{"trailing data", good + ` {}`, "line 4: decode event: unexpected data after the JSON object"},
		{"not an object", `[1,2]`, "line 4: decode event"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := good + "\n\n" + good + "\n" + tt.line + "\n" + good + "\n"
			_, err := masterdata.DecodeEvents(strings.NewReader(in))
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("err = %v, want prefix %q", err, tt.want)
			}
		})
	}
}

func TestDecodeEventsLineTooLong(t *testing.T) {
	in := "\n" + `{"event_id":"` + strings.Repeat("x", 17<<20) + `"}` + "\n"
	_, err := masterdata.DecodeEvents(strings.NewReader(in))
	if err == nil || !strings.HasPrefix(err.Error(), "line 2: longer than") {
		t.Errorf("err = %v, want a line-2 length error", err)
	}
}

const (
	siteDC1 = `{"event_id":"s1","kind":"site","key":"DC1","version":1,"op":"UPSERT","record":{"status":"ACTIVE","type":"DC","company":"ACME"}}`
	siteBR1 = `{"event_id":"s2","kind":"site","key":"BR1","version":1,"op":"UPSERT","record":{"status":"ACTIVE","type":"BRANCH","company":"ACME"}}`
)

func TestLoadDirRejectsBadData(t *testing.T) {
	tests := []struct {
		name  string
		files fstest.MapFS
		want  string
	}{
		{
			name: "invalid event",
			files: fstest.MapFS{
				"01-sites.ndjson": {Data: []byte(siteDC1 + "\n")},
				"02-items.ndjson": {Data: []byte("\n" + `{"event_id":"i1","kind":"item","key":"I1","version":1,"op":"UPSERT","record":{"status":"ACTIVE","category":"X","abc_class":"A","unit_cost":"1.005","currency":"USD"}}` + "\n")},
			},
			want: `load master data 02-items.ndjson: line 2: event "i1": item I1: unit_cost: "1.005" has more decimals than USD allows (2)`,
		},
		{
			name: "undecodable file",
			files: fstest.MapFS{
				"01-sites.ndjson": {Data: []byte(siteDC1 + "\n" + siteBR1 + "\n{oops\n")},
			},
			want: "load master data 01-sites.ndjson: line 3: decode event",
		},
		{
			name:  "no files",
			files: fstest.MapFS{"sites.json": {Data: []byte(siteDC1)}},
			want:  "load master data: no *.ndjson files",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, masterdata.Config{})
			_, err := s.LoadDir(tt.files)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("err = %v, want prefix %q", err, tt.want)
			}
			if st := s.Status(); st.Revision != 0 || st.Counts[masterdata.KindSite] != 0 {
				t.Errorf("status after a failed load = %+v, want nothing applied", st)
			}
		})
	}
}

func TestLoadDirOrderAndPrepareFailure(t *testing.T) {
	files := fstest.MapFS{
		// Name order decides: 01 (version 1) is applied before 02 (version 2), whatever the map order.
		"02-later.ndjson":   {Data: []byte(`{"event_id":"s9","kind":"site","key":"DC1","version":2,"op":"UPSERT","record":{"status":"INACTIVE","type":"DC","company":"ACME"}}` + "\n")},
		"01-first.ndjson":   {Data: []byte(siteDC1 + "\n" + siteBR1 + "\n")},
		"README.md":         {Data: []byte("not loaded")},
		"sub/03-no.ndjson":  {Data: []byte("{broken")},
		"03-stale.ndjson":   {Data: []byte(strings.Replace(siteBR1, `"s2"`, `"s3"`, 1) + "\n")},
		"04-refused.ndjson": {Data: []byte(`{"event_id":"s4","kind":"site","key":"XX1","version":1,"op":"UPSERT","record":{"status":"ACTIVE","type":"DC","company":"REFUSED"}}` + "\n")},
	}
	refuse := errors.New("company REFUSED")
	s := newStore(t, masterdata.Config{Prepare: func(_ masterdata.Kind, _ string, f map[string]any) (any, error) {
		if f["company"] == "REFUSED" {
			return nil, refuse
		}
		return nil, nil
	}})
	rep, err := s.LoadDir(files)
	if !errors.Is(err, refuse) || !strings.Contains(err.Error(), `load master data 04-refused.ndjson: line 1: event "s4"`) {
		t.Fatalf("err = %v, want the Prepare failure naming file, line and event", err)
	}
	want := masterdata.LoadReport{
		Files:  []string{"01-first.ndjson", "02-later.ndjson", "03-stale.ndjson", "04-refused.ndjson"},
		Events: 5, Applied: 3, Stale: 1, Revision: 1,
	}
	if diff := cmp.Diff(want, rep); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	if r, _ := s.Snapshot().Get(masterdata.KindSite, "DC1"); r == nil || r.Fields["status"] != "INACTIVE" {
		t.Errorf("DC1 = %v, want the version-2 record from the later file", r)
	}
}
