//go:build unix

package readme_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// editorScript stands in for $EDITOR: it makes the edits "Changing policy
// safely" describes in prose, raising the TH-1 buyer limit
// (params.th.po.tiers[0].max, the first "max" of 5000.00 in data.json) to
// 6000.00 and moving the pack's test of that limit with it.
const editorScript = `#!/bin/sh
set -eu
case "$1" in
*data.json)
	grep -q '"max": "5000.00"' "$1"
	sed -i '0,/"max": "5000.00"/s//"max": "6000.00"/' "$1" ;;
*th_test.rego)
	grep -q 'po("5000.01"' "$1"
	sed -i 's/po("5000\.00"/po("6000.00"/g; s/po("5000\.01"/po("6000.01"/g' "$1" ;;
*)
	echo "readme test EDITOR: no scripted edit for $1" >&2
	exit 1 ;;
esac
`

const (
	blockTimeout = 5 * time.Minute // a build of bin/ with a cold build cache is the slowest block
	startTimeout = 5 * time.Minute // go run builds first
	stopTimeout  = 30 * time.Second
)

// TestReadme runs README.md's ```sh blocks in order in a copy of the working
// tree, as doc.go describes. A failure names the block's line and shows its
// output; the blocks after it do not run, since each builds on the ones
// before.
func TestReadme(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole README tour (builds the binaries, starts servers); not in -short")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is not installed; the README's blocks are bash")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := parseReadme(string(readme))
	if err != nil {
		t.Fatal(err)
	}

	r := newRunner(t, root)
	for _, b := range blocks {
		ok := t.Run(fmt.Sprintf("README.md:%d", b.line), func(t *testing.T) {
			switch {
			case b.kind == skip:
				t.Skipf("README.md:%d not run: %s", b.line, b.reason)
			case !r.servicesUp(t, b):
				// servicesUp skipped or failed the block.
			case b.kind == server:
				r.startServer(t, b)
			case b.transcript() != nil:
				r.runTranscript(t, b)
			default:
				r.runScript(t, b)
			}
		})
		if !ok {
			t.Fatalf("README.md:%d failed; the blocks after it were not run", b.line)
		}
	}
}

// runner holds the working copy, the environment of every block and the
// server running in the background.
type runner struct {
	dir      string
	env      []string
	addr     string // where the next server block listens, and TOLLGATE_ADDR
	httpAddr string
	logDir   string
	srv      *process
	groups   []int // process groups of the blocks run so far
}

func newRunner(t *testing.T, root string) *runner {
	t.Helper()
	r := &runner{dir: t.TempDir(), logDir: t.TempDir()}
	copyTree(t, root, r.dir)

	editor := filepath.Join(r.logDir, "editor")
	if err := os.WriteFile(editor, []byte(editorScript), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "TOLLGATE_") || name == "EDITOR" || name == "VISUAL" {
			continue // the reader's shell has none of ours
		}
		r.env = append(r.env, kv)
	}
	r.env = append(r.env, "EDITOR="+editor)
	r.pickPorts(t)
	t.Cleanup(func() {
		for _, pgid := range r.groups {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		}
		if r.srv != nil {
			if err := r.srv.stop(); err != nil {
				t.Errorf("stop the README's server: %v\n%s", err, r.srv.log())
			}
		}
	})
	return r
}

// startsBackground reports whether script has a command line ending with &.
func startsBackground(script string) bool {
	for _, line := range strings.Split(script, "\n") {
		if strings.HasSuffix(strings.TrimSpace(stripComment(line)), "&") {
			return true
		}
	}
	return false
}

// services are the local services a block may need, at the addresses the README uses, and the
// environment variable that makes their absence a failure rather than a skip.
var services = map[string]struct{ addr, require string }{
	"postgres": {"127.0.0.1:5432", "TOLLGATE_REQUIRE_POSTGRES"},
	"nats":     {"127.0.0.1:4222", "TOLLGATE_REQUIRE_NATS"},
}

