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

// TestTruncatedTail deletes the last records while the service is stopped: the next start is refused,
// naming the break; a start with --audit-accept-chain-break writes a chain-break record before any
// decision, auditors see it in list, get and verify, and the chain continues after it.
func TestTruncatedTail(t *testing.T) {
	const total, cut = 40, 7
	dir := t.TempDir()
	s := start(t, dir, "sync")
	ids := decideN(t, s, total)
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

	lastIntact := total - cut
	stderr := startRefused(t, dir)
	want := fmt.Sprintf("audit chain default is broken: records after seq %d are missing: the head names seq %d (stored head seq %d, last record seq %d decision %s)",
		lastIntact, total, total, lastIntact, ids[lastIntact-1])
	if !strings.Contains(stderr, want) || !strings.Contains(stderr, "--audit-accept-chain-break") {
		t.Fatalf("refused start does not name the break (want %q and the flag):\n%s", want, stderr)
	}

	s = start(t, dir, "sync", "--audit-accept-chain-break")
	breakSeq := total + 1
	breakID := fmt.Sprintf("chain-break-default-%d", breakSeq)
	out, errOut, code := s.ctl(t, "audit", "get", breakID)
	if code != 0 {
		t.Fatalf("audit get %s: exit %d\n%s%s", breakID, code, out, errOut)
	}
	for _, want := range []string{`"kind": "CHAIN_BREAK"`, `"accepted_by": "`, fmt.Sprintf(`"problem": "records after seq %d are missing: the head names seq %d"`, lastIntact, total),
		fmt.Sprintf(`"head_seq": "%d"`, total), fmt.Sprintf(`"last_seq": "%d"`, lastIntact), fmt.Sprintf(`"seq": "%d"`, breakSeq)} {
		if !strings.Contains(out, want) {
			t.Errorf("audit get of the break record lacks %s:\n%s", want, out)
		}
	}
	if out, _, _ := s.ctl(t, "audit", "list", "--limit", "1"); !strings.Contains(out, breakID) || !strings.Contains(out, "CHAIN_BREAK") {
		t.Errorf("audit list does not show the break record first:\n%s", out)
	}
	if out, errOut, code := s.ctl(t, "audit", "replay", breakID); code != 1 || !strings.Contains(errOut, "is a chain-break record, not a decision") {
		t.Errorf("audit replay of the break record: exit %d, want 1 saying it is no decision:\n%s%s", code, out, errOut)
	}

	// Decisions continue after the break; verify reports the accepted break, not an intact chain.
	more := decideN(t, s, 3)
	rec, err := s.client.GetDecision(context.Background(), more[0])
	if err != nil || rec.GetSeq() != uint64(breakSeq+1) {
		t.Errorf("first decision after the break: seq %d, %v; want %d", rec.GetSeq(), err, breakSeq+1)
	}
	out, _, code = s.ctl(t, "audit", "verify")
	for _, want := range []string{
		fmt.Sprintf("first bad record: seq %d, decision %s\n", breakSeq, breakID),
		"problem: accepted chain break: break record seq " + fmt.Sprint(breakSeq) + " accepted by ",
		fmt.Sprintf("seq %d-%d not verified", lastIntact+1, total),
		"the 3 records after it verify",
	} {
		if code != 1 || !strings.Contains(out, want) {
			t.Errorf("verify after the accepted break: exit %d, want 1 and %q:\n%s", code, want, out)
		}
	}
	// A restart on the accepted break needs no flag and writes no second break.
	s.stop(t)
	s = start(t, dir, "sync")
	if out, _, _ := s.ctl(t, "audit", "verify"); !strings.Contains(out, "the 3 records after it verify") {
		t.Errorf("verify after a plain restart:\n%s", out)
	}
}
