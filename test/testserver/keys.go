package testserver

import (
	"path/filepath"
	"testing"

	"github.com/tollgate/tollgate/server/audit/transparency"
)

// SigningKey writes a checkpoint signing key pair, as `tollgate keygen` does, to a temporary
// directory and returns the private key file (app.CheckpointConfig.SigningKeyFile) and the public
// verifier key file. A service on a non-loopback address needs one to start.
func SigningKey(t testing.TB) (priv, pub string) {
	t.Helper()
	dir := t.TempDir()
	priv, pub = filepath.Join(dir, "signing.key"), filepath.Join(dir, "signing.pub")
	if _, err := transparency.WriteKeyPair(priv, pub, transparency.DefaultKeyName, false); err != nil {
		t.Fatal(err)
	}
	return priv, pub
}