// servicesUp reports whether every service b needs accepts connections; when one does not, it skips
// the block or, where the environment requires the service, fails it.
func (r *runner) servicesUp(t *testing.T, b *block) bool {
	for _, name := range b.needs {
		svc := services[name]
		c, err := net.DialTimeout("tcp", svc.addr, 2*time.Second)
		if err == nil {
			c.Close()
			continue
		}
		if os.Getenv(svc.require) == "1" {
			t.Fatalf("README.md:%d needs %s at %s, and %s=1: %v", b.line, name, svc.addr, svc.require, err)
		}
		t.Skipf("README.md:%d not run: it needs %s at %s (%v)", b.line, name, svc.addr, err)
		return false
	}
	return true
}

// runScript runs an ordinary block and checks its status and output.
func (r *runner) runScript(t *testing.T, b *block) {
	out, code, err := r.bash(b.text)
	if err != nil {
		t.Fatalf("README.md:%d: %v\n--- block\n%s\n--- output\n%s", b.line, err, b.text, out)
	}
	if code != b.exit {
		t.Fatalf("README.md:%d: block exited %d, want %d\n--- block\n%s\n--- output\n%s%s", b.line, code, b.exit, b.text, out, r.serverLog())
	}
	if b.expect != nil {
		if miss := missingOutcome(b.expect.text, out); miss != "" {
			t.Fatalf("README.md:%d: the output does not show %q as the block at line %d does\n--- block\n%s\n--- output\n%s",
				b.line, miss, b.expect.line, b.text, out)
		}
	}
	t.Logf("README.md:%d: ran, exit %d", b.line, code)
}

// runTranscript runs each "$ " command of a transcript block on its own.
func (r *runner) runTranscript(t *testing.T, b *block) {
	for _, s := range b.transcript() {
		out, code, err := r.bash(s.command)
		if err != nil {
			t.Fatalf("README.md:%d: %v\n--- command\n%s\n--- output\n%s", s.line, err, s.command, out)
		}
		if code != b.exit {
			t.Fatalf("README.md:%d: command exited %d, want %d\n--- command\n%s\n--- output\n%s%s", s.line, code, b.exit, s.command, out, r.serverLog())
		}
		if miss := missingOutcome(s.expected, out); miss != "" {
			t.Fatalf("README.md:%d: the output does not show %q as the README does\n--- command\n%s\n--- README shows\n%s--- output\n%s",
				s.line, miss, s.command, s.expected, out)
		}
		t.Logf("README.md:%d: ran, exit %d", s.line, code)
	}
}

// bash runs script in the working copy and returns its combined output and
// exit status; err is for a script that could not run or timed out.
func (r *runner) bash(script string) (string, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), blockTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "--noprofile", "--norc", "-euo", "pipefail", "-c", script)
	cmd.Dir, cmd.Env = r.dir, r.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A timeout ends whatever the block started, not only bash.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	// What a block started in the background (its process group outlives bash) is killed with the
	// test, even if a later block that would stop it fails.
	if startsBackground(script) {
		r.groups = append(r.groups, cmd.Process.Pid)
	}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return string(out), -1, fmt.Errorf("block did not finish within %v", blockTimeout)
	case errors.As(err, &ee):
		return string(out), ee.ExitCode(), nil
	case err != nil:
		return string(out), -1, fmt.Errorf("run bash: %w", err)
	}
	return string(out), 0, nil
}

// startServer stops the running server, as the reader stops theirs, and
// starts the block's command in the background on the runner's ports.
func (r *runner) startServer(t *testing.T, b *block) {
	command, err := b.serverCommand()
	if err != nil {
		t.Fatal(err)
	}
	if r.srv != nil {
		if err := r.srv.stop(); err != nil {
			t.Fatalf("README.md:%d: stop the previous server: %v%s", b.line, err, r.serverLog())
		}
		r.srv = nil
	}
	// A free port can be taken by another test between picking and binding
	// it; then the server exits at once and the next attempt picks again.
	for attempt := 1; ; attempt++ {
		// Later flags win, so these replace the README's defaults and nothing else.
		withPorts := command + fmt.Sprintf(" --addr %s --http-addr %s", r.addr, r.httpAddr)
		p, err := startProcess(withPorts, r.dir, r.env, filepath.Join(r.logDir, fmt.Sprintf("server-%d-%d.log", b.line, attempt)))
		if err != nil {
			t.Fatalf("README.md:%d: %v", b.line, err)
		}
		r.srv = p
		err = p.waitListening(r.addr, startTimeout)
		if err == nil {
			t.Logf("README.md:%d: server running: %s", b.line, withPorts)
			return
		}
		if attempt < 3 && strings.Contains(p.log(), "address already in use") {
			_ = p.stop()
			r.srv = nil
			r.pickPorts(t)
			continue
		}
		t.Fatalf("README.md:%d: server %q: %v%s", b.line, withPorts, err, r.serverLog())
	}
}

