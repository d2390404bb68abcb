package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

func decideCommand() *command {
	return &command{
		name:    "decide",
		args:    "-f FILE [--id] [--receipt] [--min-masterdata-revision N]",
		summary: "ask for one decision",
		help: `Reads one request in the JSON form of policy-pack.md §2 and prints the
decision as JSON ("effect": "ALLOW" | "DENY" | "REQUIRE_APPROVAL"), or with
--id only its decision id, for a script: id=$(tollgatectl decide --id -f FILE).
The exit status is 0 whatever the effect: it reports the call, not the
decision.

--receipt asks for the decision's receipt too (want_receipt): the answer
waits for the next signed checkpoint (up to --checkpoint-interval, 1s by
default) and the JSON carries "receipt_json", which 'audit prove ID' also
prints. If the server could not produce the receipt in time, the decision
(made and recorded all the same) is printed without it, the reason goes to
stderr and the exit status is 1: fetch it later with 'audit prove --wait ID'.
A server in --audit-mode async refuses --receipt (FailedPrecondition) and
decides nothing.

--min-masterdata-revision N is a consistency token: the decision must be
evaluated on master data at revision N or newer (the revision a 'masterdata
apply' or an earlier decision reported). A server that is behind waits up to
its --consistency-wait; still behind, the call fails Unavailable saying how
far behind it is, nothing is decided, and the exit status is 1. It overrides
min_masterdata_revision in the request file.`,
		setup: func(fs *flag.FlagSet) runFunc {
			file := fs.String("f", "", "request JSON `FILE` (- for stdin)")
			idOnly := fs.Bool("id", false, "print only the decision id")
			receipt := fs.Bool("receipt", false, "ask for the decision's receipt (waits for the next signed checkpoint)")
			minRevision := fs.Uint64("min-masterdata-revision", 0, "consistency token: decide on master data at least this revision `N`, or fail Unavailable (0: any)")
			return func(ctx context.Context, a *app, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				if *file == "" {
					return usagef("-f is required")
				}
				data, name, err := a.readInput(*file)
				if err != nil {
					return err
				}
				req, err := tollgate.ParseDecideRequestJSON(data)
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				if *minRevision > 0 {
					req.MinMasterdataRevision = *minRevision
				}
				c, err := a.dial(ctx)
				if err != nil {
					return err
				}
				defer c.Close()
				var resp *tollgatev1.DecideResponse
				var missing string
				if *receipt {
					resp, missing, err = c.DecideWithReceipt(ctx, req)
				} else {
					resp, err = c.Decide(ctx, req)
				}
				if err != nil {
					return err
				}
				out := []byte(resp.GetDecisionId())
				if !*idOnly {
					if out, err = tollgate.FormatDecideResponseJSON(resp); err != nil {
						return err
					}
				}
				if err := a.write(out); err != nil {
					return err
				}
				if missing != "" {
					return fmt.Errorf("decision %s is recorded, without a receipt: %s", resp.GetDecisionId(), missing)
				}
				return nil
			}
		},
	}
}

func decideBatchCommand() *command {
	return &command{
		name:    "decide-batch",
		args:    "-f FILE [--id]",
		summary: "ask for several independent decisions in one call",
		help: `Reads a JSON array of requests and prints a JSON array of decisions in the
same order, or with --id only their decision ids, one a line in the same
order. The server caps a batch at 100 requests.`,
		setup: func(fs *flag.FlagSet) runFunc {
			file := fs.String("f", "", "JSON array `FILE` of requests (- for stdin)")
			idOnly := fs.Bool("id", false, "print only the decision ids, one a line")
			return func(ctx context.Context, a *app, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				if *file == "" {
					return usagef("-f is required")
				}
				data, name, err := a.readInput(*file)
				if err != nil {
					return err
				}
				reqs, err := tollgate.ParseDecideRequestsJSON(data)
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				if len(reqs) == 0 {
					return fmt.Errorf("%s: no requests in the array", name)
				}
				c, err := a.dial(ctx)
				if err != nil {
					return err
				}
				defer c.Close()
				resps, err := c.DecideBatch(ctx, reqs)
				if err != nil {
					return err
				}
				if *idOnly {
					ids := make([]string, len(resps))
					for i, resp := range resps {
						ids[i] = resp.GetDecisionId()
					}
					return a.write([]byte(strings.Join(ids, "\n")))
				}
				out, err := tollgate.FormatDecideResponsesJSON(resps)
				if err != nil {
					return err
				}
				return a.write(out)
			}
		},
	}
}

func noArgs(args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q (flags go before arguments)", args[0])
	}
	return nil
}
