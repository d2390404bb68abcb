package api

import (
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/auth"
)

// access says who may call a method. Methods not listed are denied to every configured caller.
type access struct {
	public bool // no credentials needed (health checks)
	// authenticated admits any configured caller (each holds at least one role); the call pays from the
	// caller's strictest bucket. In open mode it is open like everything else.
	authenticated bool
	// roles are the role classes that may call, in the order their buckets pay: a caller holding several
	// pays from the first it holds.
	roles []string
	agent bool // agent:<id> callers, for themselves only; they pay from the agent bucket
}

// methodAccess is least privilege per RPC (architecture.md, callers and roles; the README's table).
var methodAccess = map[string]access{
	tollgatev1.DecisionService_Decide_FullMethodName:      {roles: []string{auth.RoleDecide}, agent: true},
	tollgatev1.DecisionService_DecideBatch_FullMethodName: {roles: []string{auth.RoleDecide}},

	tollgatev1.MasterDataService_Apply_FullMethodName:  {roles: []string{auth.RoleAdmin}},
	tollgatev1.MasterDataService_Get_FullMethodName:    {roles: []string{auth.RoleAdmin}},
	tollgatev1.MasterDataService_Status_FullMethodName: {roles: []string{auth.RoleAdmin}},

	tollgatev1.AuditService_ListDecisions_FullMethodName:  {roles: []string{auth.RoleAudit}},
	tollgatev1.AuditService_GetDecision_FullMethodName:    {roles: []string{auth.RoleAudit}},
	tollgatev1.AuditService_VerifyLog_FullMethodName:      {roles: []string{auth.RoleAudit}},
	tollgatev1.AuditService_ReplayDecision_FullMethodName: {roles: []string{auth.RoleAudit}},
	tollgatev1.AuditService_ImpactAnalysis_FullMethodName: {roles: []string{auth.RoleAudit, auth.RoleAdmin}},

	tollgatev1.AuditService_ExportDecisions_FullMethodName: {roles: []string{auth.RoleAudit}},
	tollgatev1.AuditService_ListCheckpoints_FullMethodName: {roles: []string{auth.RoleAudit}},
	tollgatev1.AuditService_GetReceipt_FullMethodName:      {roles: []string{auth.RoleAudit}},

	tollgatev1.InsightsService_GetVolume_FullMethodName:         {roles: []string{auth.RoleAudit}},
	tollgatev1.InsightsService_GetExceptions_FullMethodName:     {roles: []string{auth.RoleAudit}},
	tollgatev1.InsightsService_GetApprovals_FullMethodName:      {roles: []string{auth.RoleAudit}},
	tollgatev1.InsightsService_GetAutonomy_FullMethodName:       {roles: []string{auth.RoleAudit}},
	tollgatev1.InsightsService_GetRetries_FullMethodName:        {roles: []string{auth.RoleAudit}},
	tollgatev1.InsightsService_GetApprovalDelays_FullMethodName: {roles: []string{auth.RoleAudit}},
	tollgatev1.InsightsService_ListSLABreaches_FullMethodName:   {roles: []string{auth.RoleAudit}},
	tollgatev1.InsightsService_ListPolicyChanges_FullMethodName: {roles: []string{auth.RoleAudit}},

	tollgatev1.PolicyService_Status_FullMethodName:   {roles: []string{auth.RoleAdmin, auth.RoleAudit}},
	tollgatev1.PolicyService_Activate_FullMethodName: {roles: []string{auth.RoleAdmin}},

	"/grpc.health.v1.Health/Check":                                   {public: true},
	"/grpc.health.v1.Health/Watch":                                   {public: true},
	"/grpc.health.v1.Health/List":                                    {public: true},
	"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      {authenticated: true},
	"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": {authenticated: true},
}

type callerKey struct{}

// CallerFrom returns the authenticated caller of a request, if any.
func CallerFrom(ctx context.Context) (*auth.Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(*auth.Caller)
	return c, ok
}

// Guard authenticates, authorizes and rate-limits every call, and bounds decision time. A call pays from
// the caller's bucket of the role class that authorized it; a DecideBatch pays one token per decision.
type Guard struct {
	auth            *auth.Authenticator
	decisionTimeout time.Duration
	log             zerolog.Logger
}

// DefaultDecisionTimeout is the server-side deadline of a decision call when the caller sets none or a
// later one.
const DefaultDecisionTimeout = 5 * time.Second

// NewGuard returns the interceptors' state. decisionTimeout <= 0 takes DefaultDecisionTimeout.
func NewGuard(a *auth.Authenticator, decisionTimeout time.Duration, log zerolog.Logger) *Guard {
	if decisionTimeout <= 0 {
		decisionTimeout = DefaultDecisionTimeout
	}
	return &Guard{auth: a, decisionTimeout: decisionTimeout, log: log}
}

