package fleet_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The fleet test runs replicas as processes, so that one can be killed with SIGKILL mid-write; the
// binary is built once per package run, on first use.
var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// tollgateBinary returns the path of a tollgate binary built from this tree.
func tollgateBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tollgate-fleet-")
		if err != nil {
			buildErr = err
			return
		}
		binDir = dir
		cmd := exec.Command("go", "build", "-o", dir, "./cmd/tollgate")
		cmd.Dir = filepath.Join("..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/tollgate: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "tollgate")
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// logBuffer is a goroutine-safe log sink.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// process is one `tollgate serve` replica; restart runs it again on the same addresses, data dir and
// flags, as a supervisor would after a crash.
type process struct {
	name, addr string
	args       []string
	logs       *logBuffer
	cmd        *exec.Cmd
	exited     chan struct{}
}

// startProcess runs tollgate serve with args on a fresh gRPC and HTTP address and waits until it serves.
func startProcess(t *testing.T, name string, args ...string) *process {
	t.Helper()
	p := &process{name: name, addr: freeAddr(t), logs: &logBuffer{}}
	p.args = append([]string{"serve", "--addr", p.addr, "--http-addr", freeAddr(t), "--log-format", "json"}, args...)
	t.Cleanup(func() {
		p.kill(t)
		if t.Failed() {
			t.Logf("%s logs:\n%s", p.name, p.logs.String())
		}
	})
	p.start(t)
	return p
}

func (p *process) start(t *testing.T) {
	t.Helper()
	p.cmd = exec.Command(tollgateBinary(t), p.args...)
	p.exited = make(chan struct{})
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
	serving := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		var once sync.Once
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(p.logs, line)
			if strings.Contains(line, `"message":"tollgate serving"`) {
				once.Do(func() { close(serving) })
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	exited := p.exited
	cmd := p.cmd
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	select {
	case <-serving:
	case <-exited:
		t.Fatalf("%s exited before serving: %v\n%s", p.name, cmd.ProcessState, p.logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not serve within 60s:\n%s", p.name, p.logs.String())
	}
}

// kill sends SIGKILL and waits until the process is gone.
func (p *process) kill(t *testing.T) {
	t.Helper()
	if p.cmd == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("kill %s: %v", p.name, err)
	}
	<-p.exited
}

// errorLines returns the lines the process logged at level error or fatal.
func (p *process) errorLines() []string {
	var out []string
	for _, line := range strings.Split(p.logs.String(), "\n") {
		if strings.Contains(line, `"level":"error"`) || strings.Contains(line, `"level":"fatal"`) {
			out = append(out, line)
		}
	}
	return out
}
