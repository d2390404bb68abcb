package api

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/rs/zerolog"
	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/audit"
	"github.com/tollgate/tollgate/server/bundles"
	"github.com/tollgate/tollgate/server/engine"
)

// AuditServer implements tollgatev1.AuditServiceServer: read-only access to the decision log, chain
// verification and exact replay of recorded decisions.
type AuditServer struct {
	tollgatev1.UnimplementedAuditServiceServer
	store  audit.Store
	engine *engine.Engine
	limits Limits
	log    zerolog.Logger
	impact ImpactConfig // see WithImpact
	verify verifyConfig // see WithCheckpointVerifier

	transparency *Transparency // see WithTransparency

	// longReads admits limits.MaxLongAuditReads long reads at a time; see admitLongRead.
	longReads *semaphore.Weighted

	mu       sync.Mutex
	compiled map[string]*engine.Compiled // replay bundles by revision
}

// maxReplayBundles bounds the compiled bundles kept for replay; past revisions are rarely replayed in
// bulk, and each costs a compile.
const maxReplayBundles = 8

// NewAuditServer returns the audit service over store; eng evaluates replays. At most
// limits.MaxLongAuditReads long reads (VerifyLog, ExportDecisions, ImpactAnalysis) run at once.
func NewAuditServer(store audit.Store, eng *engine.Engine, limits Limits, log zerolog.Logger) *AuditServer {
	limits = limits.withDefaults()
	return &AuditServer{store: store, engine: eng, limits: limits, log: log, compiled: map[string]*engine.Compiled{},
		longReads: semaphore.NewWeighted(int64(limits.MaxLongAuditReads))}
}

// admitLongRead waits, in arrival order, for one of the MaxLongAuditReads slots of calls that read
// much of the log, so that they can never hold every connection of the store's audit read pool
// (short reads such as GetDecision still get through) nor every core. A caller whose deadline
// passes while it waits gets ResourceExhausted (the service is busy with other long reads: retry
// later), one that cancels gets Canceled. The caller must call release when done.
func (s *AuditServer) admitLongRead(ctx context.Context) (release func(), err error) {
	if err := s.longReads.Acquire(ctx, 1); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, status.Errorf(codes.ResourceExhausted,
				"%d long audit reads (verify, export, impact) already running; none finished before the deadline, retry later",
				s.limits.MaxLongAuditReads)
		}
		return nil, toStatus(s.log, err)
	}
	return func() { s.longReads.Release(1) }, nil
}

// ListDecisions returns one page of records, newest first.
func (s *AuditServer) ListDecisions(ctx context.Context, req *tollgatev1.ListDecisionsRequest) (*tollgatev1.ListDecisionsResponse, error) {
	if req.GetPageSize() < 0 {
		return nil, toStatus(s.log, badField("page_size", "must not be negative"))
	}
	if _, ok := tollgatev1.Effect_name[int32(req.GetEffect())]; !ok {
		return nil, toStatus(s.log, badField("effect", "unknown effect %d", req.GetEffect()))
	}
	f := audit.Filter{
		ActorID:        req.GetActorId(),
		Action:         req.GetAction(),
		ResourceType:   req.GetResourceType(),
		ResourceID:     req.GetResourceId(),
		Effect:         req.GetEffect(),
		ReasonCode:     req.GetReasonCode(),
		BundleRevision: req.GetBundleRevision(),
		WorkflowID:     req.GetWorkflowId(),
		PageSize:       int(req.GetPageSize()),
		PageToken:      req.GetPageToken(),
	}
	if req.GetFrom() != nil {
		f.From = req.GetFrom().AsTime()
	}
	if req.GetTo() != nil {
		f.To = req.GetTo().AsTime()
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return nil, toStatus(s.log, badField("to", "must be after from"))
	}
	page, err := s.store.List(ctx, f)
	if err != nil {
		return nil, toStatus(s.log, fmt.Errorf("list decisions: %w", err))
	}
	return &tollgatev1.ListDecisionsResponse{Records: page.Records, NextPageToken: page.NextPageToken}, nil
}

