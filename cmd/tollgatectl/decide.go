package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	tollgate "github.com/tollgate/tollgate/clients/go"
)

func decideCommand() *command {
	return &command{
		name:    "decide",
		args:    "-f FILE [--id]",
		summary: "ask for one decision",
		help: `Reads one request in the JSON form of policy-pack.md §2 and prints the
decision as JSON ("effect": "ALLOW" | "DENY" | "REQUIRE_APPROVAL"), or with
--id only its decision id, for a script: id=$(tollgatectl decide --id -f FILE).
The exit status is 0 whatever the effect: it reports the call, not the
decision.`,
		setup: func(fs *flag.FlagSet) runFunc {
			file := fs.String("f", "", "request JSON `FILE` (- for stdin)")
			idOnly := fs.Bool("id", false, "print only the decision id")
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
				c, err := a.dial(ctx)
				if err != nil {
					return err
				}
				defer c.Close()
				resp, err := c.Decide(ctx, req)
				if err != nil {
					return err
				}
				if *idOnly {
					return a.write([]byte(resp.GetDecisionId()))
				}
				out, err := tollgate.FormatDecideResponseJSON(resp)
				if err != nil {
					return err
				}
				return a.write(out)
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
