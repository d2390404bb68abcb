package masterdata_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate/tollgate/server/masterdata"
)

func site(status string) map[string]any {
	return map[string]any{"status": status, "type": "DC", "company": "ACME"}
}

func del(id string, kind masterdata.Kind, key string, version uint64) masterdata.Event {
	return masterdata.Event{EventID: id, Kind: kind, Key: key, Version: version, Op: masterdata.OpDelete}
}

func siteStatus(tb testing.TB, sn *masterdata.Snapshot, key string) string {
	tb.Helper()
	r, ok := sn.Get(masterdata.KindSite, key)
	if !ok {
		return "<none>"
	}
	return r.Fields["status"].(string)
}

func TestDuplicateEventID(t *testing.T) {
	s := newStore(t, masterdata.Config{})
	mustApply(t, s, upsert("e1", masterdata.KindSite, "DC1", 1, site("ACTIVE")))

	// Same id again, even with a newer version and other content: a no-op.
	res := s.Apply([]masterdata.Event{upsert("e1", masterdata.KindSite, "DC1", 2, site("INACTIVE"))})
	if diff := cmp.Diff([]masterdata.Outcome{masterdata.OutcomeDuplicate}, outcomes(res)); diff != "" {
		t.Fatalf("outcomes (-want +got):\n%s", diff)
	}
	if res.Results[0].Err != nil || res.Revision != 1 {
		t.Errorf("duplicate: err %v, revision %d; want nil, 1", res.Results[0].Err, res.Revision)
	}
	// Twice in one batch: the second is a duplicate of the first.
	res = s.Apply([]masterdata.Event{
		upsert("e2", masterdata.KindSite, "DC1", 2, site("INACTIVE")),
		upsert("e2", masterdata.KindSite, "DC1", 3, site("ACTIVE")),
	})
	want := []masterdata.Outcome{masterdata.OutcomeApplied, masterdata.OutcomeDuplicate}
	if diff := cmp.Diff(want, outcomes(res)); diff != "" {
		t.Fatalf("outcomes (-want +got):\n%s", diff)
	}
	sn := s.Snapshot()
	if got := siteStatus(t, sn, "DC1"); got != "INACTIVE" {
		t.Errorf("status = %s, want INACTIVE (the in-batch duplicate must not apply)", got)
	}
	if r, _ := sn.Get(masterdata.KindSite, "DC1"); r.Version != 2 || r.EventID != "e2" {
		t.Errorf("record version %d event %s, want 2 e2", r.Version, r.EventID)
	}
}

