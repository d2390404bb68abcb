package authzen

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/api"
	"github.com/tollgate/tollgate/server/auth"
)

// The endpoints' paths (§9.1, the default paths of the HTTPS binding).
const (
	EvaluationPath  = "/access/v1/evaluation"
	EvaluationsPath = "/access/v1/evaluations"
	MetadataPath    = "/.well-known/authzen-configuration"
)

// RequestIDHeader is echoed on every answer to a request that carries it (§10.1.3).
const RequestIDHeader = "X-Request-ID"

// Config wires a Handler to the decision service. Decisions, Guard and Auth are required.
type Config struct {
	// Decisions makes every decision: the gRPC DecisionService implementation, called in process.
	Decisions tollgatev1.DecisionServiceServer
	// Guard authenticates, authorizes, rate-limits and bounds each evaluation exactly as it does a gRPC
	// Decide: the handler calls it as the gRPC server's interceptor would.
	Guard *api.Guard
	// Auth is the Guard's Authenticator. The handler asks it who calls before it reads the body, so an
	// unauthenticated or unauthorized caller gets 401 or 403 for the whole request, never 400.
	Auth *auth.Authenticator
	// DecisionTimeout bounds a whole Access Evaluations request, as the Guard bounds a DecideBatch;
	// each item is bounded by it too. Default api.DefaultDecisionTimeout.
	DecisionTimeout time.Duration
	// MaxBodyBytes bounds a request body. Default api.MaxMessageBytes, the gRPC message bound.
	MaxBodyBytes int64
	// MaxEvaluations bounds the items of one Access Evaluations request. Default api.DefaultMaxBatch,
	// the DecideBatch bound.
	MaxEvaluations int
	// Log receives refused calls, recovered panics and internal errors.
	Log zerolog.Logger
}

// Handler serves the AuthZEN endpoints. It is safe for concurrent use.
type Handler struct {
	cfg        Config
	decideInfo *grpc.UnaryServerInfo
}

// New returns a Handler over cfg's decision service.
func New(cfg Config) (*Handler, error) {
	if cfg.Decisions == nil || cfg.Guard == nil || cfg.Auth == nil {
		return nil, errors.New("authzen: Decisions, Guard and Auth are required")
	}
	if cfg.DecisionTimeout <= 0 {
		cfg.DecisionTimeout = api.DefaultDecisionTimeout
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = api.MaxMessageBytes
	}
	if cfg.MaxEvaluations <= 0 {
		cfg.MaxEvaluations = api.DefaultMaxBatch
	}
	return &Handler{
		cfg:        cfg,
		decideInfo: &grpc.UnaryServerInfo{Server: cfg.Decisions, FullMethod: tollgatev1.DecisionService_Decide_FullMethodName},
	}, nil
}

// Register mounts the three endpoints on mux. Another method on an endpoint's path is answered 405 by
// the mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST "+EvaluationPath, h.serveEvaluation)
	mux.HandleFunc("POST "+EvaluationsPath, h.serveEvaluations)
	mux.HandleFunc("GET "+MetadataPath, h.serveMetadata)
}