// Unary is the unary server interceptor.
func (g *Guard) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := g.admit(ctx, info.FullMethod, req)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(info.FullMethod, "/"+tollgatev1.DecisionService_ServiceDesc.ServiceName+"/") {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.decisionTimeout)
		defer cancel()
	}
	return handler(ctx, req)
}

// Stream is the stream server interceptor.
func (g *Guard) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := g.admit(ss.Context(), info.FullMethod, nil)
	if err != nil {
		return err
	}
	return handler(srv, &wrappedStream{ServerStream: ss, ctx: ctx})
}

type wrappedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (w *wrappedStream) Context() context.Context { return w.ctx }

// admit decides whether a call may proceed and returns its context carrying the caller.
func (g *Guard) admit(ctx context.Context, method string, req any) (context.Context, error) {
	acc, known := methodAccess[method]
	if acc.public {
		return ctx, nil
	}
	caller, err := g.auth.Identify(clientCert(ctx), bearerToken(ctx))
	if err != nil {
		g.deny(ctx, method, "", err.Error())
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	ctx = context.WithValue(ctx, callerKey{}, caller)
	var class string
	if !g.auth.Open() {
		if !known {
			g.deny(ctx, method, caller.String(), "method not configured for any role")
			return nil, status.Errorf(codes.PermissionDenied, "%s may not call %s", caller.Name, method)
		}
		if class, err = authorize(acc, caller, req); err != nil {
			g.deny(ctx, method, caller.String(), err.Error())
			return nil, status.Errorf(codes.PermissionDenied, "%s may not call %s: %v", caller.Name, method, err)
		}
	}
	cost := callCost(req)
	if ok, wait := caller.Spend(class, cost); !ok {
		if wait <= 0 {
			return nil, status.Errorf(codes.ResourceExhausted, "a call costing %d tokens exceeds the %s rate-limit burst of %s (%d); send smaller batches",
				cost, class, caller.Name, caller.Burst(class))
		}
		st := status.Newf(codes.ResourceExhausted, "%s rate limit of %s exceeded; retry in %.3fs", class, caller.Name, wait.Seconds())
		if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(wait)}); err == nil {
			st = d
		}
		return nil, st.Err()
	}
	return ctx, nil
}

// callCost is how many rate-limit tokens a call spends: one per decision of a batch, else one.
func callCost(req any) int {
	if b, ok := req.(*tollgatev1.DecideBatchRequest); ok {
		return max(1, len(b.GetRequests()))
	}
	return 1
}

// authorize applies a method's access rule to an authenticated caller and returns the role class whose
// bucket pays for the call.
func authorize(acc access, c *auth.Caller, req any) (string, error) {
	if acc.authenticated {
		return c.StrictestClass(), nil
	}
	for _, r := range acc.roles {
		if c.Has(r) {
			return r, nil
		}
	}
	if acc.agent && c.AgentID() != "" {
		d, ok := req.(*tollgatev1.DecideRequest)
		switch {
		case !ok:
			return "", errors.New("not a decision request")
		case d.GetActor().GetType() != tollgatev1.ActorType_ACTOR_TYPE_AI_AGENT:
			return "", errors.New("an AI agent may only ask with actor.type AI_AGENT")
		case d.GetActor().GetId() != c.AgentID():
			return "", errors.New("an AI agent may only ask for itself (actor.id " + c.AgentID() + ")")
		}
		return auth.RoleAgent, nil
	}
	return "", errors.New("no role permits it")
}

// deny logs a refused call: who, what and why.
func (g *Guard) deny(ctx context.Context, method, caller, why string) {
	ev := g.log.Warn().Str("method", method).Str("reason", why)
	if caller != "" {
		ev = ev.Str("caller", caller)
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		ev = ev.Str("peer", p.Addr.String())
	}
	ev.Msg("call refused")
}

// clientCert returns the verified client certificate of a TLS connection, if any.
func clientCert(ctx context.Context) *x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	tlsInfo, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(tlsInfo.State.VerifiedChains) == 0 || len(tlsInfo.State.VerifiedChains[0]) == 0 {
		return nil
	}
	return tlsInfo.State.VerifiedChains[0][0]
}

// bearerToken returns the token of an "authorization: Bearer <token>" header, if any.
func bearerToken(ctx context.Context) string {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return ""
	}
	for _, v := range md.Get("authorization") {
		if after, ok := strings.CutPrefix(v, "Bearer "); ok {
			return strings.TrimSpace(after)
		}
	}
	return ""
}
