package masterdata_test

import (
	"errors"
	"testing"
	"time"

	"github.com/tollgate/tollgate/server/masterdata"
)

var t0 = time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)

// applyAt calls ApplyAt and fails tb on an error.
func applyAt(tb testing.TB, s *masterdata.Store, seq uint64, at time.Time, events ...masterdata.Event) masterdata.ApplyResult {
	tb.Helper()
	res, err := s.ApplyAt(events, seq, at)
	if err != nil {
		tb.Fatalf("ApplyAt(seq %d): %v", seq, err)
	}
	return res
}

// TestApplyAtRevisionIsSequence: the revision is the given sequence whatever the events did, bad and
// duplicate ones included, and a sequence that does not grow is refused without applying anything.
func TestApplyAtRevisionIsSequence(t *testing.T) {
	s := newStore(t, masterdata.Config{})
	steps := []struct {
		seq     uint64
		ev      masterdata.Event
		outcome masterdata.Outcome
	}{
		{3, upsert("a", masterdata.KindSite, "BR1", 1, site("ACTIVE")), masterdata.OutcomeApplied},
		{4, upsert("a", masterdata.KindSite, "BR1", 2, site("INACTIVE")), masterdata.OutcomeDuplicate},
		{7, upsert("b", masterdata.KindSite, "BR1", 1, site("INACTIVE")), masterdata.OutcomeStale},
		{8, upsert("c", masterdata.KindSite, "BR1", 2, site("BOGUS")), masterdata.OutcomeInvalid},
	}
	for _, st := range steps {
		res := applyAt(t, s, st.seq, t0, st.ev)
		if got := res.Results[0].Outcome; got != st.outcome {
			t.Errorf("seq %d: outcome %s, want %s", st.seq, got, st.outcome)
		}
		if res.Revision != st.seq {
			t.Errorf("seq %d: result revision %d, want the sequence", st.seq, res.Revision)
		}
		if got := s.Snapshot().Revision(); got != st.seq {
			t.Errorf("seq %d: snapshot revision %d, want the sequence", st.seq, got)
		}
	}
	for _, seq := range []uint64{0, 8, 5} {
		_, err := s.ApplyAt([]masterdata.Event{upsert("d", masterdata.KindSite, "BR1", 9, site("INACTIVE"))}, seq, t0)
		if !errors.Is(err, masterdata.ErrRevision) {
			t.Errorf("ApplyAt(seq %d) after 8: err = %v, want ErrRevision", seq, err)
		}
	}
	if got := siteStatus(t, s.Snapshot(), "BR1"); got != "ACTIVE" {
		t.Errorf("BR1 status %q after refused ApplyAt calls, want ACTIVE (nothing applied)", got)
	}
	if st := s.Status(); st.Revision != 8 || st.LastEventID != "a" {
		t.Errorf("status revision %d last event %q, want 8 and a", st.Revision, st.LastEventID)
	}
	// An empty message run still moves the revision.
	if res := applyAt(t, s, 9, t0); res.Revision != 9 {
		t.Errorf("empty batch: revision %d, want 9", res.Revision)
	}
}

