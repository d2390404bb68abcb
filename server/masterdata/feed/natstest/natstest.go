// Package natstest gives tests a NATS JetStream server: the machine's own, with a uniquely named stream
// per test that is deleted when the test ends, or a private nats-server process a test may kill and
// restart.
//
// The shared server is TOLLGATE_TEST_NATS (default nats://127.0.0.1:4222). When the default server
// cannot be reached the tests skip, saying so, so that `make test` works on a machine without NATS; with
// TOLLGATE_REQUIRE_NATS=1 (set by .ci/run) or an explicit TOLLGATE_TEST_NATS they fail instead, so CI
// cannot pass by skipping.
package natstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// EnvURL names the environment variable with the server's URL.
const EnvURL = "TOLLGATE_TEST_NATS"

// EnvRequire names the environment variable that, set to 1, makes an unreachable default server fail
// the tests rather than skip them.
const EnvRequire = "TOLLGATE_REQUIRE_NATS"

// DefaultURL is the machine's own NATS server.
const DefaultURL = "nats://127.0.0.1:4222"

// Binary is the nats-server executable StartServer runs.
const Binary = "/usr/sbin/nats-server"

// URL returns the shared server's URL after checking that it answers; it skips or fails tb otherwise
// (see the package doc).
func URL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv(EnvURL)
	explicit := u != ""
	if !explicit {
		u = DefaultURL
	}
	nc, err := nats.Connect(u, nats.Timeout(3*time.Second))
	if err != nil {
		if !explicit && os.Getenv(EnvRequire) != "1" {
			tb.Skipf("no NATS at %s (%v): test skipped; set %s=1 to fail instead, or %s to another server", u, err, EnvRequire, EnvURL)
		}
		tb.Fatalf("connect to NATS at %s (set %s to another server): %v", u, EnvURL, err)
	}
	nc.Close()
	return u
}

// Stream is a stream name and subject unique to one test.
type Stream struct {
	URL     string
	Name    string
	Subject string
}

// NewStream returns a unique stream name and subject on the shared server (URL) and deletes the stream,
// if something created it, when tb ends.
func NewStream(tb testing.TB) Stream {
	tb.Helper()
	return UniqueStream(tb, URL(tb))
}

// UniqueStream is NewStream on the server at url.
func UniqueStream(tb testing.TB, url string) Stream {
	tb.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	s := Stream{URL: url, Name: "TOLLGATE_TEST_" + strings.ToUpper(id), Subject: "tollgate.test." + id}
	tb.Cleanup(func() {
		nc, err := nats.Connect(url, nats.Timeout(3*time.Second))
		if err != nil {
			tb.Logf("delete stream %s: %v", s.Name, err)
			return
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := js.DeleteStream(ctx, s.Name); err != nil && err != jetstream.ErrStreamNotFound {
			tb.Logf("delete stream %s: %v", s.Name, err)
		}
	})
	return s
}

// Server is a private nats-server process with JetStream, on a fixed loopback port and store directory
// for its whole life, so a test can stop it and start it again as the same server.
type Server struct {
	tb   testing.TB
	URL  string
	port int
	dir  string
	cmd  *exec.Cmd
}

// StartServer starts a private nats-server on a free port with a store directory in tb's temp dir, and
// kills it when tb ends. Without the binary the test skips, or fails under TOLLGATE_REQUIRE_NATS=1.
func StartServer(tb testing.TB) *Server {
	tb.Helper()
	if _, err := os.Stat(Binary); err != nil {
		if os.Getenv(EnvRequire) != "1" {
			tb.Skipf("no %s (%v): test skipped; set %s=1 to fail instead", Binary, err, EnvRequire)
		}
		tb.Fatalf("%s: %v", Binary, err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("find a free port: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &Server{tb: tb, port: port, dir: tb.TempDir(), URL: fmt.Sprintf("nats://127.0.0.1:%d", port)}
	tb.Cleanup(s.Stop)
	s.Start()
	return s
}

// Start starts the server (again) and waits until it accepts clients.
func (s *Server) Start() {
	s.tb.Helper()
	if s.cmd != nil {
		s.tb.Fatalf("nats-server already running")
	}
	cmd := exec.Command(Binary, "-a", "127.0.0.1", "-p", fmt.Sprint(s.port), "-js", "-sd", s.dir)
	if testing.Verbose() {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := cmd.Start(); err != nil {
		s.tb.Fatalf("start nats-server: %v", err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(15 * time.Second)
	for {
		nc, err := nats.Connect(s.URL, nats.Timeout(time.Second))
		if err == nil {
			js, jerr := jetstream.New(nc)
			if jerr == nil {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_, jerr = js.AccountInfo(ctx)
				cancel()
			}
			nc.Close()
			if jerr == nil {
				return
			}
			err = jerr
		}
		if time.Now().After(deadline) {
			s.tb.Fatalf("nats-server on %s not ready: %v", s.URL, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills the server (SIGKILL: as a crash, not a clean shutdown) and waits for it to exit.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}
