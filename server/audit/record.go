// Package audit keeps Tollgate's decision log: the record, its canonical
// encoding, the SHA-256 hash chain, masking of sensitive request fields, a
// group-committing Writer, chain verification and the Store interface that
// the sqlite and postgres backends implement.
//
// The package knows nothing of OPA or gRPC; records are protobuf messages
// (tollgatev1.DecisionRecord) because every backend and the CLI share that
// schema.
//
// # Canonical encoding and hash
//
// A record's canonical form is the RFC 8785 JSON Canonicalization Scheme
// (JCS, github.com/gowebpki/jcs) applied to its protojson encoding with proto
// field names and unpopulated fields omitted. Omitting zero values means a
// field added to the schema later leaves the hashes of old records intact.
// protojson renders 64-bit integers as strings, bytes as standard base64,
// timestamps as RFC 3339 with 0, 3, 6 or 9 fractional digits and enums by
// name; JCS then fixes key order, whitespace and number formatting.
// Canonical writes that form in one pass over the message (canonical.go)
// because encoding and re-parsing cost about 5 % of a decision's CPU; the
// two-step definition stays in canonicalSlow, which tests hold it to byte
// for byte and which handles the types and errors the direct pass leaves.
//
//	hash = SHA-256(canonical(record with hash empty and prev_hash set))
//
// The first record of a chain has seq 1 and prev_hash GenesisHash (32 zero
// bytes); every later record has seq = previous seq + 1 and prev_hash = the
// previous record's hash.
//
// # Payload hash
//
// A decision with an idempotency key also carries
//
//	payload_hash = 0x01 || HMAC-SHA-256(payload key, canonical(request without idempotency_key, want_receipt and min_masterdata_revision))
//
// computed before masking, so a retry is told from a conflicting reuse of
// its key, while a masked field cannot be recovered by hashing every value
// without the server's payload key (PayloadHash, PayloadKey).
package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math"
	"strconv"

	"github.com/gowebpki/jcs"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// Record is one entry of the decision log.
type Record = tollgatev1.DecisionRecord

// GenesisHash is the prev_hash of the first record of every chain.
func GenesisHash() []byte { return make([]byte, sha256.Size) }

// Canonical returns the canonical encoding of m: JCS over its protojson form.
// It is deterministic across processes and protobuf library versions that
// keep protojson's documented mapping. It writes the form directly (see
// canonical.go) and leaves unusual types and every error to canonicalSlow,
// the definition, so both the bytes and the errors are protojson's and JCS's.
// It is safe for concurrent use; m must not be modified meanwhile.
func Canonical(m proto.Message) ([]byte, error) {
	if m != nil {
		if b, err := canonicalDirect(m.ProtoReflect()); err == nil {
			return b, nil
		}
	}
	return canonicalSlow(m)
}

// canonicalSlow is the canonical form by its definition: protojson with
// proto names, then JCS parsing and re-serializing it.
func canonicalSlow(m proto.Message) ([]byte, error) {
	raw, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.ProtoReflect().Descriptor().Name(), err)
	}
	out, err := jcs.Transform(raw)
	if err != nil {
		return nil, fmt.Errorf("canonicalize %s: %w", m.ProtoReflect().Descriptor().Name(), err)
	}
	return out, nil
}

// Hash computes the chain hash of rec: SHA-256 of the canonical form of rec
// with its hash field cleared. rec is not modified.
func Hash(rec *Record) ([]byte, error) {
	b, err := CanonicalBody(rec)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	return sum[:], nil
}

// CanonicalBody returns the bytes a record's hash covers: the canonical form
// of rec with its hash field cleared. rec is not modified.
func CanonicalBody(rec *Record) ([]byte, error) {
	c := proto.Clone(rec).(*Record)
	c.Hash = nil
	return Canonical(c)
}

// Seal sets rec's chain position (seq, prev_hash) and its hash.
func Seal(rec *Record, seq uint64, prev []byte) error {
	_, err := seal(rec, seq, prev)
	return err
}

// seal is Seal returning the canonical body the hash covers.
func seal(rec *Record, seq uint64, prev []byte) ([]byte, error) {
	rec.Seq = seq
	rec.PrevHash = bytes.Clone(prev)
	rec.Hash = nil
	body, err := Canonical(rec)
	if err != nil {
		return nil, fmt.Errorf("seal record %s: %w", rec.GetDecisionId(), err)
	}
	sum := sha256.Sum256(body)
	rec.Hash = sum[:]
	return body, nil
}