// GetDecision returns one record.
func (s *AuditServer) GetDecision(ctx context.Context, req *tollgatev1.GetDecisionRequest) (*tollgatev1.GetDecisionResponse, error) {
	if req.GetDecisionId() == "" {
		return nil, toStatus(s.log, badField("decision_id", "is required"))
	}
	rec, err := s.store.Get(ctx, req.GetDecisionId())
	if err != nil {
		return nil, toStatus(s.log, fmt.Errorf("decision %s: %w", req.GetDecisionId(), err))
	}
	return &tollgatev1.GetDecisionResponse{Record: rec}, nil
}

// VerifyLog verifies a chain (or every chain) in one snapshot of the store: its records, its Merkle
// tree, its stored checkpoints and, given since_checkpoint, that the log extends that checkpoint
// (audit.VerifyLog). It reports the first problem. A since_checkpoint that does not parse, is not
// signed by the configured key, or names another log or chain is InvalidArgument. It is a long read
// (admitLongRead).
func (s *AuditServer) VerifyLog(ctx context.Context, req *tollgatev1.VerifyLogRequest) (*tollgatev1.VerifyLogResponse, error) {
	release, err := s.admitLongRead(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	rep, err := audit.VerifyLog(ctx, s.store, audit.VerifyOptions{ChainID: req.GetChainId(), Since: []byte(req.GetSinceCheckpoint()),
		Verifier: s.verify.verifier, OriginPrefix: s.verify.originPrefix})
	if errors.Is(err, audit.ErrInvalidArgument) && req.GetSinceCheckpoint() != "" {
		return nil, toStatus(s.log, badField("since_checkpoint", "%v", err))
	}
	if err != nil {
		return nil, toStatus(s.log, fmt.Errorf("verify audit log: %w", err))
	}
	out := &tollgatev1.VerifyLogResponse{
		Ok:                 rep.OK,
		RecordsChecked:     rep.RecordsChecked,
		FirstBadSeq:        rep.FirstBadSeq,
		FirstBadDecisionId: rep.FirstBadDecisionID,
		ChainId:            rep.ChainID,
		CheckpointsChecked: rep.CheckpointsChecked,
		TreeSize:           uint64(rep.TreeSize),
		RootHash:           rep.Root,
	}
	if !rep.OK {
		out.Problem = rep.Message()
		s.log.Warn().Str("chain_id", rep.ChainID).Uint64("seq", rep.FirstBadSeq).Str("decision_id", rep.FirstBadDecisionID).
			Str("problem", out.Problem).Msg("audit log does not verify")
	}
	return out, nil
}

// ExportDecisions returns one page of records in commit order: by chain_id, then seq. The page token
// names the last chain position returned, so records committed while a reader pages are on a later
// page (a chain's records commit in seq order and without gaps), never skipped, whatever their
// evaluated_at. With every chain (no chain_id), a chain is read to its end as it stands before the
// next begins. Each page is a long read (admitLongRead).
func (s *AuditServer) ExportDecisions(ctx context.Context, req *tollgatev1.ExportDecisionsRequest) (*tollgatev1.ExportDecisionsResponse, error) {
	if req.GetPageSize() < 0 {
		return nil, toStatus(s.log, badField("page_size", "must not be negative"))
	}
	q := audit.ExportQuery{Limit: int(req.GetPageSize())}
	size := q.EffectiveLimit()
	if req.GetFrom() != nil {
		q.From = req.GetFrom().AsTime()
	}
	if req.GetTo() != nil {
		q.To = req.GetTo().AsTime()
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		return nil, toStatus(s.log, badField("to", "must be after from"))
	}
	var pos exportPosition
	if req.GetPageToken() != "" {
		var err error
		if pos, err = decodeExportToken(req.GetPageToken()); err != nil {
			return nil, toStatus(s.log, badField("page_token", "%v", err))
		}
		if req.GetChainId() != "" && pos.chainID != req.GetChainId() {
			return nil, toStatus(s.log, badField("page_token", "names chain %q, not the requested chain %q", pos.chainID, req.GetChainId()))
		}
	}
	release, err := s.admitLongRead(ctx)
	if err != nil {
		return nil, err
	}
	defer release()

	chains := []string{req.GetChainId()}
	if req.GetChainId() == "" {
		if chains, err = s.store.Chains(ctx); err != nil {
			return nil, toStatus(s.log, fmt.Errorf("export decisions: %w", err))
		}
	}
	out := &tollgatev1.ExportDecisionsResponse{}
	for _, c := range chains {
		if c < pos.chainID {
			continue // exported on earlier pages
		}
		q.ChainID, q.AfterSeq, q.Limit = c, 0, size-len(out.Records)
		if c == pos.chainID {
			q.AfterSeq = pos.seq
		}
		recs, err := s.store.Export(ctx, q)
		if err != nil {
			return nil, toStatus(s.log, fmt.Errorf("export decisions of chain %s: %w", c, err))
		}
		out.Records = append(out.Records, recs...)
		if len(recs) == q.Limit {
			// The page is full; the chain may go on.
			out.NextPageToken = encodeExportToken(exportPosition{c, recs[len(recs)-1].GetSeq()})
			return out, nil
		}
	}
	return out, nil
}

// exportPosition is a place in the log: after record seq of chain chainID.
type exportPosition struct {
	chainID string
	seq     uint64
}

// An export page token is base64url("e<seq>|<chain_id>"): the chain id last, since it may hold any
// character; the "e" tells it from a ListDecisions token, which starts with a time.
func encodeExportToken(p exportPosition) string {
	return base64.RawURLEncoding.EncodeToString([]byte("e" + strconv.FormatUint(p.seq, 10) + "|" + p.chainID))
}

var errExportToken = errors.New("not a next_page_token of ExportDecisions")

func decodeExportToken(tok string) (exportPosition, error) {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return exportPosition{}, errExportToken
	}
	rest, ok := strings.CutPrefix(string(raw), "e")
	if !ok {
		return exportPosition{}, errExportToken
	}
	seq, chain, ok := strings.Cut(rest, "|")
	n, err := strconv.ParseUint(seq, 10, 64)
	if !ok || err != nil || n == 0 || chain == "" {
		return exportPosition{}, errExportToken
	}
	return exportPosition{chain, n}, nil
}

