package transparency_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/tollgate/tollgate/server/audit/transparency"
)

var testTime = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

func TestOrigin(t *testing.T) {
	if got := transparency.Origin("", "replica-1"); got != "tollgate/replica-1" {
		t.Errorf("default origin = %q, want tollgate/replica-1", got)
	}
	if got := transparency.Origin("audit.example.com", "r1"); got != "audit.example.com/r1" {
		t.Errorf("origin = %q, want audit.example.com/r1", got)
	}
}

// TestCheckpointFormat pins the C2SP tlog-checkpoint text and signature line.
func TestCheckpointFormat(t *testing.T) {
	r := leaf("c", 0)
	cp := sign(t, testSigner(t), "tollgate/c", 1234, r)
	text := "tollgate/c\n1234\n" + r.String() + "\n"
	if cp.Text() != text {
		t.Errorf("Text() = %q, want %q", cp.Text(), text)
	}
	if !bytes.HasPrefix(cp.Note, []byte(text+"\n— tollgate-test ")) || !bytes.HasSuffix(cp.Note, []byte("\n")) {
		t.Errorf("note = %q, want the text, a blank line and a signature line by tollgate-test", cp.Note)
	}
	got, err := transparency.VerifyCheckpoint(cp.Note, testVerifier(t), "tollgate/c")
	if err != nil {
		t.Fatal(err)
	}
	if got.Origin != "tollgate/c" || got.Size != 1234 || got.Root != r || !bytes.Equal(got.Note, cp.Note) {
		t.Errorf("VerifyCheckpoint = %+v, want the signed fields", got)
	}
	if !cp.SignedAt.Equal(testTime) {
		t.Errorf("SignedAt = %v, want %v", cp.SignedAt, testTime)
	}
}

func TestVerifyCheckpointRejects(t *testing.T) {
	r := leaf("c", 0)
	good := sign(t, testSigner(t), "tollgate/c", 10, r).Note
	v := testVerifier(t)
	signText := func(text string) []byte {
		b, err := note.Sign(&note.Note{Text: text}, testSigner(t))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	flipSig := []byte(flipSignature(t, string(good)))
	b64 := r.String()
	for _, c := range []struct {
		name string
		note []byte
		want error
	}{
		{"other origin", sign(t, testSigner(t), "tollgate/d", 10, r).Note, transparency.ErrOriginMismatch},
		{"other key", sign(t, otherSigner(t), "tollgate/c", 10, r).Note, transparency.ErrBadSignature},
		{"flipped signature bit", flipSig, transparency.ErrBadSignature},
		{"size edited", bytes.Replace(good, []byte("\n10\n"), []byte("\n11\n"), 1), transparency.ErrBadSignature},
		{"root edited", bytes.Replace(good, []byte(b64), []byte(leaf("c", 1).String()), 1), transparency.ErrBadSignature},
		{"no signature", []byte("tollgate/c\n10\n" + b64 + "\n"), transparency.ErrMalformed},
		{"empty", nil, transparency.ErrMalformed},
		{"two lines", signText("tollgate/c\n10\n"), transparency.ErrMalformed},
		{"leading zero size", signText("tollgate/c\n010\n" + b64 + "\n"), transparency.ErrMalformed},
		{"negative size", signText("tollgate/c\n-1\n" + b64 + "\n"), transparency.ErrMalformed},
		{"short root", signText("tollgate/c\n10\nAAAA\n"), transparency.ErrMalformed},
		{"root not base64", signText("tollgate/c\n10\n" + strings.Repeat("!", 44) + "\n"), transparency.ErrMalformed},
		{"empty extension line", signText("tollgate/c\n10\n" + b64 + "\n\nx\n"), transparency.ErrMalformed},
		{"oversized", append(bytes.Repeat([]byte("x"), transparency.MaxCheckpointSize), good...), transparency.ErrMalformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := transparency.VerifyCheckpoint(c.note, v, "tollgate/c")
			if !errors.Is(err, c.want) {
				t.Errorf("err = %v, want %v", err, c.want)
			}
		})
	}
	// C2SP extension lines are opaque: accepted and ignored.
	ext := signText("tollgate/c\n10\n" + b64 + "\nextension\n")
	if cp, err := transparency.VerifyCheckpoint(ext, v, "tollgate/c"); err != nil || cp.Size != 10 || cp.Root != r {
		t.Errorf("with an extension line: %+v, %v", cp, err)
	}
}

func TestSignCheckpointRejectsBadOrigin(t *testing.T) {
	for _, origin := range []string{"", "tollgate/a b", "tollgate/a+b", "tollgate/a\nb", "tollgate/\xff"} {
		if _, err := transparency.SignCheckpoint(testSigner(t), origin, 1, leaf("c", 0), testTime); !errors.Is(err, transparency.ErrInvalidArgument) {
			t.Errorf("origin %q: err = %v, want ErrInvalidArgument", origin, err)
		}
	}
	if _, err := transparency.SignCheckpoint(testSigner(t), "tollgate/c", -1, leaf("c", 0), testTime); !errors.Is(err, transparency.ErrInvalidArgument) {
		t.Errorf("negative size: err = %v, want ErrInvalidArgument", err)
	}
}