// PayloadHash returns the keyed payload hash of req: PayloadHashKeyed, then
// HMAC-SHA-256 under key of req's canonical payload (payload). A masked
// field of low entropy (an account number) cannot be recovered from it by
// trying every value without the key, which the plain SHA-256 of the
// payload (PlainPayloadHash, written before keys) allowed. Callers compute
// it over the unmasked request before writing; equal payloads under one
// idempotency key mark a retry.
func PayloadHash(key *PayloadKey, req *tollgatev1.DecideRequest) []byte {
	return key.sum(payload(req))
}

// PlainPayloadHash returns the SHA-256 of req's canonical payload: the
// payload hash of records written before payload hashes were keyed. It is
// kept to recognise retries of those records (see SamePayload); new records
// never carry it, since it is reversible by enumeration.
func PlainPayloadHash(req *tollgatev1.DecideRequest) []byte {
	sum := sha256.Sum256(payload(req))
	return sum[:]
}

// payload returns the bytes a payload hash covers: req's canonical form
// without idempotency_key, want_receipt and min_masterdata_revision, which
// say how to answer, not what is asked: a retry with a newer consistency
// token is the same request.
func payload(req *tollgatev1.DecideRequest) []byte {
	c := proto.Clone(req).(*tollgatev1.DecideRequest)
	c.IdempotencyKey = ""
	c.WantReceipt = false
	c.MinMasterdataRevision = 0
	b, err := Canonical(c)
	if err != nil {
		// protojson only fails on invalid UTF-8 or non-finite numbers; hash
		// the deterministic binary form instead so a key still protects.
		b, _ = proto.MarshalOptions{Deterministic: true}.Marshal(c)
	}
	return b
}

// Placeholders for the chain position while a record waits in the queue.
const (
	placeholderSeq = "18446744073709551615" // max uint64, as protojson renders it
	placeholderB64 = "//////////////////////////////////////////8="
)

// prepare computes rec's canonical form with placeholder seq and prev_hash
// (hash cleared), so the committer can seal it by substituting the real
// values instead of re-encoding: JCS key order does not depend on values,
// and both values are JSON strings. It is an optimisation only: sealPrepared
// must produce exactly Canonical of the sealed record, which a test checks.
// rec's seq, prev_hash and hash are set for the encoding and restored, so rec
// must not be read concurrently.
func prepare(rec *Record) ([]byte, error) {
	seq, prev, hash := rec.Seq, rec.PrevHash, rec.Hash
	defer func() { rec.Seq, rec.PrevHash, rec.Hash = seq, prev, hash }()
	rec.Hash = nil
	rec.Seq = math.MaxUint64
	rec.PrevHash = placeholderHash
	return Canonical(rec)
}

// placeholderHash is the prev_hash placeholder; never modified.
var placeholderHash = bytes.Repeat([]byte{0xff}, sha256.Size)

// sealPrepared seals rec like Seal using its prepared canonical form and
// returns the sealed canonical body. It relies on "seq" being the last
// top-level member (no field name sorts after it) and "prev_hash" preceding
// every member that can hold a nested object, so the first and last matches
// are the top-level ones. If the placeholders are not where expected it falls
// back to Seal.
func sealPrepared(rec *Record, prep []byte, seq uint64, prev []byte) ([]byte, error) {
	prevKV := []byte(`"prev_hash":"` + placeholderB64 + `"`)
	seqKV := []byte(`"seq":"` + placeholderSeq + `"}`)
	i := bytes.Index(prep, prevKV)
	if len(prev) != sha256.Size || i < 0 || !bytes.HasSuffix(prep, seqKV) {
		return seal(rec, seq, prev)
	}
	out := make([]byte, 0, len(prep))
	out = append(out, prep[:i]...)
	out = append(out, `"prev_hash":"`...)
	out = base64.StdEncoding.AppendEncode(out, prev)
	out = append(out, '"')
	out = append(out, prep[i+len(prevKV):len(prep)-len(seqKV)]...)
	out = append(out, `"seq":"`...)
	out = strconv.AppendUint(out, seq, 10)
	out = append(out, `"}`...)
	sum := sha256.Sum256(out)
	rec.Seq = seq
	rec.PrevHash = bytes.Clone(prev)
	rec.Hash = sum[:]
	return out, nil
}
