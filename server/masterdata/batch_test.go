package masterdata_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate/tollgate/server/masterdata"
)

// batchEvents exercises what a batch reads back of its own writes: a key written twice, stale versions
// against the batch's record and its tombstone, a repeated event id, a delete of a live and of an unseen
// record, a resurrection, and a secondary index whose value moves.
func batchEvents() []masterdata.Event {
	inv := func(item, onHand string) map[string]any {
		_, rec := validRecord(masterdata.KindInventory)
		rec["item_id"], rec["on_hand"] = item, json.Number(onHand)
		return rec
	}
	return []masterdata.Event{
		upsert("e1", masterdata.KindSite, "DC1", 1, site("ACTIVE")),
		upsert("e2", masterdata.KindSite, "DC1", 2, site("INACTIVE")),
		upsert("e3", masterdata.KindSite, "DC1", 2, site("ACTIVE")),          // STALE: same version as e2
		upsert("e1", masterdata.KindSite, "BR1", 1, site("ACTIVE")),          // DUPLICATE: e1 again, other key
		del("e4", masterdata.KindSite, "BR2", 5),                             // tombstone of an unseen record
		upsert("e5", masterdata.KindSite, "BR2", 3, site("ACTIVE")),          // STALE against the tombstone
		del("e6", masterdata.KindSite, "DC1", 3),                             // delete a live record
		upsert("e7", masterdata.KindSite, "DC1", 4, site("ACTIVE")),          // and bring it back
		upsert("e8", masterdata.KindInventory, "DC1/I1", 1, inv("I1", "10")), // indexed by site and item
		upsert("e9", masterdata.KindInventory, "DC1/I1", 2, inv("I1", "20")),
		upsert("e10", masterdata.KindInventory, "DC1/I2", 1, inv("I2", "5")),
		del("e11", masterdata.KindInventory, "DC1/I2", 2), // leaves the secondary indexes
	}
}

// contents is what a store shows a reader, per kind: live records (without Prepared), tombstones as
// "deleted" by Get, secondary-index lookups, and the live counts.
func contents(tb testing.TB, s *masterdata.Store) map[string]any {
	tb.Helper()
	sn := s.Snapshot()
	out := map[string]any{"counts": sn.Status().Counts}
	for _, k := range masterdata.Kinds() {
		for _, r := range sn.All(k) {
			out[string(k)+"/"+r.Key] = *r
		}
	}
	for _, key := range []string{"DC1", "BR1", "BR2"} {
		_, ok := sn.Get(masterdata.KindSite, key)
		out["get site/"+key] = ok
	}
	for _, q := range [][2]string{{masterdata.IndexSite, "DC1"}, {masterdata.IndexItem, "I1"}, {masterdata.IndexItem, "I2"}} {
		var keys []string
		for _, r := range sn.Lookup(masterdata.KindInventory, q[0], q[1]) {
			keys = append(keys, r.Key)
		}
		out["lookup inventory "+q[0]+"="+q[1]] = keys
	}
	return out
}

// applyOneByOne applies events to a new store one Apply each and returns the store and the outcomes.
func applyOneByOne(tb testing.TB, events []masterdata.Event) (*masterdata.Store, []masterdata.Outcome) {
	tb.Helper()
	s := newStore(tb, masterdata.Config{})
	var got []masterdata.Outcome
	for _, ev := range events {
		got = append(got, outcomes(s.Apply([]masterdata.Event{ev}))...)
	}
	return s, got
}

// TestBatchMatchesOneByOne: one Apply of many events, which reads its own uncommitted writes from beside
// the memdb transaction, gives the outcomes and the contents of applying them one Apply each.
func TestBatchMatchesOneByOne(t *testing.T) {
	events := batchEvents()
	// An INVALID event's id is not remembered, so the same id may be applied later in the batch.
	bad := upsert("e12", masterdata.KindSite, "BR3", 1, site("CLOSED"))
	good := upsert("e12", masterdata.KindSite, "BR3", 1, site("ACTIVE"))
	events = append(events, bad, good)

	single, wantOutcomes := applyOneByOne(t, events)
	const a, d, s, i = masterdata.OutcomeApplied, masterdata.OutcomeDuplicate, masterdata.OutcomeStale, masterdata.OutcomeInvalid
	if diff := cmp.Diff([]masterdata.Outcome{a, a, s, d, a, s, a, a, a, a, a, a, i, a}, wantOutcomes); diff != "" {
		t.Fatalf("one-by-one outcomes (-want +got):\n%s", diff)
	}
	batched := newStore(t, masterdata.Config{})
	res := batched.Apply(events)
	if diff := cmp.Diff(wantOutcomes, outcomes(res)); diff != "" {
		t.Errorf("outcomes (-one by one +batch):\n%s", diff)
	}
	if diff := cmp.Diff(contents(t, single), contents(t, batched)); diff != "" {
		t.Errorf("contents (-one by one +batch):\n%s", diff)
	}
	if res.Revision != 1 {
		t.Errorf("revision = %d, want 1", res.Revision)
	}
	assertLaterApply(t, batched)
}

