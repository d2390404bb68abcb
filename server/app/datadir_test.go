package app_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/server/app"
)

// TestSecondServerOnADataDirIsRefused: while one service holds a data dir, a second New on it fails
// with ErrDataDirInUse naming the dir and the holder's pid, before it opens anything there; once the
// first closes, a new one starts.
func TestSecondServerOnADataDirIsRefused(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := app.Config{Addr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: dir}
	first, err := app.New(ctx, cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()

	second, err := app.New(ctx, cfg, zerolog.Nop())
	if err == nil {
		second.Close()
		t.Fatal("a second server started on a data dir in use")
	}
	if !errors.Is(err, app.ErrDataDirInUse) || !strings.Contains(err.Error(), dir) ||
		!strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Errorf("second start: err = %v; want ErrDataDirInUse naming %s and pid %d", err, dir, os.Getpid())
	}

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	third, err := app.New(ctx, cfg, zerolog.Nop())
	if err != nil {
		t.Fatalf("start after the first closed: %v", err)
	}
	third.Close()
}

// TestFailedStartReleasesTheDataDir: a start that fails after taking the lock (here on a taken
// listen address) leaves the data dir free for the next.
func TestFailedStartReleasesTheDataDir(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	holder, err := app.New(ctx, app.Config{Addr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: t.TempDir()}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	taken := holder.Addr().String()
	if _, err := app.New(ctx, app.Config{Addr: taken, HTTPAddr: "127.0.0.1:0", DataDir: dir}, zerolog.Nop()); err == nil {
		t.Fatalf("start on the taken address %s succeeded", taken)
	}
	a, err := app.New(ctx, app.Config{Addr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: dir}, zerolog.Nop())
	if err != nil {
		t.Fatalf("start after a failed start: %v", err)
	}
	a.Close()
}
