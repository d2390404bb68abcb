package sqlite_test

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
)

// TestRecordListedAtOnce checks that a decision is found by every List filter as soon as its sync Write
// returns, alone or as part of a Group: the query indexes are written in the commit's transaction, so
// nothing committed is missing from a query (a change that builds them later must keep this).
func TestRecordListedAtOnce(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	w, err := audit.NewWriter(audit.Config{ChainID: "c"}, s, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	check := func(rec *audit.Record) {
		t.Helper()
		at := rec.GetEvaluatedAt().AsTime()
		for name, f := range map[string]audit.Filter{
			"range":           {From: at, To: at.Add(time.Nanosecond)},
			"actor":           {ActorID: rec.GetRequest().GetActor().GetId()},
			"action":          {Action: rec.GetRequest().GetAction()},
			"type":            {ResourceType: rec.GetRequest().GetResource().GetType()},
			"resource":        {ResourceID: rec.GetRequest().GetResource().GetId()},
			"effect":          {Effect: rec.GetEffect()},
			"reason":          {ReasonCode: rec.GetReasons()[0].GetCode()},
			"reason in range": {ReasonCode: "COMMON", From: at},
			"bundle":          {BundleRevision: rec.GetBundleRevision()},
			"workflow":        {WorkflowID: rec.GetRequest().GetContext()["workflow_id"]},
		} {
			f.PageSize = 1 // newest first: the record just written
			p, err := s.List(ctx, f)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if len(p.Records) != 1 || p.Records[0].GetDecisionId() != rec.GetDecisionId() {
				t.Errorf("filter %s right after the write of %s lists %v", name, rec.GetDecisionId(), p.Records)
			}
		}
	}
	for n := range 6 {
		rec := audittest.Decision(n)
		if _, _, err := w.Write(ctx, rec); err != nil {
			t.Fatal(err)
		}
		check(rec)
	}
	g := w.Group()
	var recs []*audit.Record
	var qs []*audit.Queued
	for n := 6; n < 12; n++ {
		rec := audittest.Decision(n)
		q, err := g.Enqueue(ctx, rec, nil)
		if err != nil {
			t.Fatal(err)
		}
		recs, qs = append(recs, rec), append(qs, q)
	}
	for _, q := range qs {
		if _, _, err := q.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	check(recs[len(recs)-1])
}
