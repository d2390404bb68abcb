package e2e_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/rs/zerolog"

	tollgate "github.com/tollgate/tollgate/clients/go"
	"github.com/tollgate/tollgate/server/app"
)

// server is a running service and a client connected to it.
type server struct {
	app    *app.App
	client *tollgate.Client
	stop   func() error // cancels Run and waits for it to return
}

// startServer starts the real service on free loopback ports with a temporary data dir. cfg may set
// anything but the addresses and the data dir. It is stopped at the end of the test.
func startServer(t testing.TB, cfg app.Config) *server {
	t.Helper()
	cfg.Addr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	var logw io.Writer = io.Discard
	if testing.Verbose() {
		logw = zerolog.NewTestWriter(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, zerolog.New(logw).Level(zerolog.InfoLevel))
	if err != nil {
		cancel()
		t.Fatalf("start service: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	c, err := tollgate.Dial(ctx, a.Addr().String())
	if err != nil {
		cancel()
		t.Fatalf("dial: %v", err)
	}
	var stopped bool
	var runErr error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				runErr = errors.New("service did not stop within 30s")
			}
		}
		return runErr
	}
	t.Cleanup(func() {
		c.Close()
		if err := stop(); err != nil {
			t.Errorf("service stopped with: %v", err)
		}
		a.Close()
	})
	return &server{app: a, client: c, stop: stop}
}