// TestCompactionByEventTime: seen ids and tombstones older than the newest event time minus Retain are
// forgotten after a batch, and only those; what that means for a resent event is as documented.
func TestCompactionByEventTime(t *testing.T) {
	s := newStore(t, masterdata.Config{Retain: time.Hour})
	seq := uint64(0)
	at := func(d time.Duration, evs ...masterdata.Event) masterdata.ApplyResult {
		seq++
		return applyAt(t, s, seq, t0.Add(d), evs...)
	}
	at(0, upsert("u1", masterdata.KindSite, "BR1", 1, site("ACTIVE")))
	at(0, del("d1", masterdata.KindSite, "BR2", 4))
	at(10*time.Minute, del("d2", masterdata.KindSite, "BR3", 4))
	at(20*time.Minute, upsert("u2", masterdata.KindSite, "BR3", 5, site("ACTIVE"))) // replaces tombstone d2
	want := func(ids, tombs int) {
		t.Helper()
		st := s.Status()
		if st.SeenEventIDs != ids || st.Tombstones != tombs {
			t.Errorf("seen ids %d tombstones %d, want %d and %d", st.SeenEventIDs, st.Tombstones, ids, tombs)
		}
	}
	want(4, 1)
	// Within the window a resent id is a duplicate and an older UPSERT of a deleted record is stale.
	if got := at(30*time.Minute, upsert("d1", masterdata.KindSite, "BR2", 9, site("ACTIVE"))).Results[0].Outcome; got != masterdata.OutcomeDuplicate {
		t.Errorf("resent d1 within the window: %s, want DUPLICATE", got)
	}
	if got := at(30*time.Minute, upsert("late", masterdata.KindSite, "BR2", 3, site("ACTIVE"))).Results[0].Outcome; got != masterdata.OutcomeStale {
		t.Errorf("late upsert within the window: %s, want STALE", got)
	}
	// 1h05 after t0: the two batches at t0 are forgotten (u1, d1 and BR2's tombstone); d2 (10 min) is not.
	at(65*time.Minute, upsert("u3", masterdata.KindSite, "BR4", 1, site("ACTIVE")))
	want(3, 0)
	if got := at(65*time.Minute, upsert("u1", masterdata.KindSite, "BR1", 1, site("INACTIVE"))).Results[0].Outcome; got != masterdata.OutcomeStale {
		t.Errorf("resent u1 past the window: %s, want STALE (the record keeps its version)", got)
	}
	// The documented hazard: a late UPSERT of a record whose tombstone was forgotten resurrects it.
	if got := at(65*time.Minute, upsert("late2", masterdata.KindSite, "BR2", 3, site("ACTIVE"))).Results[0].Outcome; got != masterdata.OutcomeApplied {
		t.Errorf("late upsert past the window: %s, want APPLIED", got)
	}
	want(4, 0)
	// Bounded: a long run of deletes keeps only about an hour of them.
	for i := range 600 {
		key := "X" + string(rune('A'+i%26)) + string(rune('A'+i/26))
		at(65*time.Minute+time.Duration(i)*time.Minute, del("x"+key, masterdata.KindSite, key, 1))
	}
	st := s.Status()
	if st.Tombstones > 61 || st.SeenEventIDs > 61 || st.Tombstones < 60 {
		t.Errorf("after 600 deletes a minute apart with Retain 1h: %d tombstones, %d seen ids, want about 60", st.Tombstones, st.SeenEventIDs)
	}
}

// TestApplyCompactsWithClock: Apply remembers events at Config.Now, and a negative Retain keeps all.
func TestApplyCompactsWithClock(t *testing.T) {
	for _, tc := range []struct {
		retain      time.Duration
		ids, tombs  int
		description string
	}{
		{time.Hour, 1, 0, "1h"},
		{-1, 3, 1, "forever"},
	} {
		t.Run(tc.description, func(t *testing.T) {
			now := t0
			s := newStore(t, masterdata.Config{Retain: tc.retain, Now: func() time.Time { return now }})
			s.Apply([]masterdata.Event{upsert("a", masterdata.KindSite, "BR1", 1, site("ACTIVE")), del("b", masterdata.KindSite, "BR2", 1)})
			now = now.Add(2 * time.Hour)
			s.Apply([]masterdata.Event{upsert("c", masterdata.KindSite, "BR3", 1, site("ACTIVE"))})
			if st := s.Status(); st.SeenEventIDs != tc.ids || st.Tombstones != tc.tombs || st.Revision != 2 {
				t.Errorf("seen ids %d tombstones %d revision %d, want %d, %d, 2", st.SeenEventIDs, st.Tombstones, st.Revision, tc.ids, tc.tombs)
			}
		})
	}
}
