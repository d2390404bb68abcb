package sqlite

import (
	"errors"
	"testing"

	"github.com/tollgate/tollgate/server/audit"
)

// FuzzPageToken feeds arbitrary page tokens (they come from callers of ListDecisions) to decodeToken:
// it never panics, rejects with audit.ErrInvalidArgument, and what it accepts encodes back to a token
// that decodes to the same position. Every position a page can end at round-trips through a token.
func FuzzPageToken(f *testing.F) {
	f.Add(encodeToken(1764240000123456789, "01JDEC0000000000000000000"), int64(0), "")
	f.Add("", int64(-1), "a|b")
	f.Add("MTIz", int64(9223372036854775807), "\xff")
	f.Add("fHw", int64(-9223372036854775808), "x")
	f.Add("LTF8", int64(1), "")
	f.Add("K3wx====", int64(0), "|")
	f.Fuzz(func(t *testing.T, tok string, at int64, id string) {
		gotAt, gotID, err := decodeToken(tok)
		if err != nil {
			if !errors.Is(err, audit.ErrInvalidArgument) || gotAt != 0 || gotID != "" {
				t.Fatalf("decodeToken(%q) = %d, %q, %v; want ErrInvalidArgument and zero values", tok, gotAt, gotID, err)
			}
		} else if a, i, err := decodeToken(encodeToken(gotAt, gotID)); err != nil || a != gotAt || i != gotID {
			t.Fatalf("token %q decodes to (%d, %q) but re-encoded gives (%d, %q, %v)", tok, gotAt, gotID, a, i, err)
		}
		if a, i, err := decodeToken(encodeToken(at, id)); err != nil || a != at || i != id {
			t.Fatalf("encodeToken(%d, %q) decodes to (%d, %q, %v)", at, id, a, i, err)
		}
	})
}
