package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"sync"
)

// PayloadHashKeyed is the first byte of a keyed payload hash (PayloadHash):
// it tells it from the 32-byte plain SHA-256 that records written before
// payload hashes were keyed carry (PlainPayloadHash).
const PayloadHashKeyed byte = 0x01

// PayloadKeySize is the length of a generated payload key, and the least a
// given one may have.
const PayloadKeySize = 32

// payloadKeyIDSize is how many bytes of HMAC(key, payloadKeyIDLabel) name a key.
const payloadKeyIDSize = 16

// payloadKeyIDLabel is the message whose MAC names a key: the id shows
// whether two keys are the same without revealing either.
const payloadKeyIDLabel = "tollgate-payload-key-id"

// ErrPayloadKeyMismatch: the audit log's payload hashes are keyed with
// another key than the one given, so retries of its decisions could not be
// recognised.
var ErrPayloadKeyMismatch = errors.New("payload key differs from the key the audit log is bound to")

// PayloadKey is the server secret payload hashes are keyed with (see
// PayloadHash). Every writer of one audit log must use the same key, and
// keep it across restarts, or a retry is taken for a conflicting reuse of its
// idempotency key. A PayloadKey is immutable and safe for concurrent use.
type PayloadKey struct {
	secret []byte
	id     []byte
	// macs holds HMACs keyed with secret: Reset restores the keyed state
	// without hashing the key's pads again, a third of the hash's cost.
	macs sync.Pool
}

// NewPayloadKey returns the key with secret, which must hold at least
// PayloadKeySize bytes. secret is copied.
func NewPayloadKey(secret []byte) (*PayloadKey, error) {
	if len(secret) < PayloadKeySize {
		return nil, fmt.Errorf("payload key: %d bytes, want at least %d", len(secret), PayloadKeySize)
	}
	k := &PayloadKey{secret: bytes.Clone(secret)}
	k.macs.New = func() any { return hmac.New(sha256.New, k.secret) }
	mac := hmac.New(sha256.New, k.secret)
	mac.Write([]byte(payloadKeyIDLabel))
	k.id = mac.Sum(nil)[:payloadKeyIDSize]
	return k, nil
}

// GeneratePayloadKey returns a new random key of PayloadKeySize bytes.
func GeneratePayloadKey() (*PayloadKey, error) {
	secret := make([]byte, PayloadKeySize)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("generate payload key: %w", err)
	}
	return NewPayloadKey(secret)
}

// Secret returns a copy of the key's secret, for writing it to a key file.
func (k *PayloadKey) Secret() []byte { return bytes.Clone(k.secret) }

// ID names the key without revealing it: the first 16 bytes of
// HMAC-SHA-256(key, "tollgate-payload-key-id"). A store keeps it to refuse a
// start with another key.
func (k *PayloadKey) ID() []byte { return bytes.Clone(k.id) }

// sum returns PayloadHashKeyed followed by HMAC-SHA-256(key, payload).
func (k *PayloadKey) sum(payload []byte) []byte {
	mac := k.macs.Get().(hash.Hash)
	defer k.macs.Put(mac)
	mac.Reset()
	mac.Write(payload)
	return mac.Sum(append(make([]byte, 0, 1+sha256.Size), PayloadHashKeyed))
}

// samePayload reports whether stored, the payload hash of a stored decision,
// is the hash of a retry whose payload hash is keyed and whose payload (see
// payload) is pl: equal to keyed, or, for a record written before payload
// hashes were keyed, equal to the plain SHA-256 of pl (PlainPayloadHash).
// pl may be nil when the retry came with its payload hash computed by the
// caller: then only equal hashes match.
func samePayload(stored, keyed, pl []byte) bool {
	if bytes.Equal(stored, keyed) {
		return true
	}
	if pl == nil || len(stored) != sha256.Size {
		return false
	}
	sum := sha256.Sum256(pl)
	return bytes.Equal(stored, sum[:])
}
