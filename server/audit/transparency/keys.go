package transparency

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// DefaultKeyName is the note key name `tollgate keygen` gives a key unless
// told otherwise; it appears in every signature line.
const DefaultKeyName = "tollgate"

// maxKeyFile bounds a key file read: a note key is under 200 bytes.
const maxKeyFile = 4 << 10

// ErrKeyExists: a key file is already there and overwriting was not asked for.
var ErrKeyExists = errors.New("key file exists")

// GenerateKey returns a new Ed25519 note key pair named name: the signer key
// ("PRIVATE+KEY+<name>+<hash>+<key>") and the verifier key
// ("<name>+<hash>+<key>"), in note.GenerateKey's format.
func GenerateKey(name string) (signerKey, verifierKey string, err error) {
	signerKey, verifierKey, err = note.GenerateKey(rand.Reader, name)
	if err != nil {
		return "", "", fmt.Errorf("generate key %q: %w", name, err)
	}
	return signerKey, verifierKey, nil
}

// WriteKeyPair generates a key pair named name and writes the signer key to
// privPath (mode 0600) and the verifier key to pubPath (mode 0644), each on
// one line, and returns the verifier key. Unless force is set it returns an
// error wrapping ErrKeyExists, writing nothing, if either file exists. Each
// file appears whole or not at all: it is written to a temporary file in its
// directory and then linked (or, with force, renamed) into place.
func WriteKeyPair(privPath, pubPath, name string, force bool) (string, error) {
	if filepath.Clean(privPath) == filepath.Clean(pubPath) {
		return "", fmt.Errorf("%w: private and public key paths are both %s", ErrInvalidArgument, privPath)
	}
	if !force {
		for _, p := range []string{privPath, pubPath} {
			if _, err := os.Lstat(p); err == nil {
				return "", fmt.Errorf("%s: %w (use --force to overwrite)", p, ErrKeyExists)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return "", fmt.Errorf("check %s: %w", p, err)
			}
		}
	}
	skey, vkey, err := GenerateKey(name)
	if err != nil {
		return "", err
	}
	if err := writeKeyFile(privPath, skey, 0o600, force); err != nil {
		return "", err
	}
	if err := writeKeyFile(pubPath, vkey, 0o644, force); err != nil {
		return "", err
	}
	return vkey, nil
}

func writeKeyFile(path, key string, mode os.FileMode, force bool) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".keygen-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.WriteString(key + "\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if force {
		err = os.Rename(tmp.Name(), path)
	} else {
		// A link fails if path appeared meanwhile, so nothing is overwritten.
		err = os.Link(tmp.Name(), path)
		if errors.Is(err, fs.ErrExist) {
			err = fmt.Errorf("%w (use --force to overwrite)", ErrKeyExists)
		}
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// readKeyFile returns the one key a key file holds, without surrounding
// whitespace.
func readKeyFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxKeyFile {
		return "", fmt.Errorf("%w: key file larger than %d bytes", ErrMalformed, maxKeyFile)
	}
	key := strings.TrimSpace(string(b))
	if strings.ContainsAny(key, " \t\r\n") {
		return "", fmt.Errorf("%w: key file holds more than one line", ErrMalformed)
	}
	return key, nil
}

// LoadSigner reads a signer key file written by WriteKeyPair (`tollgate
// keygen`) and returns its signer.
func LoadSigner(path string) (note.Signer, error) {
	key, err := readKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("read signing key %s: %w", path, err)
	}
	s, err := note.NewSigner(key)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w: %v", path, ErrMalformed, err)
	}
	return s, nil
}

// LoadVerifier reads a verifier key file written by WriteKeyPair (`tollgate
// keygen`) and returns its verifier.
func LoadVerifier(path string) (note.Verifier, error) {
	key, err := readKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("read verifier key %s: %w", path, err)
	}
	v, err := ParseVerifier(key)
	if err != nil {
		return nil, fmt.Errorf("verifier key %s: %w", path, err)
	}
	return v, nil
}

// ParseVerifier returns the verifier of a verifier key
// ("<name>+<hash>+<key>"); a malformed key is ErrMalformed.
func ParseVerifier(verifierKey string) (note.Verifier, error) {
	v, err := note.NewVerifier(strings.TrimSpace(verifierKey))
	if err != nil {
		return nil, fmt.Errorf("%w: verifier key: %v", ErrMalformed, err)
	}
	return v, nil
}

// EphemeralSigner returns a signer with a fresh key named name, kept only in
// memory, and its verifier key, for a development server without a key
// file: its checkpoints and receipts verify only with the returned verifier
// key, and only until the process exits.
func EphemeralSigner(name string) (note.Signer, string, error) {
	skey, vkey, err := GenerateKey(name)
	if err != nil {
		return nil, "", err
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, "", fmt.Errorf("ephemeral key: %w", err)
	}
	return s, vkey, nil
}
