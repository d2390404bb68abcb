package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	serverapp "github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/audit/sqlite"
)

// startServer runs the real service (embedded policy pack and demo master
// data, SQLite audit log in a temp dir) on a free loopback port until the
// test ends, and returns its address and data dir.
func startServer(t testing.TB) (addr, dataDir string) {
	t.Helper()
	dataDir = t.TempDir()
	var logw io.Writer = io.Discard
	if testing.Verbose() {
		logw = zerolog.NewTestWriter(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := serverapp.New(ctx, serverapp.Config{Addr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: dataDir},
		zerolog.New(logw).Level(zerolog.InfoLevel))
	if err != nil {
		cancel()
		t.Fatalf("start service: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("service stopped with: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("service did not stop within 30s")
		}
		a.Close()
	})
	return a.Addr().String(), dataDir
}

// ctl runs tollgatectl against addr.
func ctl(t testing.TB, addr, stdin string, args ...string) result {
	t.Helper()
	return runCmd(t, nil, stdin, append([]string{"--addr", addr}, args...)...)
}

// ctlOK runs tollgatectl and fails the test unless it exits 0.
func ctlOK(t testing.TB, addr, stdin string, args ...string) string {
	t.Helper()
	got := ctl(t, addr, stdin, args...)
	if got.code != exitOK {
		t.Fatalf("tollgatectl %s: exit %d, stderr %q", strings.Join(args, " "), got.code, got.stderr)
	}
	return got.stdout
}

func poRequest(actor, amount, workflow string) string {
	return poRequestTo(actor, "S1", amount, workflow)
}

// poRequestTo is poRequest to another supplier: a PO to another supplier is not summed with the buyer's
// earlier POs to S1 by the pack's split-purchase rule (TH-7), whose key is buyer, supplier and site.
func poRequestTo(actor, supplier, amount, workflow string) string {
	return fmt.Sprintf(`{"actor": {"id": %q, "type": "HUMAN"}, "action": "PO.SUBMIT",
  "resource": {"type": "purchase_order", "id": "PO-1001", "attributes": {"amount": %q, "currency": "USD",
    "category": "MRO", "site_id": "DC1", "supplier_id": %q}},
  "context": {"workflow_id": %q}}`, actor, amount, supplier, workflow)
}

// decide asks through the CLI and returns the decision id and effect.
func decide(t testing.TB, addr, request string) (id, effect string) {
	t.Helper()
	var resp struct {
		DecisionID string `json:"decision_id"`
		Effect     string `json:"effect"`
	}
	if err := json.Unmarshal([]byte(ctlOK(t, addr, request, "decide", "-f", "-")), &resp); err != nil {
		t.Fatalf("decide output: %v", err)
	}
	return resp.DecisionID, resp.Effect
}

// tableIDs returns the decision column of an audit list table.
func tableIDs(t testing.TB, table string) []string {
	t.Helper()
	var ids []string
	for i, line := range strings.Split(strings.TrimSuffix(table, "\n"), "\n") {
		f := strings.Fields(line)
		switch {
		case i == 0 && strings.HasPrefix(line, "TIME"):
		case strings.HasPrefix(line, "next page:"):
		case len(f) >= 7:
			ids = append(ids, f[1])
		default:
			t.Fatalf("unexpected table line %q in\n%s", line, table)
		}
	}
	return ids
}

// nextToken returns the page token of a "next page:" line, or "".
func nextToken(out string) string {
	m := regexp.MustCompile(`(?m)^next page: --page-token (\S+)$`).FindStringSubmatch(out)
	if m == nil {
		return ""
	}
	return m[1]
}

func reversed(s []string) []string {
	r := slices.Clone(s)
	slices.Reverse(r)
	return r
}

// TestAuditAgainstServer decides through the CLI, then finds, shows,
// verifies, replays and exports those decisions with the audit commands
// against the real service.
func TestAuditAgainstServer(t *testing.T) {
	addr, dataDir := startServer(t)
	since := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)

	// In decision order: ALLOW, REQUIRE_APPROVAL, DENY, and one in another workflow.
	var ids, effects []string
	for _, req := range []string{
		poRequest("u_buyer1", "100.00", "wf-77"),
		poRequest("u_buyer1", "8000.00", "wf-77"),
		poRequest("u_buyer1", "12abc", "wf-77"),
		poRequestTo("u_buyer1", "S3", "150.00", "wf-88"), // not summed with the 8000.00 to S1
	} {
		id, effect := decide(t, addr, req)
		ids, effects = append(ids, id), append(effects, effect)
	}
	if diff := cmp.Diff([]string{"ALLOW", "REQUIRE_APPROVAL", "DENY", "ALLOW"}, effects); diff != "" {
		t.Fatalf("effects of the requests (-want +got):\n%s", diff)
	}

	t.Run("list filters", func(t *testing.T) {
		out := ctlOK(t, addr, "", "audit", "list", "--actor", "u_buyer1", "--workflow", "wf-77")
		if diff := cmp.Diff(reversed(ids[:3]), tableIDs(t, out)); diff != "" {
			t.Errorf("list --workflow wf-77, newest first (-want +got):\n%s\n%s", diff, out)
		}
		if !strings.HasPrefix(out, "TIME ") || !strings.Contains(out, "u_buyer1") || !strings.Contains(out, "purchase_order/PO-1001") ||
			!regexp.MustCompile(`(?m)^\S+Z\s+`+ids[2]+`\s+u_buyer1\s+PO\.SUBMIT\s+purchase_order/PO-1001\s+DENY\s+INVALID_AMOUNT_FORMAT$`).MatchString(out) {
			t.Errorf("table row of the DENY lacks its columns:\n%s", out)
		}
		if nextToken(out) != "" {
			t.Errorf("one page printed a next page token:\n%s", out)
		}

		out = ctlOK(t, addr, "", "audit", "list", "--effect", "DENY", "--reason", "INVALID_AMOUNT_FORMAT", "--json")
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], `"decision_id":"`+ids[2]+`"`) ||
			!strings.Contains(lines[0], `"effect":"DENY"`) || !strings.Contains(lines[0], `"kind":"DECISION"`) {
			t.Errorf("list --effect DENY --reason --json = %q, want one NDJSON line for %s with short enum names", out, ids[2])
		}
		if got := ndjsonIDs(t, out); !slices.Equal(got, ids[2:3]) {
			t.Errorf("NDJSON reads back as %v", got)
		}

		out = ctlOK(t, addr, "", "audit", "list", "--effect", "allow", "--to", time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano))
		if diff := cmp.Diff([]string{ids[3], ids[0]}, tableIDs(t, out)); diff != "" {
			t.Errorf("list --effect allow (-want +got):\n%s", diff)
		}
		if out := ctlOK(t, addr, "", "audit", "list", "--actor", "nobody"); out != "no matching decisions\n" {
			t.Errorf("list with no match = %q", out)
		}
	})

	t.Run("list pages", func(t *testing.T) {
		first := ctlOK(t, addr, "", "audit", "list", "--limit", "3")
		token := nextToken(first)
		if token == "" {
			t.Fatalf("first page of 3 of 4 has no next page token:\n%s", first)
		}
		second := ctlOK(t, addr, "", "audit", "list", "--limit", "3", "--page-token", token)
		if got := append(tableIDs(t, first), tableIDs(t, second)...); !slices.Equal(got, reversed(ids)) {
			t.Errorf("two pages list %v, want %v", got, reversed(ids))
		}
		if nextToken(second) != "" {
			t.Errorf("last page has a next page token:\n%s", second)
		}

		all := ctlOK(t, addr, "", "audit", "list", "--limit", "1", "--all")
		if got := tableIDs(t, all); !slices.Equal(got, reversed(ids)) {
			t.Errorf("list --all --limit 1 = %v, want %v", got, reversed(ids))
		}

		got := ctl(t, addr, "", "audit", "list", "--limit", "2", "--json")
		if ids := ndjsonIDs(t, got.stdout); len(ids) != 2 || got.code != exitOK {
			t.Errorf("list --limit 2 --json: exit %d, %d records", got.code, len(ids))
		}
		if token := nextToken(got.stderr); token == "" {
			t.Errorf("list --json did not print the next page token on stderr: %q", got.stderr)
		}
		allJSON := ctlOK(t, addr, "", "audit", "list", "--limit", "1", "--all", "--json")
		if got := ndjsonIDs(t, allJSON); !slices.Equal(got, reversed(ids)) {
			t.Errorf("list --all --json = %v, want %v", got, reversed(ids))
		}

		bad := ctl(t, addr, "", "audit", "list", "--page-token", "not-a-token")
		if bad.code != exitError || !strings.HasPrefix(bad.stderr, "tollgatectl: audit list: InvalidArgument: ") {
			t.Errorf("bad page token: exit %d, stderr %q", bad.code, bad.stderr)
		}
	})

	t.Run("get", func(t *testing.T) {
		out := ctlOK(t, addr, "", "audit", "get", ids[1])
		var rec struct {
			DecisionID string `json:"decision_id"`
			Effect     string `json:"effect"`
			Kind       string `json:"kind"`
			Request    struct {
				Actor struct{ Type string } `json:"actor"`
			} `json:"request"`
			Facts     []map[string]any `json:"facts"`
			FactsJSON *string          `json:"facts_json"`
		}
		if err := json.Unmarshal([]byte(out), &rec); err != nil {
			t.Fatalf("audit get output is not JSON: %v\n%s", err, out)
		}
		if rec.DecisionID != ids[1] || rec.Effect != "REQUIRE_APPROVAL" || rec.Kind != "DECISION" || rec.Request.Actor.Type != "HUMAN" {
			t.Errorf("audit get = %+v", rec)
		}
		if len(rec.Facts) == 0 || rec.FactsJSON != nil || !strings.Contains(out, `"builtin": "md.get"`) {
			t.Errorf("audit get does not print the facts parsed:\n%s", out)
		}
		wantFailure(t, ctl(t, addr, "", "audit", "get", "01NOPE"), exitError, "tollgatectl: audit get: NotFound: decision 01NOPE: not found")
	})

	t.Run("verify", func(t *testing.T) {
		// The service signs a checkpoint every second, so whether one is stored yet depends on timing.
		all := regexp.MustCompile(`^OK: 4 records checked \(all chains\)\ncheckpoints checked: [01]\n$`)
		if out := ctlOK(t, addr, "", "audit", "verify"); !all.MatchString(out) {
			t.Errorf("audit verify = %q", out)
		}
		one := regexp.MustCompile(`^OK: 4 records checked \(chain default\)\ntree: size 4, root [A-Za-z0-9+/]{43}=\ncheckpoints checked: [01]\n$`)
		if out := ctlOK(t, addr, "", "audit", "verify", "--chain", "default"); !one.MatchString(out) {
			t.Errorf("audit verify --chain default = %q", out)
		}
	})

	t.Run("replay", func(t *testing.T) {
		for i, id := range ids {
			out := ctlOK(t, addr, "", "audit", "replay", id)
			want := fmt.Sprintf("identical: decision %s replays to %s [", id, effects[i])
			if !strings.HasPrefix(out, want) || strings.Count(out, "\n") != 1 {
				t.Errorf("audit replay %s = %q, want one line starting %q", id, out, want)
			}
		}
		out := ctlOK(t, addr, "", "audit", "replay", "--json", ids[2])
		if !strings.Contains(out, `"identical": true`) || !strings.Contains(out, `"effect": "DENY"`) {
			t.Errorf("audit replay --json:\n%s", out)
		}
		got := ctl(t, addr, "", "audit", "replay", "01NOPE")
		if got.code != exitError || !strings.HasPrefix(got.stderr, "tollgatectl: audit replay: NotFound: ") || got.stdout != "" {
			t.Errorf("replay of an unknown id: exit %d, stdout %q, stderr %q", got.code, got.stdout, got.stderr)
		}
	})

	t.Run("export", func(t *testing.T) {
		out := ctlOK(t, addr, "", "audit", "export", "--since", since)
		if got := ndjsonIDs(t, out); !slices.Equal(got, ids) {
			t.Errorf("export = %v, want oldest first %v", got, ids)
		}
		if out := ctlOK(t, addr, "", "audit", "export", "--chain", "default"); !slices.Equal(ndjsonIDs(t, out), ids) {
			t.Errorf("export of the whole chain = %v, want %v", ndjsonIDs(t, out), ids)
		}
		if out := ctlOK(t, addr, "", "audit", "export", "--since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)); out != "" {
			t.Errorf("export of the future = %q, want nothing", out)
		}
	})

	// Last, as it breaks the chain: an altered record makes verify exit 1
	// and name it.
	t.Run("verify a tampered log", func(t *testing.T) {
		db, err := sql.Open("sqlite", filepath.Join(dataDir, sqlite.FileName)+"?_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(`UPDATE records SET body = json_set(body, '$.reasons[0].message', 'fine') WHERE decision_id = ?`, ids[2]); err != nil {
			t.Fatalf("tamper: %v", err)
		}
		got := ctl(t, addr, "", "audit", "verify")
		if got.code != exitError {
			t.Errorf("verify of a tampered log: exit %d, want %d", got.code, exitError)
		}
		if !strings.HasPrefix(got.stdout, "FAILED: chain default does not verify\nfirst bad record: seq 3, decision "+ids[2]+"\n") ||
			!strings.Contains(got.stdout, "records checked: 2\n") {
			t.Errorf("verify output:\n%s", got.stdout)
		}
		if !strings.HasPrefix(got.stderr, "tollgatectl: audit verify: chain default does not verify at seq 3: ") || strings.Count(got.stderr, "\n") != 1 {
			t.Errorf("verify stderr = %q", got.stderr)
		}
	})
}

