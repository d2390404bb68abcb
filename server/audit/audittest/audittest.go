// Package audittest is the conformance suite every audit.Store backend
// passes, helpers to build sealed records for tests, and FaultStore, a
// Store that fails on purpose for tests of failure handling.
package audittest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/transparency"
)

// Base is the evaluation time of Decision(0).
func Base() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }

// Decision returns an unsealed decision record with id fmt.Sprintf("d%03d",
// n), evaluated n seconds after 2026-03-01T12:00:00Z, with fields that vary
// with n so filters can tell records apart:
//
//	actor      "actor-" + n%3
//	action     "po.approve" (even n) or "invoice.pay" (odd n)
//	resource   type "po", id "po-" + n%4
//	effect     ALLOW, DENY, REQUIRE_APPROVAL by n%3
//	reasons    "R" + n%3, plus "COMMON"
//	bundle     "rev-" + n%2
//	workflow   "wf-" + n%5 in context["workflow_id"]
func Decision(n int) *audit.Record {
	attrs, _ := structpb.NewStruct(map[string]any{"amount": "5000.00", "currency": "EUR", "bank_account": "DE44500105175407324931"})
	action := "po.approve"
	if n%2 == 1 {
		action = "invoice.pay"
	}
	return &audit.Record{
		DecisionId:  fmt.Sprintf("d%03d", n),
		EvaluatedAt: timestamppb.New(Base().Add(time.Duration(n) * time.Second)),
		Caller:      "127.0.0.1:5000",
		Request: &tollgatev1.DecideRequest{
			Actor:    &tollgatev1.Actor{Id: fmt.Sprintf("actor-%d", n%3), Type: tollgatev1.ActorType_ACTOR_TYPE_HUMAN},
			Action:   action,
			Resource: &tollgatev1.Resource{Type: "po", Id: fmt.Sprintf("po-%d", n%4), Attributes: attrs},
			Context:  map[string]string{"workflow_id": fmt.Sprintf("wf-%d", n%5)},
		},
		Effect:             []tollgatev1.Effect{tollgatev1.Effect_EFFECT_ALLOW, tollgatev1.Effect_EFFECT_DENY, tollgatev1.Effect_EFFECT_REQUIRE_APPROVAL}[n%3],
		Reasons:            []*tollgatev1.Reason{{Code: fmt.Sprintf("R%d", n%3), Message: "m"}, {Code: "COMMON"}},
		BundleRevision:     fmt.Sprintf("rev-%d", n%2),
		MasterdataRevision: uint64(n),
		FactsJson:          `[{"args":["supplier","S1"],"builtin":"md.get","result":{"status":"active"}}]`,
		Latency:            durationpb.New(time.Duration(n) * time.Microsecond),
		Kind:               tollgatev1.RecordKind_RECORD_KIND_DECISION,
	}
}

// Sealed chains recs after prev (seq, prev_hash, hash, chain_id set in
// place) and returns them with the new head.
func Sealed(tb testing.TB, prev audit.Head, recs ...*audit.Record) ([]*audit.Record, audit.Head) {
	tb.Helper()
	hash := prev.Hash
	if prev.Seq == 0 {
		hash = audit.GenesisHash()
	}
	seq := prev.Seq
	for _, r := range recs {
		r.ChainId = prev.ChainID
		seq++
		if err := audit.Seal(r, seq, hash); err != nil {
			tb.Fatal(err)
		}
		hash = r.Hash
	}
	return recs, audit.Head{ChainID: prev.ChainID, Seq: seq, Hash: hash}
}

// Entries returns the store entries of sealed records.
func Entries(tb testing.TB, recs ...*audit.Record) []audit.Entry {
	tb.Helper()
	out := make([]audit.Entry, len(recs))
	for i, r := range recs {
		e, err := audit.NewEntry(r)
		if err != nil {
			tb.Fatal(err)
		}
		out[i] = e
	}
	return out
}

