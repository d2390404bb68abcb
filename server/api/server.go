package api

import (
	"context"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
)

// Services are the handlers a Server registers.
type Services struct {
	Decisions  *DecisionServer
	MasterData *MasterDataServer
	Audit      *AuditServer
	// Insights is registered when set.
	Insights *InsightsServer
}

// MaxMessageBytes is the transport bound on one gRPC message. It admits a full batch of maximal
// requests; per-request limits are checked by the handlers, which name the offending field.
const MaxMessageBytes = 8 << 20

// NewServer returns a gRPC server with Tollgate's services, the standard health service and reflection.
// guard authenticates, authorizes and rate-limits every call after panic recovery and the access log.
// The returned health server starts SERVING; callers flip it when a dependency fails.
func NewServer(svc Services, guard *Guard, log zerolog.Logger, opts ...grpc.ServerOption) (*grpc.Server, *health.Server) {
	opts = append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxMessageBytes),
		// A fixed pool of stream workers keeps goroutines whose stacks have already grown to what policy
		// evaluation needs; a fresh goroutine per call spent about a sixth of the CPU growing its stack.
		grpc.NumStreamWorkers(uint32(4 * runtime.GOMAXPROCS(0))),
		grpc.ChainUnaryInterceptor(recoverUnary(log), logUnary(log), guard.Unary),
		grpc.ChainStreamInterceptor(guard.Stream),
	}, opts...)
	srv := grpc.NewServer(opts...)
	tollgatev1.RegisterDecisionServiceServer(srv, svc.Decisions)
	tollgatev1.RegisterMasterDataServiceServer(srv, svc.MasterData)
	tollgatev1.RegisterAuditServiceServer(srv, svc.Audit)
	if svc.Insights != nil {
		tollgatev1.RegisterInsightsServiceServer(srv, svc.Insights)
	}
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	reflection.Register(srv)
	return srv, hs
}

// recoverUnary turns a handler panic into Internal and logs it with the stack, so one bad request
// cannot take the service down.
func recoverUnary(log zerolog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if p := recover(); p != nil {
				log.Error().Str("method", info.FullMethod).Interface("panic", p).Bytes("stack", debug.Stack()).Msg("handler panic")
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return handler(ctx, req)
	}
}

// logUnary writes one access-log line per call: debug level when it succeeded, warn when it failed.
func logUnary(log zerolog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		code := status.Code(err)
		ev := log.Debug()
		if err != nil {
			ev = log.Warn().Err(err)
		}
		if ev.Enabled() {
			if p, ok := peer.FromContext(ctx); ok {
				ev = ev.Str("peer", p.Addr.String())
			}
			ev.Str("method", info.FullMethod).Str("code", code.String()).Dur("duration", time.Since(start)).Msg("rpc")
		}
		return resp, err
	}
}
