package transparency

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// ReceiptFormat names the receipt encoding; DecodeReceipt rejects others.
const ReceiptFormat = "tollgate-receipt/v1"

// MaxReceiptSize bounds the JSON DecodeReceipt accepts: a proof has at most
// 63 hashes and a checkpoint is under MaxCheckpointSize.
const MaxReceiptSize = 256 << 10

// maxProofLen is the longest inclusion proof of a tree of at most 2^63 leaves.
const maxProofLen = 63

// Receipt proves that a decision's record is in its chain's log: the record
// hash is leaf LeafIndex of a tree whose root a signed checkpoint states.
// Its JSON encoding (Encode) is stable: fields in the order below, hashes as
// standard base64 strings, the checkpoint as its note text.
type Receipt struct {
	// Format is ReceiptFormat.
	Format     string `json:"format"`
	DecisionID string `json:"decision_id"`
	ChainID    string `json:"chain_id"`
	// LeafIndex is the record's seq - 1.
	LeafIndex int64 `json:"leaf_index"`
	// LeafHash is the record's hash, SHA-256 of its canonical body.
	LeafHash tlog.Hash `json:"leaf_hash"`
	// InclusionProof proves leaf LeafIndex in the checkpoint's tree.
	InclusionProof []tlog.Hash `json:"inclusion_proof"`
	// Checkpoint is the signed checkpoint note (see Checkpoint.Note).
	Checkpoint string `json:"checkpoint"`
}

// NewReceipt builds the receipt of the record at seq of chainID with hash
// recordHash against cp, a checkpoint of that chain covering seq, reading
// the proof from hashes. It does not check the record hash against the
// tree; VerifyReceipt does.
func NewReceipt(ctx context.Context, hashes HashStore, decisionID, chainID string, seq uint64, recordHash []byte, cp Checkpoint) (Receipt, error) {
	leaf, err := HashFromBytes(recordHash)
	if err != nil {
		return Receipt{}, err
	}
	if seq == 0 || seq > uint64(cp.Size) {
		return Receipt{}, fmt.Errorf("%w: seq %d not covered by the checkpoint at size %d", ErrInvalidArgument, seq, cp.Size)
	}
	index := int64(seq - 1)
	proof, err := InclusionProof(ctx, hashes, chainID, index, cp.Size)
	if err != nil {
		return Receipt{}, err
	}
	return Receipt{
		Format:         ReceiptFormat,
		DecisionID:     decisionID,
		ChainID:        chainID,
		LeafIndex:      index,
		LeafHash:       leaf,
		InclusionProof: append([]tlog.Hash{}, proof...),
		Checkpoint:     string(cp.Note),
	}, nil
}

// Encode returns r as indented JSON ending in a newline.
func (r Receipt) Encode() ([]byte, error) {
	if r.InclusionProof == nil {
		r.InclusionProof = []tlog.Hash{}
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode receipt: %w", err)
	}
	return append(b, '\n'), nil
}

// DecodeReceipt parses a receipt's JSON strictly: unknown fields, trailing
// data, another format, a missing field or more than MaxReceiptSize bytes
// are an error wrapping ErrMalformed. It checks the form only; VerifyReceipt
// checks what it proves.
func DecodeReceipt(b []byte) (Receipt, error) {
	if len(b) > MaxReceiptSize {
		return Receipt{}, fmt.Errorf("%w: receipt of %d bytes", ErrMalformed, len(b))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r Receipt
	if err := dec.Decode(&r); err != nil {
		return Receipt{}, fmt.Errorf("%w: receipt: %v", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Receipt{}, fmt.Errorf("%w: receipt: data after the object", ErrMalformed)
	}
	switch {
	case r.Format != ReceiptFormat:
		return Receipt{}, fmt.Errorf("%w: receipt format %q, want %q", ErrMalformed, r.Format, ReceiptFormat)
	case r.DecisionID == "" || r.ChainID == "" || r.Checkpoint == "" || r.InclusionProof == nil:
		return Receipt{}, fmt.Errorf("%w: receipt lacks decision_id, chain_id, inclusion_proof or checkpoint", ErrMalformed)
	case r.LeafIndex < 0 || len(r.InclusionProof) > maxProofLen:
		return Receipt{}, fmt.Errorf("%w: receipt leaf_index %d with %d proof hashes", ErrMalformed, r.LeafIndex, len(r.InclusionProof))
	}
	return r, nil
}

// VerifyReceipt checks r offline with v, the log's verifier key: the
// checkpoint carries v's signature (else ErrBadSignature), is for origin
// (Origin(DefaultOriginPrefix, r.ChainID) if empty; else ErrOriginMismatch)
// and its tree holds r.LeafHash at r.LeafIndex by r.InclusionProof (else
// ErrProof). It returns the verified checkpoint.
func VerifyReceipt(r Receipt, v note.Verifier, origin string) (Checkpoint, error) {
	if r.Format != ReceiptFormat {
		return Checkpoint{}, fmt.Errorf("%w: receipt format %q, want %q", ErrMalformed, r.Format, ReceiptFormat)
	}
	if origin == "" {
		origin = Origin(DefaultOriginPrefix, r.ChainID)
	}
	cp, err := VerifyCheckpoint([]byte(r.Checkpoint), v, origin)
	if err != nil {
		return Checkpoint{}, err
	}
	if r.LeafIndex < 0 || r.LeafIndex >= cp.Size {
		return Checkpoint{}, fmt.Errorf("%w: leaf %d outside the checkpoint's tree of size %d", ErrProof, r.LeafIndex, cp.Size)
	}
	if err := VerifyInclusion(r.InclusionProof, cp.Size, cp.Root, r.LeafIndex, r.LeafHash); err != nil {
		return Checkpoint{}, err
	}
	return cp, nil
}

// VerifyReceiptRecord is VerifyReceipt that also checks body, a record's
// canonical body (audit.CanonicalBody), against the receipt: SHA-256(body)
// is the leaf hash and the body's decision_id, chain_id and seq are the
// receipt's (else ErrRecordMismatch).
func VerifyReceiptRecord(r Receipt, v note.Verifier, origin string, body []byte) (Checkpoint, error) {
	cp, err := VerifyReceipt(r, v, origin)
	if err != nil {
		return Checkpoint{}, err
	}
	if sha256.Sum256(body) != r.LeafHash {
		return Checkpoint{}, fmt.Errorf("%w: the record's hash is not the leaf hash", ErrRecordMismatch)
	}
	// The hash binds body to the signed tree; these fields bind the
	// receipt's claims to body.
	var rec struct {
		DecisionID string `json:"decision_id"`
		ChainID    string `json:"chain_id"`
		Seq        string `json:"seq"`
	}
	if err := json.Unmarshal(body, &rec); err != nil {
		return Checkpoint{}, fmt.Errorf("%w: record body: %v", ErrRecordMismatch, err)
	}
	if rec.DecisionID != r.DecisionID || rec.ChainID != r.ChainID || rec.Seq != strconv.FormatInt(r.LeafIndex+1, 10) {
		return Checkpoint{}, fmt.Errorf("%w: record is %s in chain %s at seq %s, receipt says %s in chain %s at seq %d",
			ErrRecordMismatch, rec.DecisionID, rec.ChainID, rec.Seq, r.DecisionID, r.ChainID, r.LeafIndex+1)
	}
	return cp, nil
}
