package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"iter"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit/transparency"
)

func auditCommand() *command {
	return &command{
		name:    "audit",
		summary: "read, verify, replay, export and prove the decision log",
		help: `Reads the hash-chained decision log: lists and shows records, verifies the
chains, replays a decision against the policy and facts it was made with, and
exports records as NDJSON for archiving. Lists the signed checkpoints of the
log, prints a decision's receipt and verifies a receipt offline.`,
		subs: []*command{auditListCommand(), auditGetCommand(), auditVerifyCommand(), auditReplayCommand(), auditExportCommand(),
			auditCheckpointsCommand(), auditProveCommand(), auditVerifyReceiptCommand()},
	}
}

// exportPageSize is the page size export asks for, and list's largest: the server's maximum.
const exportPageSize = 1000

// listFlags are audit list's filters and paging.
type listFlags struct {
	from, to                 string
	actor, action            string
	resourceType, resourceID string
	effect, reason           string
	bundle, workflow         string
	limit                    int
	pageToken                string
	all, asJSON              bool
}

func (f *listFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.from, "from", "", "only records evaluated at or after `TIME` (RFC 3339)")
	fs.StringVar(&f.to, "to", "", "only records evaluated before `TIME` (RFC 3339)")
	fs.StringVar(&f.actor, "actor", "", "only this actor `ID`")
	fs.StringVar(&f.action, "action", "", "only this `ACTION` (PO.SUBMIT)")
	fs.StringVar(&f.resourceType, "resource-type", "", "only this resource `TYPE` (purchase_order)")
	fs.StringVar(&f.resourceID, "resource-id", "", "only this resource `ID`")
	fs.StringVar(&f.effect, "effect", "", "only this `EFFECT`: ALLOW, DENY or REQUIRE_APPROVAL")
	fs.StringVar(&f.reason, "reason", "", "only records with this reason `CODE` (any position)")
	fs.StringVar(&f.bundle, "bundle", "", "only decisions of this bundle `REVISION`")
	fs.StringVar(&f.workflow, "workflow", "", "only requests whose context workflow_id is `ID`")
	fs.IntVar(&f.limit, "limit", 0, "page size `N`, at most 1000 (0: the server's default, 50)")
	fs.StringVar(&f.pageToken, "page-token", "", "continue from the next page `TOKEN` a previous list printed")
	fs.BoolVar(&f.all, "all", false, "follow the pages to the end instead of printing one page")
	fs.BoolVar(&f.asJSON, "json", false, "print NDJSON, one record per line")
}

// request turns the flags into a ListDecisionsRequest, or a usage error.
func (f *listFlags) request() (*tollgatev1.ListDecisionsRequest, error) {
	req := &tollgatev1.ListDecisionsRequest{
		ActorId:        f.actor,
		Action:         f.action,
		ResourceType:   f.resourceType,
		ResourceId:     f.resourceID,
		ReasonCode:     f.reason,
		BundleRevision: f.bundle,
		WorkflowId:     f.workflow,
		PageToken:      f.pageToken,
	}
	var err error
	if req.From, err = parseTime("--from", f.from); err != nil {
		return nil, err
	}
	if req.To, err = parseTime("--to", f.to); err != nil {
		return nil, err
	}
	if req.From != nil && req.To != nil && !req.From.AsTime().Before(req.To.AsTime()) {
		return nil, usagef("--to must be after --from")
	}
	if f.effect != "" {
		if req.Effect, err = parseEffect(f.effect); err != nil {
			return nil, err
		}
	}
	if f.limit < 0 || f.limit > exportPageSize {
		return nil, usagef("--limit must be 1 to %d (0: the server's default), got %d", exportPageSize, f.limit)
	}
	req.PageSize = int32(f.limit)
	return req, nil
}

// parseTime reads an RFC 3339 flag value; "" is no bound.
func parseTime(flagName, s string) (*timestamppb.Timestamp, error) {
	if s == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil, usagef("%s: want an RFC 3339 time such as 2026-03-02T09:30:00Z, got %q", flagName, s)
	}
	return timestamppb.New(t), nil
}

// parseEffect reads ALLOW, DENY or REQUIRE_APPROVAL, or the prefixed proto
// names, in any case.
func parseEffect(s string) (tollgatev1.Effect, error) {
	name := strings.ToUpper(s)
	for _, n := range []string{name, "EFFECT_" + name} {
		if v, ok := tollgatev1.Effect_value[n]; ok && v != 0 {
			return tollgatev1.Effect(v), nil
		}
	}
	return 0, usagef("--effect: want ALLOW, DENY or REQUIRE_APPROVAL, got %q", s)
}