// TestLoadDirMatchesOneByOne: LoadDir, which checks every event before it applies the directory as one
// batch, gives the counts and the contents of applying the same events one Apply each, and a later Apply
// still finds the loaded event ids (DUPLICATE) and versions (STALE).
func TestLoadDirMatchesOneByOne(t *testing.T) {
	events := batchEvents()
	half := len(events) / 2
	files := fstest.MapFS{
		"01-first.ndjson":  {Data: ndjson(t, events[:half])},
		"02-second.ndjson": {Data: ndjson(t, events[half:])},
	}
	single, wantOutcomes := applyOneByOne(t, events)
	loaded := newStore(t, masterdata.Config{})
	rep, err := loaded.LoadDir(files)
	if err != nil {
		t.Fatal(err)
	}
	want := masterdata.LoadReport{Files: []string{"01-first.ndjson", "02-second.ndjson"}, Events: len(events), Revision: 1}
	for _, o := range wantOutcomes {
		switch o {
		case masterdata.OutcomeApplied:
			want.Applied++
		case masterdata.OutcomeDuplicate:
			want.Duplicate++
		case masterdata.OutcomeStale:
			want.Stale++
		}
	}
	if diff := cmp.Diff(want, rep); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(contents(t, single), contents(t, loaded)); diff != "" {
		t.Errorf("contents (-one by one +LoadDir):\n%s", diff)
	}
	assertLaterApply(t, loaded)

	// Loading the same directory again changes nothing: what was applied or DUPLICATE is DUPLICATE, and
	// what was STALE (its id not remembered) is STALE again.
	revision := loaded.Status().Revision
	again, err := loaded.LoadDir(files)
	if err != nil {
		t.Fatal(err)
	}
	want = masterdata.LoadReport{
		Files: want.Files, Events: len(events), Duplicate: want.Applied + want.Duplicate, Stale: want.Stale,
		Revision: revision,
	}
	if diff := cmp.Diff(want, again); diff != "" {
		t.Errorf("second load (-want +got):\n%s", diff)
	}
}

// assertLaterApply checks that a store holding batchEvents still knows their ids and versions.
func assertLaterApply(t *testing.T, s *masterdata.Store) {
	t.Helper()
	before := s.Status().Revision
	res := s.Apply([]masterdata.Event{
		upsert("e2", masterdata.KindSite, "DC1", 9, site("INACTIVE")), // loaded id: DUPLICATE
		upsert("e6", masterdata.KindSite, "BR9", 1, site("ACTIVE")),   // id of a loaded DELETE: DUPLICATE
		upsert("n1", masterdata.KindSite, "DC1", 4, site("INACTIVE")), // loaded version 4: STALE
		upsert("n2", masterdata.KindSite, "BR2", 5, site("ACTIVE")),   // loaded tombstone version 5: STALE
		upsert("n3", masterdata.KindSite, "BR2", 6, site("ACTIVE")),   // newer than the tombstone: APPLIED
	})
	want := []masterdata.Outcome{
		masterdata.OutcomeDuplicate, masterdata.OutcomeDuplicate, masterdata.OutcomeStale,
		masterdata.OutcomeStale, masterdata.OutcomeApplied,
	}
	if diff := cmp.Diff(want, outcomes(res)); diff != "" {
		t.Errorf("later Apply outcomes (-want +got):\n%s", diff)
	}
	if res.Revision != before+1 {
		t.Errorf("revision = %d, want %d", res.Revision, before+1)
	}
}

// ndjson renders events as NDJSON lines.
func ndjson(tb testing.TB, events []masterdata.Event) []byte {
	tb.Helper()
	var b bytes.Buffer
	for _, ev := range events {
		b.Write(eventLine(tb, ev))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// TestLoadDirRejectedForgetsEverything: LoadDir applies events as it reads them, so a load rejected for an
// invalid event in a later file must drop what the earlier files applied, event ids included: the
// corrected directory then loads in full.
func TestLoadDirRejectedForgetsEverything(t *testing.T) {
	events := batchEvents()
	files := fstest.MapFS{
		"01-first.ndjson":  {Data: ndjson(t, events)},
		"02-second.ndjson": {Data: ndjson(t, []masterdata.Event{upsert("bad", masterdata.KindSite, "BR3", 1, site("CLOSED"))})},
	}
	s := newStore(t, masterdata.Config{})
	if _, err := s.LoadDir(files); !strings.Contains(err.Error(), `load master data 02-second.ndjson: line 1: event "bad"`) {
		t.Fatalf("err = %v, want the invalid event of the second file", err)
	}
	if diff := cmp.Diff(contents(t, newStore(t, masterdata.Config{})), contents(t, s)); diff != "" {
		t.Errorf("contents after a rejected load (-empty +got):\n%s", diff)
	}
	files["02-second.ndjson"] = &fstest.MapFile{Data: ndjson(t, []masterdata.Event{upsert("bad", masterdata.KindSite, "BR3", 1, site("ACTIVE"))})}
	rep, err := s.LoadDir(files)
	// batchEvents apply 9 of 12 (one DUPLICATE and two STALE within the load), the corrected event one more.
	if err != nil || rep.Applied != 10 || rep.Duplicate != 1 || rep.Stale != 2 || rep.Revision != 1 {
		t.Errorf("corrected load = %+v, %v; want 10 APPLIED, 1 DUPLICATE, 2 STALE at revision 1", rep, err)
	}
}
