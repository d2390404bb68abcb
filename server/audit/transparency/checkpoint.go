package transparency

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// DefaultOriginPrefix is the prefix of every chain's checkpoint origin
// unless configured otherwise: origins read "tollgate/<chain id>".
const DefaultOriginPrefix = "tollgate"

// MaxCheckpointSize bounds the signed note a parser accepts: a checkpoint is
// three short lines and a few signatures.
const MaxCheckpointSize = 64 << 10

// Origin returns the checkpoint origin of chainID under prefix
// (DefaultOriginPrefix if empty): "<prefix>/<chainID>".
func Origin(prefix, chainID string) string {
	if prefix == "" {
		prefix = DefaultOriginPrefix
	}
	return prefix + "/" + chainID
}

// Checkpoint is a signed statement of a chain's tree: its origin, size and
// root hash, and the signed note that carries them.
type Checkpoint struct {
	// Origin names the log (see Origin).
	Origin string
	// Size is the number of leaves, the chain's highest seq.
	Size int64
	// Root is the RFC 6962 root hash of the tree at Size.
	Root tlog.Hash
	// Note is the signed note, C2SP tlog-checkpoint text and signatures;
	// it alone is what a verifier trusts.
	Note []byte
	// SignedAt is when the signer made it, as recorded by the signer; it is
	// not part of the signed text.
	SignedAt time.Time
}

// Text returns the checkpoint's note text: origin, size and base64 root,
// each followed by a newline.
func (c Checkpoint) Text() string {
	return formatCheckpoint(c.Origin, c.Size, c.Root)
}

func formatCheckpoint(origin string, size int64, root tlog.Hash) string {
	return origin + "\n" + strconv.FormatInt(size, 10) + "\n" + base64.StdEncoding.EncodeToString(root[:]) + "\n"
}

// validOrigin reports whether origin is what this package signs: non-empty
// UTF-8 without spaces, control characters or '+', as C2SP recommends.
func validOrigin(origin string) bool {
	if origin == "" || !utf8.ValidString(origin) {
		return false
	}
	for _, r := range origin {
		if r == '+' || unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// SignCheckpoint signs the checkpoint of a tree of size leaves with root
// under origin with s, recording at as its SignedAt. An origin with spaces,
// control characters or '+' or a negative size is ErrInvalidArgument.
func SignCheckpoint(s note.Signer, origin string, size int64, root tlog.Hash, at time.Time) (Checkpoint, error) {
	if !validOrigin(origin) {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint origin %q", ErrInvalidArgument, origin)
	}
	if size < 0 {
		return Checkpoint{}, fmt.Errorf("%w: tree size %d", ErrInvalidArgument, size)
	}
	msg, err := note.Sign(&note.Note{Text: formatCheckpoint(origin, size, root)}, s)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("sign checkpoint %s at size %d: %w", origin, size, err)
	}
	return Checkpoint{Origin: origin, Size: size, Root: root, Note: msg, SignedAt: at}, nil
}

// VerifyCheckpoint verifies that signed is a checkpoint signed by v for
// origin and returns it. It returns an error wrapping ErrMalformed if signed
// is not a checkpoint note, ErrBadSignature if v did not sign it (or its
// signature does not verify) and ErrOriginMismatch if it is for another
// origin. The result's SignedAt is zero: it is not in the note.
func VerifyCheckpoint(signed []byte, v note.Verifier, origin string) (Checkpoint, error) {
	c, err := OpenCheckpoint(signed, v)
	if err != nil {
		return Checkpoint{}, err
	}
	if c.Origin != origin {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint is for %q, want %q", ErrOriginMismatch, c.Origin, origin)
	}
	return c, nil
}

// OpenCheckpoint is VerifyCheckpoint accepting any origin; the caller must
// check the result's Origin against the log it expects.
func OpenCheckpoint(signed []byte, v note.Verifier) (Checkpoint, error) {
	if len(signed) > MaxCheckpointSize {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint of %d bytes", ErrMalformed, len(signed))
	}
	if v == nil {
		return Checkpoint{}, fmt.Errorf("%w: no verifier key", ErrInvalidArgument)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		if errors.As(err, &unverified) || errors.As(err, &invalid) {
			return Checkpoint{}, fmt.Errorf("%w %s: %v", ErrBadSignature, v.Name(), err)
		}
		return Checkpoint{}, fmt.Errorf("%w: checkpoint note: %v", ErrMalformed, err)
	}
	origin, size, root, err := parseCheckpointText(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	return Checkpoint{Origin: origin, Size: size, Root: root, Note: bytes.Clone(signed)}, nil
}

// parseCheckpointText parses C2SP checkpoint text: origin, size without
// leading zeros, a base64 32-byte root, then optional non-empty extension
// lines, each ending in a newline.
func parseCheckpointText(text string) (origin string, size int64, root tlog.Hash, err error) {
	bad := func(why string) (string, int64, tlog.Hash, error) {
		return "", 0, tlog.Hash{}, fmt.Errorf("%w: checkpoint text: %s", ErrMalformed, why)
	}
	if !strings.HasSuffix(text, "\n") {
		return bad("no final newline")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 {
		return bad("fewer than three lines")
	}
	for _, l := range lines {
		if l == "" {
			return bad("empty line")
		}
	}
	size, err = strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return bad("tree size " + strconv.Quote(lines[1]))
	}
	h, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(h) != tlog.HashSize {
		return bad("root hash " + strconv.Quote(lines[2]))
	}
	copy(root[:], h)
	return lines[0], size, root, nil
}
