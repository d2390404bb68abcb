package masterdata_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate/tollgate/bundles/demo"
	"github.com/tollgate/tollgate/server/masterdata"
)

// FuzzDecodeApply decodes arbitrary NDJSON with DecodeEvents and applies the events one at a time to a
// store that already holds a valid record of every kind (so DUPLICATE and STALE paths are reachable).
// Decoding either fails with an error naming a line or yields events; applying never panics; an event
// that is not APPLIED changes nothing (revision and Get of its record unchanged); an APPLIED event moves
// the revision by one, and the record it stored is what Get returns, holds no float64, and re-validates:
// sent again as an UPSERT to an empty store it is APPLIED unchanged.
func FuzzDecodeApply(f *testing.F) {
	files, err := fs.Glob(demo.FS, "*.ndjson")
	if err != nil || len(files) == 0 {
		f.Fatalf("list demo data: %v (%d files)", err, len(files))
	}
	for _, name := range files {
		raw, err := fs.ReadFile(demo.FS, name)
		if err != nil {
			f.Fatalf("read demo data: %v", err)
		}
		// One event per seed keeps each exec cheap; the fuzzer splices lines together itself.
		for line := range strings.SplitSeq(strings.TrimSpace(string(raw)), "\n") {
			f.Add([]byte(line))
		}
	}
	for _, k := range masterdata.Kinds() {
		ev := validEvent(k)
		ev.EventID += "-next"
		ev.Version = 2
		f.Add(eventLine(f, ev))
		ev.Op = masterdata.OpDelete
		f.Add(eventLine(f, ev))
	}
	for _, s := range []string{
		`{"event_id":"ev-customer-C1-1","kind":"customer","key":"C1","version":1,"op":"UPSERT","record":{}}`,
		`{"event_id":"x","kind":"supplier_invoice","key":"S1/inv-000123","version":9,"op":"UPSERT","record":{"supplier_id":"S1","invoice_ref":"INV 123","company":"ACME","currency":"JPY","amount":"12","invoice_date":"2026-02-29"}}`,
		`{"event_id":"x","kind":"inventory","key":"DC1/I1","version":18446744073709551615,"op":"UPSERT","record":{"site_id":"DC1","item_id":"I1","on_hand":1e3,"allocated":"1","safety_stock":-0,"quality_hold":3.0}}`,
		`{"event_id":"x","kind":"ai_agent","key":"a","version":1,"op":"UPSERT","record":{"currency":"KWD","daily_value_cap":"1.234","use_cases":{"case_routing":{"autonomy":"AUTONOMOUS","confidence_floor":1.0,"value_cap":"0","owner_role":"CSR"}}}}`,
		`{"event_id":"x","kind":"ai_control","key":"global","version":1,"op":"DELETE","record":null}` + "\n" + `{"event_id":"x"}`,
		`{"kind":"user"} trailing`, `{"unknown":1}`, "\n\n", `[]`,
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		events, err := masterdata.DecodeEvents(bytes.NewReader(data))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "line ") {
				t.Fatalf("decode error %q does not name a line", err)
			}
			return
		}
		s := newStore(t, masterdata.Config{})
		for _, k := range masterdata.Kinds() {
			mustApply(t, s, validEvent(k))
		}
		for i, ev := range events {
			before := s.Snapshot()
			old, hadOld := before.Get(ev.Kind, ev.Key)
			res := s.Apply([]masterdata.Event{ev})
			after := s.Snapshot()
			cur, hasCur := after.Get(ev.Kind, ev.Key)
			if len(res.Results) != 1 || res.Revision != after.Revision() {
				t.Fatalf("event %d: result %+v at revision %d", i, res, after.Revision())
			}
			r := res.Results[0]
			if r.EventID != ev.EventID {
				t.Fatalf("event %d: result for %q, want %q", i, r.EventID, ev.EventID)
			}
			switch r.Outcome {
			case masterdata.OutcomeInvalid, masterdata.OutcomeDuplicate, masterdata.OutcomeStale:
				if after.Revision() != before.Revision() || hadOld != hasCur || old != cur {
					t.Fatalf("event %d %s changed the store: revision %d -> %d, record %v -> %v",
						i, r.Outcome, before.Revision(), after.Revision(), old, cur)
				}
				wantErr := map[masterdata.Outcome]error{
					masterdata.OutcomeInvalid: masterdata.ErrInvalid, masterdata.OutcomeStale: masterdata.ErrStale,
				}[r.Outcome]
				if (wantErr == nil) != (r.Err == nil) || (wantErr != nil && !errors.Is(r.Err, wantErr)) {
					t.Fatalf("event %d %s with error %v", i, r.Outcome, r.Err)
				}
			case masterdata.OutcomeApplied:
				if after.Revision() != before.Revision()+1 || r.Err != nil {
					t.Fatalf("event %d APPLIED: revision %d -> %d, error %v", i, before.Revision(), after.Revision(), r.Err)
				}
				if ev.Op == masterdata.OpDelete {
					if hasCur {
						t.Fatalf("event %d: DELETE applied but Get still finds %v", i, cur)
					}
					continue
				}
				if !hasCur || cur.Version != ev.Version || cur.EventID != ev.EventID || cur.Kind != ev.Kind || cur.Deleted {
					t.Fatalf("event %d: UPSERT applied but Get gives %+v (found %v)", i, cur, hasCur)
				}
				revalidate(t, cur)
			default:
				t.Fatalf("event %d: unknown outcome %q", i, r.Outcome)
			}
		}
	})
}

