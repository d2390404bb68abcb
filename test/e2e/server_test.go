package e2e_test

import (
	"testing"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/app"
	"github.com/tollgate/tollgate/test/testserver"
)

// startServer starts the real service for one test (see testserver.Start).
func startServer(t testing.TB, cfg app.Config) *testserver.Server { return testserver.Start(t, cfg) }

// poSubmit is the PO.SUBMIT request most tests here send (see testserver.POSubmit).
func poSubmit(actor, amount string) *tollgatev1.DecideRequest {
	return testserver.POSubmit(actor, amount)
}
