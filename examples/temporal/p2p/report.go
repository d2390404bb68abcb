package p2p

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// WriteReport prints one line per workflow and a summary: final states,
// where and why workflows ended, the decisions by effect, approvals, AI
// hand-overs and replays.
func WriteReport(w io.Writer, results []Result) {
	for _, r := range results {
		fmt.Fprintln(w, resultLine(r))
	}
	fmt.Fprintln(w)

	statuses := map[string]int{}
	endedAt := map[string]int{}
	reasons := map[string]int{}
	effects := map[string]int{}
	var decisions, approvals, replays, errs int
	ai := map[string]int{}
	for _, r := range results {
		if r.Err != nil {
			errs++
			statuses["ERROR"]++
			continue
		}
		o := r.Outcome
		statuses[string(o.Status)]++
		if o.Status != Completed {
			endedAt[o.Step]++
			if len(o.Reasons) > 0 {
				reasons[o.Reasons[0].Code]++
			}
		}
		for _, d := range o.Decisions {
			decisions++
			effects[d.Effect]++
			if d.Role != "" {
				approvals++
			}
			if d.Replay {
				replays++
			}
			if d.Step == StepAllocation {
				ai[map[string]string{Allow: "executed by the agent", RequireApproval: "handed over to a human", Deny: "refused"}[d.Effect]]++
			}
		}
	}
	fmt.Fprintf(w, "%d workflows: %s\n", len(results), counts(statuses))
	fmt.Fprintf(w, "decisions: %d (%s), of which %d approvals or human tasks; %d answered as replays of a retried activity\n",
		decisions, counts(effects), approvals, replays)
	if len(endedAt) > 0 {
		fmt.Fprintf(w, "ended early at: %s\n", counts(endedAt))
		fmt.Fprintf(w, "first reasons: %s\n", counts(reasons))
	}
	if len(ai) > 0 {
		fmt.Fprintf(w, "AI allocations: %s\n", counts(ai))
	}
}

func resultLine(r Result) string {
	o := r.Order
	head := fmt.Sprintf("%-22s %10s %-8s %s %s", r.WorkflowID, Money(o.AmountCents()), o.Category, o.Supplier, o.Site)
	if r.Err != nil {
		return head + "  ERROR " + r.Err.Error()
	}
	line := fmt.Sprintf("%s  %-9s %2d decisions", head, r.Outcome.Status, len(r.Outcome.Decisions))
	if r.Outcome.Status == Completed {
		var approved []string
		for _, d := range r.Outcome.Decisions {
			if d.Role != "" {
				approved = append(approved, d.Role+"="+d.Actor)
			}
		}
		if len(approved) > 0 {
			line += "  approved by " + strings.Join(approved, ", ")
		}
		return line
	}
	if len(r.Outcome.Reasons) > 0 {
		first := r.Outcome.Reasons[0]
		line += fmt.Sprintf("  at %s: %s (%s)", r.Outcome.Step, first.Code, first.Message)
	}
	return line
}

// counts formats a tally as "A 3, B 2", largest first.
func counts(m map[string]int) string {
	keys := slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		return cmp.Or(cmp.Compare(m[b], m[a]), cmp.Compare(a, b))
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
