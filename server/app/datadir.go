package app

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gofrs/flock"
)

// LockFileName is the file in the data directory that a running service holds an exclusive advisory
// lock on (flock), from New until Close. It holds the holder's pid, for the error a second start gets.
const LockFileName = "tollgate.lock"

// ErrDataDirInUse is returned by New when another service (in this or another process) holds the
// data directory's lock. Two services on one data directory would both append to the same audit
// chain, and every write of the second would fail.
var ErrDataDirInUse = errors.New("in use by another tollgate server")

// lockDataDir takes the data directory's lock without waiting, and writes this process's pid into it.
// Tools that only read the audit log (sqlite.Open in tests, copies of the file) do not take it.
func lockDataDir(dir string) (*flock.Flock, error) {
	path := filepath.Join(dir, LockFileName)
	l := flock.New(path, flock.SetFlag(os.O_CREATE|os.O_RDWR))
	ok, err := l.TryLock()
	if err != nil {
		return nil, fmt.Errorf("lock data dir %s: %w", dir, err)
	}
	if !ok {
		holder := ""
		if b, err := os.ReadFile(path); err == nil {
			if pid := strings.TrimSpace(string(b)); pid != "" {
				holder = " (pid " + pid + ")"
			}
		}
		return nil, fmt.Errorf("data dir %s: %w%s; give each server its own --data-dir", dir, ErrDataDirInUse, holder)
	}
	// The pid only names the holder in the error above; the lock, not the file's content, is what
	// excludes a second server, so a failed write is not fatal.
	_ = os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
	return l, nil
}
