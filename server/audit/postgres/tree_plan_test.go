package postgres

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/server/audit/postgres/pgtest"
)

// TestTreeHashReadIsLookups checks that reading a few tree hashes costs a few primary-key lookups
// however long the chain, under the generic plan a connection keeps for the prepared statement: the
// plan is made while the table is small, as on a new log, and executed once the chain holds 40,000
// hashes beside another chain's. The plainer WHERE chain_id = $1 AND idx = ANY($2) fails it.
func TestTreeHashReadIsLookups(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Config{URL: pgtest.NewDatabase(t)})
	if err != nil {
		t.Fatal(err)
	}
	s.Close() // the schema is what it is for
	conn, err := pgx.Connect(ctx, s.w.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{
		"SET plan_cache_mode = force_generic_plan",
		"PREPARE read_hashes (text, bigint[]) AS " + selectHashes,
		// The plan is made at the first execution, on a log of a few records.
		"INSERT INTO tree_hashes SELECT 'a', i, sha256(i::text::bytea) FROM generate_series(0, 20) i",
		"EXPLAIN EXECUTE read_hashes('a', '{1}')",
		"INSERT INTO tree_hashes SELECT 'a', i, sha256(i::text::bytea) FROM generate_series(21, 39999) i",
		"INSERT INTO tree_hashes SELECT 'b', i, sha256(i::text::bytea) FROM generate_series(0, 39999) i",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	rows, err := conn.Query(ctx, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) EXECUTE read_hashes('a', '{7,1024,39998,50000}')")
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	plan := strings.Join(lines, "\n")
	// No node may produce more rows than the 4 asked for.
	many := false
	for _, m := range regexp.MustCompile(`actual rows=(\d+)`).FindAllStringSubmatch(plan, -1) {
		n, _ := strconv.Atoi(m[1])
		many = many || n > 4
	}
	if many || strings.Contains(plan, "Rows Removed by Filter") {
		t.Errorf("reading 4 hashes of a 40,000-hash chain does not look them up by primary key:\n%s", plan)
	}
	got, err := readHashesMap(ctx, conn, "a", []int64{7, 1024, 39998, 50000})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[50000] != nil || len(got[39998]) != 32 {
		t.Errorf("read hashes 7, 1024, 39998 and missing 50000: got %d hashes: %v", len(got), got)
	}
}

func readHashesMap(ctx context.Context, q querier, chainID string, indexes []int64) (map[int64][]byte, error) {
	rows, err := q.Query(ctx, selectHashes, chainID, indexes)
	if err != nil {
		return nil, err
	}
	return scanHashes(rows)
}
