package authzen

import (
	"net/http"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// httpCodes maps the decision service's gRPC codes to HTTP: the one table of this edge, the twin of
// server/api's toStatus. What is not listed is answered 500 without internals.
var httpCodes = map[codes.Code]int{
	codes.InvalidArgument:    http.StatusBadRequest,
	codes.FailedPrecondition: http.StatusBadRequest,
	codes.Unauthenticated:    http.StatusUnauthorized,
	codes.PermissionDenied:   http.StatusForbidden,
	codes.NotFound:           http.StatusNotFound,
	codes.AlreadyExists:      http.StatusConflict, // an idempotency key reused with another payload
	codes.ResourceExhausted:  http.StatusTooManyRequests,
	codes.Unavailable:        http.StatusServiceUnavailable,
	codes.DeadlineExceeded:   http.StatusGatewayTimeout,
	codes.Canceled:           http.StatusServiceUnavailable,
}

// httpStatus is the HTTP status and message of a decision's error, and how long a rate-limited caller
// should wait (0 when the status says nothing of it).
func (h *Handler) httpStatus(err error) (int, string, time.Duration) {
	st, ok := status.FromError(err)
	code, known := httpCodes[st.Code()]
	if !ok || !known {
		h.cfg.Log.Error().Err(err).Str("endpoint", "authzen").Msg("internal error")
		return http.StatusInternalServerError, "internal error", 0
	}
	var wait time.Duration
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			wait = ri.GetRetryDelay().AsDuration()
		}
	}
	return code, st.Message(), wait
}

// writeStatus answers a decision's error as the whole request's.
func (h *Handler) writeStatus(w http.ResponseWriter, err error) {
	code, msg, wait := h.httpStatus(err)
	switch {
	case code == http.StatusUnauthorized:
		challenge(w, true)
	case wait > 0:
		// Whole seconds, rounded up: retrying sooner would be refused again.
		w.Header().Set("Retry-After", strconv.FormatInt(int64((wait+time.Second-1)/time.Second), 10))
	}
	writeError(w, code, msg)
}
