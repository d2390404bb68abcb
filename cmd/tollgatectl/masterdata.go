package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/masterdata"
	"github.com/tollgate/tollgate/server/masterdata/feed"
)

func masterDataCommand() *command {
	return &command{
		name:    "masterdata",
		summary: "feed and inspect master data (apply, publish, get, status)",
		help:    "Feeds change events to the server's in-memory master data (or to the NATS stream a fleet reads) and inspects it.",
		subs:    []*command{masterDataApplyCommand(), masterDataPublishCommand(), masterDataGetCommand(), masterDataStatusCommand()},
	}
}

func masterDataApplyCommand() *command {
	return &command{
		name:    "apply",
		args:    "-f FILE [--batch N] [--json]",
		summary: "apply change events from an NDJSON file",
		help: `Reads change events, one JSON object per line:
  {"event_id": "...", "kind": "supplier", "key": "S1", "version": 3, "op": "UPSERT", "record": {...}}
(op "UPSERT" or "DELETE") and sends them in batches of --batch events, in file
order, one Apply call per batch. Each batch is its own transaction on the
server: a batch is applied whole or not at all, but an error in a later batch
does not undo the earlier ones. The whole file is read and checked before the
first call, so a malformed line sends nothing. Prints one line per event
("EVENT_ID OUTCOME [ERROR]") as each batch completes, and the master-data
revision after the last batch; --json prints one JSON response holding every
event's result and that revision.

If a call fails, the results of the batches before it are printed, the error
names the failed batch and its events, and the later batches are not sent.

Exit status: 0 if every event is APPLIED, DUPLICATE or STALE; 1 if any event is
INVALID (the other events of the batch are still applied), so scripts notice,
or if a call failed.`,
		setup: func(fs *flag.FlagSet) runFunc {
			file := fs.String("f", "", "NDJSON `FILE` of change events (- for stdin)")
			batch := fs.Int("batch", defaultApplyBatch, "send at most `N` events per Apply call (one transaction each)")
			asJSON := fs.Bool("json", false, "print the response as JSON")
			return func(ctx context.Context, a *app, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				if *file == "" {
					return usagef("-f is required")
				}
				if *batch < 1 {
					return usagef("--batch must be at least 1, got %d", *batch)
				}
				events, err := a.readEvents(*file)
				if err != nil {
					return err
				}
				c, err := a.dial(ctx)
				if err != nil {
					return err
				}
				defer c.Close()
				var text io.Writer
				if !*asJSON {
					text = a.stdout
				}
				merged, applyErr := applyBatches(ctx, c, events, *batch, text)
				if *asJSON && (applyErr == nil || len(merged.GetResults()) > 0) {
					out, err := tollgate.FormatJSON(merged)
					if err != nil {
						return err
					}
					if err := a.write(out); err != nil {
						return err
					}
				}
				if applyErr != nil {
					return applyErr
				}
				if !*asJSON {
					if _, err := fmt.Fprintf(a.stdout, "revision %d\n", merged.GetRevision()); err != nil {
						return fmt.Errorf("write output: %w", err)
					}
				}
				return applyOutcome(len(events), merged)
			}
		},
	}
}

// defaultApplyBatch is the default number of events per Apply call, well
// under the server's default cap of 10,000.
const defaultApplyBatch = 1000

// applyBatches sends events in batches of size, in order, and returns every
// result so far and the revision after the last successful batch. If text is
// not nil it prints each batch's results there as the batch completes. A
// failed call stops the run with an error naming the batch; the results of
// the batches before it are returned with it.
func applyBatches(ctx context.Context, c *tollgate.Client, events []*tollgatev1.ChangeEvent, size int, text io.Writer) (*tollgatev1.ApplyResponse, error) {
	merged := &tollgatev1.ApplyResponse{}
	batches := (len(events) + size - 1) / size
	for i := range batches {
		start, end := i*size, min((i+1)*size, len(events))
		resp, err := c.ApplyMasterData(ctx, events[start:end])
		if err == nil && len(resp.GetResults()) != end-start {
			err = fmt.Errorf("server reported %d outcomes for %d events", len(resp.GetResults()), end-start)
		}
		if err != nil {
			if batches == 1 {
				return merged, err
			}
			return merged, fmt.Errorf("batch %d of %d (events %d-%d) not applied: %s; later batches not sent",
				i+1, batches, start+1, end, describe(err))
		}
		merged.Results = append(merged.Results, resp.GetResults()...)
		merged.Revision = resp.GetRevision()
		if text != nil {
			if err := printResults(text, resp.GetResults()); err != nil {
				return merged, err
			}
		}
	}
	return merged, nil
}