func auditListCommand() *command {
	return &command{
		name: "list",
		args: "[--from TIME] [--to TIME] [--actor ID] [--action A] [--resource-type T] [--resource-id ID]\n" +
			"       [--effect EFFECT] [--reason CODE] [--bundle REV] [--workflow ID] [--limit N] [--page-token T]\n" +
			"       [--all] [--json]",
		summary: "list decision records, newest first",
		help: `Lists decision records matching every filter given, newest first, one page
at a time (--limit records; the server's default is 50). The table shows the
time (UTC), decision id, actor, action, resource, effect and primary reason;
a replay marker (an idempotent retry answered with an earlier decision) shows
"replay of ID" after its reason; a chain-break record (written when the
service was started on a damaged log with --audit-accept-chain-break) shows
CHAIN_BREAK as its effect and who accepted what as its reason. When there are more records the last line is
"next page: --page-token TOKEN": repeat the command with that flag and the
same filters. --all follows the pages to the end instead.

--json prints NDJSON, one record per line with short enum names ("effect":
"ALLOW", "kind": "DECISION"), readable back as DecisionRecord messages; the
next page token then goes to stderr so stdout stays NDJSON.`,
		setup: func(fs *flag.FlagSet) runFunc {
			var f listFlags
			f.register(fs)
			return func(ctx context.Context, a *app, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				req, err := f.request()
				if err != nil {
					return err
				}
				c, err := a.dial(ctx)
				if err != nil {
					return err
				}
				defer c.Close()
				if f.asJSON {
					return a.listJSON(ctx, c, req, f.all)
				}
				return a.listTable(ctx, c, req, f.all)
			}
		},
	}
}

// listJSON prints NDJSON page by page as the pages arrive.
func (a *app) listJSON(ctx context.Context, c *tollgate.Client, req *tollgatev1.ListDecisionsRequest, all bool) error {
	w := bufio.NewWriter(a.stdout)
	for page, err := range c.DecisionPages(ctx, req) {
		if err != nil {
			return err
		}
		if err := writeNDJSON(w, page.GetRecords()); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		if !all {
			if next := page.GetNextPageToken(); next != "" {
				fmt.Fprintf(a.stderr, "next page: --page-token %s\n", next)
			}
			return nil
		}
	}
	return nil
}

// listTable prints the records as one aligned table. With all it holds the
// table's rows until the last page, to align them.
func (a *app) listTable(ctx context.Context, c *tollgate.Client, req *tollgatev1.ListDecisionsRequest, all bool) error {
	t := newRecordTable(a.stdout)
	next := ""
	for page, err := range c.DecisionPages(ctx, req) {
		if err != nil {
			return err
		}
		t.add(page.GetRecords())
		if !all {
			next = page.GetNextPageToken()
			break
		}
	}
	return t.finish(next)
}

// recordTable prints records as "TIME DECISION ACTOR ACTION RESOURCE EFFECT
// REASON" rows.
type recordTable struct {
	out  io.Writer
	tw   *tabwriter.Writer
	rows int
}

