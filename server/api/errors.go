package api

import (
	"context"
	"errors"
	"fmt"

	"github.com/rs/zerolog"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tollgate/tollgate/server/audit"
)

// fieldError is a structurally bad request: the named field is missing, malformed or too large.
type fieldError struct {
	field  string
	reason string
}

func (e *fieldError) Error() string { return e.field + ": " + e.reason }

func badField(field, format string, args ...any) error {
	return &fieldError{field: field, reason: fmt.Sprintf(format, args...)}
}

// toStatus is the one place that maps errors to gRPC status codes. Anything not recognised is logged
// and answered as Internal without internals.
func toStatus(log zerolog.Logger, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var fe *fieldError
	var conflict *audit.ConflictError
	var behind *behindError
	switch {
	case errors.As(err, &behind):
		return behind.status(err.Error())
	case errors.As(err, &conflict):
		return status.Error(codes.AlreadyExists, conflict.Error())
	case errors.Is(err, audit.ErrQueueFull):
		return status.Error(codes.ResourceExhausted, "audit log queue is full; retry later")
	case errors.Is(err, audit.ErrUnavailable), errors.Is(err, audit.ErrClosed):
		log.Error().Err(err).Msg("audit log unavailable")
		return status.Error(codes.Unavailable, "audit log unavailable: decision not made")
	case errors.Is(err, audit.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, audit.ErrInvalidArgument):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.As(err, &fe):
		st := status.New(codes.InvalidArgument, fe.Error())
		if d, derr := st.WithDetails(&errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: fe.field, Description: fe.reason}},
		}); derr == nil {
			st = d
		}
		return st.Err()
	case errors.Is(err, errNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, errFedByStream):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	default:
		log.Error().Err(err).Msg("internal error")
		return status.Error(codes.Internal, "internal error")
	}
}

var errNotFound = errors.New("not found")

// errFedByStream refuses MasterDataService.Apply on a replica fed by a stream.
var errFedByStream = errors.New("master data is not applied on this replica")
