package fault_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/sqlite"
	"github.com/tollgate/tollgate/server/audit/transparency"
)

// The tamper tests below change audit.db through SQL while the service is stopped, as an
// administrator of the database could, and check that `tollgatectl audit verify` catches it. Each
// runs twice: "tables kept" changes records and heads only, which the stored tree and checkpoints
// expose; "every table" also rewrites the tree (cleared, so the next start rebuilds it from the
// forged records), the heads, record_reasons and the checkpoints (deleted: they cannot be forged
// without the key), so the database agrees with itself and only a checkpoint kept outside it, a
// witness file, exposes the tampering (--since-checkpoint).

const tamperDecisions = 40

// checkpointsChecked matches verify's line for a log with at least one checkpoint checked.
var checkpointsChecked = regexp.MustCompile(`(?m)^checkpoints checked: [1-9][0-9]*$`)

// tamperCase is one tampering, applied to the stopped service's file.
type tamperCase func(t *testing.T, db *sql.DB)

func TestTamperDeleteTail(t *testing.T) {
	runTamper(t, func(t *testing.T, db *sql.DB) {
		const cut = 7
		keep := uint64(tamperDecisions - cut)
		for _, q := range []string{
			"DELETE FROM record_reasons WHERE decision_id IN (SELECT decision_id FROM records WHERE chain_id = 'default' AND seq > ?)",
			"DELETE FROM records WHERE chain_id = 'default' AND seq > ?",
			"UPDATE chain_heads SET seq = ?1, hash = (SELECT hash FROM records WHERE chain_id = 'default' AND seq = ?1) WHERE chain_id = 'default'",
		} {
			mustExec(t, db, q, keep)
		}
	}, 34, "seq 34-40 are missing", "the stored tree has 40 leaves, the head names seq 33")
}

func TestTamperRewriteOneRecord(t *testing.T) {
	const victim = 17
	runTamper(t, func(t *testing.T, db *sql.DB) {
		// Turn decision 17 into an ALLOW, then re-link every later record to it so the chain
		// verifies.
		rechain(t, db, victim, func(r *audit.Record) {
			if r.GetSeq() == victim {
				r.Effect = tollgatev1.Effect_EFFECT_ALLOW
				r.Reasons = nil
			}
		})
		mustExec(t, db, "DELETE FROM record_reasons WHERE decision_id = (SELECT decision_id FROM records WHERE chain_id = 'default' AND seq = ?)", victim)
	}, tamperDecisions, "a record at or before seq 40 was changed", "first leaf that differs is seq 17")
}

func TestTamperRebuildChain(t *testing.T) {
	const from = 25
	runTamper(t, func(t *testing.T, db *sql.DB) {
		// Rewrite who asked for every decision from seq 25 on, with fresh hashes.
		rechain(t, db, from, func(r *audit.Record) { r.Caller = "someone-else (token)" })
	}, tamperDecisions, "a record at or before seq 40 was changed", "first leaf that differs is seq 25")
}