func siteEvent(key, status string) string {
	return fmt.Sprintf(`{"event_id": "ctl-%s", "kind": "site", "key": %q, "version": 1, "op": "UPSERT", "record": {"status": %q, "type": "DC", "company": "ACME"}}`,
		key, key, status)
}

// TestMasterDataApplyBatches sends five events in batches of two against the
// real service: every event's result is printed in file order, every batch
// applied, and an INVALID event in the middle batch exits 1 without stopping
// the last batch.
func TestMasterDataApplyBatches(t *testing.T) {
	addr, _ := startServer(t)
	events := strings.Join([]string{
		siteEvent("X1", "ACTIVE"), siteEvent("X2", "ACTIVE"), siteEvent("X3", "WEIRD"), siteEvent("X4", "ACTIVE"), siteEvent("X5", "ACTIVE"),
	}, "\n")
	got := ctl(t, addr, events, "masterdata", "apply", "--batch", "2", "-f", "-")
	if got.code != exitError || got.stderr != "tollgatectl: masterdata apply: 1 of 5 events INVALID\n" {
		t.Errorf("exit %d, stderr %q; want 1 and the INVALID count", got.code, got.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(got.stdout, "\n"), "\n")
	var outcomes []string
	for _, l := range lines[:len(lines)-1] {
		f := strings.Fields(l)
		outcomes = append(outcomes, f[0]+" "+f[1])
	}
	want := []string{"ctl-X1 APPLIED", "ctl-X2 APPLIED", "ctl-X3 INVALID", "ctl-X4 APPLIED", "ctl-X5 APPLIED"}
	if diff := cmp.Diff(want, outcomes); diff != "" {
		t.Errorf("per-event lines (-want +got):\n%s\n%s", diff, got.stdout)
	}
	if !regexp.MustCompile(`^revision \d+$`).MatchString(lines[len(lines)-1]) {
		t.Errorf("last line = %q, want the revision", lines[len(lines)-1])
	}
	// The batch after the INVALID event was applied.
	if out := ctlOK(t, addr, "", "masterdata", "get", "site", "X5"); !strings.Contains(out, `"ACTIVE"`) {
		t.Errorf("site X5 after apply:\n%s", out)
	}

	// --json merges the batches into one response; sending them again is
	// all DUPLICATE (or INVALID for X3 again).
	again := ctl(t, addr, events, "masterdata", "apply", "--batch", "3", "--json", "-f", "-")
	var resp struct {
		Results []struct {
			EventID string `json:"event_id"`
			Outcome string `json:"outcome"`
		} `json:"results"`
		Revision string `json:"revision"`
	}
	if err := json.Unmarshal([]byte(again.stdout), &resp); err != nil {
		t.Fatalf("apply --json output: %v\n%s", err, again.stdout)
	}
	var gotJSON []string
	for _, r := range resp.Results {
		gotJSON = append(gotJSON, r.EventID+" "+r.Outcome)
	}
	wantJSON := []string{"ctl-X1 DUPLICATE", "ctl-X2 DUPLICATE", "ctl-X3 INVALID", "ctl-X4 DUPLICATE", "ctl-X5 DUPLICATE"}
	if diff := cmp.Diff(wantJSON, gotJSON); diff != "" || resp.Revision == "" || again.code != exitError {
		t.Errorf("apply --json again: exit %d, revision %q, results (-want +got):\n%s", again.code, resp.Revision, diff)
	}
}

// TestDecideIDOnly checks that --id prints exactly the decision id, the one
// the log holds, so a script can capture it (id=$(tollgatectl decide --id -f F)).
func TestDecideIDOnly(t *testing.T) {
	addr, _ := startServer(t)
	out := ctlOK(t, addr, poRequest("u_buyer1", "8000.00", "wf-id"), "decide", "--id", "-f", "-")
	id, ok := strings.CutSuffix(out, "\n")
	if !ok || !regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{26}$`).MatchString(id) {
		t.Fatalf("decide --id printed %q, want one ULID and a newline", out)
	}
	if rec := ctlOK(t, addr, "", "audit", "get", id); !strings.Contains(rec, `"decision_id": "`+id+`"`) {
		t.Errorf("audit get %s does not show that decision:\n%s", id, rec)
	}

	batch := "[" + poRequest("u_buyer1", "100.00", "wf-id") + "," + poRequest("u_buyer1", "12abc", "wf-id") + "]"
	out = ctlOK(t, addr, batch, "decide-batch", "--id", "-f", "-")
	ids := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(ids) != 2 || ids[0] == ids[1] || !regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{26}$`).MatchString(ids[1]) {
		t.Fatalf("decide-batch --id printed %q, want two ULIDs, one a line", out)
	}
	if rec := ctlOK(t, addr, "", "audit", "get", ids[1]); !strings.Contains(rec, `"INVALID_AMOUNT_FORMAT"`) {
		t.Errorf("the second id is not the second request's decision:\n%s", rec)
	}
}

