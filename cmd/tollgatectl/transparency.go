package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit/transparency"
)

func auditCheckpointsCommand() *command {
	return &command{
		name:    "checkpoints",
		args:    "[--chain ID] [--limit N] [--all] [--json]",
		summary: "list the signed checkpoints of a chain, newest first",
		help: `Lists the checkpoints the server signed of a chain's Merkle tree, newest
first: when, the tree size (records covered), the root hash and the origin.
--chain is needed when the log has more than one chain. --json prints NDJSON,
one checkpoint per line, its signed note included, which is what an auditor
keeps outside the service (audit verify --since-checkpoint checks that the
log still extends it).`,
		setup: func(fs *flag.FlagSet) runFunc {
			chain := fs.String("chain", "", "the chain `ID` (default: the only chain)")
			limit := fs.Int("limit", 0, "page size `N`, at most 1000 (0: the server's default, 50)")
			all := fs.Bool("all", false, "follow the pages to the end instead of printing one page")
			asJSON := fs.Bool("json", false, "print NDJSON, one checkpoint per line")
			return func(ctx context.Context, a *app, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				if *limit < 0 || *limit > exportPageSize {
					return usagef("--limit must be 1 to %d (0: the server's default), got %d", exportPageSize, *limit)
				}
				c, err := a.dial(ctx)
				if err != nil {
					return err
				}
				defer c.Close()
				req := &tollgatev1.ListCheckpointsRequest{ChainId: *chain, PageSize: int32(*limit)}
				var cps []*tollgatev1.Checkpoint
				next := ""
				for page, err := range c.CheckpointPages(ctx, req) {
					if err != nil {
						return err
					}
					cps = append(cps, page.GetCheckpoints()...)
					if !*all {
						next = page.GetNextPageToken()
						break
					}
				}
				if *asJSON {
					return a.checkpointsJSON(cps, next)
				}
				return printCheckpoints(a.stdout, cps, next)
			}
		},
	}
}

func (a *app) checkpointsJSON(cps []*tollgatev1.Checkpoint, next string) error {
	w := bufio.NewWriter(a.stdout)
	for _, cp := range cps {
		line, err := tollgate.FormatJSONLine(cp)
		if err != nil {
			return err
		}
		w.Write(append(line, '\n'))
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	if next != "" {
		fmt.Fprintf(a.stderr, "next page: --page-token %s\n", next)
	}
	return nil
}

// printCheckpoints prints "SIGNED_AT SIZE ROOT ORIGIN" rows.
func printCheckpoints(w io.Writer, cps []*tollgatev1.Checkpoint, next string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(cps) == 0 {
		fmt.Fprintln(tw, "no checkpoints")
	} else {
		fmt.Fprintln(tw, "SIGNED_AT\tSIZE\tROOT\tORIGIN")
	}
	for _, cp := range cps {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", formatTime(cp.GetSignedAt()), cp.GetTreeSize(),
			base64.StdEncoding.EncodeToString(cp.GetRootHash()), cp.GetOrigin())
	}
	if next != "" {
		fmt.Fprintf(tw, "next page: --page-token %s\n", next)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

func auditProveCommand() *command {
	return &command{
		name:    "prove",
		args:    "[--wait] ID",
		summary: "print the receipt of a decision: an inclusion proof under a signed checkpoint",
		help: `Prints the receipt of decision ID as JSON (format "tollgate-receipt/v1"):
its chain, leaf index and record hash, an inclusion proof and a signed
checkpoint of the chain's tree that covers it. Save it and check it offline,
without the server, with 'tollgatectl audit verify-receipt --key signing.pub
FILE'. A record no checkpoint covers yet (one is signed every
--checkpoint-interval, 1s by default) fails with FailedPrecondition, unless
--wait waits for the next checkpoint within --timeout. An unknown ID exits 1
with NotFound.`,
		setup: func(fs *flag.FlagSet) runFunc {
			wait := fs.Bool("wait", false, "wait for the next checkpoint when none covers the record yet")
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
				resp, err := c.GetReceipt(ctx, id, *wait)
				if err != nil {
					return err
				}
				_, err = io.WriteString(a.stdout, resp.GetReceiptJson())
				if err != nil {
					return fmt.Errorf("write output: %w", err)
				}
				return nil
			}
		},
	}
}

func auditVerifyReceiptCommand() *command {
	return &command{
		name:    "verify-receipt",
		args:    "--key FILE RECEIPT",
		offline: true,
		summary: "verify a receipt offline, with the service's public key",
		help: `Checks the receipt in file RECEIPT (- for stdin), as 'audit prove' or
'decide --receipt' printed it, WITHOUT the server: its checkpoint carries a
valid signature by the verifier key in --key (the .pub file 'tollgate
keygen' wrote, or the audit_verifier_key the server logged at start) for
the receipt's chain, and its inclusion proof puts the record hash at the
leaf index of that checkpoint's tree. Prints "OK" and what is proved.
The flags may come after RECEIPT.

Exit status: 0 if the receipt verifies; 1 with the reason if it does not (a
wrong key, a tampered proof, hash or checkpoint, a malformed file); 2 for a
bad command line.`,
		setup: func(fs *flag.FlagSet) runFunc {
			key := fs.String("key", "", "verifier key `FILE` (signing.pub)")
			return func(ctx context.Context, a *app, args []string) error {
				// Accept "verify-receipt receipt.json --key signing.pub" too.
				if len(args) > 1 {
					rest := append([]string(nil), args[1:]...)
					if err := fs.Parse(rest); err != nil {
						return usagef("%v", err)
					}
					args = append([]string{args[0]}, fs.Args()...)
				}
				if len(args) != 1 || args[0] == "" {
					return usagef("want one RECEIPT file, got %d arguments", len(args))
				}
				if *key == "" {
					return usagef("--key is required")
				}
				v, err := transparency.LoadVerifier(*key)
				if err != nil {
					return err
				}
				data, name, err := a.readInput(args[0])
				if err != nil {
					return err
				}
				r, err := transparency.DecodeReceipt(data)
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				cp, err := transparency.VerifyReceipt(r, v, "")
				if err != nil {
					return fmt.Errorf("%s does not verify: %w", name, err)
				}
				_, err = fmt.Fprintf(a.stdout, "OK: decision %s is record %d of chain %s, in the tree of %d records with root %s, signed by %s\n",
					r.DecisionID, r.LeafIndex+1, r.ChainID, cp.Size, base64.StdEncoding.EncodeToString(cp.Root[:]), v.Name())
				if err != nil {
					return fmt.Errorf("write output: %w", err)
				}
				return nil
			}
		},
	}
}