// runTamper makes tamperDecisions decisions, keeps a checkpoint of the log outside the database,
// stops the service, tampers, restarts and verifies: with the tables kept, plain verify must fail
// with tablesKept in its problem; with every table rewritten, plain verify passes (the database
// agrees with itself) and verify --since-checkpoint must fail at seq outsideSeq with outside in its
// problem.
func runTamper(t *testing.T, tamper tamperCase, outsideSeq uint64, outside, tablesKept string) {
	for _, everyTable := range []bool{false, true} {
		name := "tables kept"
		if everyTable {
			name = "every table"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := start(t, dir, "sync")
			decideN(t, s, tamperDecisions)
			s.stop(t)
			witness := keepCheckpoint(t, dir)
			if everyTable {
				s = start(t, dir, "sync")
				// One checkpoint or more: the restarted service may sign one of its own before verify runs.
				if out, errOut, code := s.ctl(t, "audit", "verify", "--since-checkpoint", witness); code != 0 ||
					!checkpointsChecked.MatchString(out) || !strings.Contains(out, "extends the checkpoint in") {
					t.Fatalf("verify --since-checkpoint before tampering: exit %d\n%s%s", code, out, errOut)
				}
				s.stop(t)
			}

			db := openDB(t, dir)
			tamper(t, db)
			if everyTable {
				mustExec(t, db, "DELETE FROM tree_hashes WHERE chain_id = 'default'")
				mustExec(t, db, "DELETE FROM checkpoints WHERE chain_id = 'default'")
				mustExec(t, db, "UPDATE chain_heads SET tree_size = 0 WHERE chain_id = 'default'")
			}
			db.Close()

			s = start(t, dir, "sync")
			out, errOut, code := s.ctl(t, "audit", "verify")
			if !everyTable {
				if code != 1 || !strings.Contains(out, tablesKept) {
					t.Fatalf("verify of a log tampered without its tree: exit %d, want 1 and %q\n%s%s", code, tablesKept, out, errOut)
				}
				t.Logf("detected from the stored tree:\n%s", out)
				return
			}
			if code != 0 {
				t.Fatalf("verify of a log rewritten in every table: exit %d, want 0 (the database agrees with itself)\n%s%s", code, out, errOut)
			}
			out, errOut, code = s.ctl(t, "audit", "verify", "--since-checkpoint", witness)
			if code != 1 || !strings.Contains(out, "problem: log does not extend the checkpoint: ") || !strings.Contains(out, outside) {
				t.Fatalf("verify --since-checkpoint of a rewritten log: exit %d, want 1 and %q\n%s%s", code, outside, out, errOut)
			}
			if !strings.Contains(out, fmt.Sprintf("first bad record: seq %d,", outsideSeq)) {
				t.Errorf("verify --since-checkpoint does not name where the log departs:\n%s", out)
			}
			t.Logf("detected from the witness file:\n%s", out)
		})
	}
}

// keepCheckpoint returns the path of a witness file, outside the data directory, holding a
// checkpoint of the stopped service's log: its newest stored checkpoint, or, if the service has
// not signed one, one the test signs over the stored tree and stores, as the checkpointer would.
func keepCheckpoint(t *testing.T, dataDir string) string {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cp, err := st.LatestCheckpoint(ctx, "default")
	if errors.Is(err, audit.ErrNotFound) {
		size, err := st.TreeSize(ctx, "default")
		if err != nil || size != tamperDecisions {
			t.Fatalf("tree of the log: %d leaves, %v; want %d", size, err, tamperDecisions)
		}
		root, err := transparency.TreeRoot(ctx, st, "default", size)
		if err != nil {
			t.Fatal(err)
		}
		signer, _, err := transparency.EphemeralSigner("tamper-test")
		if err != nil {
			t.Fatal(err)
		}
		if cp, err = transparency.SignCheckpoint(signer, transparency.Origin("", "default"), size, root, time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := st.PutCheckpoint(ctx, "default", cp); err != nil {
			t.Fatal(err)
		}
	} else if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "witness.log")
	w, err := transparency.OpenFileWitness(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Push(ctx, cp); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || len(b) == 0 {
		t.Fatalf("witness file: %d bytes, %v", len(b), err)
	}
	return path
}

// rechain rewrites chain default from seq from on: each record is decoded from its stored body,
// changed by mutate, resealed after the previous record's (new) hash and written back with its
// index columns, and the head follows the last record, so the chain verifies on its own.
func rechain(t *testing.T, db *sql.DB, from uint64, mutate func(*audit.Record)) {
	t.Helper()
	var prev []byte
	if err := db.QueryRow("SELECT hash FROM records WHERE chain_id = 'default' AND seq = ?", from-1).Scan(&prev); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query("SELECT body, hash FROM records WHERE chain_id = 'default' AND seq >= ? ORDER BY seq", from)
	if err != nil {
		t.Fatal(err)
	}
	var recs []*audit.Record
	for rows.Next() {
		var body string
		var hash []byte
		if err := rows.Scan(&body, &hash); err != nil {
			t.Fatal(err)
		}
		r := &audit.Record{}
		if err := protojson.Unmarshal([]byte(body), r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	rows.Close()
	for _, r := range recs {
		mutate(r)
		if err := audit.Seal(r, r.GetSeq(), prev); err != nil {
			t.Fatal(err)
		}
		body, err := audit.CanonicalBody(r)
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, db, "UPDATE records SET body = ?, hash = ?, effect = ? WHERE decision_id = ?", string(body), r.GetHash(), int64(r.GetEffect()), r.GetDecisionId())
		prev = r.GetHash()
	}
	mustExec(t, db, "UPDATE chain_heads SET hash = ? WHERE chain_id = 'default'", prev)
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}