// TestDecideMinMasterdataRevision: --min-masterdata-revision is sent as the request's consistency token:
// one the server has is answered at that revision or later, one it does not reach fails Unavailable
// (after the server's --consistency-wait, 2s by default) and exits 1.
func TestDecideMinMasterdataRevision(t *testing.T) {
	addr, _ := startServer(t)
	out := ctlOK(t, addr, siteEvent("DC9", "ACTIVE")+"\n", "masterdata", "apply", "-f", "-")
	rev := strings.TrimSpace(out[strings.LastIndex(out, "revision ")+len("revision "):])
	out = ctlOK(t, addr, poRequest("u_buyer1", "100.00", "wf-token"), "decide", "--min-masterdata-revision", rev, "-f", "-")
	if !strings.Contains(out, `"masterdata_revision": "`+rev+`"`) {
		t.Errorf("decide with token %s:\n%s", rev, out)
	}
	got := ctl(t, addr, poRequest("u_buyer1", "100.00", "wf-token"), "decide", "--min-masterdata-revision", "1000", "-f", "-")
	if got.code != 1 || !strings.HasPrefix(got.stderr, "tollgatectl: decide: Unavailable: master data at revision "+rev+" is ") ||
		!strings.Contains(got.stderr, "behind the requested min_masterdata_revision 1000") {
		t.Errorf("decide with a token ahead: exit %d, stderr %q; want 1 and Unavailable saying how far behind", got.code, got.stderr)
	}
}