// Run runs the conformance suite. newStore returns an empty store that
// lives until the test ends (the suite closes it only where it says so).
func Run(t *testing.T, newStore func(t *testing.T) audit.Store) {
	ctx := context.Background()
	t.Run("AppendGetHead", func(t *testing.T) {
		s := newStore(t)
		h, err := s.Head(ctx, "c1")
		if err != nil || h.Seq != 0 {
			t.Fatalf("Head of empty chain = %+v, %v; want seq 0", h, err)
		}
		if _, err := s.Last(ctx, "c1"); !errors.Is(err, audit.ErrNotFound) {
			t.Fatalf("Last of empty chain: err = %v, want ErrNotFound", err)
		}
		recs, head := Sealed(t, audit.Head{ChainID: "c1"}, Decision(1), Decision(2), Decision(3))
		mustAppend(t, s, audit.Head{ChainID: "c1"}, recs)
		for _, want := range recs {
			got, err := s.Get(ctx, want.DecisionId)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(want, got, protocmp.Transform()); d != "" {
				t.Errorf("Get(%s) (-want +got):\n%s", want.DecisionId, d)
			}
		}
		gotHead, err := s.Head(ctx, "c1")
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(head, gotHead); d != "" {
			t.Errorf("Head (-want +got):\n%s", d)
		}
		last, err := s.Last(ctx, "c1")
		if err != nil || last.DecisionId != "d003" {
			t.Errorf("Last = %v, %v; want d003", last.GetDecisionId(), err)
		}
		recs2, _ := Sealed(t, audit.Head{ChainID: "c0"}, Decision(9))
		mustAppend(t, s, audit.Head{ChainID: "c0"}, recs2)
		chains, err := s.Chains(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff([]string{"c0", "c1"}, chains); d != "" {
			t.Errorf("Chains (-want +got):\n%s", d)
		}
		if _, err := s.Get(ctx, "nope"); !errors.Is(err, audit.ErrNotFound) {
			t.Errorf("Get(nope): err = %v, want ErrNotFound", err)
		}
	})

	t.Run("AppendIsAtomic", func(t *testing.T) {
		s := newStore(t)
		recs, head := Sealed(t, audit.Head{ChainID: "c"}, Decision(1), Decision(2))
		mustAppend(t, s, audit.Head{ChainID: "c"}, recs)
		// The second record of this batch reuses d001: the whole batch fails.
		batch, _ := Sealed(t, head, Decision(3), Decision(1), Decision(4))
		err := s.Append(ctx, head, Entries(t, batch...))
		if !errors.Is(err, audit.ErrDuplicate) {
			t.Fatalf("Append with duplicate id: err = %v, want ErrDuplicate", err)
		}
		for _, id := range []string{"d003", "d004"} {
			if _, err := s.Get(ctx, id); !errors.Is(err, audit.ErrNotFound) {
				t.Errorf("Get(%s) after failed batch: err = %v, want ErrNotFound", id, err)
			}
		}
		got, _ := s.Head(ctx, "c")
		if got.Seq != 2 {
			t.Errorf("head seq after failed batch = %d, want 2", got.Seq)
		}
		// The store goes on after a failed batch: the same chain position takes a good one.
		good, _ := Sealed(t, head, Decision(3), Decision(4))
		mustAppend(t, s, head, good)
		if got, _ := s.Head(ctx, "c"); got.Seq != 4 {
			t.Errorf("head seq after the next batch = %d, want 4", got.Seq)
		}
	})

	t.Run("AppendChecksHead", func(t *testing.T) {
		s := newStore(t)
		recs, head := Sealed(t, audit.Head{ChainID: "c"}, Decision(1))
		mustAppend(t, s, audit.Head{ChainID: "c"}, recs)
		// A second writer that still believes the chain is empty.
		stale, _ := Sealed(t, audit.Head{ChainID: "c"}, Decision(2))
		if err := s.Append(ctx, audit.Head{ChainID: "c"}, Entries(t, stale...)); !errors.Is(err, audit.ErrHeadMismatch) {
			t.Errorf("Append on stale head: err = %v, want ErrHeadMismatch", err)
		}
		forged := head
		forged.Hash = make([]byte, 32)
		next, _ := Sealed(t, forged, Decision(3))
		if err := s.Append(ctx, forged, Entries(t, next...)); !errors.Is(err, audit.ErrHeadMismatch) {
			t.Errorf("Append on head with wrong hash: err = %v, want ErrHeadMismatch", err)
		}
		bad, _ := Sealed(t, head, Decision(4))
		bad[0].Seq = 7
		if err := s.Append(ctx, head, Entries(t, bad...)); !errors.Is(err, audit.ErrInvalidArgument) {
			t.Errorf("Append with seq gap: err = %v, want ErrInvalidArgument", err)
		}
		forgedBody, _ := Sealed(t, head, Decision(5))
		entries := Entries(t, forgedBody...)
		entries[0].Record.Caller = "not what the body says"
		entries[0].Body = []byte(strings.Replace(string(entries[0].Body), `"caller":"127.0.0.1:5000"`, `"caller":"elsewhere"`, 1))
		if err := s.Append(ctx, head, entries); !errors.Is(err, audit.ErrInvalidArgument) {
			t.Errorf("Append with a body that does not hash to the record's hash: err = %v, want ErrInvalidArgument", err)
		}
		if got, _ := s.Head(ctx, "c"); got.Seq != 1 {
			t.Errorf("head seq after refused appends = %d, want 1", got.Seq)
		}
	})

	t.Run("IdempotencyKey", func(t *testing.T) {
		s := newStore(t)
		d1 := Decision(1)
		d1.IdempotencyKey, d1.PayloadHash, d1.Caller = "k1", []byte{1}, "alice (mtls) from 10.0.0.1:5000"
		marker := Decision(2)
		marker.IdempotencyKey, marker.PayloadHash, marker.Caller = "k1", []byte{1}, "alice (token) from 10.0.0.2:5000"
		marker.Kind, marker.ReplayOf = tollgatev1.RecordKind_RECORD_KIND_REPLAY, "d001"
		recs, head := Sealed(t, audit.Head{ChainID: "c"}, d1, marker)
		mustAppend(t, s, audit.Head{ChainID: "c"}, recs)
		got, err := s.FindByIdempotencyKey(ctx, "alice", "k1")
		if err != nil || got.DecisionId != "d001" {
			t.Fatalf("FindByIdempotencyKey(alice, k1) = %v, %v; want d001", got.GetDecisionId(), err)
		}
		if _, err := s.FindByIdempotencyKey(ctx, "alice", "k2"); !errors.Is(err, audit.ErrNotFound) {
			t.Errorf("FindByIdempotencyKey(alice, k2): err = %v, want ErrNotFound", err)
		}
		// Keys are scoped by caller: bob's k1 is not alice's.
		if _, err := s.FindByIdempotencyKey(ctx, "bob", "k1"); !errors.Is(err, audit.ErrNotFound) {
			t.Errorf("FindByIdempotencyKey(bob, k1): err = %v, want ErrNotFound", err)
		}
		bob := Decision(3)
		bob.IdempotencyKey, bob.PayloadHash, bob.Caller = "k1", []byte{2}, "bob (token)"
		bobs, next := Sealed(t, head, bob)
		if err := s.Append(ctx, head, Entries(t, bobs...)); err != nil {
			t.Fatalf("bob's decision with alice's key: %v, want it stored", err)
		}
		got, err = s.FindByIdempotencyKey(ctx, "bob", "k1")
		if err != nil || got.DecisionId != "d003" {
			t.Errorf("FindByIdempotencyKey(bob, k1) = %v, %v; want d003", got.GetDecisionId(), err)
		}
		// Within one caller the key holds one decision, whichever way the caller authenticated.
		dup := Decision(4)
		dup.IdempotencyKey, dup.Caller = "k1", "alice (token)"
		again, _ := Sealed(t, next, dup)
		if err := s.Append(ctx, next, Entries(t, again...)); !errors.Is(err, audit.ErrDuplicate) {
			t.Errorf("second decision of alice with key k1: err = %v, want ErrDuplicate", err)
		}
	})

	t.Run("ChainBreakRecordMayJump", func(t *testing.T) {
		s := newStore(t)
		recs, head := Sealed(t, audit.Head{ChainID: "c"}, Decision(1))
		mustAppend(t, s, audit.Head{ChainID: "c"}, recs)
		jump := Decision(2)
		jump.ChainId = "c"
		if err := audit.Seal(jump, 5, head.Hash); err != nil {
			t.Fatal(err)
		}
		if err := s.Append(ctx, head, Entries(t, jump)); !errors.Is(err, audit.ErrInvalidArgument) {
			t.Errorf("decision jumping to seq 5: err = %v, want ErrInvalidArgument", err)
		}
		brk := &audit.Record{DecisionId: "chain-break-c-5", ChainId: "c", Kind: tollgatev1.RecordKind_RECORD_KIND_CHAIN_BREAK,
			EvaluatedAt: timestamppb.New(Base()), ChainBreak: &tollgatev1.ChainBreak{Problem: "test", AcceptedBy: "op@host"}}
		if err := audit.Seal(brk, 5, head.Hash); err != nil {
			t.Fatal(err)
		}
		if err := s.Append(ctx, head, Entries(t, brk)); err != nil {
			t.Fatalf("chain-break record at seq 5 after head seq 1: %v", err)
		}
		got, err := s.Get(ctx, "chain-break-c-5")
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(brk, got, protocmp.Transform()); d != "" {
			t.Errorf("Get(chain-break) (-want +got):\n%s", d)
		}
		if h, _ := s.Head(ctx, "c"); h.Seq != 5 {
			t.Errorf("head seq after the break = %d, want 5", h.Seq)
		}
	})

	t.Run("List", func(t *testing.T) {
		s := newStore(t)
		var all []*audit.Record
		for i := 0; i < 12; i++ {
			all = append(all, Decision(i))
		}
		// Two chains, interleaved in time, so ordering is by evaluated_at.
		var a, b []*audit.Record
		for i, r := range all {
			if i%2 == 0 {
				a = append(a, r)
			} else {
				b = append(b, r)
			}
		}
		ra, _ := Sealed(t, audit.Head{ChainID: "a"}, a...)
		rb, _ := Sealed(t, audit.Head{ChainID: "b"}, b...)
		mustAppend(t, s, audit.Head{ChainID: "a"}, ra)
		mustAppend(t, s, audit.Head{ChainID: "b"}, rb)
		at := func(n int) time.Time { return Base().Add(time.Duration(n) * time.Second) }
		tests := []struct {
			name string
			f    audit.Filter
			want []string
		}{
			{"all newest first", audit.Filter{}, ids(11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)},
			{"time range", audit.Filter{From: at(3), To: at(6)}, ids(5, 4, 3)},
			{"actor", audit.Filter{ActorID: "actor-1"}, ids(10, 7, 4, 1)},
			{"action", audit.Filter{Action: "invoice.pay"}, ids(11, 9, 7, 5, 3, 1)},
			{"resource type", audit.Filter{ResourceType: "po"}, ids(11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)},
			{"resource id", audit.Filter{ResourceType: "po", ResourceID: "po-2"}, ids(10, 6, 2)},
			{"effect", audit.Filter{Effect: tollgatev1.Effect_EFFECT_DENY}, ids(10, 7, 4, 1)},
			{"reason code", audit.Filter{ReasonCode: "R2"}, ids(11, 8, 5, 2)},
			{"shared reason code", audit.Filter{ReasonCode: "COMMON", To: at(2)}, ids(1, 0)},
			{"bundle revision", audit.Filter{BundleRevision: "rev-0"}, ids(10, 8, 6, 4, 2, 0)},
			{"workflow id", audit.Filter{WorkflowID: "wf-3"}, ids(8, 3)},
			{"combined", audit.Filter{ActorID: "actor-0", Action: "po.approve"}, ids(6, 0)},
			{"no match", audit.Filter{ActorID: "nobody"}, nil},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				p, err := s.List(ctx, tc.f)
				if err != nil {
					t.Fatal(err)
				}
				if d := cmp.Diff(tc.want, recordIDs(p.Records)); d != "" {
					t.Errorf("List(%+v) (-want +got):\n%s", tc.f, d)
				}
				if p.NextPageToken != "" {
					t.Errorf("NextPageToken = %q on a single page", p.NextPageToken)
				}
			})
		}
		t.Run("paging", func(t *testing.T) {
			f := audit.Filter{PageSize: 5}
			var got [][]string
			for {
				p, err := s.List(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, recordIDs(p.Records))
				if p.NextPageToken == "" {
					break
				}
				f.PageToken = p.NextPageToken
			}
			want := [][]string{ids(11, 10, 9, 8, 7), ids(6, 5, 4, 3, 2), ids(1, 0)}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("pages (-want +got):\n%s", d)
			}
			p, err := s.List(ctx, audit.Filter{PageSize: 3, Effect: tollgatev1.Effect_EFFECT_ALLOW})
			if err != nil {
				t.Fatal(err)
			}
			p2, err := s.List(ctx, audit.Filter{PageSize: 3, Effect: tollgatev1.Effect_EFFECT_ALLOW, PageToken: p.NextPageToken})
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff([][]string{ids(9, 6, 3), ids(0)}, [][]string{recordIDs(p.Records), recordIDs(p2.Records)}); d != "" || p.NextPageToken == "" || p2.NextPageToken != "" {
				t.Errorf("filtered pages (-want +got):\n%s (tokens %q, %q)", d, p.NextPageToken, p2.NextPageToken)
			}
		})
		t.Run("bad token", func(t *testing.T) {
			if _, err := s.List(ctx, audit.Filter{PageToken: "!!"}); !errors.Is(err, audit.ErrInvalidArgument) {
				t.Errorf("List with bad token: err = %v, want ErrInvalidArgument", err)
			}
		})
	})

	t.Run("ListPageSizeLimits", func(t *testing.T) {
		s := newStore(t)
		var recs []*audit.Record
		for i := 0; i < audit.MaxPageSize+1; i++ {
			r := Decision(i)
			r.DecisionId = fmt.Sprintf("p%05d", i)
			recs = append(recs, r)
		}
		sealed, _ := Sealed(t, audit.Head{ChainID: "c"}, recs...)
		mustAppend(t, s, audit.Head{ChainID: "c"}, sealed)
		for _, tc := range []struct{ size, want int }{{0, audit.DefaultPageSize}, {7, 7}, {5000, audit.MaxPageSize}} {
			p, err := s.List(ctx, audit.Filter{PageSize: tc.size})
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Records) != tc.want || p.NextPageToken == "" {
				t.Errorf("PageSize %d: %d records, token %q; want %d and a token", tc.size, len(p.Records), p.NextPageToken, tc.want)
			}
		}
	})

	t.Run("ChainInSeqOrder", func(t *testing.T) {
		s := newStore(t)
		recs, head := Sealed(t, audit.Head{ChainID: "c"}, Decision(5), Decision(1), Decision(3))
		mustAppend(t, s, audit.Head{ChainID: "c"}, recs)
		more, _ := Sealed(t, head, Decision(2))
		mustAppend(t, s, head, more)
		var got []string
		err := s.Chain(ctx, "c", 2, func(r *audit.Record) error {
			got = append(got, fmt.Sprintf("%d:%s", r.Seq, r.DecisionId))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff([]string{"2:d001", "3:d003", "4:d002"}, got); d != "" {
			t.Errorf("Chain from seq 2 (-want +got):\n%s", d)
		}
		stop := errors.New("stop")
		n := 0
		err = s.Chain(ctx, "c", 1, func(*audit.Record) error { n++; return stop })
		if !errors.Is(err, stop) || n != 1 {
			t.Errorf("Chain with failing fn: err = %v after %d calls; want stop after 1", err, n)
		}
		rep, err := audit.Verify(ctx, s, "")
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(audit.Report{OK: true, RecordsChecked: 4}, rep); d != "" {
			t.Errorf("Verify (-want +got):\n%s", d)
		}
	})

	t.Run("PayloadKeyBinding", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.PayloadKeyID(ctx); !errors.Is(err, audit.ErrNotFound) {
			t.Fatalf("PayloadKeyID of a new log: err = %v, want ErrNotFound", err)
		}
		first, other := []byte("key-id-first-16b"), []byte("key-id-other-16b")
		if err := s.BindPayloadKey(ctx, first); err != nil {
			t.Fatalf("BindPayloadKey(first): %v", err)
		}
		if err := s.BindPayloadKey(ctx, first); err != nil {
			t.Fatalf("BindPayloadKey(first) again: %v", err)
		}
		if err := s.BindPayloadKey(ctx, other); !errors.Is(err, audit.ErrPayloadKeyMismatch) {
			t.Fatalf("BindPayloadKey(other): err = %v, want ErrPayloadKeyMismatch", err)
		}
		if got, err := s.PayloadKeyID(ctx); err != nil || !bytes.Equal(got, first) {
			t.Fatalf("PayloadKeyID = %x, %v; want %x", got, err, first)
		}
	})

	t.Run("Export", func(t *testing.T) {
		s := newStore(t)
		// evaluated_at does not follow seq: export must follow seq.
		ra, head := Sealed(t, audit.Head{ChainID: "a"}, Decision(5), Decision(1), Decision(3), Decision(7))
		mustAppend(t, s, audit.Head{ChainID: "a"}, ra)
		more, _ := Sealed(t, head, Decision(2), Decision(9))
		mustAppend(t, s, head, more)
		rb, _ := Sealed(t, audit.Head{ChainID: "b"}, Decision(4), Decision(6))
		mustAppend(t, s, audit.Head{ChainID: "b"}, rb)
		at := func(n int) time.Time { return Base().Add(time.Duration(n) * time.Second) }
		tests := []struct {
			name string
			q    audit.ExportQuery
			want []string
		}{
			{"whole chain in seq order", audit.ExportQuery{ChainID: "a"}, seqIDs(1, 5, 2, 1, 3, 3, 4, 7, 5, 2, 6, 9)},
			{"after a position", audit.ExportQuery{ChainID: "a", AfterSeq: 3}, seqIDs(4, 7, 5, 2, 6, 9)},
			{"limit", audit.ExportQuery{ChainID: "a", AfterSeq: 1, Limit: 2}, seqIDs(2, 1, 3, 3)},
			{"from", audit.ExportQuery{ChainID: "a", From: at(3)}, seqIDs(1, 5, 3, 3, 4, 7, 6, 9)},
			{"from after an older record", audit.ExportQuery{ChainID: "a", From: at(6)}, seqIDs(4, 7, 6, 9)},
			{"from and to", audit.ExportQuery{ChainID: "a", From: at(2), To: at(7)}, seqIDs(1, 5, 3, 3, 5, 2)},
			{"to, after a position", audit.ExportQuery{ChainID: "a", AfterSeq: 2, To: at(4)}, seqIDs(3, 3, 5, 2)},
			{"from matches nothing", audit.ExportQuery{ChainID: "a", From: at(100)}, nil},
			{"other chain", audit.ExportQuery{ChainID: "b"}, seqIDs(1, 4, 2, 6)},
			{"past the end", audit.ExportQuery{ChainID: "a", AfterSeq: 6}, nil},
			{"unknown chain", audit.ExportQuery{ChainID: "nope"}, nil},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				recs, err := s.Export(ctx, tc.q)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, r := range recs {
					if r.ChainId != tc.q.ChainID {
						t.Errorf("record %s of chain %q in an export of %q", r.DecisionId, r.ChainId, tc.q.ChainID)
					}
					got = append(got, fmt.Sprintf("%d:%s", r.Seq, r.DecisionId))
				}
				if d := cmp.Diff(tc.want, got); d != "" {
					t.Errorf("Export(%+v) (-want +got):\n%s", tc.q, d)
				}
			})
		}
		t.Run("records are whole", func(t *testing.T) {
			recs, err := s.Export(ctx, audit.ExportQuery{ChainID: "b", Limit: 1})
			if err != nil || len(recs) != 1 {
				t.Fatalf("Export = %d records, %v; want 1", len(recs), err)
			}
			if d := cmp.Diff(rb[0], recs[0], protocmp.Transform()); d != "" {
				t.Errorf("exported record (-want +got):\n%s", d)
			}
		})
	})

	t.Run("Bundles", func(t *testing.T) {
		s := newStore(t)
		at := Base().Add(time.Hour)
		if err := s.PutBundle(ctx, audit.Bundle{Revision: "r1", Data: []byte("bundle one"), ActivatedAt: at}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutBundle(ctx, audit.Bundle{Revision: "r1", Data: []byte("bundle one"), ActivatedAt: at.Add(time.Hour)}); err != nil {
			t.Errorf("PutBundle same revision and content again: %v, want nil", err)
		}
		if err := s.PutBundle(ctx, audit.Bundle{Revision: "r1", Data: []byte("other")}); !errors.Is(err, audit.ErrBundleConflict) {
			t.Errorf("PutBundle same revision, other content: err = %v, want ErrBundleConflict", err)
		}
		if err := s.PutBundle(ctx, audit.Bundle{Revision: "r2", Data: []byte("x"), Digest: "00"}); !errors.Is(err, audit.ErrInvalidArgument) {
			t.Errorf("PutBundle with wrong digest: err = %v, want ErrInvalidArgument", err)
		}
		got, err := s.GetBundle(ctx, "r1")
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte("bundle one"))
		want := audit.Bundle{Revision: "r1", Digest: hex.EncodeToString(sum[:]), Data: []byte("bundle one"), ActivatedAt: at}
		if d := cmp.Diff(want, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); d != "" {
			t.Errorf("GetBundle (-want +got):\n%s", d)
		}
		if _, err := s.GetBundle(ctx, "r9"); !errors.Is(err, audit.ErrNotFound) {
			t.Errorf("GetBundle(r9): err = %v, want ErrNotFound", err)
		}
	})

	t.Run("WriterContinuesChain", func(t *testing.T) {
		s := newStore(t)
		write := func(from, to int) {
			t.Helper()
			w, err := audit.NewWriter(audit.Config{ChainID: "node-1"}, s, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			for i := from; i < to; i++ {
				if _, _, err := w.Write(ctx, Decision(i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		}
		write(0, 3)
		write(3, 5)
		rep, err := audit.Verify(ctx, s, "node-1")
		if err != nil {
			t.Fatal(err)
		}
		root, err := transparency.TreeRoot(ctx, audit.Hashes(s), "node-1", 5)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(audit.Report{ChainID: "node-1", OK: true, RecordsChecked: 5, TreeSize: 5, Root: root[:]}, rep); d != "" {
			t.Errorf("Verify (-want +got):\n%s", d)
		}
		r, err := s.Get(ctx, "d003")
		if err != nil || r.Seq != 4 {
			t.Errorf("d003 seq = %d, %v; want 4", r.GetSeq(), err)
		}
	})

	runTree(t, newStore)
	t.Run("PingAndClose", func(t *testing.T) {
		s := newStore(t)
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "d001"); !errors.Is(err, audit.ErrClosed) {
			t.Errorf("Get after Close: err = %v, want ErrClosed", err)
		}
		if err := s.Ping(ctx); !errors.Is(err, audit.ErrClosed) {
			t.Errorf("Ping after Close: err = %v, want ErrClosed", err)
		}
	})
}

func mustAppend(tb testing.TB, s audit.Store, prev audit.Head, recs []*audit.Record) {
	tb.Helper()
	if err := s.Append(context.Background(), prev, Entries(tb, recs...)); err != nil {
		tb.Fatalf("Append: %v", err)
	}
}

func ids(ns ...int) []string {
	var out []string
	for _, n := range ns {
		out = append(out, fmt.Sprintf("d%03d", n))
	}
	return out
}

// seqIDs turns seq, n pairs into "seq:d00n" strings.
func seqIDs(pairs ...int) []string {
	var out []string
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, fmt.Sprintf("%d:d%03d", pairs[i], pairs[i+1]))
	}
	return out
}

func recordIDs(recs []*audit.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.DecisionId)
	}
	return out
}
