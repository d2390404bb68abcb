package api

import (
	"cmp"
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/engine"
)

// Bounds of ImpactAnalysis.
const (
	// DefaultImpactLast is how many records an ImpactAnalysis without last re-evaluates.
	DefaultImpactLast = 1000
	// MaxImpactLast bounds last: one call analyses at most this many decisions; a larger last is
	// InvalidArgument.
	MaxImpactLast = 100_000
	// DefaultImpactTimeout is the server-side deadline of one ImpactAnalysis when ImpactConfig.Timeout
	// is zero.
	DefaultImpactTimeout = 2 * time.Minute
	// impactExamplesPerChange and maxImpactExamples bound the examples of each kind of change and in all.
	impactExamplesPerChange = 3
	maxImpactExamples       = 50
)

// Gate vets a candidate bundle with the activation gate's checks, activating nothing;
// *bundles.Manager is the implementation (Manager.Check). A refusal is a *bundles.RefusedError.
type Gate interface {
	Check(ctx context.Context, data []byte) (*engine.Compiled, error)
}

// ImpactConfig configures ImpactAnalysis.
type ImpactConfig struct {
	// Gate vets every candidate before anything is evaluated: signature (with a verification key),
	// compile under the engine's capabilities, decision rule defined. Without a Gate ImpactAnalysis
	// refuses every call.
	Gate Gate
	// Timeout is the server-side deadline of one call. Default DefaultImpactTimeout.
	Timeout time.Duration
	// Workers is how many of the call's evaluations wait for or hold an engine evaluator at once.
	// Default half the CPUs (at least one), so the analysis leaves the other half of the CPUs to live
	// decisions, which evaluators take first anyway.
	Workers int
}

// WithImpact configures ImpactAnalysis and returns s. Call it before s serves.
func (s *AuditServer) WithImpact(cfg ImpactConfig) *AuditServer {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultImpactTimeout
	}
	if cfg.Workers <= 0 {
		cfg.Workers = max(1, runtime.GOMAXPROCS(0)/2)
	}
	s.impact = cfg
	return s
}

// notComparable labels examples of records the candidate could not judge on the recorded facts.
const notComparable = "not comparable"