func (h *Handler) serveEvaluation(w http.ResponseWriter, r *http.Request) {
	echoRequestID(w, r)
	ctx, ok := h.admit(w, r)
	if !ok {
		return
	}
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	e, err := DecodeEvaluation(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	h.answerOne(ctx, w, e)
}

// answerOne evaluates a single request and answers it, or answers the error the request got.
func (h *Handler) answerOne(ctx context.Context, w http.ResponseWriter, e *Evaluation) {
	req, err := e.DecideRequest()
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	resp, err := h.decide(ctx, req)
	if err != nil {
		h.writeStatus(w, err)
		return
	}
	writeJSON(w, decisionFrom(resp))
}

func (h *Handler) serveEvaluations(w http.ResponseWriter, r *http.Request) {
	echoRequestID(w, r)
	ctx, ok := h.admit(w, r)
	if !ok {
		return
	}
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	req, err := DecodeEvaluations(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(req.Evaluations) == 0 {
		// Without items the request is a single Access Evaluation, answered as one (§7.1).
		h.answerOne(ctx, w, &req.Evaluation)
		return
	}
	if len(req.Evaluations) > h.cfg.MaxEvaluations {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("evaluations: %d items exceed the limit of %d", len(req.Evaluations), h.cfg.MaxEvaluations))
		return
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.DecisionTimeout)
	defer cancel()
	out := EvaluationsResponse{Evaluations: make([]Decision, 0, len(req.Evaluations))}
	for i := range req.Evaluations {
		d := h.evaluateItem(ctx, req, i)
		out.Evaluations = append(out.Evaluations, d)
		if stops(req.Options.EvaluationsSemantic, d.Decision) {
			break
		}
	}
	writeJSON(w, out)
}

// stops reports whether an evaluations semantic ends the run after an answer: deny_on_first_deny after
// the first false (an item in error is false too), permit_on_first_permit after the first true.
func stops(semantic string, decision bool) bool {
	switch semantic {
	case DenyOnFirstDeny:
		return !decision
	case PermitOnFirstPermit:
		return decision
	}
	return false
}

// evaluateItem answers item i; an item that cannot be evaluated answers false with the error the
// Access Evaluation endpoint would have answered it with.
func (h *Handler) evaluateItem(ctx context.Context, r *EvaluationsRequest, i int) Decision {
	e, err := r.Item(i)
	if err != nil {
		return failed(http.StatusBadRequest, fmt.Sprintf("evaluations[%d]: %v", i, err))
	}
	req, err := e.DecideRequest()
	if err != nil {
		return failed(http.StatusBadRequest, fmt.Sprintf("evaluations[%d]: %v", i, err))
	}
	resp, err := h.decide(ctx, req)
	if err != nil {
		code, msg, _ := h.httpStatus(err)
		return failed(code, fmt.Sprintf("evaluations[%d]: %s", i, msg))
	}
	return decisionFrom(resp)
}

// decide makes one decision through the Guard and the decision service, as a gRPC Decide is made. A
// panic below becomes an error answered 500, logged with its stack, as the gRPC server recovers it.
func (h *Handler) decide(ctx context.Context, req *tollgatev1.DecideRequest) (resp *tollgatev1.DecideResponse, err error) {
	defer func() {
		if p := recover(); p != nil {
			h.cfg.Log.Error().Str("endpoint", "authzen").Interface("panic", p).Bytes("stack", debug.Stack()).Msg("handler panic")
			resp, err = nil, errors.New("internal error")
		}
	}()
	out, err := h.cfg.Guard.Unary(ctx, req, h.decideInfo, h.callDecide)
	if err != nil {
		return nil, err
	}
	return out.(*tollgatev1.DecideResponse), nil
}

func (h *Handler) callDecide(ctx context.Context, req any) (any, error) {
	return h.cfg.Decisions.Decide(ctx, req.(*tollgatev1.DecideRequest))
}

// admit answers 401 to a caller the Authenticator does not know and 403 to one that may not ask for
// decisions at all (neither the decide role nor an agent:<id> role: the Guard's rule for Decide), and
// returns the context the Guard reads the caller from: the bearer token as gRPC metadata, the peer
// address and the TLS state as the gRPC peer. The Guard then applies the exact rule per decision (an
// agent asks only for itself), the rate limit and the deadline.
func (h *Handler) admit(w http.ResponseWriter, r *http.Request) (context.Context, bool) {
	token, hasToken := bearerToken(r)
	caller, err := h.cfg.Auth.Identify(clientCert(r), token)
	if err != nil {
		h.cfg.Log.Warn().Str("endpoint", r.URL.Path).Str("peer", r.RemoteAddr).Str("reason", err.Error()).Msg("call refused")
		challenge(w, hasToken)
		writeError(w, http.StatusUnauthorized, err.Error())
		return nil, false
	}
	if !h.cfg.Auth.Open() && !caller.Has(auth.RoleDecide) && caller.AgentID() == "" {
		h.cfg.Log.Warn().Str("endpoint", r.URL.Path).Str("caller", caller.String()).Str("peer", r.RemoteAddr).Msg("call refused: no role permits decisions")
		writeError(w, http.StatusForbidden, caller.Name+" may not ask for decisions: it holds neither the decide role nor an agent role")
		return nil, false
	}
	md := metadata.MD{}
	if hasToken {
		md.Set("authorization", "Bearer "+token)
	}
	ctx := metadata.NewIncomingContext(r.Context(), md)
	p := &peer.Peer{Addr: remoteAddr(r.RemoteAddr)}
	if r.TLS != nil {
		p.AuthInfo = credentials.TLSInfo{State: *r.TLS, CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}
	}
	return peer.NewContext(ctx, p), true
}

// challenge is RFC 6750's: a request with a token that was refused learns the token is invalid.
func challenge(w http.ResponseWriter, hadToken bool) {
	v := `Bearer realm="tollgate"`
	if hadToken {
		v += `, error="invalid_token"`
	}
	w.Header().Set("WWW-Authenticate", v)
}

// bearerToken returns the token of an "Authorization: Bearer <token>" header (the scheme in any
// case, RFC 9110 §11.1) and whether there was one.
func bearerToken(r *http.Request) (string, bool) {
	for _, v := range r.Header.Values("Authorization") {
		scheme, token, ok := strings.Cut(strings.TrimSpace(v), " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			if token = strings.TrimSpace(token); token != "" {
				return token, true
			}
		}
	}
	return "", false
}

// clientCert is the verified client certificate of a TLS connection, as the Guard reads it on gRPC.
func clientCert(r *http.Request) *x509.Certificate {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil
	}
	return r.TLS.VerifiedChains[0][0]
}

// remoteAddr is the peer address the audit record names the caller from.
func remoteAddr(s string) net.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return net.TCPAddrFromAddrPort(ap)
	}
	return textAddr(s)
}

// textAddr is a peer address that is not ip:port (a unix socket, a test's fake).
type textAddr string

func (a textAddr) Network() string { return "tcp" }
func (a textAddr) String() string  { return string(a) }

// readBody returns the request body: 400 unless it is application/json, 413 when it is larger than
// the gRPC message bound.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("Content-Type %q: want application/json", ct))
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body exceeds the limit of %d bytes", tooLarge.Limit))
		return nil, false
	case err != nil:
		writeError(w, http.StatusBadRequest, "read the request body: "+err.Error())
		return nil, false
	}
	return body, true
}

func echoRequestID(w http.ResponseWriter, r *http.Request) {
	if id := r.Header.Get(RequestIDHeader); id != "" {
		w.Header().Set(RequestIDHeader, id)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	// Encoding our own response types cannot fail; a failed write is the client's closed connection.
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers an error status with a plain message body (§10.1.4).
func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg+"\n")
}