// readEvents reads the NDJSON events of a -f argument.
func (a *app) readEvents(file string) ([]*tollgatev1.ChangeEvent, error) {
	r, name := a.stdin, "stdin"
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("read input: %w", err)
		}
		defer f.Close()
		r, name = f, file
	}
	events, err := tollgate.ParseChangeEventsNDJSON(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(events) == 0 {
		return nil, fmt.Errorf("%s: no change events", name)
	}
	return events, nil
}

// printResults prints "EVENT_ID OUTCOME [ERROR]" per event, aligned.
func printResults(w io.Writer, results []*tollgatev1.EventResult) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range results {
		line := r.GetEventId() + "\t" + outcomeName(r.GetOutcome())
		if r.GetError() != "" {
			line += "\t" + oneLine(r.GetError())
		}
		fmt.Fprintln(tw, line)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// applyOutcome turns the per-event outcomes into the exit decision: nil when
// every event is APPLIED, DUPLICATE or STALE, an error counting the others.
func applyOutcome(sent int, resp *tollgatev1.ApplyResponse) error {
	results := resp.GetResults()
	if len(results) != sent {
		return fmt.Errorf("server reported %d outcomes for %d events", len(results), sent)
	}
	bad := make(map[string]int)
	total := 0
	for _, r := range results {
		switch r.GetOutcome() {
		case tollgatev1.EventOutcome_EVENT_OUTCOME_APPLIED,
			tollgatev1.EventOutcome_EVENT_OUTCOME_DUPLICATE,
			tollgatev1.EventOutcome_EVENT_OUTCOME_STALE:
		default:
			bad[outcomeName(r.GetOutcome())]++
			total++
		}
	}
	if total == 0 {
		return nil
	}
	if n := bad["INVALID"]; n == total {
		return fmt.Errorf("%d of %d events INVALID", total, sent)
	}
	parts := make([]string, 0, len(bad))
	for name, n := range bad {
		parts = append(parts, fmt.Sprintf("%s %d", name, n))
	}
	sort.Strings(parts)
	return fmt.Errorf("%d of %d events not applied (%s)", total, sent, strings.Join(parts, ", "))
}

func outcomeName(o tollgatev1.EventOutcome) string {
	return strings.TrimPrefix(o.String(), "EVENT_OUTCOME_")
}

func masterDataGetCommand() *command {
	return &command{
		name:    "get",
		args:    "KIND KEY",
		summary: "print one record as JSON",
		help: `Prints the record with its version and the event that wrote it. Composite
keys are written part1/part2 (inventory DC1/I1). A missing record exits 1
with NotFound.`,
		setup: func(fs *flag.FlagSet) runFunc {
			return func(ctx context.Context, a *app, args []string) error {
				if len(args) != 2 {
					return usagef("want KIND and KEY, got %d arguments", len(args))
				}
				c, err := a.dial(ctx)
				if err != nil {
					return err
				}
				defer c.Close()
				resp, err := c.GetMasterData(ctx, args[0], args[1])
				if err != nil {
					return err
				}
				return a.writeMessage(resp)
			}
		},
	}
}

func masterDataStatusCommand() *command {
	return &command{
		name:    "status",
		args:    "[--json]",
		summary: "print record counts per kind and the revision",
		setup: func(fs *flag.FlagSet) runFunc {
			asJSON := fs.Bool("json", false, "print the response as JSON")
			return func(ctx context.Context, a *app, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				c, err := a.dial(ctx)
				if err != nil {
					return err
				}
				defer c.Close()
				resp, err := c.MasterDataStatus(ctx)
				if err != nil {
					return err
				}
				if *asJSON {
					return a.writeMessage(resp)
				}
				return printStatus(a.stdout, resp)
			}
		},
	}
}

// printStatus prints the revision, the last event, the stream's view (if fed by one) and a KIND COUNT
// table.
func printStatus(w io.Writer, resp *tollgatev1.StatusResponse) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "revision\t%d\n", resp.GetRevision())
	if resp.GetLastEventId() != "" {
		fmt.Fprintf(tw, "last event\t%s\n", resp.GetLastEventId())
	}
	if resp.GetLastAppliedAt() != nil {
		fmt.Fprintf(tw, "last applied at\t%s\n", resp.GetLastAppliedAt().AsTime().UTC().Format(time.RFC3339Nano))
	}
	fmt.Fprintf(tw, "seen event ids\t%d\n", resp.GetSeenEventIds())
	fmt.Fprintf(tw, "tombstones\t%d\n", resp.GetTombstones())
	if st := resp.GetStream(); st != nil {
		fmt.Fprintf(tw, "stream\t%s %s (subject %s)\n", st.GetUrl(), st.GetStream(), st.GetSubject())
		fmt.Fprintf(tw, "connected\t%t\n", st.GetConnected())
		head := fmt.Sprint(st.GetHead())
		if st.GetHeadSeenAt() != nil {
			head += " (seen at " + st.GetHeadSeenAt().AsTime().UTC().Format(time.RFC3339Nano) + ")"
		}
		fmt.Fprintf(tw, "head\t%s\n", head)
		fmt.Fprintf(tw, "lag\t%d\n", st.GetLag())
		fmt.Fprintf(tw, "rejected events\t%d\n", st.GetRejectedEvents())
		if r := st.GetLastRejected(); r != nil {
			id := r.GetEventId()
			if id == "" {
				id = "(unparseable)"
			}
			fmt.Fprintf(tw, "last rejected\tsequence %d %s: %s\n", r.GetSequence(), id, oneLine(r.GetError()))
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(tw, "KIND\tCOUNT")
	for _, kc := range resp.GetCounts() {
		fmt.Fprintf(tw, "%s\t%d\n", kc.GetKind(), kc.GetCount())
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

func masterDataPublishCommand() *command {
	return &command{
		name:    "publish",
		args:    "-f FILE [--stream nats://HOST:4222] [--stream-name NAME] [--subject SUBJECT]",
		summary: "publish change events to the NATS JetStream stream a fleet reads",
		help: `Publishes change events (the NDJSON of 'masterdata apply', one event per
line) to the master-data stream of replicas started with --masterdata-stream,
one message per event, in file order, with Nats-Msg-Id = event_id so that
JetStream drops an event id it already stored within its duplicate window.
The stream is created if it does not exist. This talks to NATS, not to the
service: --addr and the TLS flags do not apply; --timeout bounds the whole
run (0: none). Without --stream it publishes to TOLLGATE_MASTERDATA_STREAM, else
to nats://127.0.0.1:4222.

Every line is decoded first, as 'masterdata apply' does, and must have an
event_id: a malformed line publishes nothing, and the error names the line.
The events are not validated further: a replica rejects an invalid or stale
event and reports it in 'masterdata status'. Prints one line per event,
"EVENT_ID SEQUENCE", or "EVENT_ID duplicate SEQUENCE" when the stream already
held it (at that sequence). The stream sequence is the master-data revision
of a replica that has applied the event.

Exit status: 0 when every event was stored or found a duplicate; 1 if the
file is malformed or NATS refused an event (the events before it stay
published, the later ones are not sent).`,
		setup: func(fs *flag.FlagSet) runFunc {
			file := fs.String("f", "", "NDJSON `FILE` of change events (- for stdin)")
			url := fs.String("stream", "", "NATS `URL` of the master-data stream (default env TOLLGATE_MASTERDATA_STREAM, else "+defaultStreamURL+")")
			name := fs.String("stream-name", feed.DefaultStream, "JetStream stream `NAME`")
			subject := fs.String("subject", feed.DefaultSubject, "`SUBJECT` the events are published on")
			return func(ctx context.Context, a *app, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				if *file == "" {
					return usagef("-f is required")
				}
				if *url == "" {
					*url = a.streamURL
				}
				bodies, err := a.readEventLines(*file)
				if err != nil {
					return err
				}
				p, err := feed.NewPublisher(ctx, feed.Config{URL: *url, Stream: *name, Subject: *subject})
				if err != nil {
					return err
				}
				defer p.Close()
				tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
				defer tw.Flush()
				for i, body := range bodies {
					ack, err := p.Publish(ctx, body)
					if err != nil {
						_ = tw.Flush()
						return fmt.Errorf("%w; %d of %d events published, later ones not sent", err, i, len(bodies))
					}
					if ack.Duplicate {
						fmt.Fprintf(tw, "%s\tduplicate\t%d\n", ack.EventID, ack.Sequence)
					} else {
						fmt.Fprintf(tw, "%s\t%d\n", ack.EventID, ack.Sequence)
					}
				}
				if err := tw.Flush(); err != nil {
					return fmt.Errorf("write output: %w", err)
				}
				return nil
			}
		},
	}
}

// readEventLines reads the NDJSON events of a -f argument as message bodies, one per non-blank line,
// each checked with the master-data decoder and for an event_id; the first bad line is an error that
// names it.
func (a *app) readEventLines(file string) ([][]byte, error) {
	r, name := a.stdin, "stdin"
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("read input: %w", err)
		}
		defer f.Close()
		r, name = f, file
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var bodies [][]byte
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		ev, err := masterdata.DecodeEvent(b)
		if err == nil && ev.EventID == "" {
			err = feed.ErrNoEventID
		}
		if err != nil {
			return nil, fmt.Errorf("%s: line %d: %w; nothing published", name, line, err)
		}
		bodies = append(bodies, bytes.Clone(b))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(bodies) == 0 {
		return nil, fmt.Errorf("%s: no change events", name)
	}
	return bodies, nil
}
