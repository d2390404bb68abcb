package transparency

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Witness keeps copies of checkpoints outside the audit database. Push must
// be safe for concurrent use; the Checkpointer calls each witness from one
// goroutine of its own and retries a failed push with the chain's newest
// checkpoint on its next round, so a witness may miss intermediate
// checkpoints but never gets them out of order for a chain.
type Witness interface {
	// Name identifies the witness in logs.
	Name() string
	// Push hands cp to the witness; nil means it is kept.
	Push(ctx context.Context, cp Checkpoint) error
}

// File witness format: each checkpoint is one entry,
//
//	checkpoint <signed-at, RFC 3339 UTC with nanoseconds> <n>\n
//	<n bytes: the signed note>\n
//
// A note spans several lines and holds a blank line, so entries are
// length-prefixed rather than separated; the newline after the note keeps
// the file readable with a pager. Entries are only ever appended.
const fileEntryTag = "checkpoint"

// FileWitness appends checkpoints to a file (see ReadCheckpointFile for the
// format), opened with O_APPEND and synced after every entry, so a copy of
// every pushed checkpoint survives outside the database; put the file on
// another volume. It is safe for concurrent use.
type FileWitness struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

// OpenFileWitness opens (creating, mode 0644: checkpoints are public) the
// file at path for appending.
func OpenFileWitness(path string) (*FileWitness, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open checkpoint file: %w", err)
	}
	return &FileWitness{path: path, f: f}, nil
}

// Name implements Witness: "file:<path>".
func (w *FileWitness) Name() string { return "file:" + w.path }

// Push implements Witness: it appends cp as one write and syncs the file.
func (w *FileWitness) Push(_ context.Context, cp Checkpoint) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s %d\n", fileEntryTag, cp.SignedAt.UTC().Format(time.RFC3339Nano), len(cp.Note))
	b.Write(cp.Note)
	b.WriteByte('\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return ErrClosed
	}
	if _, err := w.f.Write(b.Bytes()); err != nil {
		return fmt.Errorf("append checkpoint to %s: %w", w.path, err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", w.path, err)
	}
	return nil
}

// Close closes the file; later pushes return ErrClosed.
func (w *FileWitness) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// FileEntry is one checkpoint read back from a FileWitness file. The note is
// unverified: open it with VerifyCheckpoint or OpenCheckpoint.
type FileEntry struct {
	SignedAt time.Time
	Note     []byte
}

// ReadCheckpointFile parses a FileWitness file. It returns the entries before
// the first malformed one, and then an error wrapping ErrMalformed that
// names the entry's byte offset (a crash during a write leaves a truncated
// last entry).
func ReadCheckpointFile(r io.Reader) ([]FileEntry, error) {
	br := bufio.NewReader(r)
	var out []FileEntry
	var off int64
	for {
		header, err := br.ReadString('\n')
		if err == io.EOF && header == "" {
			return out, nil
		}
		bad := func(why string) ([]FileEntry, error) {
			return out, fmt.Errorf("%w: checkpoint file entry %d at byte %d: %s", ErrMalformed, len(out)+1, off, why)
		}
		if err != nil {
			if err == io.EOF {
				return bad("truncated header")
			}
			return out, fmt.Errorf("read checkpoint file: %w", err)
		}
		f := strings.Fields(header)
		if len(f) != 3 || f[0] != fileEntryTag {
			return bad("header " + strconv.Quote(strings.TrimSuffix(header, "\n")))
		}
		at, err := time.Parse(time.RFC3339Nano, f[1])
		if err != nil {
			return bad("time " + strconv.Quote(f[1]))
		}
		n, err := strconv.Atoi(f[2])
		if err != nil || n < 0 || n > MaxCheckpointSize {
			return bad("length " + strconv.Quote(f[2]))
		}
		body := make([]byte, n+1)
		if _, err := io.ReadFull(br, body); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return bad("truncated note")
			}
			return out, fmt.Errorf("read checkpoint file: %w", err)
		}
		if body[n] != '\n' {
			return bad("no newline after the note")
		}
		out = append(out, FileEntry{SignedAt: at, Note: body[:n]})
		off += int64(len(header)) + int64(n) + 1
	}
}

// DefaultWitnessTimeout bounds one HTTP push unless configured.
const DefaultWitnessTimeout = 5 * time.Second

// HTTPWitness POSTs each checkpoint's signed note (Content-Type text/plain)
// to a URL; any status other than 2xx, or no answer within its timeout, is a
// failed push. It is safe for concurrent use.
type HTTPWitness struct {
	url     string
	client  *http.Client
	timeout time.Duration
}

// NewHTTPWitness returns a witness posting to rawURL, an http or https URL,
// each push bounded by timeout (DefaultWitnessTimeout if zero). client nil
// means http.DefaultClient's transport.
func NewHTTPWitness(rawURL string, timeout time.Duration, client *http.Client) (*HTTPWitness, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: witness URL %q: want http(s)://host/path", ErrInvalidArgument, rawURL)
	}
	if timeout < 0 {
		return nil, fmt.Errorf("%w: witness timeout %v", ErrInvalidArgument, timeout)
	}
	if timeout == 0 {
		timeout = DefaultWitnessTimeout
	}
	if client == nil {
		client = &http.Client{}
	}
	return &HTTPWitness{url: rawURL, client: client, timeout: timeout}, nil
}

// Name implements Witness: the URL without user information.
func (w *HTTPWitness) Name() string {
	u, err := url.Parse(w.url)
	if err != nil {
		return w.url
	}
	return u.Redacted()
}

// Push implements Witness.
func (w *HTTPWitness) Push(ctx context.Context, cp Checkpoint) error {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(cp.Note))
	if err != nil {
		return fmt.Errorf("witness %s: %w", w.Name(), err)
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("witness %s: %w", w.Name(), err)
	}
	defer resp.Body.Close()
	// Read a little of the answer for the error message and so the
	// connection can be reused.
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("witness %s: %s: %s", w.Name(), resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}
