// Package testserver starts the real Tollgate service (server/app) for tests in other packages: on free
// loopback ports, with a temporary data dir, stopped and checked at the end of the test.
package testserver

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/protobuf/types/known/structpb"

	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/app"
)

// Server is a running service and a client connected to it.
type Server struct {
	App    *app.App
	Client *tollgate.Client
	stop   func() error
}

// Stop cancels the service's Run and waits for it to return, draining in-flight calls. It is safe to
// call more than once; the test's cleanup calls it too.
func (s *Server) Stop() error { return s.stop() }

// Start starts the service with cfg; the addresses are always free loopback ports and an empty
// cfg.DataDir becomes a temporary one. The service logs to the test when it runs verbose.
func Start(t testing.TB, cfg app.Config) *Server {
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
	return &Server{App: a, Client: c, stop: stop}
}

// POSubmit is a purchase order a human actor wants to submit at the demo data's site DC1 with supplier
// S1, in workflow wf-77.
func POSubmit(actor, amount string) *tollgatev1.DecideRequest {
	attrs, err := structpb.NewStruct(map[string]any{
		"amount": amount, "currency": "USD", "category": "MRO", "site_id": "DC1", "supplier_id": "S1",
	})
	if err != nil {
		panic(err)
	}
	return &tollgatev1.DecideRequest{
		Actor:    &tollgatev1.Actor{Id: actor, Type: tollgatev1.ActorType_ACTOR_TYPE_HUMAN},
		Action:   "PO.SUBMIT",
		Resource: &tollgatev1.Resource{Type: "purchase_order", Id: "PO-1001", Attributes: attrs},
		Context:  map[string]string{"workflow_id": "wf-77"},
	}
}
