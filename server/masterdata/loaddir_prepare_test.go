package masterdata_test

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate/tollgate/server/masterdata"
)

// prepareLog is a Config.Prepare that is safe for concurrent use, returns a value naming its inputs, and
// records every call, so a test can compare what LoadDir's workers prepared with what Apply prepares.
type prepareLog struct {
	fail  func(key string) bool // keys whose Prepare fails with errRefused; nil for none
	mu    sync.Mutex
	calls map[string]map[string]any // "kind/key" -> a copy of the fields of its last call
}

var errRefused = errors.New("refused by prepare")

func (p *prepareLog) prepare(kind masterdata.Kind, key string, fields map[string]any) (any, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.calls == nil {
		p.calls = make(map[string]map[string]any)
	}
	p.calls[string(kind)+"/"+key] = maps.Clone(fields)
	if p.fail != nil && p.fail(key) {
		return nil, errRefused
	}
	return fmt.Sprintf("%s/%s status=%v", kind, key, fields["status"]), nil
}

// manyEvents is batchEvents followed by n customer upserts spread over several load chunks, with a
// DUPLICATE and a STALE event every so often, so that results of workers must reach the applier in order.
func manyEvents(n int) []masterdata.Event {
	events := batchEvents()
	for i := range n {
		_, rec := validRecord(masterdata.KindCustomer)
		rec["open_ar"] = fmt.Sprintf("%d.00", i)
		events = append(events, upsert(fmt.Sprintf("c%d", i), masterdata.KindCustomer, customerKey(i), 2, rec))
		switch {
		case i%97 == 50: // an earlier event id again, under another key
			events = append(events, upsert(fmt.Sprintf("c%d", i-10), masterdata.KindCustomer, customerKey(n+i), 1, rec))
		case i%89 == 40: // an older version of a record just stored
			events = append(events, upsert(fmt.Sprintf("old%d", i), masterdata.KindCustomer, customerKey(i), 1, rec))
		}
	}
	return events
}

// TestLoadDirPreparesLikeApply: LoadDir, whose workers call Prepare concurrently ahead of the applier,
// stores the same records with the same Prepared values and counts the same outcomes as one Apply per
// event, and every stored record was prepared from its own fields.
func TestLoadDirPreparesLikeApply(t *testing.T) {
	events := manyEvents(3000)
	third := len(events) / 3
	files := fstest.MapFS{
		"01.ndjson": {Data: ndjson(t, events[:third])},
		"02.ndjson": {Data: ndjson(t, events[third:])},
	}
	var one prepareLog
	single := newStore(t, masterdata.Config{Prepare: one.prepare})
	want := masterdata.LoadReport{Files: []string{"01.ndjson", "02.ndjson"}, Events: len(events), Revision: 1}
	for _, ev := range events {
		switch o := single.Apply([]masterdata.Event{ev}).Results[0].Outcome; o {
		case masterdata.OutcomeApplied:
			want.Applied++
		case masterdata.OutcomeDuplicate:
			want.Duplicate++
		case masterdata.OutcomeStale:
			want.Stale++
		default:
			t.Fatalf("event %s: %s", ev.EventID, o)
		}
	}
	if want.Duplicate < 30 || want.Stale < 30 {
		t.Fatalf("events give %d DUPLICATE and %d STALE, want both in every chunk", want.Duplicate, want.Stale)
	}

	var loadLog prepareLog
	loaded := newStore(t, masterdata.Config{Prepare: loadLog.prepare})
	rep, err := loaded.LoadDir(files)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, rep); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	// contents holds each live record whole, Prepared included.
	if diff := cmp.Diff(contents(t, single), contents(t, loaded)); diff != "" {
		t.Errorf("contents (-one by one +LoadDir):\n%s", diff)
	}
	sn := loaded.Snapshot()
	for _, k := range masterdata.Kinds() {
		for _, r := range sn.All(k) {
			if diff := cmp.Diff(r.Fields, loadLog.calls[string(k)+"/"+r.Key]); diff != "" {
				t.Errorf("%s %s: Prepare's fields (-stored +prepared):\n%s", k, r.Key, diff)
			}
		}
	}
}

// TestLoadDirPrepareFailureLines: a Prepare failure found by a worker is reported with the file and line
// of its event (blank lines counted), the other events stay applied, and a later malformed line still
// rejects the whole load.
func TestLoadDirPrepareFailureLines(t *testing.T) {
	const n = 2000
	var lines strings.Builder
	lines.WriteString("\n") // line 1 is blank: event i is on line i+2
	for i := range n {
		_, rec := validRecord(masterdata.KindCustomer)
		lines.Write(eventLine(t, upsert(fmt.Sprintf("c%d", i), masterdata.KindCustomer, customerKey(i), 1, rec)))
		lines.WriteString("\n")
	}
	refused := map[string]bool{customerKey(700): true, customerKey(1501): true}
	p := prepareLog{fail: func(key string) bool { return refused[key] }}
	files := fstest.MapFS{"01.ndjson": {Data: []byte(lines.String())}}
	s := newStore(t, masterdata.Config{Prepare: p.prepare})
	rep, err := s.LoadDir(files)
	if !errors.Is(err, errRefused) {
		t.Fatalf("err = %v, want the Prepare failures", err)
	}
	wantErr := `load master data 01.ndjson: line 702: event "c700": customer C0000700: prepare: refused by prepare` + "\n" +
		`load master data 01.ndjson: line 1503: event "c1501": customer C0001501: prepare: refused by prepare`
	if err.Error() != wantErr {
		t.Errorf("err =\n%v\nwant\n%s", err, wantErr)
	}
	want := masterdata.LoadReport{Files: []string{"01.ndjson"}, Events: n, Applied: n - 2, Revision: 1}
	if diff := cmp.Diff(want, rep); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	sn := s.Snapshot()
	for i := range n {
		if _, ok := sn.Get(masterdata.KindCustomer, customerKey(i)); ok == refused[customerKey(i)] {
			t.Errorf("customer %s readable = %v, want %v", customerKey(i), ok, !ok)
		}
	}

	bad := newStore(t, masterdata.Config{Prepare: p.prepare})
	files["02.ndjson"] = &fstest.MapFile{Data: []byte("{broken\n")}
	if _, err := bad.LoadDir(files); err == nil || !strings.HasPrefix(err.Error(), "load master data 02.ndjson: line 1: ") {
		t.Fatalf("err = %v, want the malformed line of 02.ndjson", err)
	}
	if st := bad.Status(); st.Revision != 0 || st.Counts[masterdata.KindCustomer] != 0 {
		t.Errorf("status after a rejected load = %+v, want nothing applied", st)
	}
}
