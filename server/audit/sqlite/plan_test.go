package sqlite

import (
	"context"
	"strings"
	"testing"
	"time"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
)

// TestListFiltersUseAnIndex checks, with EXPLAIN QUERY PLAN on a store
// holding records, that List's query for each filter (alone, and on a later
// page) reads records through an index led by that filter's column rather
// than scanning the table or another filter's index.
func TestListFiltersUseAnIndex(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recs := make([]*audit.Record, 200)
	for i := range recs {
		recs[i] = realistic(i)
	}
	recs, _ = audittest.Sealed(t, audit.Head{ChainID: "c"}, recs...)
	if err := s.Append(ctx, audit.Head{ChainID: "c"}, audittest.Entries(t, recs...)); err != nil {
		t.Fatal(err)
	}
	token := encodeToken(recs[100].EvaluatedAt.AsTime().UnixNano(), recs[100].DecisionId)
	tests := []struct {
		name  string
		f     audit.Filter
		index string
	}{
		{"none", audit.Filter{}, "records_time"},
		{"time range", audit.Filter{From: audittest.Base(), To: audittest.Base().Add(time.Hour)}, "records_time"},
		{"actor", audit.Filter{ActorID: "u_1"}, "records_actor"},
		{"action", audit.Filter{Action: "po.approve"}, "records_action"},
		{"resource type", audit.Filter{ResourceType: "po"}, "records_resource_type"},
		{"resource id", audit.Filter{ResourceID: "PO-7"}, "records_resource_id"},
		{"effect", audit.Filter{Effect: tollgatev1.Effect_EFFECT_DENY}, "records_effect"},
		{"bundle", audit.Filter{BundleRevision: "rev-1"}, "records_bundle"},
		{"workflow", audit.Filter{WorkflowID: "wf-1"}, "records_workflow"},
		{"reason code", audit.Filter{ReasonCode: "R1"}, "record_reasons"},
		{"reason code in a range", audit.Filter{ReasonCode: "R1", From: audittest.Base(), To: audittest.Base().Add(time.Hour)}, "record_reasons USING PRIMARY KEY (code=? AND evaluated_at>? AND evaluated_at<?)"}, // migration 008
	}
	for _, tc := range tests {
		for _, paged := range []bool{false, true} {
			f := tc.f
			name := tc.name
			if paged {
				f.PageToken, name = token, name+"/page 2"
			}
			t.Run(name, func(t *testing.T) {
				q, args, err := listQuery(f, 51)
				if err != nil {
					t.Fatal(err)
				}
				rows, err := s.r.QueryContext(ctx, "EXPLAIN QUERY PLAN "+q, args...)
				if err != nil {
					t.Fatal(err)
				}
				defer rows.Close()
				var plan []string
				for rows.Next() {
					var id, parent, notused int
					var detail string
					if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
						t.Fatal(err)
					}
					plan = append(plan, detail)
				}
				joined := strings.Join(plan, "; ")
				if !strings.Contains(joined, tc.index) {
					t.Errorf("plan does not use %s: %s", tc.index, joined)
				}
				for _, step := range plan {
					if strings.HasPrefix(step, "SCAN records") && !strings.Contains(step, "INDEX") {
						t.Errorf("plan scans the records table: %s", joined)
					}
				}
				t.Log(joined)
			})
		}
	}
}

// TestExportReadsInChainOrder checks that Export's page query walks the (chain_id, seq) index with
// every combination of time bounds, so a page reads at most its own records instead of finding the
// whole time range and sorting it; and that no page sorts.
func TestExportReadsInChainOrder(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recs := make([]*audit.Record, 200)
	for i := range recs {
		recs[i] = realistic(i)
	}
	recs, _ = audittest.Sealed(t, audit.Head{ChainID: "c"}, recs...)
	if err := s.Append(ctx, audit.Head{ChainID: "c"}, audittest.Entries(t, recs...)); err != nil {
		t.Fatal(err)
	}
	from, to := audittest.Base(), audittest.Base().Add(time.Hour)
	for _, q := range []audit.ExportQuery{{}, {From: from}, {To: to}, {From: from, To: to}} {
		q.ChainID = "c"
		query, args := exportQuery(q, 100, 1000)
		plan := queryPlan(t, s, query, args...)
		if !strings.Contains(plan, "sqlite_autoindex_records_2 (chain_id=? AND seq>?)") || strings.Contains(plan, "TEMP B-TREE") {
			t.Errorf("export %+v: plan does not walk (chain_id, seq) in order: %s", q, plan)
		}
	}
}

func queryPlan(t *testing.T, s *Store, query string, args ...any) string {
	t.Helper()
	rows, err := s.r.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	return strings.Join(plan, "; ")
}