// ReplayDecision re-evaluates a recorded decision with the bundle revision, evaluation time and
// master-data facts it was made with, and reports whether the result is identical. The request
// evaluated is the logged one, masked fields (audit.MaskedPaths) holding audit.Masked: if the
// record has masked fields and the replay differs, it is FailedPrecondition naming the fields and
// the differences, since the difference may come from the masking alone; if it does not differ,
// the replay is identical as usual.
func (s *AuditServer) ReplayDecision(ctx context.Context, req *tollgatev1.ReplayDecisionRequest) (*tollgatev1.ReplayDecisionResponse, error) {
	if req.GetDecisionId() == "" {
		return nil, toStatus(s.log, badField("decision_id", "is required"))
	}
	rec, err := s.store.Get(ctx, req.GetDecisionId())
	if err != nil {
		return nil, toStatus(s.log, fmt.Errorf("decision %s: %w", req.GetDecisionId(), err))
	}
	if rec.GetKind() == tollgatev1.RecordKind_RECORD_KIND_CHAIN_BREAK {
		return nil, status.Errorf(codes.FailedPrecondition, "%s is a chain-break record, not a decision: there is nothing to replay", rec.GetDecisionId())
	}
	if rec.GetKind() == tollgatev1.RecordKind_RECORD_KIND_REPLAY {
		// A replay marker repeats an earlier answer; the decision to replay is the original.
		if rec, err = s.store.Get(ctx, rec.GetReplayOf()); err != nil {
			return nil, toStatus(s.log, fmt.Errorf("original of replay marker %s: %w", req.GetDecisionId(), err))
		}
	}
	compiled, err := s.compiledFor(ctx, rec.GetBundleRevision())
	if err != nil {
		return nil, toStatus(s.log, err)
	}
	in, err := s.limits.normalize(rec.GetRequest(), "record.request.")
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "recorded request of %s cannot be evaluated: %v", rec.GetDecisionId(), err)
	}
	facts, err := engine.DecodeFacts([]byte(rec.GetFactsJson()))
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "recorded facts of %s: %v", rec.GetDecisionId(), err)
	}
	res := s.engine.EvaluateRecorded(ctx, compiled, in, rec.GetEvaluatedAt().AsTime(), facts)

	original := responseFromRecord(rec)
	replayed := responseFor(rec.GetDecisionId(), res)
	replayed.MasterdataRevision = rec.GetMasterdataRevision() // the facts are that revision's
	diffs := differences(original, replayed)
	if masked := audit.MaskedPaths(rec.GetRequest()); len(diffs) > 0 && len(masked) > 0 {
		// The log never held the masked values, so a difference may be the policy reading the
		// marker rather than a change of behaviour: no exact replay can be claimed either way.
		return nil, status.Errorf(codes.FailedPrecondition,
			"decision %s cannot be replayed exactly: request field %s was masked in the log (--audit-mask), and the replay with %q in its place differs: %s",
			rec.GetDecisionId(), strings.Join(masked, ", "), audit.Masked, strings.Join(diffs, "; "))
	}
	return &tollgatev1.ReplayDecisionResponse{Identical: len(diffs) == 0, Original: original, Replayed: replayed, Differences: diffs}, nil
}

