package e2e_test

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate/tollgate/policies"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/sqlite"
	"github.com/tollgate/tollgate/server/bundles"
	"github.com/tollgate/tollgate/server/engine"
)

// newApp builds the service on dataDir without running it, for starts that must be refused; one
// that is not refused is closed at once.
func newApp(t *testing.T, cfg app.Config) error {
	t.Helper()
	cfg.Addr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	a, err := app.New(context.Background(), cfg, zerolog.Nop())
	if err == nil {
		a.Close()
	}
	return err
}

// TestPayloadKeyAcrossRestarts runs the payload key's life: generated in the data dir on the first
// start (mode 0600), a retry recognised and a changed payload refused after a restart, also by a
// second server given a copy of the key file (as a fleet replica would be), and starts refused with
// the key file missing, with another key, or with a named file that does not exist.
func TestPayloadKeyAcrossRestarts(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	srv := startServer(t, app.Config{DataDir: dataDir})
	keyFile := filepath.Join(dataDir, app.PayloadKeyFileName)
	fi, err := os.Stat(keyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %s: %v, %v; want it generated with mode 0600", keyFile, fi, err)
	}
	req := poSubmit("u_buyer1", "8000.00")
	req.IdempotencyKey = "evt-key-1"
	first, err := srv.Client.Decide(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := tollgatev1.NewAuditServiceClient(srv.Client.Conn()).GetDecision(ctx, &tollgatev1.GetDecisionRequest{DecisionId: first.GetDecisionId()})
	if err != nil {
		t.Fatal(err)
	}
	if h := rec.GetRecord().GetPayloadHash(); len(h) != 33 || h[0] != audit.PayloadHashKeyed {
		t.Errorf("stored payload hash %x: want a keyed one", h)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}

	// A copy of the key file elsewhere, named with the flag, is the same key.
	secret, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(t.TempDir(), "payload.key")
	if err := os.WriteFile(shared, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []app.Config{{DataDir: dataDir}, {DataDir: dataDir, PayloadKeyFile: shared}} {
		srv := startServer(t, cfg)
		again, err := srv.Client.Decide(ctx, req)
		if err != nil || again.GetDecisionId() != first.GetDecisionId() || !again.GetReplay() {
			t.Errorf("key file %q: retry after restart answered %s replay=%v (%v), want the original %s",
				cfg.PayloadKeyFile, again.GetDecisionId(), again.GetReplay(), err, first.GetDecisionId())
		}
		changed := proto.Clone(req).(*tollgatev1.DecideRequest)
		changed.Resource.Attributes.Fields["amount"] = structpb.NewStringValue("9000.00")
		if _, err := srv.Client.Decide(ctx, changed); status.Code(err) != codes.AlreadyExists {
			t.Errorf("key file %q: changed payload after restart: %v, want AlreadyExists", cfg.PayloadKeyFile, err)
		}
		if err := srv.Stop(); err != nil {
			t.Fatal(err)
		}
	}

	other := filepath.Join(t.TempDir(), "other.key")
	if err := os.WriteFile(other, []byte(hex.EncodeToString(make([]byte, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := newApp(t, app.Config{DataDir: dataDir, PayloadKeyFile: other}); !errors.Is(err, audit.ErrPayloadKeyMismatch) {
		t.Errorf("start with another key: %v, want ErrPayloadKeyMismatch", err)
	}
	if err := newApp(t, app.Config{DataDir: dataDir, PayloadKeyFile: filepath.Join(t.TempDir(), "absent.key")}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("start with a named key file that does not exist: %v, want it refused", err)
	}
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	if err := newApp(t, app.Config{DataDir: dataDir}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("start without the bound key file: %v, want it refused as missing", err)
	}
	if _, err := os.Stat(keyFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused start left a key file behind: %v", err)
	}
}

// TestRetryOfDecisionLoggedBeforeKeyedHashes writes a keyed decision the way the code before keyed
// payload hashes did (payload_hash the plain SHA-256 of the payload, no key file, no key bound),
// then starts the service on that log: it binds a new key, recognises a retry of the old decision
// and refuses another payload under its key.
func TestRetryOfDecisionLoggedBeforeKeyedHashes(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	// The caller's identity as the service records it, from a decision without a key.
	srv := startServer(t, app.Config{DataDir: dataDir})
	probe, err := srv.Client.Decide(ctx, poSubmit("u_buyer1", "100.00"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := tollgatev1.NewAuditServiceClient(srv.Client.Conn()).GetDecision(ctx, &tollgatev1.GetDecisionRequest{DecisionId: probe.GetDecisionId()})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}

	req := poSubmit("u_buyer1", "8000.00")
	req.IdempotencyKey = "evt-old-1"
	old := proto.Clone(got.GetRecord()).(*audit.Record)
	old.DecisionId, old.Request, old.IdempotencyKey = "01OLDDECISION0000000000000", req, req.IdempotencyKey
	old.PayloadHash = audit.PlainPayloadHash(req) // what payload_hash was before it was keyed
	store, err := sqlite.Open(ctx, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	w, err := audit.NewWriter(audit.Config{ChainID: "default"}, store, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.Write(ctx, old); err != nil {
		t.Fatal(err)
	}
	w.Close()
	store.Close()
	db, err := sql.Open("sqlite", filepath.Join(dataDir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("DELETE FROM payload_key"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := os.Remove(filepath.Join(dataDir, app.PayloadKeyFileName)); err != nil {
		t.Fatal(err)
	}

	srv = startServer(t, app.Config{DataDir: dataDir})
	again, err := srv.Client.Decide(ctx, req)
	if err != nil || again.GetDecisionId() != old.DecisionId || !again.GetReplay() {
		t.Errorf("retry of a decision logged before keyed hashes answered %s replay=%v (%v), want %s",
			again.GetDecisionId(), again.GetReplay(), err, old.DecisionId)
	}
	changed := poSubmit("u_buyer1", "9000.00")
	changed.IdempotencyKey = req.IdempotencyKey
	if _, err := srv.Client.Decide(ctx, changed); status.Code(err) != codes.AlreadyExists {
		t.Errorf("changed payload under the old decision's key: %v, want AlreadyExists", err)
	}
	v, err := tollgatev1.NewAuditServiceClient(srv.Client.Conn()).VerifyLog(ctx, &tollgatev1.VerifyLogRequest{})
	if err != nil || !v.GetOk() {
		t.Errorf("verify = %v, %v", v, err)
	}
}

// TestReplayOfMaskedFields replays decisions whose requests had masked fields: where the policy reads
// the masked field (amount: the marker is no amount) the replay differs and is refused with the
// field named; where it does not (bank_account) the replay is identical.
func TestReplayOfMaskedFields(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		mask   string
		refuse bool
	}{
		{mask: "resource.attributes.amount", refuse: true},
		{mask: "resource.attributes.bank_account"},
	} {
		t.Run(tc.mask, func(t *testing.T) {
			srv := startServer(t, app.Config{Audit: audit.Config{MaskPaths: []string{tc.mask}}})
			req := poSubmit("u_buyer1", "100.00")
			req.Resource.Attributes.Fields["bank_account"] = structpb.NewStringValue("DE89370400440532013000")
			resp, err := srv.Client.Decide(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetEffect() != tollgatev1.Effect_EFFECT_ALLOW {
				t.Fatalf("decision: %s %v, want ALLOW", resp.GetEffect(), resp.GetReasons())
			}
			rep, err := tollgatev1.NewAuditServiceClient(srv.Client.Conn()).ReplayDecision(ctx, &tollgatev1.ReplayDecisionRequest{DecisionId: resp.GetDecisionId()})
			if !tc.refuse {
				if err != nil || !rep.GetIdentical() {
					t.Errorf("replay = %v, %v; want identical", rep, err)
				}
				return
			}
			if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "request field "+tc.mask+" was masked") ||
				!strings.Contains(err.Error(), "effect: ALLOW -> DENY") {
				t.Errorf("replay = %v, %v; want FailedPrecondition naming %s and the difference", rep, err, tc.mask)
			}
		})
	}
}

// TestImpactOfMaskedFields analyses the active pack itself as a candidate against decisions whose
// requests had masked fields: nothing changes in truth. Where the policy reads the masked field
// (amount) every evaluation of the masked request differs from the record, so the records are not
// comparable rather than changed; where it does not (bank_account) they are comparable and unchanged.
func TestImpactOfMaskedFields(t *testing.T) {
	ctx := context.Background()
	b, err := bundles.ReadFS(policies.FS, nil)
	if err != nil {
		t.Fatal(err)
	}
	candidate, err := engine.Serialize(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mask          string
		notComparable uint64
	}{
		{mask: "resource.attributes.amount", notComparable: 3},
		{mask: "resource.attributes.bank_account"},
	} {
		t.Run(tc.mask, func(t *testing.T) {
			srv := startServer(t, app.Config{Audit: audit.Config{MaskPaths: []string{tc.mask}}})
			for _, amount := range []string{"100.00", "8000.00", "20000.00"} {
				req := poSubmit("u_buyer1", amount)
				req.Resource.Attributes.Fields["bank_account"] = structpb.NewStringValue("DE89370400440532013000")
				if _, err := srv.Client.Decide(ctx, req); err != nil {
					t.Fatal(err)
				}
			}
			resp, err := tollgatev1.NewAuditServiceClient(srv.Client.Conn()).ImpactAnalysis(ctx, &tollgatev1.ImpactAnalysisRequest{Bundle: candidate, Last: 10})
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetTotal() != 3 || resp.GetChanged() != 0 || resp.GetNotComparable() != tc.notComparable {
				t.Errorf("total %d changed %d not comparable %d; want 3, 0, %d", resp.GetTotal(), resp.GetChanged(), resp.GetNotComparable(), tc.notComparable)
			}
		})
	}
}
