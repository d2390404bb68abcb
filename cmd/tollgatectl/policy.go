package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

func policyCommand() *command {
	return &command{
		name:    "policy",
		summary: "show the active policy bundle and push a new one",
		help: `Shows which policy bundle revision decides and the recent candidates the
activation gate considered, and pushes a bundle tarball through that gate
(verify its signature if the server requires one, compile, run its Rego tests,
keep it for replay, swap it in). Pushing needs the admin role.`,
		subs: []*command{policyStatusCommand(), policyActivateCommand()},
	}
}

func policyStatusCommand() *command {
	return &command{
		name:    "status",
		args:    "[--json]",
		summary: "print the active revision and the candidate history",
		setup: func(fs *flag.FlagSet) runFunc {
			asJSON := fs.Bool("json", false, "print the response as JSON")
			return func(ctx context.Context, a *app, args []string) error {
				if len(args) > 0 {
					return usagef("unexpected argument %q", args[0])
				}
				c, err := a.dial(ctx)
				if err != nil {
					return err
				}
				defer c.Close()
				resp, err := tollgatev1.NewPolicyServiceClient(c.Conn()).Status(ctx, &tollgatev1.PolicyServiceStatusRequest{})
				if err != nil {
					return err
				}
				if *asJSON {
					return a.writeMessage(resp)
				}
				return printPolicyStatus(a.stdout, resp)
			}
		},
	}
}

func policyActivateCommand() *command {
	return &command{
		name:    "activate",
		args:    "[--json] FILE",
		summary: "push a bundle tarball through the activation gate",
		help: `Sends bundle tarball FILE (e.g. from 'tollgate bundle build' and 'tollgate
bundle sign') to the server, which activates it only if it verifies, compiles
and passes its own Rego tests. Prints the outcome and the effective revision.

Exit status: 0 if the bundle is active (activated, or already the active
revision); 1 if it was refused (FailedPrecondition with the reason) or the call
failed.`,
		setup: func(fs *flag.FlagSet) runFunc {
			asJSON := fs.Bool("json", false, "print the response as JSON")
			return func(ctx context.Context, a *app, args []string) error {
				if len(args) != 1 {
					return usagef("want exactly one bundle FILE")
				}
				data, err := os.ReadFile(args[0])
				if err != nil {
					return fmt.Errorf("read bundle: %w", err)
				}
				c, err := a.dial(ctx)
				if err != nil {
					return err
				}
				defer c.Close()
				resp, err := tollgatev1.NewPolicyServiceClient(c.Conn()).Activate(ctx, &tollgatev1.ActivateRequest{Bundle: data})
				if err != nil {
					return err
				}
				if *asJSON {
					return a.writeMessage(resp)
				}
				cand := resp.GetCandidate()
				_, err = fmt.Fprintf(a.stdout, "%s %s\n", candidateOutcomeName(cand.GetOutcome()), cand.GetRevision())
				return err
			}
		},
	}
}

func printPolicyStatus(w io.Writer, st *tollgatev1.PolicyServiceStatusResponse) error {
	at := "-"
	if st.GetActivatedAt() != nil {
		at = st.GetActivatedAt().AsTime().Format(time.RFC3339)
	}
	fmt.Fprintf(w, "active: %s (since %s)\n", st.GetActiveRevision(), at)
	if ev := st.GetEvaluation(); ev != nil {
		fmt.Fprintf(w, "evaluation: %s (exactness gate %s", ev.GetPath(), ev.GetGate())
		if ev.GetChecked() > 0 {
			fmt.Fprintf(w, ": %d requests compared in %s", ev.GetChecked(), ev.GetElapsed().AsDuration().Round(time.Millisecond))
		}
		if n := ev.GetShadowChecks(); n > 0 {
			fmt.Fprintf(w, "; %d live decisions checked again on topdown", n)
		}
		fmt.Fprintln(w, ")")
		if ev.GetReason() != "" {
			fmt.Fprintf(w, "evaluation reason: %s\n", oneLine(ev.GetReason()))
		}
		if n := ev.GetFallbacks(); n > 0 {
			fmt.Fprintf(w, "evaluation fallbacks: %d decisions met an IR evaluator error and were decided on topdown\n", n)
		}
	}
	if len(st.GetHistory()) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\ncandidates, newest first:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tOUTCOME\tREVISION\tSOURCE\tREASON")
	for _, c := range st.GetHistory() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.GetAt().AsTime().Format(time.RFC3339), candidateOutcomeName(c.GetOutcome()),
			c.GetRevision(), c.GetSource(), oneLine(c.GetReason()))
	}
	return tw.Flush()
}

// candidateOutcomeName is a candidate outcome without its enum prefix, e.g. REFUSED_TESTS.
func candidateOutcomeName(o tollgatev1.CandidateOutcome) string {
	return strings.TrimPrefix(o.String(), "CANDIDATE_OUTCOME_")
}
