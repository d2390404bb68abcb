package transparency_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/server/audit/transparency"
)

func TestFileWitnessAppendsAndReadsBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checkpoints")
	var pushed []transparency.Checkpoint
	for i, chain := range []string{"a", "b", "a"} {
		cp := sign(t, testSigner(t), "tollgate/"+chain, int64(10+i), leaf(chain, i))
		cp.SignedAt = testTime.Add(time.Duration(i)*time.Second + 123*time.Nanosecond)
		pushed = append(pushed, cp)
	}
	w, err := transparency.OpenFileWitness(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, cp := range pushed[:2] {
		if err := w.Push(context.Background(), cp); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Push(context.Background(), pushed[2]); !errors.Is(err, transparency.ErrClosed) {
		t.Errorf("push after Close: err = %v, want ErrClosed", err)
	}
	// A second open appends after what is there.
	w, err = transparency.OpenFileWitness(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Push(context.Background(), pushed[2]); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("file mode %v, want 0644", fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := transparency.ReadCheckpointFile(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(pushed) {
		t.Fatalf("read %d entries, want %d", len(got), len(pushed))
	}
	for i, e := range got {
		if !bytes.Equal(e.Note, pushed[i].Note) || !e.SignedAt.Equal(pushed[i].SignedAt) {
			t.Errorf("entry %d = %q at %v, want %q at %v", i, e.Note, e.SignedAt, pushed[i].Note, pushed[i].SignedAt)
		}
		cp, err := transparency.VerifyCheckpoint(e.Note, testVerifier(t), pushed[i].Origin)
		if err != nil || cp.Size != pushed[i].Size {
			t.Errorf("entry %d: %+v, %v", i, cp, err)
		}
	}

	// A write torn by a crash: the entries before it still read.
	for _, cut := range []int{1, len(pushed[2].Note) / 2, len(pushed[2].Note) + 20} {
		got, err := transparency.ReadCheckpointFile(bytes.NewReader(data[:len(data)-cut]))
		if !errors.Is(err, transparency.ErrMalformed) || len(got) != 2 {
			t.Errorf("cut %d bytes: %d entries, err = %v; want 2 and ErrMalformed", cut, len(got), err)
		}
	}
	bad := append(bytes.Clone(data), "garbage\n"...)
	if _, err := transparency.ReadCheckpointFile(bytes.NewReader(bad)); !errors.Is(err, transparency.ErrMalformed) {
		t.Errorf("trailing garbage: err = %v, want ErrMalformed", err)
	}
}

// witnessServer is an HTTP witness endpoint recording what it accepts. fail
// makes it answer 503 that many times first; block holds every request until
// closed.
type witnessServer struct {
	*httptest.Server
	mu     sync.Mutex
	notes  [][]byte
	types  []string
	fail   int
	block  chan struct{}
	called chan struct{}
}

func newWitnessServer(t *testing.T) *witnessServer {
	ws := &witnessServer{called: make(chan struct{}, 100)}
	ws.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case ws.called <- struct{}{}:
		default:
		}
		if ws.block != nil {
			select {
			case <-ws.block:
			case <-r.Context().Done():
				return
			}
		}
		body, _ := io.ReadAll(r.Body)
		ws.mu.Lock()
		defer ws.mu.Unlock()
		if r.Method != http.MethodPost {
			http.Error(w, "want POST", http.StatusMethodNotAllowed)
			return
		}
		if ws.fail > 0 {
			ws.fail--
			http.Error(w, "witness down", http.StatusServiceUnavailable)
			return
		}
		ws.notes = append(ws.notes, body)
		ws.types = append(ws.types, r.Header.Get("Content-Type"))
	}))
	t.Cleanup(ws.Close)
	return ws
}

func (ws *witnessServer) received() [][]byte {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return append([][]byte(nil), ws.notes...)
}

func TestHTTPWitness(t *testing.T) {
	ws := newWitnessServer(t)
	w, err := transparency.NewHTTPWitness(ws.URL+"/checkpoints", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	cp := sign(t, testSigner(t), "tollgate/c", 5, leaf("c", 0))
	if err := w.Push(context.Background(), cp); err != nil {
		t.Fatal(err)
	}
	if got := ws.received(); len(got) != 1 || !bytes.Equal(got[0], cp.Note) {
		t.Errorf("witness received %q, want the note", got)
	}
	if ws.types[0] != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type = %q, want text/plain", ws.types[0])
	}
	ws.mu.Lock()
	ws.fail = 1
	ws.mu.Unlock()
	if err := w.Push(context.Background(), cp); err == nil {
		t.Error("a 503 answer: no error")
	}

	slow := newWitnessServer(t)
	slow.block = make(chan struct{})
	defer close(slow.block)
	w, err = transparency.NewHTTPWitness(slow.URL, 50*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := w.Push(context.Background(), cp); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("unanswered push: err = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("unanswered push took %v, want about the 50ms timeout", d)
	}

	for _, u := range []string{"", "ftp://x/y", "http://", "not a url"} {
		if _, err := transparency.NewHTTPWitness(u, 0, nil); !errors.Is(err, transparency.ErrInvalidArgument) {
			t.Errorf("URL %q: err = %v, want ErrInvalidArgument", u, err)
		}
	}
	w, _ = transparency.NewHTTPWitness("https://user:secret@witness.example/p", 0, nil)
	if n := w.Name(); n != "https://user:xxxxx@witness.example/p" {
		t.Errorf("Name() = %q, want the password redacted", n)
	}
}
