package masterdata

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"sort"
	"sync"
)

// maxLineBytes bounds one NDJSON line.
const maxLineBytes = 16 << 20

// wireEvent is the JSON form of an Event.
type wireEvent struct {
	EventID string         `json:"event_id"`
	Kind    Kind           `json:"kind"`
	Key     string         `json:"key"`
	Version uint64         `json:"version"`
	Op      Op             `json:"op"`
	Record  map[string]any `json:"record"`
}

// DecodeEvents reads NDJSON change events, one JSON object per line:
// {"event_id", "kind", "key", "version", "op", "record"}. Numbers in records decode as json.Number. Blank
// lines are skipped. An unknown top-level member, malformed JSON, trailing data after the object or a line
// longer than 16 MiB is an error that names the line number. DecodeEvents checks only the JSON shape;
// Apply validates the events.
func DecodeEvents(r io.Reader) ([]Event, error) {
	var events []Event
	err := decodeLines(r, func(ev Event, _ int) bool {
		events = append(events, ev)
		return true
	})
	if err != nil {
		return nil, err
	}
	return events, nil
}

// DecodeEvent decodes one change event: the JSON object of one DecodeEvents line (surrounding white
// space allowed), e.g. the body of one stream message. Like DecodeEvents it checks only the JSON shape.
func DecodeEvent(b []byte) (Event, error) {
	var fp fastParser
	return decodeEvent(&fp, bytes.TrimSpace(b))
}

// decodeLines calls each with every event of r and its line number, in order, until a line does not
// decode or each returns false. Handing over one event at a time lets LoadDir keep what it checked instead
// of every decoded record of a file.
func decodeLines(r io.Reader, each func(ev Event, line int) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLineBytes)
	var fp fastParser
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		ev, err := decodeEvent(&fp, b)
		if err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		if !each(ev, line) {
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("line %d: longer than %d bytes", line+1, maxLineBytes)
		}
		return fmt.Errorf("read events after line %d: %w", line, err)
	}
	return nil
}

func decodeEvent(fp *fastParser, b []byte) (Event, error) {
	if ev, ok := fp.decode(b); ok {
		return ev, nil
	}
	return decodeJSON(b)
}

