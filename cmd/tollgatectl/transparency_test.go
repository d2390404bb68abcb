package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	serverapp "github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/audit/transparency"
)

// startSigningServer runs the real service signing checkpoints with a key written as
// `tollgate keygen` does, every interval, and returns its address and the public key file.
func startSigningServer(t testing.TB, interval time.Duration) (addr, pub string) {
	t.Helper()
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "signing.key"), filepath.Join(dir, "signing.pub")
	if _, err := transparency.WriteKeyPair(priv, pub, transparency.DefaultKeyName, false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := serverapp.New(ctx, serverapp.Config{Addr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: t.TempDir(),
		Checkpoints: serverapp.CheckpointConfig{SigningKeyFile: priv, Interval: interval}}, zerolog.New(io.Discard))
	if err != nil {
		cancel()
		t.Fatalf("start service: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		a.Close()
	})
	return a.Addr().String(), pub
}

// TestReceiptCommands: decide --receipt prints a receipt, audit prove --wait prints one that
// verify-receipt accepts offline (the flags after the file too), and rejects with exit 1 when the key
// is another or the receipt was altered; audit checkpoints lists what was signed.
func TestReceiptCommands(t *testing.T) {
	addr, pub := startSigningServer(t, 50*time.Millisecond)
	var resp struct {
		DecisionID  string `json:"decision_id"`
		Effect      string `json:"effect"`
		ReceiptJSON string `json:"receipt_json"`
	}
	out := ctlOK(t, addr, poRequest("u_buyer1", "100.00", "wf-r"), "decide", "--receipt", "-f", "-")
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("decide --receipt output: %v\n%s", err, out)
	}
	if resp.Effect != "ALLOW" || !strings.Contains(resp.ReceiptJSON, `"decision_id": "`+resp.DecisionID+`"`) {
		t.Fatalf("decide --receipt printed no receipt of its decision:\n%s", out)
	}
	dir := t.TempDir()
	fromDecide := filepath.Join(dir, "decide-receipt.json")
	if err := os.WriteFile(fromDecide, []byte(resp.ReceiptJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := runCmd(t, nil, "", "audit", "verify-receipt", "--key", pub, fromDecide); got.code != exitOK || !strings.HasPrefix(got.stdout, "OK: decision "+resp.DecisionID) {
		t.Errorf("verify-receipt of decide --receipt's receipt: exit %d, stdout %q, stderr %q", got.code, got.stdout, got.stderr)
	}

	id, _ := decide(t, addr, poRequest("u_buyer1", "200.00", "wf-r"))
	receipt := ctlOK(t, addr, "", "audit", "prove", "--wait", id)
	file := filepath.Join(dir, "receipt.json")
	if err := os.WriteFile(file, []byte(receipt), 0o600); err != nil {
		t.Fatal(err)
	}
	// Offline: no --addr, and a server address that would fail if it were called.
	got := runCmd(t, map[string]string{"TOLLGATE_ADDR": "127.0.0.1:1"}, "", "audit", "verify-receipt", file, "--key", pub)
	if got.code != exitOK || !strings.Contains(got.stdout, "OK: decision "+id+" is record 2 of chain default") {
		t.Errorf("verify-receipt FILE --key PUB: exit %d, stdout %q, stderr %q", got.code, got.stdout, got.stderr)
	}

	otherPriv, otherPub := filepath.Join(dir, "other.key"), filepath.Join(dir, "other.pub")
	if _, err := transparency.WriteKeyPair(otherPriv, otherPub, transparency.DefaultKeyName, false); err != nil {
		t.Fatal(err)
	}
	got = runCmd(t, nil, "", "audit", "verify-receipt", "--key", otherPub, file)
	if got.code != exitError || !strings.Contains(got.stderr, "no valid signature by the key") || got.stdout != "" {
		t.Errorf("verify-receipt with another key: exit %d, stdout %q, stderr %q; want exit 1 naming the signature", got.code, got.stdout, got.stderr)
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(receipt), &r); err != nil {
		t.Fatal(err)
	}
	r["leaf_index"] = 0 // claims the record is the first one
	altered, _ := json.Marshal(r)
	got = runCmd(t, nil, string(altered), "audit", "verify-receipt", "--key", pub, "-")
	if got.code != exitError || !strings.Contains(got.stderr, "proof does not verify") {
		t.Errorf("verify-receipt of an altered receipt: exit %d, stderr %q; want exit 1 naming the proof", got.code, got.stderr)
	}
	got = runCmd(t, nil, "", "audit", "verify-receipt", file)
	if got.code != exitUsage || !strings.Contains(got.stderr, "--key is required") {
		t.Errorf("verify-receipt without --key: exit %d, stderr %q", got.code, got.stderr)
	}

	table := ctlOK(t, addr, "", "audit", "checkpoints")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "SIGNED_AT") || !strings.Contains(lines[1], "tollgate/default") {
		t.Errorf("audit checkpoints:\n%s", table)
	}
	ndjson := ctlOK(t, addr, "", "audit", "checkpoints", "--json", "--limit", "1")
	var cp struct {
		TreeSize string `json:"tree_size"`
		Note     string `json:"note"`
	}
	if err := json.Unmarshal([]byte(ndjson), &cp); err != nil || cp.TreeSize != "2" || !strings.HasPrefix(cp.Note, "tollgate/default\n2\n") {
		t.Errorf("audit checkpoints --json --limit 1: %v\n%s", err, ndjson)
	}
	if got := ctl(t, addr, "", "audit", "prove", "01NOSUCHDECISION0000000000"); got.code != exitError || !strings.Contains(got.stderr, "NotFound") {
		t.Errorf("audit prove of an unknown id: exit %d, stderr %q", got.code, got.stderr)
	}
}

// TestDecideReceiptMissing: when no checkpoint comes before the deadline, decide --receipt prints the
// decision (made and recorded), says on stderr why it has no receipt, and exits 1.
func TestDecideReceiptMissing(t *testing.T) {
	addr, _ := startSigningServer(t, time.Hour)
	got := ctl(t, addr, poRequest("u_buyer1", "100.00", "wf-m"), "--timeout", "1s", "decide", "--receipt", "-f", "-")
	var resp struct {
		DecisionID  string `json:"decision_id"`
		Effect      string `json:"effect"`
		ReceiptJSON string `json:"receipt_json"`
	}
	if err := json.Unmarshal([]byte(got.stdout), &resp); err != nil || resp.Effect != "ALLOW" || resp.ReceiptJSON != "" {
		t.Fatalf("decide --receipt without a checkpoint printed %q (%v), want the decision without a receipt", got.stdout, err)
	}
	if got.code != exitError || !strings.Contains(got.stderr, "decision "+resp.DecisionID+" is recorded, without a receipt") ||
		!strings.Contains(got.stderr, "audit prove --wait") {
		t.Errorf("exit %d, stderr %q; want 1 and the reason", got.code, got.stderr)
	}
	if rec := ctlOK(t, addr, "", "audit", "get", resp.DecisionID); !strings.Contains(rec, resp.DecisionID) {
		t.Errorf("the decision is not recorded:\n%s", rec)
	}
}