// compiledFor returns the bundle of a recorded revision, compiled: the active one if it matches, else
// the one the audit log kept when it was activated.
func (s *AuditServer) compiledFor(ctx context.Context, revision string) (*engine.Compiled, error) {
	if active, _ := s.engine.Active(); active != nil && active.Revision() == revision {
		return active, nil
	}
	s.mu.Lock()
	c, ok := s.compiled[revision]
	s.mu.Unlock()
	if ok {
		return c, nil
	}
	stored, err := s.store.GetBundle(ctx, revision)
	if err != nil {
		return nil, fmt.Errorf("bundle revision %q: %w", revision, err)
	}
	b, err := bundles.ReadTarball(stored.Data, nil)
	if err != nil {
		return nil, fmt.Errorf("stored bundle %q: %w", revision, err)
	}
	if c, err = s.engine.Compile(ctx, b); err != nil {
		return nil, fmt.Errorf("stored bundle %q: %w", revision, err)
	}
	if c.Revision() != revision {
		return nil, fmt.Errorf("stored bundle %q compiles as revision %q", revision, c.Revision())
	}
	s.mu.Lock()
	if len(s.compiled) >= maxReplayBundles {
		for k := range s.compiled { // evict any one; replays of old revisions are rare
			delete(s.compiled, k)
			break
		}
	}
	s.compiled[revision] = c
	s.mu.Unlock()
	return c, nil
}

// differences lists what differs between a recorded and a replayed answer.
func differences(a, b *tollgatev1.DecideResponse) []string {
	var out []string
	if a.GetEffect() != b.GetEffect() {
		out = append(out, fmt.Sprintf("effect: %s -> %s", shortEffect(a.GetEffect()), shortEffect(b.GetEffect())))
	}
	if !equalReasons(a.GetReasons(), b.GetReasons()) {
		out = append(out, fmt.Sprintf("reasons: %s -> %s", reasonCodes(a.GetReasons()), reasonCodes(b.GetReasons())))
	}
	if fmt.Sprint(a.GetApprovers()) != fmt.Sprint(b.GetApprovers()) {
		out = append(out, fmt.Sprintf("approvers: %v -> %v", a.GetApprovers(), b.GetApprovers()))
	}
	if a.GetBundleRevision() != b.GetBundleRevision() {
		out = append(out, fmt.Sprintf("bundle_revision: %s -> %s", a.GetBundleRevision(), b.GetBundleRevision()))
	}
	return out
}

func equalReasons(a, b []*tollgatev1.Reason) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func reasonCodes(rs []*tollgatev1.Reason) string {
	codes := make([]string, len(rs))
	for i, r := range rs {
		codes[i] = r.GetCode()
		if r.GetMessage() != "" {
			codes[i] += fmt.Sprintf("(%q)", r.GetMessage())
		}
	}
	return fmt.Sprint(codes)
}

func shortEffect(e tollgatev1.Effect) string {
	for k, v := range effects {
		if v == e {
			return string(k)
		}
	}
	return e.String()
}
