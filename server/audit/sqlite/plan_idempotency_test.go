package sqlite

import (
	"context"
	"fmt"
	"strings"
	"testing"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
)

// TestFindByIdempotencyKeyUsesItsIndex: the lookup on every keyed decision's path reads through the
// (scope, key) unique index, not a scan of the records table.
func TestFindByIdempotencyKeyUsesItsIndex(t *testing.T) {
	if tollgatev1.RecordKind_RECORD_KIND_DECISION != 1 {
		t.Fatal("findByKeySQL spells RECORD_KIND_DECISION as 1")
	}
	s, err := Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rows, err := s.r.Query("EXPLAIN QUERY PLAN "+findByKeySQL, "alice", "k1")
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
	if joined := strings.Join(plan, "; "); !strings.Contains(joined, "USING INDEX records_idempotency") {
		t.Errorf("idempotency lookup plan: %s; want it to use records_idempotency", joined)
	}
}

// BenchmarkFindByIdempotencyKey looks keys up in a log of 20,000 keyed decisions, with the query as
// written (the partial index's conditions spelled as literals) and as it was before (kind bound as a
// parameter, which SQLite cannot match against the partial index, so it scanned the table).
//
//	go test -run '^$' -bench FindByIdempotencyKey -benchtime 200x ./server/audit/sqlite/
func BenchmarkFindByIdempotencyKey(b *testing.B) {
	ctx := context.Background()
	s, err := Open(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const n = 20000
	head := audit.Head{ChainID: "c"}
	for start := 0; start < n; start += 500 {
		recs := make([]*audit.Record, 500)
		for i := range recs {
			recs[i] = realistic(start + i)
			recs[i].IdempotencyKey, recs[i].Caller = fmt.Sprintf("key-%d", start+i), "orchestrator (mtls)"
		}
		var next audit.Head
		recs, next = audittest.Sealed(b, head, recs...)
		if err := s.Append(ctx, head, audittest.Entries(b, recs...)); err != nil {
			b.Fatal(err)
		}
		head = next
	}
	for _, q := range []struct{ name, sql string }{
		{"indexed", findByKeySQL},
		{"bound-kind", "SELECT body, hash FROM records WHERE idempotency_scope = ? AND idempotency_key = ? AND kind = ?"},
	} {
		b.Run(q.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := range b.N {
				args := []any{"orchestrator", fmt.Sprintf("key-%d", (i*7919)%n)}
				if q.name == "bound-kind" {
					args = append(args, 1)
				}
				if _, err := s.one(ctx, s.d, q.sql, args...); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