func newRecordTable(w io.Writer) *recordTable {
	return &recordTable{out: w, tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
}

func (t *recordTable) add(recs []*tollgatev1.DecisionRecord) {
	for _, r := range recs {
		if t.rows == 0 {
			fmt.Fprintln(t.tw, "TIME\tDECISION\tACTOR\tACTION\tRESOURCE\tEFFECT\tREASON")
		}
		t.rows++
		req := r.GetRequest()
		resource := req.GetResource().GetType() + "/" + req.GetResource().GetId()
		if resource == "/" {
			resource = ""
		}
		reason := ""
		if rs := r.GetReasons(); len(rs) > 0 {
			reason = rs[0].GetCode()
		}
		if r.GetKind() == tollgatev1.RecordKind_RECORD_KIND_REPLAY {
			reason = strings.TrimSpace(reason + " (replay of " + r.GetReplayOf() + ")")
		}
		effect := effectName(r.GetEffect())
		if cb := r.GetChainBreak(); r.GetKind() == tollgatev1.RecordKind_RECORD_KIND_CHAIN_BREAK {
			// Not a decision: an operator accepted a broken chain tail at start.
			effect, reason = "CHAIN_BREAK", oneLine("accepted by "+cb.GetAcceptedBy()+": "+cb.GetProblem())
		}
		fmt.Fprintf(t.tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			formatTime(r.GetEvaluatedAt()), r.GetDecisionId(), dash(req.GetActor().GetId()), dash(req.GetAction()),
			dash(resource), effect, dash(reason))
	}
}

// finish flushes the table and prints the next page token, if any.
func (t *recordTable) finish(next string) error {
	if t.rows == 0 {
		fmt.Fprintln(t.tw, "no matching decisions")
	}
	if next != "" {
		fmt.Fprintf(t.tw, "next page: --page-token %s\n", next)
	}
	if err := t.tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// formatTime prints a record's time in UTC with milliseconds, so the column
// has one width.
func formatTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	return ts.AsTime().UTC().Format("2006-01-02T15:04:05.000Z")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func effectName(e tollgatev1.Effect) string {
	return strings.TrimPrefix(e.String(), "EFFECT_")
}

// writeNDJSON writes records, one compact JSON line each.
func writeNDJSON(w io.Writer, recs []*tollgatev1.DecisionRecord) error {
	for _, r := range recs {
		line, err := tollgate.FormatJSONLine(r)
		if err != nil {
			return err
		}
		if _, err := w.Write(append(line, '\n')); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	}
	return nil
}

func auditGetCommand() *command {
	return &command{
		name:    "get",
		args:    "ID",
		summary: "print one decision record as JSON",
		help: `Prints the record of decision ID as JSON with short enum names. The facts
the policy read (facts_json) are printed parsed under "facts", not as an
escaped string: master-data reads ("builtin": "md.get", "md.lookup") and the
decision history it read ("builtin": "tollgate.history", with the view, the
key, and the count, sums and ids of the earlier decisions counted). Hashes
are base64. An unknown ID exits 1 with NotFound.`,
		setup: func(fs *flag.FlagSet) runFunc {
			return func(ctx context.Context, a *app, args []string) error {
				id, err := oneID(args)
				if err != nil {
					return err
				}
				c, err := a.dial(ctx)
				if err != nil {
					return err
				}
				defer c.Close()
				rec, err := c.GetDecision(ctx, id)
				if err != nil {
					return err
				}
				out, err := tollgate.FormatDecisionRecordJSON(rec)
				if err != nil {
					return err
				}
				return a.write(out)
			}
		},
	}
}

func oneID(args []string) (string, error) {
	if len(args) != 1 {
		return "", usagef("want one decision ID, got %d arguments", len(args))
	}
	if args[0] == "" {
		return "", usagef("decision ID must not be empty")
	}
	return args[0], nil
}

func auditVerifyCommand() *command {
	return &command{
		name:    "verify",
		args:    "[--chain ID] [--since-checkpoint FILE]",
		summary: "verify the hash chains, Merkle trees and checkpoints of the log",
		help: `Has the server verify a chain (--chain) or every chain in one snapshot of the
log: each record's hash, its link to the previous record and the sequence; the
Merkle tree the records rebuild against the stored tree; and every stored
checkpoint against that tree (signatures too when the server has its key).
Prints "OK" with the number of records checked, the tree's size and root (one
chain) and the checkpoints checked, or the first problem (chain, seq, decision
id and what is wrong).

--since-checkpoint FILE proves that the log extends a checkpoint kept outside
the service: FILE is a signed checkpoint note, or a witness file (the newest
checkpoint in it is used; with --chain, the newest of that chain). This is what
detects a log rewritten consistently in every table, or cut short.

Exit status: 0 if the log verifies; 1 if it does not (or the call failed).`,
		setup: func(fs *flag.FlagSet) runFunc {
			chain := fs.String("chain", "", "verify only chain `ID` (default: every chain)")
			sinceFile := fs.String("since-checkpoint", "", "prove the log extends the checkpoint in `FILE` (a signed note or a witness file)")
			return func(ctx context.Context, a *app, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				req := &tollgatev1.VerifyLogRequest{ChainId: *chain}
				if *sinceFile != "" {
					cp, err := readSinceCheckpoint(*sinceFile, *chain)
					if err != nil {
						return err
					}
					req.SinceCheckpoint = cp
				}
				c, err := a.dial(ctx)
				if err != nil {
					return err
				}
				defer c.Close()
				resp, err := c.Audit().VerifyLog(ctx, req)
				if err != nil {
					return err
				}
				return printVerify(a.stdout, *chain, *sinceFile, resp)
			}
		},
	}
}

// readSinceCheckpoint returns the checkpoint note in path: the newest entry
// (of chain, if given) when path is a witness file, else the whole file,
// taken as a signed note.
func readSinceCheckpoint(path, chain string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read checkpoint: %w", err)
	}
	entries, _ := transparency.ReadCheckpointFile(bytes.NewReader(b))
	if len(entries) == 0 {
		return string(b), nil
	}
	for i := len(entries) - 1; i >= 0; i-- {
		origin, _, _ := strings.Cut(string(entries[i].Note), "\n")
		if chain == "" || strings.HasSuffix(origin, "/"+chain) {
			return string(entries[i].Note), nil
		}
	}
	return "", fmt.Errorf("witness file %s holds no checkpoint of chain %s", path, chain)
}

// printVerify prints a verification report and returns an error when the log
// does not verify, so the command exits 1. since names the outside
// checkpoint's file, if one was given.
func printVerify(w io.Writer, chain, since string, resp *tollgatev1.VerifyLogResponse) error {
	scope := "all chains"
	if c := cmp.Or(resp.GetChainId(), chain); c != "" {
		scope = "chain " + c
	}
	var b strings.Builder
	if resp.GetOk() {
		fmt.Fprintf(&b, "OK: %d records checked (%s)\n", resp.GetRecordsChecked(), scope)
		if len(resp.GetRootHash()) > 0 {
			fmt.Fprintf(&b, "tree: size %d, root %s\n", resp.GetTreeSize(), base64.StdEncoding.EncodeToString(resp.GetRootHash()))
		}
		fmt.Fprintf(&b, "checkpoints checked: %d\n", resp.GetCheckpointsChecked())
		if since != "" {
			fmt.Fprintf(&b, "extends the checkpoint in %s\n", since)
		}
		if _, err := io.WriteString(w, b.String()); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		return nil
	}
	problem := dash(oneLine(resp.GetProblem()))
	fmt.Fprintf(&b, "FAILED: %s does not verify\n"+
		"first bad record: seq %d, decision %s\n"+
		"problem: %s\n"+
		"records checked: %d\n"+
		"checkpoints checked: %d\n",
		scope, resp.GetFirstBadSeq(), dash(resp.GetFirstBadDecisionId()), problem, resp.GetRecordsChecked(), resp.GetCheckpointsChecked())
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return fmt.Errorf("%s does not verify at seq %d: %s", scope, resp.GetFirstBadSeq(), problem)
}

func auditReplayCommand() *command {
	return &command{
		name:    "replay",
		args:    "[--json] ID",
		summary: "re-evaluate a decision and compare it with the record",
		help: `Has the server re-evaluate decision ID with the bundle revision, evaluation
time and master-data facts it was made with, and prints "identical" with the
result, or "DIFFERENT" and each differing field ("effect: DENY -> ALLOW").
A replay marker's ID replays the original decision.

Exit status: 0 whether or not the result is identical (read the first word of
the output, or "identical" in --json); 1 if the decision cannot be replayed
(NotFound, its bundle revision is not stored) or the call failed.`,
		setup: func(fs *flag.FlagSet) runFunc {
			asJSON := fs.Bool("json", false, "print the response (original, replayed, differences) as JSON")
			return func(ctx context.Context, a *app, args []string) error {
				id, err := oneID(args)
				if err != nil {
					return err
				}
				c, err := a.dial(ctx)
				if err != nil {
					return err
				}
				defer c.Close()
				resp, err := c.ReplayDecision(ctx, id)
				if err != nil {
					return err
				}
				if *asJSON {
					return a.writeMessage(resp)
				}
				return printReplay(a.stdout, id, resp)
			}
		},
	}
}

// printReplay prints "identical ..." or "DIFFERENT ..." and the differences.
func printReplay(w io.Writer, id string, resp *tollgatev1.ReplayDecisionResponse) error {
	var b strings.Builder
	orig, replayed := resp.GetOriginal(), resp.GetReplayed()
	if resp.GetIdentical() {
		fmt.Fprintf(&b, "identical: decision %s replays to %s\n", id, summarize(replayed))
	} else {
		fmt.Fprintf(&b, "DIFFERENT: decision %s replays differently\n", id)
		fmt.Fprintf(&b, "recorded: %s\n", summarize(orig))
		fmt.Fprintf(&b, "replayed: %s\n", summarize(replayed))
		diffs := resp.GetDifferences()
		if len(diffs) == 0 {
			diffs = []string{"(the server listed no differences)"}
		}
		b.WriteString("differences:\n")
		for _, d := range diffs {
			fmt.Fprintf(&b, "  %s\n", oneLine(d))
		}
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// summarize prints a decision as "ALLOW [PO_WITHIN_LIMIT] under bundle R".
func summarize(resp *tollgatev1.DecideResponse) string {
	codes := make([]string, len(resp.GetReasons()))
	for i, r := range resp.GetReasons() {
		codes[i] = r.GetCode()
	}
	s := fmt.Sprintf("%s [%s]", effectName(resp.GetEffect()), strings.Join(codes, ", "))
	if len(resp.GetApprovers()) > 0 {
		s += " approvers [" + strings.Join(resp.GetApprovers(), ", ") + "]"
	}
	if rev := resp.GetBundleRevision(); rev != "" {
		s += " under bundle " + rev
	}
	return s
}

func auditExportCommand() *command {
	return &command{
		name:    "export",
		args:    "[--since TIME] [--until TIME] [--chain ID]",
		summary: "export records as NDJSON in commit order, for archiving",
		help: `Prints every record evaluated at or after --since (default: the start of the
log) and before --until (default: no upper bound) as NDJSON, one record per
line with short enum names, in COMMIT ORDER: by chain, then by seq, which
within a chain is oldest first, the order an archive is appended in. With
--chain only that chain is exported; otherwise every chain, one after the
other in chain id order. Each line reads back as a DecisionRecord (the
hashes included, so an archive can be verified).

Export pages by chain position (1000 records a page), not by time, so a
record committed while the export runs is either in it or after its end:
none is skipped, none printed twice, even while decisions are being made.
Each chain is read to its end as it stands when its last page is read.

The pages are spooled to a temporary file in $TMPDIR and printed only once
the last has been read, so a failed export prints nothing: an archive never
gets a partial export.`,
		setup: func(fs *flag.FlagSet) runFunc {
			since := fs.String("since", "", "first evaluation `TIME` (RFC 3339, inclusive; default: the start of the log)")
			until := fs.String("until", "", "end `TIME` (RFC 3339, exclusive)")
			chain := fs.String("chain", "", "export only chain `ID` (default: every chain)")
			return func(ctx context.Context, a *app, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				req, err := exportRequest(*since, *until)
				if err != nil {
					return err
				}
				req.ChainId = *chain
				c, err := a.dial(ctx)
				if err != nil {
					return err
				}
				defer c.Close()
				return exportSpooled(a.stdout, c.ExportPages(ctx, req))
			}
		},
	}
}

// exportRequest is the request of an export, or a usage error.
func exportRequest(since, until string) (*tollgatev1.ExportDecisionsRequest, error) {
	from, err := parseTime("--since", since)
	if err != nil {
		return nil, err
	}
	to, err := parseTime("--until", until)
	if err != nil {
		return nil, err
	}
	if from != nil && to != nil && !from.AsTime().Before(to.AsTime()) {
		return nil, usagef("--until must be after --since")
	}
	return &tollgatev1.ExportDecisionsRequest{From: from, To: to, PageSize: exportPageSize}, nil
}

// exportSpooled writes the records of pages to w as NDJSON, in page order. It
// spools them to a temporary file and copies that to w only after the last
// page, so an error on any page leaves w untouched; memory holds one page.
func exportSpooled(w io.Writer, pages iter.Seq2[*tollgatev1.ExportDecisionsResponse, error]) error {
	spool, err := os.CreateTemp("", "tollgatectl-export-*.ndjson")
	if err != nil {
		return fmt.Errorf("create export spool: %w", err)
	}
	defer os.Remove(spool.Name())
	defer spool.Close()

	bw := bufio.NewWriter(spool)
	for page, err := range pages {
		if err != nil {
			return err
		}
		if err := writeNDJSON(bw, page.GetRecords()); err != nil {
			return fmt.Errorf("spool export: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("spool export: %w", err)
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("spool export: %w", err)
	}
	if _, err := io.Copy(w, spool); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}
