package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

func impactCommand() *command {
	return &command{
		name:    "impact",
		args:    "--bundle FILE [--last N] [--json]",
		summary: "what a candidate bundle would change in recent decisions",
		help: `Has the server re-evaluate the newest N recorded decisions under candidate
bundle FILE, each with its recorded request, evaluation time and master-data
facts, without activating anything, and prints how many would change, the
from -> to effect matrix, the changed primary reason codes and example decision
ids per kind of change. Records the candidate cannot judge on the recorded
facts (it reads master data the original never read) are counted as not
comparable rather than as changes.`,
		setup: func(fs *flag.FlagSet) runFunc {
			file := fs.String("bundle", "", "candidate bundle tarball `FILE` (required)")
			last := fs.Int("last", 1000, "re-evaluate the newest `N` decisions")
			asJSON := fs.Bool("json", false, "print the response as JSON")
			return func(ctx context.Context, a *app, args []string) error {
				if len(args) > 0 {
					return usagef("unexpected argument %q", args[0])
				}
				if *file == "" {
					return usagef("--bundle is required")
				}
				if *last <= 0 {
					return usagef("--last must be positive")
				}
				data, err := os.ReadFile(*file)
				if err != nil {
					return fmt.Errorf("read bundle: %w", err)
				}
				c, err := a.dial(ctx)
				if err != nil {
					return err
				}
				defer c.Close()
				resp, err := c.Audit().ImpactAnalysis(ctx, &tollgatev1.ImpactAnalysisRequest{Bundle: data, Last: int32(*last)})
				if err != nil {
					return err
				}
				if *asJSON {
					return a.writeMessage(resp)
				}
				return printImpact(a.stdout, resp)
			}
		},
	}
}

func printImpact(w io.Writer, r *tollgatev1.ImpactAnalysisResponse) error {
	fmt.Fprintf(w, "candidate %s over the last %d decisions: %d would change, %d not comparable\n",
		r.GetCandidateRevision(), r.GetTotal(), r.GetChanged(), r.GetNotComparable())
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nEFFECT FROM\tTO\tCOUNT")
	for _, m := range r.GetMatrix() {
		fmt.Fprintf(tw, "%s\t%s\t%d\n", shortEnum(m.GetFrom().String()), shortEnum(m.GetTo().String()), m.GetCount())
	}
	if len(r.GetChangedReasonCodes()) > 0 {
		fmt.Fprintln(tw, "\nPRIMARY REASON FROM\tTO\tCOUNT")
		for _, c := range r.GetChangedReasonCodes() {
			fmt.Fprintf(tw, "%s\t%s\t%d\n", c.GetFrom(), c.GetTo(), c.GetCount())
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.GetExamples()) > 0 {
		fmt.Fprintln(w, "\nexamples:")
		for _, e := range r.GetExamples() {
			fmt.Fprintf(w, "  %s  %s\n", e.GetDecisionId(), e.GetChange())
		}
	}
	return nil
}

// shortEnum drops an Effect's EFFECT_ prefix.
func shortEnum(s string) string { return strings.TrimPrefix(s, "EFFECT_") }
