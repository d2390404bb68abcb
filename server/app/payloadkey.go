package app

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/tollgate/tollgate/server/audit"
)

// PayloadKeyFileName is the file under DataDir that holds the payload key when Config.PayloadKeyFile
// is empty; the first start writes it (mode 0600).
const PayloadKeyFileName = "audit-payload.key"

// payloadKey loads the key payload hashes are keyed with (audit.PayloadKey) and binds the audit log
// to it. The key comes from Config.PayloadKeyFile, which must exist, or else from DataDir's
// PayloadKeyFileName, generated on the first start. The start is refused when the log is bound to
// another key, and when the default file is missing from a log that is already bound (a lost key
// file is restored from backup, never silently replaced: retries of the logged decisions would no
// longer be recognised).
func (a *App) payloadKey(ctx context.Context) (*audit.PayloadKey, error) {
	path, given := a.cfg.PayloadKeyFile, a.cfg.PayloadKeyFile != ""
	if !given {
		path = filepath.Join(a.cfg.DataDir, PayloadKeyFileName)
	}
	bound, err := a.store.PayloadKeyID(ctx)
	if err != nil && !errors.Is(err, audit.ErrNotFound) {
		return nil, err
	}
	key, err := readPayloadKey(path)
	switch {
	case errors.Is(err, os.ErrNotExist) && !given && bound == nil:
		if key, err = writePayloadKey(path); err != nil {
			return nil, err
		}
		a.log.Warn().Str("file", path).Hex("key_id", key.ID()).
			Msg("generated the audit payload key: back it up, and give every replica writing to this audit log the same file (--audit-payload-key)")
	case errors.Is(err, os.ErrNotExist) && !given:
		return nil, fmt.Errorf("audit payload key file %s is missing, and the audit log's payload hashes are keyed with key id %x: restore the file from backup, or name it with --audit-payload-key", path, bound)
	case err != nil:
		return nil, err
	default:
		// Used anyway: secret volumes are often mounted 0644 inside a container of one user.
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			a.log.Warn().Str("file", path).Str("mode", fi.Mode().Perm().String()).
				Msg("audit payload key file is readable by others than its owner: whoever reads it can recover masked fields from payload hashes")
		}
	}
	if err := a.store.BindPayloadKey(ctx, key.ID()); err != nil {
		return nil, fmt.Errorf("audit payload key file %s: %w; start with the key file the log was written with", path, err)
	}
	return key, nil
}

// readPayloadKey reads a key file: the key's bytes in hex (at least audit.PayloadKeySize of them),
// surrounding white space ignored.
func readPayloadKey(path string) (*audit.PayloadKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read audit payload key: %w", err)
	}
	secret, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("audit payload key file %s: want hex: %w", path, err)
	}
	key, err := audit.NewPayloadKey(secret)
	if err != nil {
		return nil, fmt.Errorf("audit payload key file %s: %w", path, err)
	}
	return key, nil
}

// writePayloadKey generates a key and writes it to path, which must not exist, with mode 0600, and
// syncs it and its directory before the log is bound to it.
func writePayloadKey(path string) (*audit.PayloadKey, error) {
	key, err := audit.GeneratePayloadKey()
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create audit payload key: %w", err)
	}
	_, err = f.WriteString(hex.EncodeToString(key.Secret()) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("write audit payload key %s: %w", path, err)
	}
	return key, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
