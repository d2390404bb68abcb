package app

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/tollgate/tollgate/server/api"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/audit/transparency"
)

// CheckpointConfig configures the signed checkpoints of the audit log (package transparency).
type CheckpointConfig struct {
	// SigningKeyFile is the Ed25519 note signer key `tollgate keygen` writes. Without it a loopback
	// service signs with an ephemeral key made at start, logging its verifier key, and a service on any
	// other address refuses to start: its checkpoints and receipts must verify after a restart.
	SigningKeyFile string
	// Interval is how often the checkpointer signs a checkpoint of each chain that grew. Default
	// transparency.DefaultCheckpointInterval (1s).
	Interval time.Duration
	// WitnessFiles are append-only files, ideally on other volumes, that receive every checkpoint.
	WitnessFiles []string
	// WitnessURLs receive every checkpoint by HTTP POST (text/plain, the signed note).
	WitnessURLs []string
}

// startCheckpointer loads the signing key (or makes an ephemeral one on loopback), opens the
// witnesses and starts the checkpointer over the audit store, which keeps the trees and the
// checkpoints. It returns the api's view of them for receipts.
func (a *App) startCheckpointer() (*api.Transparency, error) {
	cfg := a.cfg.Checkpoints
	signer, vkey, err := a.checkpointSigner()
	if err != nil {
		return nil, err
	}
	verifier, err := transparency.ParseVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("audit verifier key: %w", err)
	}
	a.verifierKey = vkey
	var witnesses []transparency.Witness
	for _, path := range cfg.WitnessFiles {
		w, err := transparency.OpenFileWitness(path)
		if err != nil {
			a.closeWitnesses()
			return nil, fmt.Errorf("checkpoint witness: %w", err)
		}
		a.fileWitnesses = append(a.fileWitnesses, w)
		witnesses = append(witnesses, w)
	}
	for _, u := range cfg.WitnessURLs {
		w, err := transparency.NewHTTPWitness(u, 0, nil)
		if err != nil {
			a.closeWitnesses()
			return nil, fmt.Errorf("checkpoint witness: %w", err)
		}
		witnesses = append(witnesses, w)
	}
	a.checkpointer, err = transparency.NewCheckpointer(transparency.CheckpointerConfig{
		Signer:    signer,
		Interval:  cfg.Interval,
		Witnesses: witnesses,
		Registry:  a.registry,
	}, ownChain{HashStore: audit.Hashes(a.store), chain: a.chainID}, a.store, a.log)
	if err != nil {
		a.closeWitnesses()
		return nil, fmt.Errorf("start checkpointer: %w", err)
	}
	interval := cfg.Interval
	if interval == 0 {
		interval = transparency.DefaultCheckpointInterval
	}
	names := make([]string, len(witnesses))
	for i, w := range witnesses {
		names[i] = w.Name()
	}
	a.log.Info().Str("audit_verifier_key", vkey).Dur("interval", interval).Strs("witnesses", names).
		Msg("signing audit checkpoints")
	return &api.Transparency{Store: a.store, Signer: a.checkpointer, Verifier: verifier}, nil
}

// ownChain limits a HashStore's chains to the one this service writes: on a store shared by
// replicas each signs only its own chain, with its own key, never another replica's.
type ownChain struct {
	transparency.HashStore
	chain string
}

// Chains implements transparency.HashStore.
func (o ownChain) Chains(context.Context) ([]string, error) { return []string{o.chain}, nil }

// checkpointSigner returns the checkpoint signer and its verifier key: the configured key file's, or
// on loopback without one an ephemeral key's.
func (a *App) checkpointSigner() (note.Signer, string, error) {
	path := a.cfg.Checkpoints.SigningKeyFile
	if path == "" {
		if !isLoopback(a.cfg.Addr) {
			return nil, "", fmt.Errorf("no audit signing key (--audit-signing-key; write one with `tollgate keygen`): "+
				"checkpoints signed with a key made at start cannot be verified after a restart, which is allowed only on a loopback address, not %s", a.cfg.Addr)
		}
		s, vkey, err := transparency.EphemeralSigner(transparency.DefaultKeyName)
		if err != nil {
			return nil, "", err
		}
		a.log.Warn().Str("audit_verifier_key", vkey).
			Msg("no --audit-signing-key: audit checkpoints are signed with an EPHEMERAL key made at this start; receipts of this run verify only with this verifier key, and none after a restart")
		return s, vkey, nil
	}
	s, err := transparency.LoadSigner(path)
	if err != nil {
		return nil, "", err
	}
	vkey, err := verifierKeyOf(path, s)
	if err != nil {
		return nil, "", err
	}
	return s, vkey, nil
}

// verifierKeyOf derives the verifier key of the signer key in path (read by LoadSigner as s), so the
// start can log it: a signer key is "PRIVATE+KEY+<name>+<hash>+<base64 of 0x01 and the Ed25519
// seed>" (note.GenerateKey). The derived key must have s's hash.
func verifierKeyOf(path string, s note.Signer) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read signing key %s: %w", path, err)
	}
	// The base64 key may hold '+' itself.
	f := strings.SplitN(strings.TrimSpace(string(b)), "+", 5)
	if len(f) != 5 {
		return "", fmt.Errorf("signing key %s: not a note signer key", path)
	}
	raw, err := base64.StdEncoding.DecodeString(f[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", fmt.Errorf("signing key %s: not an Ed25519 note signer key", path)
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(f[2], pub)
	if err != nil {
		return "", fmt.Errorf("signing key %s: %w", path, err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil || v.KeyHash() != s.KeyHash() {
		return "", fmt.Errorf("signing key %s: its key hash does not match its key", path)
	}
	return vkey, nil
}

// closeCheckpointer signs the last checkpoint (covering the last decisions, so it runs after the
// writer drained), hands it to the witnesses and closes their files.
func (a *App) closeCheckpointer() {
	if a.checkpointer != nil {
		if err := a.checkpointer.Close(); err != nil {
			a.log.Error().Err(err).Msg("close checkpointer")
		}
		a.checkpointer = nil
	}
	a.closeWitnesses()
}

func (a *App) closeWitnesses() {
	var errs []error
	for _, w := range a.fileWitnesses {
		errs = append(errs, w.Close())
	}
	a.fileWitnesses = nil
	if err := errors.Join(errs...); err != nil {
		a.log.Error().Err(err).Msg("close checkpoint witness files")
	}
}

// VerifierKey is the public key (note verifier key) the service's checkpoints and receipts verify
// with: the configured signing key's, or the ephemeral key's of this run.
func (a *App) VerifierKey() string { return a.verifierKey }
