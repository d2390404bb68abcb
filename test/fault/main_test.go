package fault_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite" // registers driver "sqlite" for tampering with audit.db

	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit/sqlite"
	"google.golang.org/protobuf/types/known/structpb"
)

// binDir holds tollgate and tollgatectl, built once for the package.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "tollgate-fault-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cmd := exec.Command("go", "build", "-o", dir, "./cmd/tollgate", "./cmd/tollgatectl")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build binaries: %v\n%s", err, out)
		return 1
	}
	binDir = dir
	return m.Run()
}

// moduleRoot is the directory of go.mod above the test's working directory.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the tollgate module")
	}
	return filepath.Dir(mod), nil
}

// freePort returns a loopback address whose port was free a moment ago.
func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// service is a running `tollgate serve` process.
type service struct {
	cmd    *exec.Cmd
	addr   string
	client *tollgate.Client
	logs   *syncBuffer
	exited chan struct{}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// start runs tollgate serve on dataDir with the given audit mode (and extra flags) and waits until it
// logs that it is serving. The process is killed at the end of the test if still running.
func start(t testing.TB, dataDir, mode string, extra ...string) *service {
	t.Helper()
	s := &service{addr: freePort(t), logs: &syncBuffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(filepath.Join(binDir, "tollgate"), append([]string{"serve",
		"--addr", s.addr, "--http-addr", freePort(t), "--data-dir", dataDir,
		"--audit-mode", mode, "--log-format", "json", "--log-level", "info"}, extra...)...)
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start tollgate: %v", err)
	}
	serving := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(s.logs, line)
			if strings.Contains(line, `"message":"tollgate serving"`) {
				once.Do(func() { close(serving) })
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() {
		s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		if s.client != nil {
			s.client.Close()
		}
		s.kill(t)
		if t.Failed() {
			t.Logf("tollgate logs:\n%s", s.logs.String())
		}
	})
	select {
	case <-serving:
	case <-s.exited:
		t.Fatalf("tollgate exited before serving: %v\n%s", s.cmd.ProcessState, s.logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("tollgate did not serve within 30s:\n%s", s.logs.String())
	}
	c, err := tollgate.Dial(context.Background(), s.addr)
	if err != nil {
		t.Fatalf("dial %s: %v", s.addr, err)
	}
	s.client = c
	return s
}

// startRefused runs tollgate serve on dataDir, expects it to exit with a failure before serving and
// returns what it wrote to stderr.
func startRefused(t testing.TB, dataDir string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "tollgate"), "serve",
		"--addr", freePort(t), "--http-addr", freePort(t), "--data-dir", dataDir, "--log-format", "json")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Fatalf("tollgate serve: %v, want a failed start\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("tollgate serve kept running, want a refused start:\n%s", stderr.String())
	}
	return stderr.String()
}

// kill sends SIGKILL and waits for the process to be gone.
func (s *service) kill(t testing.TB) {
	t.Helper()
	select {
	case <-s.exited:
		return
	default:
	}
	if err := s.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("kill tollgate: %v", err)
	}
	<-s.exited
}

// stop sends SIGTERM and waits for a clean exit.
func (s *service) stop(t testing.TB) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("stop tollgate: %v", err)
	}
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("tollgate did not stop within 30s")
	}
	if !s.cmd.ProcessState.Success() {
		t.Fatalf("tollgate exited with %v:\n%s", s.cmd.ProcessState, s.logs.String())
	}
}

// ctl runs tollgatectl against s and returns its stdout, stderr and exit code.
func (s *service) ctl(t testing.TB, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "tollgatectl"), append([]string{"--addr", s.addr}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run tollgatectl: %v", err)
	}
	return out.String(), errb.String(), code
}

// request is a purchase-order decision over the embedded demo data; n varies the amount and id.
func request(n int) *tollgatev1.DecideRequest {
	attrs, err := structpb.NewStruct(map[string]any{
		"amount": fmt.Sprintf("%d.00", 100+n%9000), "currency": "USD", "category": "MRO", "site_id": "DC1", "supplier_id": "S1",
	})
	if err != nil {
		panic(err)
	}
	return &tollgatev1.DecideRequest{
		Actor:    &tollgatev1.Actor{Id: "u_buyer1", Type: tollgatev1.ActorType_ACTOR_TYPE_HUMAN},
		Action:   "PO.SUBMIT",
		Resource: &tollgatev1.Resource{Type: "purchase_order", Id: fmt.Sprintf("PO-%d", n), Attributes: attrs},
		Context:  map[string]string{"workflow_id": "wf-fault"},
	}
}

// decideN makes n decisions one after another and returns their ids in order.
func decideN(t testing.TB, s *service, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		resp, err := s.client.Decide(context.Background(), request(i))
		if err != nil {
			t.Fatalf("decision %d: %v", i, err)
		}
		ids[i] = resp.GetDecisionId()
	}
	return ids
}

// openDB opens the stopped service's audit file directly, as an attacker (or a broken disk) would.
func openDB(t testing.TB, dataDir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dataDir, sqlite.FileName)+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

// verifyOK asserts that VerifyLog reports the whole log as verified and returns the records checked.
func verifyOK(t testing.TB, s *service) uint64 {
	t.Helper()
	rep, err := s.client.VerifyLog(context.Background(), "")
	if err != nil {
		t.Fatalf("VerifyLog: %v", err)
	}
	if !rep.GetOk() {
		t.Fatalf("VerifyLog not OK: seq %d decision %s: %s", rep.GetFirstBadSeq(), rep.GetFirstBadDecisionId(), rep.GetProblem())
	}
	return rep.GetRecordsChecked()
}
