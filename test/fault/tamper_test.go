package fault_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// TestVerifyNamesAlteredRecord alters one stored record in audit.db while the service is stopped
// and checks that `tollgatectl audit verify` fails naming exactly that record.
func TestVerifyNamesAlteredRecord(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir, "sync")
	ids := decideN(t, s, 30)
	if out, errOut, code := s.ctl(t, "audit", "verify"); code != 0 || !strings.Contains(out, "OK: 30 records checked") {
		t.Fatalf("verify before tampering: exit %d\n%s%s", code, out, errOut)
	}
	s.stop(t)

	// Rewrite who made decision 17: a field that is in the hashed body but has no index column, so
	// only the hash can catch it.
	victim := ids[17]
	db := openDB(t, dir)
	var seq uint64
	if err := db.QueryRow("SELECT seq FROM records WHERE decision_id = ?", victim).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	res, err := db.Exec(`UPDATE records SET body = json_set(body, '$.caller', 'someone-else') WHERE decision_id = ?`, victim)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("tampering updated %d rows, want 1", n)
	}
	db.Close()

	s = start(t, dir, "sync")
	out, errOut, code := s.ctl(t, "audit", "verify")
	if code != 1 {
		t.Fatalf("verify after tampering: exit %d, want 1\n%s%s", code, out, errOut)
	}
	want := fmt.Sprintf("first bad record: seq %d, decision %s\n", seq, victim)
	if !strings.Contains(out, want) || !strings.Contains(out, "problem: hash mismatch") {
		t.Errorf("verify output does not name the altered record (want %q and a hash mismatch):\n%s", want, out)
	}
	if !strings.Contains(errOut, fmt.Sprintf("at seq %d", seq)) {
		t.Errorf("verify error line does not name seq %d: %s", seq, errOut)
	}
	// The record is still served, with the forged field, but it no longer verifies.
	rec, err := s.client.GetDecision(context.Background(), victim)
	if err != nil || rec.GetCaller() != "someone-else" {
		t.Errorf("GetDecision(%s) = caller %q, %v; want the forged caller", victim, rec.GetCaller(), err)
	}
}

// TestTruncatedTail deletes the last records while the service is stopped: the service starts and
// decides again, and verify reports the missing records, before and after new decisions.
func TestTruncatedTail(t *testing.T) {
	const total, cut = 40, 7
	dir := t.TempDir()
	s := start(t, dir, "sync")
	decideN(t, s, total)
	s.stop(t)

	db := openDB(t, dir)
	for _, q := range []string{
		fmt.Sprintf("DELETE FROM record_reasons WHERE decision_id IN (SELECT decision_id FROM records ORDER BY seq DESC LIMIT %d)", cut),
		fmt.Sprintf("DELETE FROM records WHERE decision_id IN (SELECT decision_id FROM records ORDER BY seq DESC LIMIT %d)", cut),
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s = start(t, dir, "sync")
	firstMissing := total - cut + 1
	out, _, code := s.ctl(t, "audit", "verify")
	if code != 1 || !strings.Contains(out, fmt.Sprintf("first bad record: seq %d,", firstMissing)) || !strings.Contains(out, "truncated tail") {
		t.Errorf("verify of the truncated log: exit %d, want 1 naming seq %d as a truncated tail:\n%s", code, firstMissing, out)
	}

	// Decisions work again; the chain continues after the stored head, so the hole stays visible.
	ids := decideN(t, s, 3)
	rec, err := s.client.GetDecision(context.Background(), ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if rec.GetSeq() != total+1 {
		t.Errorf("first decision after restart has seq %d, want %d (after the stored head)", rec.GetSeq(), total+1)
	}
	out, _, code = s.ctl(t, "audit", "verify")
	want := fmt.Sprintf("first bad record: seq %d, decision %s\n", total+1, ids[0])
	if code != 1 || !strings.Contains(out, want) || !strings.Contains(out, fmt.Sprintf("seq %d-%d missing", firstMissing, total)) {
		t.Errorf("verify after new decisions: exit %d, want 1 with %q and the missing range %d-%d:\n%s", code, want, firstMissing, total, out)
	}
}