// pickPorts chooses free loopback ports for the next server and points
// tollgatectl at it.
func (r *runner) pickPorts(t *testing.T) {
	r.addr, r.httpAddr = freeAddr(t), freeAddr(t)
	r.env = append(slices.DeleteFunc(r.env, func(kv string) bool { return strings.HasPrefix(kv, "TOLLGATE_ADDR=") }),
		"TOLLGATE_ADDR="+r.addr)
}

func (r *runner) serverLog() string {
	if r.srv == nil {
		return ""
	}
	return "\n--- server log\n" + r.srv.log()
}

// process is a background command in its own process group, so stopping it
// also stops what it started (go run starts the server as a child).
type process struct {
	cmd     *exec.Cmd
	logFile string
	done    chan struct{}
	err     error // set when done is closed
}

func startProcess(command, dir string, env []string, logFile string) (*process, error) {
	f, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("bash", "--noprofile", "--norc", "-c", command)
	cmd.Dir, cmd.Env = dir, env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %q: %w", command, err)
	}
	p := &process{cmd: cmd, logFile: logFile, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// waitListening waits until addr accepts connections, and fails early if the
// process exits.
func (p *process) waitListening(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("exited before it listened on %s: %v", addr, p.err)
		default:
		}
		// A free port picked earlier can meanwhile be bound by another test's server, which would
		// accept the dial while ours is still starting (and then fails with the address in use): the
		// listener is ours only once our server has said it serves.
		if !strings.Contains(p.log(), "tollgate serving") {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			select {
			case <-p.done:
				return fmt.Errorf("exited after %s accepted a connection: %v", addr, p.err)
			case <-time.After(200 * time.Millisecond):
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not listening on %s after %v", addr, timeout)
}

// stop sends SIGTERM to the process group, as Ctrl-C would, and waits; a
// server that does not stop in time is killed and reported.
func (p *process) stop() error {
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	deadline := time.After(stopTimeout)
	select {
	case <-p.done:
	case <-deadline:
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("did not stop within %v of SIGTERM; killed", stopTimeout)
	}
	// bash may exit before the server it started (go run's child) has: the next server block needs the
	// data dir's lock and the ports, so wait until the whole group is gone.
	for syscall.Kill(-pgid, 0) == nil {
		select {
		case <-deadline:
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			return fmt.Errorf("its children did not stop within %v of SIGTERM; killed", stopTimeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

func (p *process) log() string {
	data, err := os.ReadFile(p.logFile)
	if err != nil {
		return err.Error()
	}
	const max = 8 << 10
	if len(data) > max {
		data = append([]byte("...\n"), data[len(data)-max:]...)
	}
	return string(data)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// copyTree copies the files git would see in root (tracked and untracked
// but not ignored: no bin/, data dirs or certs from an earlier run) to dst,
// keeping the executable bit. Without git it copies everything but .git.
func copyTree(t *testing.T, root, dst string) {
	t.Helper()
	var files []string
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	if out, err := cmd.Output(); err == nil {
		for name := range strings.SplitSeq(strings.TrimSuffix(string(out), "\x00"), "\x00") {
			files = append(files, name)
		}
	} else {
		t.Logf("git ls-files: %v; copying every file but .git", err)
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == ".git" {
				return filepath.SkipDir
			}
			if !d.IsDir() {
				rel, _ := filepath.Rel(root, path)
				files = append(files, rel)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range files {
		if err := copyFile(filepath.Join(root, name), filepath.Join(dst, name)); err != nil {
			t.Fatalf("copy the working tree: %v", err)
		}
	}
}

func copyFile(src, dst string) error {
	info, err := os.Lstat(src)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil // deleted in the working tree, still in the index
	case err != nil:
		return err
	case !info.Mode().IsRegular():
		return nil // no symlinks or devices in the repository
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, info.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// The runner's own parsing is checked without running anything, so a marker
// mistake reads as what it is.
func TestParseReadme(t *testing.T) {
	const doc = "intro\n\n```sh\necho one\n```\n\n" +
		"```json\n{\"effect\": \"ALLOW\"}\n```\n\n" +
		"<!-- readme-test: skip (needs a bundle server) -->\n```sh\ncurl https://bundles.example\n```\n\n" +
		"<!-- readme-test: server -->\n```sh\nbin/tollgate serve --log-format console   # leave it running\n```\n\n" +
		"<!-- readme-test: exit 1 -->\n```sh\n$ false\nerr: FailedPrecondition\n$ false \\\n  --flag\n```\n"
	blocks, err := parseReadme(doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 4 {
		t.Fatalf("got %d sh blocks, want 4", len(blocks))
	}
	if b := blocks[0]; b.line != 3 || b.kind != script || b.expect == nil || b.expect.line != 7 {
		t.Errorf("block 1 = line %d kind %d expect %v, want line 3, a script, its output at line 7", b.line, b.kind, b.expect)
	}
	if b := blocks[1]; b.kind != skip || b.reason != "needs a bundle server" {
		t.Errorf("block 2 = kind %d reason %q, want skipped for its reason", b.kind, b.reason)
	}
	if cmd, err := blocks[2].serverCommand(); blocks[2].kind != server || err != nil || cmd != "bin/tollgate serve --log-format console" {
		t.Errorf("block 3 = kind %d command %q (%v), want the server command without its comment", blocks[2].kind, cmd, err)
	}
	steps := blocks[3].transcript()
	if blocks[3].exit != 1 || len(steps) != 2 || steps[0].expected != "err: FailedPrecondition\n" || steps[1].command != "false \\\n  --flag" || steps[1].line != 25 {
		t.Errorf("block 4 = exit %d steps %+v, want exit 1 and two commands", blocks[3].exit, steps)
	}

	for _, bad := range []string{
		"<!-- readme-test: skip -->\n```sh\necho\n```\n",
		"<!-- readme-test: sometimes -->\n```sh\necho\n```\n",
		"<!-- readme-test: server -->\nprose\n```sh\necho\n```\n",
		"<!-- readme-test: server -->\n```json\n{}\n```\n",
		"<!-- readme-test server -->\n```sh\necho\n```\n",
		"```sh\necho\n",
		"```sh\nbin/tollgate dev-certs certs\nbin/tollgate serve --callers certs/callers.json   # then\n```\n",
		"```sh\n$ go run ./cmd/tollgate serve\n```\n",
		"<!-- readme-test: needs redis -->\n```sh\necho\n```\n",
		"<!-- readme-test: needs -->\n```sh\necho\n```\n",
	} {
		if _, err := parseReadme(bad); err == nil {
			t.Errorf("parseReadme(%q) = nil error, want one naming the line", bad)
		}
	}

	if bs, err := parseReadme("<!-- readme-test: needs postgres nats -->\n```sh\nbin/tollgate serve --addr :1 \\\n  --http-addr :2 > r1.log 2>&1 &\n```\n"); err != nil || len(bs) != 1 || strings.Join(bs[0].needs, ",") != "postgres,nats" || bs[0].kind != script {
		t.Errorf("a needs block starting a server in the background: %v, %v; want a script needing postgres and nats", bs, err)
	}
	if _, err := parseReadme("```sh\nbin/tollgate serve -h\nbin/tollgatectl decide -f r.json\n```\n"); err != nil {
		t.Errorf("parseReadme refused serve -h, which exits at once: %v", err)
	}

	if miss := missingOutcome(`"effect": "DENY", "code": "A" ... PermissionDenied`, `{"effect":"DENY","reasons":[{"code": "A"}]} rpc PermissionDenied`); miss != "" {
		t.Errorf("missingOutcome found %q missing from a matching output", miss)
	}
	if miss := missingOutcome("invalid JSON at line 9, column 1: x", "invalid JSON at line 9, column 2: x"); miss != "position line 9, column 1" {
		t.Errorf("missingOutcome = %q, want the position", miss)
	}
	if miss := missingOutcome(`"code": "A" "code": "B"`, `"code": "B" "code": "A"`); miss != `code B` {
		t.Errorf("missingOutcome = %q, want the out-of-order code B", miss)
	}
}