// revalidate applies rec, as stored, to an empty store and expects it stored unchanged.
func revalidate(t *testing.T, rec *masterdata.Record) {
	t.Helper()
	if path, ok := findFloat(rec.Fields, string(rec.Kind)); ok {
		t.Fatalf("stored record %s %s holds a float64 at %s", rec.Kind, rec.Key, path)
	}
	s := newStore(t, masterdata.Config{})
	res := s.Apply([]masterdata.Event{{EventID: "again", Kind: rec.Kind, Key: rec.Key, Version: rec.Version,
		Op: masterdata.OpUpsert, Record: rec.Fields}})
	if r := res.Results[0]; r.Outcome != masterdata.OutcomeApplied {
		t.Fatalf("stored record %s %s does not re-validate: %s %v\nfields: %v", rec.Kind, rec.Key, r.Outcome, r.Err, rec.Fields)
	}
	again, ok := s.Snapshot().Get(rec.Kind, rec.Key)
	if !ok {
		t.Fatalf("re-applied record %s %s not found", rec.Kind, rec.Key)
	}
	if diff := cmp.Diff(rec.Fields, again.Fields); diff != "" || again.Key != rec.Key {
		t.Fatalf("re-validating %s %q changed it (key %q) (-stored +again):\n%s", rec.Kind, rec.Key, again.Key, diff)
	}
}

func findFloat(v any, path string) (string, bool) {
	switch v := v.(type) {
	case float64, float32:
		return path, true
	case map[string]any:
		for k, c := range v {
			if p, ok := findFloat(c, path+"."+k); ok {
				return p, true
			}
		}
	case []any:
		for i, c := range v {
			if p, ok := findFloat(c, fmt.Sprintf("%s[%d]", path, i)); ok {
				return p, true
			}
		}
	}
	return "", false
}

func eventLine(tb testing.TB, ev masterdata.Event) []byte {
	tb.Helper()
	b, err := json.Marshal(map[string]any{"event_id": ev.EventID, "kind": ev.Kind, "key": ev.Key,
		"version": ev.Version, "op": ev.Op, "record": ev.Record})
	if err != nil {
		tb.Fatalf("encode seed: %v", err)
	}
	return b
}