func TestStaleVersion(t *testing.T) {
	for name, version := range map[string]uint64{"equal": 5, "lower": 4} {
		t.Run(name, func(t *testing.T) {
			s := newStore(t, masterdata.Config{})
			mustApply(t, s, upsert("e1", masterdata.KindSite, "DC1", 5, site("ACTIVE")))
			res := s.Apply([]masterdata.Event{upsert("e2", masterdata.KindSite, "DC1", version, site("INACTIVE"))})
			if diff := cmp.Diff([]masterdata.Outcome{masterdata.OutcomeStale}, outcomes(res)); diff != "" {
				t.Fatalf("outcomes (-want +got):\n%s", diff)
			}
			err := res.Results[0].Err
			var se *masterdata.StaleError
			if !errors.Is(err, masterdata.ErrStale) || !errors.As(err, &se) {
				t.Fatalf("err = %v, want a *StaleError matching ErrStale", err)
			}
			if se.Stored != 5 || se.Given != version {
				t.Errorf("StaleError = %+v, want stored 5 given %d", se, version)
			}
			if want := fmt.Sprintf("site DC1: version %d is not newer than stored version 5", version); err.Error() != want {
				t.Errorf("message = %q, want %q", err, want)
			}
			if got := siteStatus(t, s.Snapshot(), "DC1"); got != "ACTIVE" || res.Revision != 1 {
				t.Errorf("after stale: status %s revision %d; want ACTIVE 1", got, res.Revision)
			}
			// A stale event's id is not remembered: the source may resend it with a corrected version.
			res = s.Apply([]masterdata.Event{upsert("e2", masterdata.KindSite, "DC1", 6, site("INACTIVE"))})
			if diff := cmp.Diff([]masterdata.Outcome{masterdata.OutcomeApplied}, outcomes(res)); diff != "" {
				t.Errorf("resent stale event (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDeleteKeepsTombstone(t *testing.T) {
	s := newStore(t, masterdata.Config{})
	mustApply(t, s, upsert("e1", masterdata.KindSite, "DC1", 1, site("ACTIVE")))
	mustApply(t, s, del("e2", masterdata.KindSite, "DC1", 3))
	if _, ok := s.Snapshot().Get(masterdata.KindSite, "DC1"); ok {
		t.Fatal("deleted record still readable")
	}
	if got := s.Status().Counts[masterdata.KindSite]; got != 0 {
		t.Errorf("site count after delete = %d, want 0", got)
	}
	// An older upsert arriving late cannot resurrect the record.
	res := s.Apply([]masterdata.Event{upsert("e3", masterdata.KindSite, "DC1", 2, site("ACTIVE"))})
	if diff := cmp.Diff([]masterdata.Outcome{masterdata.OutcomeStale}, outcomes(res)); diff != "" {
		t.Fatalf("older upsert after delete (-want +got):\n%s", diff)
	}
	var se *masterdata.StaleError
	if !errors.As(res.Results[0].Err, &se) || se.Stored != 3 {
		t.Errorf("err = %v, want StaleError with stored version 3 (the tombstone)", res.Results[0].Err)
	}
	// Neither can a delete at the same version.
	if got := outcomes(s.Apply([]masterdata.Event{del("e4", masterdata.KindSite, "DC1", 3)})); got[0] != masterdata.OutcomeStale {
		t.Errorf("delete at tombstone version: %s, want STALE", got[0])
	}
	// A newer upsert brings it back.
	mustApply(t, s, upsert("e5", masterdata.KindSite, "DC1", 4, site("INACTIVE")))
	if got := siteStatus(t, s.Snapshot(), "DC1"); got != "INACTIVE" {
		t.Errorf("status = %s, want INACTIVE", got)
	}
	if got := s.Status().Counts[masterdata.KindSite]; got != 1 {
		t.Errorf("site count = %d, want 1", got)
	}
}

func TestDeleteUnseenRecordBlocksOlderUpsert(t *testing.T) {
	s := newStore(t, masterdata.Config{})
	mustApply(t, s, del("e1", masterdata.KindSite, "DC7", 10))
	if got := s.Status().Counts[masterdata.KindSite]; got != 0 {
		t.Errorf("count = %d after deleting an unseen record, want 0", got)
	}
	res := s.Apply([]masterdata.Event{upsert("e0", masterdata.KindSite, "DC7", 9, site("ACTIVE"))})
	if got := outcomes(res)[0]; got != masterdata.OutcomeStale {
		t.Errorf("older upsert after out-of-order delete: %s, want STALE", got)
	}
}

func TestInvalidEventChangesNothing(t *testing.T) {
	s := newStore(t, masterdata.Config{})
	mustApply(t, s, upsert("e1", masterdata.KindSite, "DC1", 1, site("ACTIVE")))
	before := s.Status()
	res := s.Apply([]masterdata.Event{upsert("e2", masterdata.KindSite, "DC1", 2, site("CLOSED"))})
	if got := outcomes(res)[0]; got != masterdata.OutcomeInvalid {
		t.Fatalf("outcome = %s, want INVALID", got)
	}
	if diff := cmp.Diff(before, s.Status()); diff != "" {
		t.Errorf("status changed by an invalid event (-want +got):\n%s", diff)
	}
	r, _ := s.Snapshot().Get(masterdata.KindSite, "DC1")
	if r.Version != 1 || r.Fields["status"] != "ACTIVE" {
		t.Errorf("record changed by an invalid event: %+v", r)
	}
	// The invalid event's id is not remembered: a corrected event may reuse it.
	mustApply(t, s, upsert("e2", masterdata.KindSite, "DC1", 2, site("INACTIVE")))
}

func TestMixedBatch(t *testing.T) {
	s := newStore(t, masterdata.Config{})
	mustApply(t, s, upsert("e0", masterdata.KindSite, "BR1", 5, site("ACTIVE")))
	res := s.Apply([]masterdata.Event{
		upsert("e1", masterdata.KindSite, "DC1", 1, site("ACTIVE")),   // applied
		upsert("e2", masterdata.KindSite, "DC2", 1, site("SHUT")),     // invalid
		upsert("e1", masterdata.KindSite, "DC3", 1, site("ACTIVE")),   // duplicate (in batch)
		upsert("e3", masterdata.KindSite, "BR1", 4, site("INACTIVE")), // stale
		upsert("e0", masterdata.KindSite, "DC4", 1, site("ACTIVE")),   // duplicate (earlier batch)
		del("e4", masterdata.KindSite, "BR1", 6),                      // applied
	})
	want := []masterdata.Outcome{
		masterdata.OutcomeApplied, masterdata.OutcomeInvalid, masterdata.OutcomeDuplicate,
		masterdata.OutcomeStale, masterdata.OutcomeDuplicate, masterdata.OutcomeApplied,
	}
	if diff := cmp.Diff(want, outcomes(res)); diff != "" {
		t.Fatalf("outcomes (-want +got):\n%s", diff)
	}
	for i, r := range res.Results {
		wantErr := r.Outcome == masterdata.OutcomeInvalid || r.Outcome == masterdata.OutcomeStale
		if (r.Err != nil) != wantErr {
			t.Errorf("result %d (%s): err %v", i, r.Outcome, r.Err)
		}
	}
	if res.Revision != 2 {
		t.Errorf("revision = %d, want 2 (one per applying batch)", res.Revision)
	}
	sn := s.Snapshot()
	got := map[string]string{}
	for _, k := range []string{"DC1", "DC2", "DC3", "DC4", "BR1"} {
		got[k] = siteStatus(t, sn, k)
	}
	wantSites := map[string]string{"DC1": "ACTIVE", "DC2": "<none>", "DC3": "<none>", "DC4": "<none>", "BR1": "<none>"}
	if diff := cmp.Diff(wantSites, got); diff != "" {
		t.Errorf("sites (-want +got):\n%s", diff)
	}
	st := s.Status()
	if st.LastEventID != "e4" || st.Counts[masterdata.KindSite] != 1 {
		t.Errorf("status = %+v, want last event e4 and 1 site", st)
	}
}

func TestRevisionCounting(t *testing.T) {
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	s := newStore(t, masterdata.Config{Now: func() time.Time { return now }})
	st := s.Status()
	if st.Revision != 0 || st.LastEventID != "" || !st.LastAppliedAt.IsZero() {
		t.Fatalf("new store status = %+v", st)
	}
	steps := []struct {
		events []masterdata.Event
		want   uint64
	}{
		{[]masterdata.Event{upsert("e1", masterdata.KindSite, "DC1", 1, site("ACTIVE")), upsert("e2", masterdata.KindSite, "BR1", 1, site("ACTIVE"))}, 1},
		{nil, 1}, // empty batch
		{[]masterdata.Event{upsert("e1", masterdata.KindSite, "DC1", 9, site("ACTIVE"))}, 1},   // only a duplicate
		{[]masterdata.Event{upsert("e3", masterdata.KindSite, "DC1", 1, site("ACTIVE"))}, 1},   // only stale
		{[]masterdata.Event{upsert("e4", masterdata.KindSite, "DC1", 2, site("BROKEN"))}, 1},   // only invalid
		{[]masterdata.Event{upsert("e5", masterdata.KindSite, "DC1", 2, site("INACTIVE"))}, 2}, // applied
		{[]masterdata.Event{del("e6", masterdata.KindSite, "BR1", 2)}, 3},                      // applied delete
	}
	for i, step := range steps {
		now = now.Add(time.Minute)
		res := s.Apply(step.events)
		if res.Revision != step.want {
			t.Errorf("step %d: ApplyResult.Revision = %d, want %d", i, res.Revision, step.want)
		}
		if got := s.Snapshot().Revision(); got != step.want {
			t.Errorf("step %d: Snapshot().Revision() = %d, want %d", i, got, step.want)
		}
	}
	st = s.Status()
	if st.LastEventID != "e6" || !st.LastAppliedAt.Equal(now) {
		t.Errorf("status = %+v, want last event e6 at %v", st, now)
	}
	wantCounts := map[masterdata.Kind]int{}
	for _, k := range masterdata.Kinds() {
		wantCounts[k] = 0
	}
	wantCounts[masterdata.KindSite] = 1
	if diff := cmp.Diff(wantCounts, st.Counts); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
	st.Counts[masterdata.KindSite] = 99 // the caller's copy
	if s.Status().Counts[masterdata.KindSite] != 1 {
		t.Error("Status().Counts aliases the store's map")
	}
}

func TestSupplierInvoiceKeyNormalization(t *testing.T) {
	s := newStore(t, masterdata.Config{})
	_, rec := validRecord(masterdata.KindSupplierInvoice)
	rec["invoice_ref"] = "inv 00123"
	// The event key may carry the ref as received; the stored key is normalized.
	mustApply(t, s, upsert("e1", masterdata.KindSupplierInvoice, "S1/INV-00123", 1, rec))
	sn := s.Snapshot()
	for _, key := range []string{"S1/INV00123", "S1/INV-00123", "S1/inv 00123", "S1/0INV00123"} {
		r, ok := sn.Get(masterdata.KindSupplierInvoice, key)
		if !ok {
			t.Errorf("Get(%q): not found", key)
			continue
		}
		if r.Key != "S1/INV00123" || r.Fields["invoice_ref"] != "inv 00123" {
			t.Errorf("Get(%q) = key %q ref %q; want key S1/INV00123, ref as received", key, r.Key, r.Fields["invoice_ref"])
		}
	}
	if _, ok := sn.Get(masterdata.KindSupplierInvoice, "S2/INV00123"); ok {
		t.Error("another supplier's ref found")
	}
	// The same invoice under another spelling is the same record: version ordering applies.
	_, rec2 := validRecord(masterdata.KindSupplierInvoice)
	rec2["invoice_ref"] = "INV00123"
	res := s.Apply([]masterdata.Event{upsert("e2", masterdata.KindSupplierInvoice, "S1/INV00123", 1, rec2)})
	if got := outcomes(res)[0]; got != masterdata.OutcomeStale {
		t.Errorf("same invoice, other spelling, same version: %s, want STALE", got)
	}
	mustApply(t, s, del("e3", masterdata.KindSupplierInvoice, "S1/inv-00123", 2))
	if _, ok := s.Snapshot().Get(masterdata.KindSupplierInvoice, "S1/INV00123"); ok {
		t.Error("delete by unnormalized key did not delete")
	}
}

func TestLookupByPair(t *testing.T) {
	s := newStore(t, masterdata.Config{})
	deleg := func(id, from, to string) masterdata.Event {
		_, rec := validRecord(masterdata.KindDelegation)
		rec["delegator_id"], rec["delegate_id"] = from, to
		return upsert("e-"+id, masterdata.KindDelegation, id, 1, rec)
	}
	mustApply(t, s,
		deleg("D2", "u_pm1", "u_buyer1"),
		deleg("D1", "u_pm1", "u_buyer1"),
		deleg("D3", "u_pm1", "u_buyer2"),
		deleg("D4", "u_pm", "u_buyer1"), // a prefix of u_pm1: must not match u_pm1/u_buyer1
		deleg("D5", "u_pm1", "u_buyer1"),
	)
	mustApply(t, s, del("e-del", masterdata.KindDelegation, "D5", 2))
	keys := func(rs []*masterdata.Record) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Key)
		}
		return out
	}
	sn := s.Snapshot()
	tests := []struct {
		index, value string
		want         []string
	}{
		{masterdata.IndexPair, "u_pm1/u_buyer1", []string{"D1", "D2"}}, // key order; D5 deleted
		{masterdata.IndexPair, "u_pm1/u_buyer2", []string{"D3"}},
		{masterdata.IndexPair, "u_pm/u_buyer1", []string{"D4"}},
		{masterdata.IndexPair, "u_pm1/u_buyer", nil},
		{masterdata.IndexPair, "u_pm1", nil},
		{masterdata.IndexDelegator, "u_pm1", []string{"D1", "D2", "D3"}},
		{masterdata.IndexDelegate, "u_buyer1", []string{"D1", "D2", "D4"}},
		{masterdata.IndexID, "D3", []string{"D3"}},
		{masterdata.IndexID, "D5", nil},
		{"no_such_index", "u_pm1/u_buyer1", nil},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, keys(sn.Lookup(masterdata.KindDelegation, tt.index, tt.value))); diff != "" {
			t.Errorf("Lookup(delegation, %s, %s) (-want +got):\n%s", tt.index, tt.value, diff)
		}
	}
	if got := sn.Lookup("nope", masterdata.IndexPair, "u_pm1/u_buyer1"); got != nil {
		t.Errorf("Lookup on unknown kind = %v, want nil", got)
	}
	if got := keys(sn.All(masterdata.KindDelegation)); !cmp.Equal(got, []string{"D1", "D2", "D3", "D4"}) {
		t.Errorf("All(delegation) = %v", got)
	}
}

func TestSecondaryIndexesOfOtherKinds(t *testing.T) {
	s := newStore(t, masterdata.Config{})
	mustApply(t, s,
		validEvent(masterdata.KindInventory),
		validEvent(masterdata.KindFiscalPeriod),
		validEvent(masterdata.KindSupplierInvoice),
		validEvent(masterdata.KindASN),
	)
	sn := s.Snapshot()
	for _, tt := range []struct {
		kind         masterdata.Kind
		index, value string
		wantKey      string
	}{
		{masterdata.KindInventory, masterdata.IndexSite, "DC1", "DC1/I1"},
		{masterdata.KindInventory, masterdata.IndexItem, "I1", "DC1/I1"},
		{masterdata.KindFiscalPeriod, masterdata.IndexCompany, "ACME", "ACME/2026-11"},
		{masterdata.KindSupplierInvoice, masterdata.IndexSupplier, "S1", "S1/INV00123"},
		{masterdata.KindSupplierInvoice, masterdata.IndexCompany, "ACME", "S1/INV00123"},
		{masterdata.KindASN, masterdata.IndexSupplier, "S1", "S1/ASN-7001"},
	} {
		got := sn.Lookup(tt.kind, tt.index, tt.value)
		if len(got) != 1 || got[0].Key != tt.wantKey {
			t.Errorf("Lookup(%s, %s, %s) = %v, want [%s]", tt.kind, tt.index, tt.value, got, tt.wantKey)
		}
	}
}

func TestPrepare(t *testing.T) {
	type prepared struct {
		kind   masterdata.Kind
		key    string
		status any
	}
	var calls int
	prepare := func(kind masterdata.Kind, key string, fields map[string]any) (any, error) {
		calls++
		if fields["status"] == "INACTIVE" {
			return nil, errors.New("inactive sites are not welcome here")
		}
		return prepared{kind, key, fields["status"]}, nil
	}
	s := newStore(t, masterdata.Config{Prepare: prepare})
	res := s.Apply([]masterdata.Event{
		upsert("e1", masterdata.KindSite, "DC1", 1, site("ACTIVE")),   // prepared
		upsert("e1", masterdata.KindSite, "DC2", 1, site("ACTIVE")),   // duplicate: not prepared
		upsert("e2", masterdata.KindSite, "BR1", 1, site("INACTIVE")), // prepare fails: INVALID
		upsert("e3", masterdata.KindSite, "DC1", 1, site("ACTIVE")),   // stale: not prepared
		upsert("e4", masterdata.KindSite, "DC3", 1, site("WRONG")),    // invalid: not prepared
		del("e5", masterdata.KindSite, "DC4", 1),                      // delete: not prepared
	})
	want := []masterdata.Outcome{
		masterdata.OutcomeApplied, masterdata.OutcomeDuplicate, masterdata.OutcomeInvalid,
		masterdata.OutcomeStale, masterdata.OutcomeInvalid, masterdata.OutcomeApplied,
	}
	if diff := cmp.Diff(want, outcomes(res)); diff != "" {
		t.Fatalf("outcomes (-want +got):\n%s", diff)
	}
	if calls != 2 {
		t.Errorf("Prepare called %d times, want 2 (DC1, BR1)", calls)
	}
	if err := res.Results[2].Err; !errors.Is(err, masterdata.ErrInvalid) || err.Error() != "site BR1: prepare: inactive sites are not welcome here" {
		t.Errorf("prepare error = %v", err)
	}
	sn := s.Snapshot()
	r, _ := sn.Get(masterdata.KindSite, "DC1")
	if diff := cmp.Diff(prepared{masterdata.KindSite, "DC1", "ACTIVE"}, r.Prepared, cmp.AllowUnexported(prepared{})); diff != "" {
		t.Errorf("Prepared (-want +got):\n%s", diff)
	}
	if _, ok := sn.Get(masterdata.KindSite, "BR1"); ok {
		t.Error("record whose Prepare failed is readable")
	}
}

func TestSnapshotIsolation(t *testing.T) {
	s := newStore(t, masterdata.Config{})
	mustApply(t, s, upsert("e1", masterdata.KindSite, "DC1", 1, site("ACTIVE")))
	old := s.Snapshot()
	mustApply(t, s, upsert("e2", masterdata.KindSite, "DC1", 2, site("INACTIVE")), upsert("e3", masterdata.KindSite, "BR1", 1, site("ACTIVE")))
	mustApply(t, s, del("e4", masterdata.KindSite, "DC1", 3))
	if old.Revision() != 1 || siteStatus(t, old, "DC1") != "ACTIVE" || siteStatus(t, old, "BR1") != "<none>" {
		t.Errorf("old snapshot moved: revision %d DC1 %s BR1 %s", old.Revision(), siteStatus(t, old, "DC1"), siteStatus(t, old, "BR1"))
	}
	if st := old.Status(); st.Counts[masterdata.KindSite] != 1 || st.LastEventID != "e1" {
		t.Errorf("old snapshot status = %+v", st)
	}
	cur := s.Snapshot()
	if cur.Revision() != 3 || siteStatus(t, cur, "DC1") != "<none>" || siteStatus(t, cur, "BR1") != "ACTIVE" {
		t.Errorf("current snapshot: revision %d DC1 %s BR1 %s", cur.Revision(), siteStatus(t, cur, "DC1"), siteStatus(t, cur, "BR1"))
	}
}

func TestGetUnknownKindOrMalformedKey(t *testing.T) {
	s := newStore(t, masterdata.Config{})
	mustApply(t, s, validEvent(masterdata.KindInventory))
	sn := s.Snapshot()
	for _, c := range []struct {
		kind masterdata.Kind
		key  string
	}{{"warehouse", "DC1"}, {masterdata.KindInventory, "DC1"}, {masterdata.KindInventory, ""}, {masterdata.KindInventory, "DC1/I1/x"}} {
		if r, ok := sn.Get(c.kind, c.key); ok || r != nil {
			t.Errorf("Get(%q, %q) = %v, %v; want nil, false", c.kind, c.key, r, ok)
		}
	}
	if _, ok := sn.Get(masterdata.KindInventory, "DC1/I1"); !ok {
		t.Error("Get(inventory, DC1/I1): not found")
	}
}

// TestApplyLeavesRecordsAlone: Apply normalizes into a map of its own (LoadDir alone normalizes its
// decoded records in place), so the caller's record is as it was, and the stored one is normalized.
func TestApplyLeavesRecordsAlone(t *testing.T) {
	_, rec := validRecord(masterdata.KindCustomer)
	rec["tier"] = json.Number("2.0") // stored as "2"; "id" is added
	before := maps.Clone(rec)
	s := newStore(t, masterdata.Config{})
	mustApply(t, s, upsert("e1", masterdata.KindCustomer, "C1", 1, rec))
	if diff := cmp.Diff(before, rec); diff != "" {
		t.Errorf("caller's record after Apply (-before +after):\n%s", diff)
	}
	r, _ := s.Snapshot().Get(masterdata.KindCustomer, "C1")
	if r.Fields["tier"] != json.Number("2") || r.Fields["id"] != "C1" {
		t.Errorf("stored tier, id = %v, %v; want 2, C1", r.Fields["tier"], r.Fields["id"])
	}
}

// TestFieldNames: the fields of a stored record of every kind are FieldNames(kind), whichever optional
// fields its event left out.
func TestFieldNames(t *testing.T) {
	s := newStore(t, masterdata.Config{})
	for _, kind := range masterdata.Kinds() {
		ev := validEvent(kind)
		mustApply(t, s, ev)
		r, ok := s.Snapshot().Get(kind, ev.Key)
		if !ok {
			t.Fatalf("%s %s not stored", kind, ev.Key)
		}
		got := slices.Sorted(maps.Keys(r.Fields))
		want := slices.Sorted(slices.Values(masterdata.FieldNames(kind)))
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: fields (-FieldNames +stored):\n%s", kind, diff)
		}
	}
	if got := masterdata.FieldNames("nope"); got != nil {
		t.Errorf("FieldNames of an unknown kind = %v, want nil", got)
	}
}
