package insights_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/sqlite"
	"github.com/tollgate/tollgate/server/insights"
	"github.com/tollgate/tollgate/server/insights/insightstest"
)

// TestRecentExportsWhatTheStoreHolds appends through Recent to a real SQLite store and checks that
// every Export gives exactly what the store gives, that the remembered records do answer the roller's
// reads, and that roll-ups folded through Recent equal a fold straight from the store.
func TestRecentExportsWhatTheStoreHolds(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recent := insights.NewRecent(s, 0)
	recs := killRecords(2600)
	insightstest.Append(t, s, "chain-b", recs[2500:]...) // another chain, appended past Recent
	for start := 0; start < 2500; start += 100 {
		insightstest.Append(t, recent, "chain-a", recs[start:start+100]...)
	}
	for _, q := range []audit.ExportQuery{
		{ChainID: "chain-a"}, {ChainID: "chain-a", AfterSeq: 499}, {ChainID: "chain-a", AfterSeq: 500},
		{ChainID: "chain-a", AfterSeq: 1800, Limit: 7}, {ChainID: "chain-a", AfterSeq: 2499}, {ChainID: "chain-a", AfterSeq: 2500},
		{ChainID: "chain-b"}, {ChainID: "chain-a", AfterSeq: 1600, From: insightstest.Start},
	} {
		want, err := s.Export(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		got, err := recent.Export(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%+v: %d records, store has %d", q, len(got), len(want))
		}
		for i := range want {
			if !proto.Equal(got[i], want[i]) {
				t.Fatalf("%+v: record %d differs:\n%v\nstore:\n%v", q, i, got[i], want[i])
			}
		}
	}
	if recent.Served() == 0 {
		t.Fatal("no Export was answered from the remembered records")
	}

	viaRecent, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer viaRecent.Close()
	direct, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	cfg := insights.RollerConfig{Config: func() insights.Config { return killConfig }}
	before := recent.Served()
	if n, err := insights.NewRoller(cfg, recent, viaRecent.Insights(), zerolog.Nop()).Sync(ctx); err != nil || n != len(recs) {
		t.Fatalf("fold through Recent: %d records, %v", n, err)
	}
	if recent.Served() == before {
		t.Fatal("the roller read nothing from the remembered records")
	}
	if n, err := insights.NewRoller(cfg, s, direct.Insights(), zerolog.Nop()).Sync(ctx); err != nil || n != len(recs) {
		t.Fatalf("fold from the store: %d records, %v", n, err)
	}
	if diff := cmp.Diff(dump(t, direct.Insights()), dump(t, viaRecent.Insights())); diff != "" {
		t.Errorf("roll-ups through Recent differ from a fold of the store (-store +recent):\n%s", diff)
	}
}