// ImpactAnalysis vets a candidate bundle with the activation gate's checks (ImpactConfig.Gate), without
// activating or keeping it, and re-evaluates the newest last decision records with it, each with its
// recorded request (normalized as replay does), evaluation time and master-data facts. It reports how
// many results would change, the from -> to effect matrix, the changed primary reason codes and example
// records per kind of change.
//
// A record is not comparable when the candidate fails closed with POLICY_ERROR where the original did
// not (typically it read master data the original never read, which the recorded facts cannot answer),
// when the record cannot be evaluated, or when its request had masked fields and the candidate's result
// differs while the record's own bundle does not reproduce the recorded result from the masked request
// either (the change may be the masking's, see maskingChanges); those are counted apart, not as changes.
//
// A refused candidate is InvalidArgument on bundle, with the gate's reason; its Rego tests are not run.
// Evaluations wait for the engine's evaluators beside live decisions, which go first, ImpactConfig.Workers
// at a time, and the call ends with DeadlineExceeded after ImpactConfig.Timeout.
func (s *AuditServer) ImpactAnalysis(ctx context.Context, req *tollgatev1.ImpactAnalysisRequest) (*tollgatev1.ImpactAnalysisResponse, error) {
	release, err := s.admitLongRead(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	if len(req.GetBundle()) == 0 {
		return nil, toStatus(s.log, badField("bundle", "is required"))
	}
	last := int(req.GetLast())
	switch {
	case last < 0 || last > MaxImpactLast:
		return nil, toStatus(s.log, badField("last", "must be between 1 and %d", MaxImpactLast))
	case last == 0:
		last = DefaultImpactLast
	}
	if s.impact.Gate == nil {
		return nil, status.Error(codes.FailedPrecondition, "impact analysis has no activation gate to vet candidates with")
	}
	ctx, cancel := context.WithTimeout(ctx, s.impact.Timeout)
	defer cancel()
	candidate, err := s.impact.Gate.Check(ctx, req.GetBundle())
	if err != nil {
		return nil, toStatus(s.log, badField("bundle", "%v", err))
	}

	// The lister pages through the log while the workers evaluate; each result lands at its record's
	// position, so the summary sees records newest first whatever the workers' order.
	type job struct {
		i   int
		rec *audit.Record
	}
	results := make([]impactResult, last)
	jobs := make(chan job, 256)
	var wg sync.WaitGroup
	for range s.impact.Workers {
		wg.Go(func() {
			for j := range jobs {
				results[j.i] = s.impactOf(ctx, candidate, j.rec)
			}
		})
	}
	n, listErr := s.listDecisions(ctx, last, func(i int, rec *audit.Record) { jobs <- job{i, rec} })
	close(jobs)
	wg.Wait()
	if listErr != nil {
		return nil, toStatus(s.log, fmt.Errorf("impact analysis: %w", listErr))
	}
	if err := ctx.Err(); err != nil {
		return nil, toStatus(s.log, err)
	}
	out := summarizeImpact(results[:n])
	out.CandidateRevision = candidate.Revision()
	return out, nil
}

// listDecisions calls fn with the newest decision records, newest first, until last have been seen or
// the log ends. Replay markers are skipped: they repeat an earlier decision; so are chain-break
// records, which are no decision at all.
func (s *AuditServer) listDecisions(ctx context.Context, last int, fn func(i int, rec *audit.Record)) (int, error) {
	n := 0
	f := audit.Filter{PageSize: audit.MaxPageSize}
	for {
		page, err := s.store.List(ctx, f)
		if err != nil {
			return n, fmt.Errorf("list decisions: %w", err)
		}
		for _, rec := range page.Records {
			if k := rec.GetKind(); k == tollgatev1.RecordKind_RECORD_KIND_REPLAY || k == tollgatev1.RecordKind_RECORD_KIND_CHAIN_BREAK {
				continue
			}
			fn(n, rec)
			if n++; n == last {
				return n, nil
			}
		}
		if page.NextPageToken == "" {
			return n, nil
		}
		f.PageToken = page.NextPageToken
	}
}

// impactResult is one record re-evaluated under the candidate.
type impactResult struct {
	comparable bool
	changed    bool
	original   *tollgatev1.DecideResponse
	candidate  *tollgatev1.DecideResponse // nil when the record could not be evaluated
}

func (s *AuditServer) impactOf(ctx context.Context, c *engine.Compiled, rec *audit.Record) impactResult {
	r := impactResult{original: responseFromRecord(rec)}
	if ctx.Err() != nil {
		return r
	}
	in, err := s.limits.normalize(rec.GetRequest(), "record.request.")
	if err != nil {
		return r
	}
	facts, err := engine.DecodeFacts([]byte(rec.GetFactsJson()))
	if err != nil {
		return r
	}
	res := s.engine.EvaluateRecorded(ctx, c, in, rec.GetEvaluatedAt().AsTime(), facts)
	r.candidate = responseFor(rec.GetDecisionId(), res)
	r.candidate.MasterdataRevision = rec.GetMasterdataRevision()
	if res.Failure == engine.CodePolicyError && primaryCode(r.original) != engine.CodePolicyError {
		return r
	}
	r.changed = !sameResult(r.original, r.candidate)
	r.comparable = !r.changed || !s.maskingChanges(ctx, rec, in, r.original)
	r.changed = r.changed && r.comparable
	return r
}

// sameResult reports whether two answers agree in effect, reasons and approvers.
func sameResult(a, b *tollgatev1.DecideResponse) bool {
	return a.GetEffect() == b.GetEffect() && equalReasons(a.GetReasons(), b.GetReasons()) && slices.Equal(a.GetApprovers(), b.GetApprovers())
}

// maskingChanges reports whether rec's result may change through the masking of its request alone: it
// has masked fields (audit.MaskedPaths) and its own bundle, evaluating the masked request in, does not
// give the recorded answer, or cannot be had. Such a record is not comparable: a change under the
// candidate may be the marker's doing.
func (s *AuditServer) maskingChanges(ctx context.Context, rec *audit.Record, in *engine.Request, original *tollgatev1.DecideResponse) bool {
	if len(audit.MaskedPaths(rec.GetRequest())) == 0 {
		return false
	}
	own, err := s.compiledFor(ctx, rec.GetBundleRevision())
	if err != nil {
		return true
	}
	facts, err := engine.DecodeFacts([]byte(rec.GetFactsJson())) // fresh: the candidate's evaluation may have added to its cache
	if err != nil {
		return true
	}
	return !sameResult(original, responseFor(rec.GetDecisionId(), s.engine.EvaluateRecorded(ctx, own, in, rec.GetEvaluatedAt().AsTime(), facts)))
}

func primaryCode(r *tollgatev1.DecideResponse) string {
	if len(r.GetReasons()) == 0 {
		return ""
	}
	return r.GetReasons()[0].GetCode()
}

// change names the kind of change from r.original to r.candidate.
func (r impactResult) change() string {
	if !r.comparable {
		return notComparable
	}
	from, to := r.original, r.candidate
	kind := shortEffect(from.GetEffect()) + " -> " + shortEffect(to.GetEffect())
	switch {
	case primaryCode(from) != primaryCode(to):
		kind += fmt.Sprintf(" (%s -> %s)", primaryCode(from), primaryCode(to))
	case from.GetEffect() == to.GetEffect():
		kind += fmt.Sprintf(" (%s; reasons or approvers differ)", primaryCode(from))
	}
	return kind
}

// summarizeImpact aggregates results, which are in record order (newest first), so the examples are
// the newest records of each kind of change.
func summarizeImpact(results []impactResult) *tollgatev1.ImpactAnalysisResponse {
	out := &tollgatev1.ImpactAnalysisResponse{Total: uint64(len(results))}
	type effects struct{ from, to tollgatev1.Effect }
	type codes struct{ from, to string }
	matrix := map[effects]uint64{}
	reasonChanges := map[codes]uint64{}
	perKind := map[string]int{}
	for _, r := range results {
		if r.comparable {
			matrix[effects{r.original.GetEffect(), r.candidate.GetEffect()}]++
		} else {
			out.NotComparable++
		}
		if !r.comparable || r.changed {
			if r.changed {
				out.Changed++
				if from, to := primaryCode(r.original), primaryCode(r.candidate); from != to {
					reasonChanges[codes{from, to}]++
				}
			}
			kind := r.change()
			if perKind[kind] < impactExamplesPerChange && len(out.Examples) < maxImpactExamples {
				perKind[kind]++
				out.Examples = append(out.Examples, &tollgatev1.ImpactExample{
					DecisionId: r.original.GetDecisionId(), Original: r.original, Candidate: r.candidate, Change: kind,
				})
			}
		}
	}
	for k, n := range matrix {
		out.Matrix = append(out.Matrix, &tollgatev1.EffectChange{From: k.from, To: k.to, Count: n})
	}
	slices.SortFunc(out.Matrix, func(a, b *tollgatev1.EffectChange) int {
		return cmp.Or(cmp.Compare(a.GetFrom(), b.GetFrom()), cmp.Compare(a.GetTo(), b.GetTo()))
	})
	for k, n := range reasonChanges {
		out.ChangedReasonCodes = append(out.ChangedReasonCodes, &tollgatev1.ReasonCodeChange{From: k.from, To: k.to, Count: n})
	}
	slices.SortFunc(out.ChangedReasonCodes, func(a, b *tollgatev1.ReasonCodeChange) int {
		return cmp.Or(cmp.Compare(b.GetCount(), a.GetCount()), cmp.Compare(a.GetFrom(), b.GetFrom()), cmp.Compare(a.GetTo(), b.GetTo()))
	})
	return out
}
