package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/audittest"
)

// TestMigrationScopesExistingKeys writes keyed decisions, turns the file back into a schema-2 file
// (global key index, no scope column, no tree), and reopens it: migration 003 must give every existing row the
// scope audit.IdempotencyScope gives its caller, so lookups by caller find them and Verify's
// column cross-check agrees with the bodies.
func TestMigrationScopesExistingKeys(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	callers := map[string]string{
		"d001": "orchestrator (mtls) from 10.0.0.1:4000",
		"d002": "anonymous (open) from 127.0.0.1:5000",
		"d003": "127.0.0.1:5000", // before callers were named
		"d004": "erp (token)",
		"d005": "billing (hk) (token) from [::1]:1", // the first via marker decides
	}
	var recs []*audit.Record
	for i, id := range []string{"d001", "d002", "d003", "d004", "d005"} {
		r := audittest.Decision(i + 1)
		r.Caller, r.IdempotencyKey, r.PayloadHash = callers[id], "k-"+id, []byte{1}
		recs = append(recs, r)
	}
	plain := audittest.Decision(6) // no key: no scope
	recs = append(recs, plain)
	sealed, _ := audittest.Sealed(t, audit.Head{ChainID: "c"}, recs...)
	if err := s.Append(ctx, audit.Head{ChainID: "c"}, audittest.Entries(t, sealed...)); err != nil {
		t.Fatal(err)
	}
	s.Close()

	db, err := sql.Open("sqlite", dir+"/audit.db")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"DROP INDEX records_idempotency",
		"ALTER TABLE records DROP COLUMN idempotency_scope",
		"CREATE UNIQUE INDEX records_idempotency ON records (idempotency_key) WHERE idempotency_key <> '' AND kind = 1",
		"DROP TABLE tree_hashes",
		"DROP TABLE checkpoints",
		"ALTER TABLE chain_heads DROP COLUMN tree_size",
		"PRAGMA user_version = 2",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s2 := openStore(t, dir)
	for id, scope := range map[string]string{"d001": "orchestrator", "d002": "anonymous", "d003": "", "d004": "erp", "d005": "billing (hk)"} {
		if got := audit.IdempotencyScope(sealed[id[3]-'1']); got != scope {
			t.Errorf("IdempotencyScope(%s) = %q, want %q", id, got, scope)
		}
		r, err := s2.FindByIdempotencyKey(ctx, scope, "k-"+id)
		if err != nil || r.DecisionId != id {
			t.Errorf("FindByIdempotencyKey(%q, k-%s) after migration = %v, %v", scope, id, r.GetDecisionId(), err)
		}
		if _, err := s2.FindByIdempotencyKey(ctx, "someone-else", "k-"+id); !errors.Is(err, audit.ErrNotFound) {
			t.Errorf("another caller's lookup of k-%s: err = %v, want ErrNotFound", id, err)
		}
	}
	rep, err := audit.Verify(ctx, s2, "c")
	if err != nil || !rep.OK || rep.RecordsChecked != 6 {
		t.Errorf("Verify after migration = %+v, %v; want OK with 6 (scope column agrees with every body)", rep, err)
	}

	// A scope column changed alone (to hand a key to another caller) is caught like any other column.
	db, err = sql.Open("sqlite", dir+"/audit.db?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("UPDATE records SET idempotency_scope = 'mallory' WHERE decision_id = 'd004'"); err != nil {
		t.Fatal(err)
	}
	rep, err = audit.Verify(ctx, s2, "c")
	if err != nil || rep.OK || rep.Problem != audit.ProblemCorrupt || rep.FirstBadDecisionID != "d004" || rep.Detail != "column idempotency_scope disagrees with the record body" {
		t.Errorf("Verify after changing a scope column = %+v, %v; want corrupt at d004 naming idempotency_scope", rep, err)
	}
}

// TestMigrationReasonsOneTree writes records with reason codes, turns record_reasons back into its
// schema-7 shape (primary key (code, decision_id) and the record_reasons_time index), and reopens:
// migration 008 must carry every row into the one-tree table, so the reason filters, with and without
// a time range, answer exactly as before, and appends go on.
func TestMigrationReasonsOneTree(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	var recs []*audit.Record
	for i := range 30 {
		recs = append(recs, audittest.Decision(i))
	}
	sealed, head := audittest.Sealed(t, audit.Head{ChainID: "c"}, recs...)
	if err := s.Append(ctx, audit.Head{ChainID: "c"}, audittest.Entries(t, sealed...)); err != nil {
		t.Fatal(err)
	}
	filters := []audit.Filter{
		{ReasonCode: "R1"}, {ReasonCode: "COMMON"}, {ReasonCode: "NONE"},
		{ReasonCode: "R2", From: audittest.Base(), To: sealed[20].EvaluatedAt.AsTime()},
		{ReasonCode: "COMMON", From: sealed[5].EvaluatedAt.AsTime(), PageSize: 7},
	}
	ids := func(st audit.Store) [][]string {
		t.Helper()
		var out [][]string
		for _, f := range filters {
			var got []string
			for {
				p, err := st.List(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range p.Records {
					got = append(got, r.DecisionId)
				}
				if p.NextPageToken == "" {
					break
				}
				f.PageToken = p.NextPageToken
			}
			out = append(out, got)
		}
		return out
	}
	want := ids(s)
	if len(want[1]) != 30 {
		t.Fatalf("COMMON lists %d records, want all 30", len(want[1]))
	}
	s.Close()

	db, err := sql.Open("sqlite", dir+"/audit.db")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE old_reasons (code TEXT NOT NULL, decision_id TEXT NOT NULL REFERENCES records (decision_id),
			evaluated_at INTEGER NOT NULL, PRIMARY KEY (code, decision_id)) WITHOUT ROWID`,
		"INSERT INTO old_reasons SELECT code, decision_id, evaluated_at FROM record_reasons",
		"DROP TABLE record_reasons",
		"ALTER TABLE old_reasons RENAME TO record_reasons",
		"CREATE INDEX record_reasons_time ON record_reasons (code, evaluated_at)",
		"PRAGMA user_version = 7",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s2 := openStore(t, dir)
	if d := cmp.Diff(want, ids(s2)); d != "" {
		t.Errorf("reason filters after migration 008 (-want +got):\n%s", d)
	}
	more, _ := audittest.Sealed(t, head, audittest.Decision(31))
	if err := s2.Append(ctx, head, audittest.Entries(t, more...)); err != nil {
		t.Fatal(err)
	}
	p, err := s2.List(ctx, audit.Filter{ReasonCode: "COMMON", PageSize: 1})
	if err != nil || len(p.Records) != 1 || p.Records[0].DecisionId != more[0].DecisionId {
		t.Errorf("newest COMMON after an append = %v, %v; want %s", p.Records, err, more[0].DecisionId)
	}
}
