// Package transparency_test runs the audit log's transparency features end to end: the real service
// (server/app) with the real SQLite store signs checkpoints while decisions flow, stores and lists
// them, hands them to a file witness and an HTTP witness, and proves decisions with receipts that
// verify offline, over real gRPC.
package transparency_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	_ "modernc.org/sqlite" // driver "sqlite", for tampering with audit.db

	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/sqlite"
	"github.com/tollgate/tollgate/server/audit/transparency"
	"github.com/tollgate/tollgate/server/auth/devcerts"
	"github.com/tollgate/tollgate/test/testserver"
)

// httpWitness is a witness server collecting the notes POSTed to it.
type httpWitness struct {
	mu    sync.Mutex
	notes [][]byte
}

func (h *httpWitness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil || r.Method != http.MethodPost {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.notes = append(h.notes, b)
	h.mu.Unlock()
}

func (h *httpWitness) received() [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([][]byte(nil), h.notes...)
}

func loadVerifier(t testing.TB, pub string) note.Verifier {
	t.Helper()
	v, err := transparency.LoadVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func decide(t testing.TB, c *tollgate.Client, actor string) *tollgatev1.DecideResponse {
	t.Helper()
	resp, err := c.Decide(context.Background(), testserver.POSubmit(actor, "100.00"))
	if err != nil {
		t.Fatalf("decide: %v", err)
	}
	return resp
}

// TestCheckpointsWhileDecisionsFlow: with a 100ms interval, decisions made for a second get at least
// five checkpoints, each signed by the key, stored and listed newest first, and pushed to a file
// witness and an HTTP witness; after the stop the last checkpoint covers every record.
func TestCheckpointsWhileDecisionsFlow(t *testing.T) {
	priv, pub := testserver.SigningKey(t)
	v := loadVerifier(t, pub)
	witnessFile := filepath.Join(t.TempDir(), "witness", "checkpoints.log")
	if err := os.MkdirAll(filepath.Dir(witnessFile), 0o755); err != nil {
		t.Fatal(err)
	}
	hw := &httpWitness{}
	hs := httptest.NewServer(hw)
	defer hs.Close()
	const interval = 100 * time.Millisecond
	srv := testserver.Start(t, app.Config{Checkpoints: app.CheckpointConfig{
		SigningKeyFile: priv, Interval: interval,
		WitnessFiles: []string{witnessFile}, WitnessURLs: []string{hs.URL + "/witness"},
	}})
	ctx := context.Background()

	decisions := 0
	for start := time.Now(); time.Since(start) < 10*interval; decisions++ {
		decide(t, srv.Client, "u_buyer1")
		time.Sleep(5 * time.Millisecond)
	}
	var listed []*tollgatev1.Checkpoint
	for page, err := range srv.Client.CheckpointPages(ctx, &tollgatev1.ListCheckpointsRequest{PageSize: 3}) {
		if err != nil {
			t.Fatalf("list checkpoints: %v", err)
		}
		listed = append(listed, page.GetCheckpoints()...)
	}
	if len(listed) < 5 {
		t.Fatalf("%d checkpoints after %d decisions over %v at a %v interval, want at least 5", len(listed), decisions, 10*interval, interval)
	}
	for i, cp := range listed {
		got, err := transparency.VerifyCheckpoint([]byte(cp.GetNote()), v, transparency.Origin("", "default"))
		if err != nil {
			t.Fatalf("listed checkpoint %d: %v", i, err)
		}
		if uint64(got.Size) != cp.GetTreeSize() || !bytes.Equal(got.Root[:], cp.GetRootHash()) || cp.GetChainId() != "default" {
			t.Errorf("listed checkpoint %d: fields %d %x %q do not match its note (%d %x)", i, cp.GetTreeSize(), cp.GetRootHash(), cp.GetChainId(), got.Size, got.Root)
		}
		if i > 0 && cp.GetTreeSize() >= listed[i-1].GetTreeSize() {
			t.Errorf("checkpoint %d has size %d after %d: want newest first", i, cp.GetTreeSize(), listed[i-1].GetTreeSize())
		}
	}

	// The last decisions are covered by the final checkpoint, signed at the stop, which the
	// witnesses receive too.
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	want := uint64(decisions)
	f, err := os.Open(witnessFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries, err := transparency.ReadCheckpointFile(f)
	if err != nil {
		t.Fatalf("read witness file: %v", err)
	}
	var fileNotes [][]byte
	for _, e := range entries {
		fileNotes = append(fileNotes, e.Note)
	}
	for name, notes := range map[string][][]byte{"file witness": fileNotes, "HTTP witness": hw.received()} {
		if len(notes) < 2 {
			t.Errorf("%s received %d checkpoints, want several", name, len(notes))
			continue
		}
		var last transparency.Checkpoint
		for i, n := range notes {
			cp, err := transparency.VerifyCheckpoint(n, v, transparency.Origin("", "default"))
			if err != nil {
				t.Fatalf("%s checkpoint %d: %v", name, i, err)
			}
			if cp.Size < last.Size {
				t.Errorf("%s checkpoint %d shrinks the tree: %d after %d", name, i, cp.Size, last.Size)
			}
			last = cp
		}
		if uint64(last.Size) != want {
			t.Errorf("%s: last checkpoint covers %d records, want all %d", name, last.Size, want)
		}
	}
}

// TestReceiptVerifiesOffline: GetReceipt's receipt verifies with the public key alone, and against
// the record's canonical body; a wrong key, a tampered proof or leaf fail; an unknown id is NotFound.
func TestReceiptVerifiesOffline(t *testing.T) {
	priv, pub := testserver.SigningKey(t)
	v := loadVerifier(t, pub)
	srv := testserver.Start(t, app.Config{Checkpoints: app.CheckpointConfig{SigningKeyFile: priv, Interval: 50 * time.Millisecond}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var ids []string
	for range 5 {
		ids = append(ids, decide(t, srv.Client, "u_buyer1").GetDecisionId())
	}
	resp, err := srv.Client.GetReceipt(ctx, ids[2], true)
	if err != nil {
		t.Fatalf("get receipt: %v", err)
	}
	r, err := transparency.DecodeReceipt([]byte(resp.GetReceiptJson()))
	if err != nil {
		t.Fatal(err)
	}
	if r.DecisionID != ids[2] || r.ChainID != "default" || r.LeafIndex != 2 {
		t.Errorf("receipt names %s in %s at leaf %d, want %s in default at leaf 2", r.DecisionID, r.ChainID, r.LeafIndex, ids[2])
	}
	cp, err := transparency.VerifyReceipt(r, v, "")
	if err != nil {
		t.Fatalf("receipt does not verify: %v", err)
	}
	if cp.Size < 3 || resp.GetCheckpoint().GetTreeSize() != uint64(cp.Size) {
		t.Errorf("receipt checkpoint covers %d, response says %d", cp.Size, resp.GetCheckpoint().GetTreeSize())
	}
	rec, err := srv.Client.GetDecision(ctx, ids[2])
	if err != nil {
		t.Fatal(err)
	}
	body, err := audit.CanonicalBody(rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := transparency.VerifyReceiptRecord(r, v, "", body); err != nil {
		t.Errorf("receipt does not match the record: %v", err)
	}

	_, otherPub := testserver.SigningKey(t)
	if _, err := transparency.VerifyReceipt(r, loadVerifier(t, otherPub), ""); !errors.Is(err, transparency.ErrBadSignature) {
		t.Errorf("receipt with another key: %v, want ErrBadSignature", err)
	}
	tampered := r
	tampered.InclusionProof = append(tampered.InclusionProof[:0:0], r.InclusionProof...)
	if len(tampered.InclusionProof) == 0 {
		t.Fatal("a leaf of a tree of 5 has an empty proof")
	}
	tampered.InclusionProof[0][0] ^= 1
	if _, err := transparency.VerifyReceipt(tampered, v, ""); !errors.Is(err, transparency.ErrProof) {
		t.Errorf("receipt with a tampered proof: %v, want ErrProof", err)
	}
	tampered = r
	tampered.LeafHash[31] ^= 1
	if _, err := transparency.VerifyReceipt(tampered, v, ""); !errors.Is(err, transparency.ErrProof) {
		t.Errorf("receipt with a tampered leaf: %v, want ErrProof", err)
	}

	if _, err := srv.Client.GetReceipt(ctx, "01NOSUCHDECISION0000000000", true); status.Code(err) != codes.NotFound {
		t.Errorf("receipt of an unknown decision: %v, want NotFound", err)
	}
}

// TestDecideWithReceipt: want_receipt answers with a receipt that verifies; an idempotent retry that
// asks for one is a replay (want_receipt is not in the payload hash) whose receipt proves the
// original.
func TestDecideWithReceipt(t *testing.T) {
	priv, pub := testserver.SigningKey(t)
	v := loadVerifier(t, pub)
	srv := testserver.Start(t, app.Config{Checkpoints: app.CheckpointConfig{SigningKeyFile: priv, Interval: 50 * time.Millisecond}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	decide(t, srv.Client, "u_buyer1")

	req := testserver.POSubmit("u_buyer1", "100.00")
	req.IdempotencyKey = "k-receipt"
	first, err := srv.Client.Decide(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if first.GetReceiptJson() != "" {
		t.Errorf("a decision that asked for no receipt got one")
	}
	resp, missing, err := srv.Client.DecideWithReceipt(ctx, req)
	if err != nil || missing != "" {
		t.Fatalf("decide with receipt: %v, missing %q", err, missing)
	}
	if !resp.GetReplay() || resp.GetDecisionId() != first.GetDecisionId() {
		t.Errorf("retry asking for a receipt: replay %v of %s, want a replay of %s", resp.GetReplay(), resp.GetDecisionId(), first.GetDecisionId())
	}
	r, err := transparency.DecodeReceipt([]byte(resp.GetReceiptJson()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := transparency.VerifyReceipt(r, v, ""); err != nil || r.DecisionID != first.GetDecisionId() {
		t.Errorf("receipt of the retry: %v for %s, want a verified receipt of %s", err, r.DecisionID, first.GetDecisionId())
	}

	fresh, missing, err := srv.Client.DecideWithReceipt(ctx, testserver.POSubmit("u_buyer1", "250.00"))
	if err != nil || missing != "" {
		t.Fatalf("decide with receipt: %v, missing %q", err, missing)
	}
	r, err = transparency.DecodeReceipt([]byte(fresh.GetReceiptJson()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := transparency.VerifyReceipt(r, v, ""); err != nil || r.DecisionID != fresh.GetDecisionId() {
		t.Errorf("receipt: %v for %s, want a verified receipt of %s", err, r.DecisionID, fresh.GetDecisionId())
	}
}

// TestReceiptNotYetCovered: with no checkpoint due for an hour, GetReceipt without wait is
// FailedPrecondition, with wait it ends at the deadline, and a decision asking for a receipt is
// answered before the caller's deadline, made and recorded, without the receipt and with the
// reason in the trailer. The stop then signs a checkpoint that covers it.
func TestReceiptNotYetCovered(t *testing.T) {
	priv, pub := testserver.SigningKey(t)
	dataDir := t.TempDir()
	srv := testserver.Start(t, app.Config{DataDir: dataDir, Checkpoints: app.CheckpointConfig{SigningKeyFile: priv, Interval: time.Hour}})
	ctx := context.Background()
	id := decide(t, srv.Client, "u_buyer1").GetDecisionId()
	if _, err := srv.Client.GetReceipt(ctx, id, false); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("receipt before any checkpoint: %v, want FailedPrecondition", err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := srv.Client.GetReceipt(short, id, true); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("waiting receipt past the deadline: %v, want DeadlineExceeded", err)
	}

	short, cancel = context.WithTimeout(ctx, time.Second)
	defer cancel()
	req := testserver.POSubmit("u_buyer1", "100.00")
	req.WantReceipt = true
	var trailer metadata.MD
	resp, err := srv.Client.Decisions().Decide(short, req, grpc.Trailer(&trailer))
	if err != nil {
		t.Fatalf("decision whose receipt cannot come in time: %v, want the decision", err)
	}
	if resp.GetReceiptJson() != "" || resp.GetEffect() != tollgatev1.Effect_EFFECT_ALLOW {
		t.Errorf("answer %v with receipt %q, want ALLOW without a receipt", resp.GetEffect(), resp.GetReceiptJson())
	}
	why := strings.Join(trailer.Get(tollgate.ReceiptErrorTrailer), "; ")
	if !strings.Contains(why, resp.GetDecisionId()) || !strings.Contains(why, "recorded") {
		t.Errorf("trailer %q does not say why the recorded decision %s has no receipt", why, resp.GetDecisionId())
	}
	if _, err := srv.Client.GetDecision(ctx, resp.GetDecisionId()); err != nil {
		t.Errorf("the decision answered without a receipt is not recorded: %v", err)
	}

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	// The next start proves it from the checkpoint the stop signed.
	again := testserver.Start(t, app.Config{DataDir: dataDir, Checkpoints: app.CheckpointConfig{SigningKeyFile: priv, Interval: time.Hour}})
	got, err := again.Client.GetReceipt(ctx, resp.GetDecisionId(), false)
	if err != nil {
		t.Fatalf("receipt after the stop's checkpoint: %v", err)
	}
	r, err := transparency.DecodeReceipt([]byte(got.GetReceiptJson()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := transparency.VerifyReceipt(r, loadVerifier(t, pub), ""); err != nil {
		t.Errorf("receipt after restart: %v", err)
	}
}

// TestAsyncRefusesWantReceipt: in async audit mode the answer leaves before the commit, so
// want_receipt is refused before anything is decided; GetReceipt with wait works.
func TestAsyncRefusesWantReceipt(t *testing.T) {
	priv, _ := testserver.SigningKey(t)
	srv := testserver.Start(t, app.Config{Audit: audit.Config{Mode: audit.ModeAsync},
		Checkpoints: app.CheckpointConfig{SigningKeyFile: priv, Interval: 50 * time.Millisecond}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err := srv.Client.DecideWithReceipt(ctx, testserver.POSubmit("u_buyer1", "100.00"))
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "--audit-mode sync") {
		t.Errorf("want_receipt in async mode: %v, want FailedPrecondition naming --audit-mode sync", err)
	}
	page, err := srv.Client.ListDecisions(ctx, &tollgatev1.ListDecisionsRequest{})
	if err != nil || len(page.GetRecords()) != 0 {
		t.Errorf("refused request recorded %d decisions (%v), want none", len(page.GetRecords()), err)
	}
	id := decide(t, srv.Client, "u_buyer1").GetDecisionId()
	// The answer left before the commit: the record appears shortly.
	for {
		_, err := srv.Client.GetDecision(ctx, id)
		if err == nil {
			break
		}
		if status.Code(err) != codes.NotFound {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := srv.Client.GetReceipt(ctx, id, true); err != nil {
		t.Errorf("receipt with wait in async mode: %v", err)
	}
}

// syncBuffer collects log lines written from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestEphemeralKeyOnLoopback: without a signing key a loopback service signs with a key made at
// start, says so in its start log with the verifier key, and its receipts verify with that key.
func TestEphemeralKeyOnLoopback(t *testing.T) {
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := app.New(ctx, app.Config{Addr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: t.TempDir(),
		Checkpoints: app.CheckpointConfig{Interval: 50 * time.Millisecond}}, zerolog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		<-done
		a.Close()
	}()
	vkey := a.VerifierKey()
	var warned bool
	for line := range strings.SplitSeq(logs.String(), "\n") {
		var entry struct {
			Level, Message string
			Key            string `json:"audit_verifier_key"`
		}
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Level == "warn" &&
			strings.Contains(entry.Message, "EPHEMERAL") && entry.Key == vkey && vkey != "" {
			warned = true
		}
	}
	if !warned {
		t.Fatalf("start log does not warn of the ephemeral key with its verifier key %q:\n%s", vkey, logs.String())
	}
	c, err := tollgate.Dial(ctx, a.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, missing, err := c.DecideWithReceipt(ctx, testserver.POSubmit("u_buyer1", "100.00"))
	if err != nil || missing != "" {
		t.Fatalf("decide with receipt: %v, %q", err, missing)
	}
	r, err := transparency.DecodeReceipt([]byte(resp.GetReceiptJson()))
	if err != nil {
		t.Fatal(err)
	}
	v, err := transparency.ParseVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := transparency.VerifyReceipt(r, v, ""); err != nil {
		t.Errorf("receipt with the logged ephemeral key: %v", err)
	}
}

// TestNoKeyOffLoopbackRefused: a service on a non-loopback address without a signing key does not
// start, and says which flag it needs; with one it starts.
func TestNoKeyOffLoopbackRefused(t *testing.T) {
	certs := t.TempDir()
	if err := devcerts.Write(certs, time.Hour); err != nil {
		t.Fatal(err)
	}
	cfg := app.Config{Addr: "0.0.0.0:0", HTTPAddr: "127.0.0.1:0", DataDir: t.TempDir(),
		TLSCert: filepath.Join(certs, "server.crt"), TLSKey: filepath.Join(certs, "server.key"),
		ClientCA: filepath.Join(certs, "ca.crt"), CallersFile: filepath.Join(certs, "callers.json")}
	ctx := context.Background()
	if a, err := app.New(ctx, cfg, zerolog.Nop()); err == nil {
		a.Close()
		t.Fatal("started on 0.0.0.0 without a signing key")
	} else if !strings.Contains(err.Error(), "--audit-signing-key") || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("refusal %q does not name --audit-signing-key and loopback", err)
	}
	cfg.Checkpoints.SigningKeyFile, _ = testserver.SigningKey(t)
	a, err := app.New(ctx, cfg, zerolog.Nop())
	if err != nil {
		t.Fatalf("start on 0.0.0.0 with a signing key: %v", err)
	}
	a.Close()
}

// TestKeyChange: after a restart with another key, the newest stored checkpoint is the old key's, so
// a receipt is FailedPrecondition (not DataLoss) until the chain grows; then receipts, old records'
// included, verify with the new key.
func TestKeyChange(t *testing.T) {
	oldPriv, _ := testserver.SigningKey(t)
	newPriv, newPub := testserver.SigningKey(t)
	dataDir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	first := testserver.Start(t, app.Config{DataDir: dataDir, Checkpoints: app.CheckpointConfig{SigningKeyFile: oldPriv, Interval: 50 * time.Millisecond}})
	id := decide(t, first.Client, "u_buyer1").GetDecisionId()
	if _, err := first.Client.GetReceipt(ctx, id, true); err != nil {
		t.Fatal(err)
	}
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}

	second := testserver.Start(t, app.Config{DataDir: dataDir, Checkpoints: app.CheckpointConfig{SigningKeyFile: newPriv, Interval: 50 * time.Millisecond}})
	_, err := second.Client.GetReceipt(ctx, id, false)
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "not signed by this server's key") {
		t.Errorf("receipt under the old key's checkpoint: %v, want FailedPrecondition naming the key", err)
	}
	decide(t, second.Client, "u_buyer1")
	var resp *tollgatev1.GetReceiptResponse
	for {
		if resp, err = second.Client.GetReceipt(ctx, id, false); status.Code(err) != codes.FailedPrecondition {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("receipt after the chain grew: %v", err)
	}
	r, err := transparency.DecodeReceipt([]byte(resp.GetReceiptJson()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := transparency.VerifyReceipt(r, loadVerifier(t, newPub), ""); err != nil {
		t.Errorf("old record's receipt with the new key: %v", err)
	}
}

// TestTamperedTreeIsDataLoss: tree hashes rewritten through SQL on the file no longer prove a record
// under its signed checkpoint; the service checks each receipt before it leaves and answers DataLoss
// instead of a receipt that would fail at the caller.
func TestTamperedTreeIsDataLoss(t *testing.T) {
	priv, _ := testserver.SigningKey(t)
	dataDir := t.TempDir()
	srv := testserver.Start(t, app.Config{DataDir: dataDir, Checkpoints: app.CheckpointConfig{SigningKeyFile: priv, Interval: 50 * time.Millisecond}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var id string
	for range 4 {
		id = decide(t, srv.Client, "u_buyer1").GetDecisionId()
	}
	if _, err := srv.Client.GetReceipt(ctx, id, true); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", filepath.Join(dataDir, sqlite.FileName)+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "UPDATE tree_hashes SET hash = zeroblob(32)"); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Client.GetReceipt(ctx, id, false); status.Code(err) != codes.DataLoss {
		t.Errorf("receipt over a rewritten tree: %v, want DataLoss", err)
	}
}

// TestDecideBatchReceipts: in a batch, each request that asks for a receipt gets one and the others
// none; every receipt verifies.
func TestDecideBatchReceipts(t *testing.T) {
	priv, pub := testserver.SigningKey(t)
	v := loadVerifier(t, pub)
	srv := testserver.Start(t, app.Config{Checkpoints: app.CheckpointConfig{SigningKeyFile: priv, Interval: 50 * time.Millisecond}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reqs := []*tollgatev1.DecideRequest{
		testserver.POSubmit("u_buyer1", "100.00"), testserver.POSubmit("u_buyer1", "200.00"), testserver.POSubmit("u_buyer1", "300.00"),
	}
	reqs[0].WantReceipt, reqs[2].WantReceipt = true, true
	var trailer metadata.MD
	resp, err := srv.Client.Decisions().DecideBatch(ctx, &tollgatev1.DecideBatchRequest{Requests: reqs}, grpc.Trailer(&trailer))
	if err != nil {
		t.Fatal(err)
	}
	if got := trailer.Get(tollgate.ReceiptErrorTrailer); len(got) != 0 {
		t.Errorf("receipt errors %q, want none", got)
	}
	for i, d := range resp.GetResponses() {
		if (d.GetReceiptJson() != "") != reqs[i].GetWantReceipt() {
			t.Errorf("requests[%d]: receipt %q, asked %v", i, d.GetReceiptJson(), reqs[i].GetWantReceipt())
			continue
		}
		if !reqs[i].GetWantReceipt() {
			continue
		}
		r, err := transparency.DecodeReceipt([]byte(d.GetReceiptJson()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := transparency.VerifyReceipt(r, v, ""); err != nil || r.DecisionID != d.GetDecisionId() {
			t.Errorf("requests[%d]: receipt of %s: %v", i, r.DecisionID, err)
		}
	}
}

// TestVerifySinceWitness: with a signing key, verify proves the log extends the newest checkpoint of
// the service's witness file and checks the stored checkpoints' signatures with the key; a
// checkpoint of the same tree signed by another key is refused as since_checkpoint.
func TestVerifySinceWitness(t *testing.T) {
	priv, _ := testserver.SigningKey(t)
	witnessFile := filepath.Join(t.TempDir(), "checkpoints.log")
	srv := testserver.Start(t, app.Config{Checkpoints: app.CheckpointConfig{SigningKeyFile: priv, Interval: 50 * time.Millisecond,
		WitnessFiles: []string{witnessFile}}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, missing, err := srv.Client.DecideWithReceipt(ctx, testserver.POSubmit("u_buyer1", "100.00")); err != nil || missing != "" {
		t.Fatalf("decide: %v %q", err, missing)
	}
	var entries []transparency.FileEntry
	for len(entries) == 0 {
		b, err := os.ReadFile(witnessFile)
		if err != nil {
			t.Fatal(err)
		}
		if entries, err = transparency.ReadCheckpointFile(bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	since := entries[len(entries)-1].Note
	resp, err := srv.Client.Audit().VerifyLog(ctx, &tollgatev1.VerifyLogRequest{ChainId: "default", SinceCheckpoint: string(since)})
	if err != nil || !resp.GetOk() || resp.GetCheckpointsChecked() == 0 {
		t.Fatalf("verify since the witness's checkpoint: %v, %v", resp, err)
	}

	// The same tree signed by a key that is not the service's.
	other, _, err := transparency.EphemeralSigner(transparency.DefaultKeyName)
	if err != nil {
		t.Fatal(err)
	}
	text, _, _ := strings.Cut(string(since), "\n\n")
	forged, err := note.Sign(&note.Note{Text: text + "\n"}, other)
	if err != nil {
		t.Fatal(err)
	}
	_, err = srv.Client.Audit().VerifyLog(ctx, &tollgatev1.VerifyLogRequest{ChainId: "default", SinceCheckpoint: string(forged)})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("verify since a checkpoint signed by another key: %v, want InvalidArgument", err)
	}
}