// decodeJSON is decodeEvent by encoding/json: the reference for decodeFast, and its fallback.
func decodeJSON(b []byte) (Event, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	var w wireEvent
	if err := dec.Decode(&w); err != nil {
		return Event{}, fmt.Errorf("decode event: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Event{}, errors.New("decode event: unexpected data after the JSON object")
	}
	return Event{EventID: w.EventID, Kind: w.Kind, Key: w.Key, Version: w.Version, Op: w.Op, Record: w.Record}, nil
}

// LoadReport summarises LoadDir.
type LoadReport struct {
	Files     []string // the files loaded, in load order
	Events    int      // events read
	Applied   int      // events APPLIED
	Duplicate int      // events DUPLICATE (e.g. the same directory loaded twice)
	Stale     int      // events STALE
	Revision  uint64   // revision after loading
}

// LoadDir loads every *.ndjson file at the top of fsys, in name order, as one Apply batch (so loading a
// directory is one revision). Use os.DirFS for a directory on disk, or an embedded FS.
//
// Startup must not silently skip bad data, so if any event of any file is malformed or INVALID, LoadDir
// returns an error naming the file, line and event and applies nothing (a line that does not decode is
// reported before an invalid event earlier in the same file). A Config.Prepare failure is also returned
// as an error naming file, line and event, but the batch's valid events stay applied. DUPLICATE and STALE
// events are not errors. A directory without *.ndjson files is an error.
//
// LoadDir applies each event as soon as it is decoded and checked, inside the batch's write transaction,
// and throws the batch away if a later event turns out bad: it never holds the decoded files, and a
// million-record load keeps only what it stores. So it holds the writer lock while it reads the files
// (other Apply calls wait; readers do not), and Config.Prepare may have run for a load that is then
// rejected. One goroutine reads and checks the files, a few call Config.Prepare on what it checked, and
// the calling one applies (the memdb inserts, which must stay in one goroutine); LoadDir waits for them
// before it returns.
func (s *Store) LoadDir(fsys fs.FS) (LoadReport, error) {
	names, err := fs.Glob(fsys, "*.ndjson")
	if err != nil {
		return LoadReport{}, fmt.Errorf("list master-data files: %w", err)
	}
	if len(names) == 0 {
		return LoadReport{}, errors.New("load master data: no *.ndjson files")
	}
	sort.Strings(names)
	b := s.begin(countLines(fsys, names))
	defer b.abort() // no-op after commit

	// Prepare (for the engine, the OPA value of each record) cost about as much as reading and checking
	// together, so the applying goroutine, which the load waits for, no longer runs it: workers prepare
	// whole chunks while chunks reach the applier in file order, each once its workers are done.
	workers := 0
	if s.prepare != nil {
		workers = runtime.GOMAXPROCS(0)
	}
	chunks := make(chan *loadChunk, 2*workers+4)
	work := make(chan *loadChunk, workers)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ch := range work {
				select {
				case <-stop: // the load is over; the applier no longer waits for ready
				default:
					ch.prepare(s.prepare)
				}
				close(ch.ready)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(chunks)
		defer close(work)
		readFiles(fsys, names, func(ch *loadChunk) bool {
			if workers > 0 {
				ch.ready = make(chan struct{})
				select {
				case work <- ch:
				case <-stop:
					return false
				}
			}
			select {
			case chunks <- ch:
				return true
			case <-stop:
				return false
			}
		})
	}()
	defer wg.Wait()
	defer close(stop) // runs first: a reader blocked on a full channel gives up

	rep := LoadReport{Files: names}
	var prepareErrs []error
	for ch := range chunks {
		if ch.ready != nil {
			<-ch.ready
		}
		for i, c := range ch.events {
			rep.Events++
			res, err := b.apply(c)
			if err != nil {
				return LoadReport{}, fmt.Errorf("load master data %s: line %d: event %q: %w", ch.file, ch.lines[i], c.id,
					&ValidationError{Problem: "batch aborted, nothing applied", Err: err})
			}
			switch res.Outcome {
			case OutcomeApplied:
				rep.Applied++
			case OutcomeDuplicate:
				rep.Duplicate++
			case OutcomeStale:
				rep.Stale++
			case OutcomeInvalid: // Prepare failed; the event changed nothing
				prepareErrs = append(prepareErrs, fmt.Errorf("load master data %s: line %d: event %q: %w", ch.file, ch.lines[i], c.id, res.Err))
			}
		}
		if ch.err != nil {
			return LoadReport{}, ch.err
		}
	}
	rep.Revision, err = b.commit()
	if err != nil {
		return LoadReport{}, fmt.Errorf("load master data: %w", &ValidationError{Problem: "batch aborted, nothing applied", Err: err})
	}
	return rep, errors.Join(prepareErrs...)
}

// countLines returns the number of lines of the files, a bound on their events that lets LoadDir make
// its maps at their final size. A file that cannot be read counts as empty: reading it for real reports
// the error.
func countLines(fsys fs.FS, names []string) int {
	n := 0
	buf := make([]byte, 256<<10)
	for _, name := range names {
		f, err := fsys.Open(name)
		if err != nil {
			continue
		}
		last := byte('\n')
		for {
			k, err := f.Read(buf)
			if k > 0 {
				n += bytes.Count(buf[:k], []byte{'\n'})
				last = buf[k-1]
			}
			if err != nil {
				break
			}
		}
		if last != '\n' {
			n++
		}
		f.Close()
	}
	return n
}

// loadChunk is a run of checked events of one file, from readFiles to LoadDir.
type loadChunk struct {
	file   string
	events []checkedEvent
	lines  []int         // the line of each event
	err    error         // ends the load after events: the file does not open or decode, or an event is INVALID
	ready  chan struct{} // closed once a worker has prepared events; nil without Config.Prepare
}

// prepare runs prepare on every event that may be stored as a record, so that batch.apply need not. It
// cannot know yet which of them will turn out DUPLICATE or STALE: batch.apply drops those results.
func (ch *loadChunk) prepare(prepare func(Kind, string, map[string]any) (any, error)) {
	for i := range ch.events {
		ev := &ch.events[i]
		if ev.err != nil || ev.op == OpDelete {
			continue
		}
		ev.prepared, ev.prepareErr = prepare(ev.kind, ev.stored, ev.fields)
		ev.isPrepared = true
	}
}

// loadChunkSize is the events per loadChunk: enough that the channel costs nothing per event, few enough
// that the chunks in flight stay small.
const loadChunkSize = 512

// readFiles decodes and checks the files in order and hands their events in chunks to send, until a chunk
// carries an error or send returns false. A line that does not decode is reported before an invalid event
// earlier in the same file.
func readFiles(fsys fs.FS, names []string, send func(*loadChunk) bool) {
	for _, name := range names {
		ch := &loadChunk{file: name}
		var invalid error
		stopped := false
		err := decodeFile(fsys, name, func(ev Event, line int) bool {
			if invalid != nil {
				return true // decode on: a malformed line is reported first
			}
			c := check(ev, true) // ev is decoded here, and dropped after
			if c.err != nil {
				invalid = fmt.Errorf("load master data %s: line %d: event %q: %w", name, line, c.id, c.err)
				return true
			}
			ch.events = append(ch.events, c)
			ch.lines = append(ch.lines, line)
			if len(ch.events) < loadChunkSize {
				return true
			}
			if !send(ch) {
				stopped = true
				return false
			}
			ch = &loadChunk{file: name, events: make([]checkedEvent, 0, loadChunkSize), lines: make([]int, 0, loadChunkSize)}
			return true
		})
		if stopped {
			return
		}
		switch {
		case err != nil:
			ch.err = fmt.Errorf("load master data %s: %w", name, err)
		case invalid != nil:
			ch.err = invalid
		}
		if !send(ch) || ch.err != nil {
			return
		}
	}
}

func decodeFile(fsys fs.FS, name string, each func(ev Event, line int) bool) error {
	f, err := fsys.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return decodeLines(f, each)
}
