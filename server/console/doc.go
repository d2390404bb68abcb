// Package console serves Tollgate's web console for auditors and process owners at /console/ on the
// service's HTTP listener: an overview of the process-intelligence figures (InsightsService), decision
// search, a decision page with replay, chain verification, and bundle history with impact analysis.
//
// The pages are static files built from console/ (npm and esbuild, `make console`) and embedded from
// dist/, so the binary needs neither npm nor a network at run time. They read JSON endpoints under
// /console/api/, which call the service's own gRPC server implementations in process, so the console
// shows exactly what the API answers and can change nothing the API's audit role cannot: it runs replays
// and impact analyses, nothing else.
//
// Access follows the gRPC API's rule. An auditor signs in by pasting a bearer token, which the
// service's auth.Authenticator checks; the caller must hold the audit role. The session lives on the
// server (a random id in an HttpOnly, SameSite=Strict cookie, Secure over TLS) with an absolute and an
// idle expiry, and the token is checked again on every request, so a token rotated out of the callers
// file ends its sessions at once. Every POST carries the session's CSRF token in a header; the sign-in
// form itself is guarded by an Origin check and a double-submit cookie. Each API call pays from the
// caller's audit rate-limit bucket, as a gRPC call would. Without a callers file the service is open on
// loopback, and so is the console, which says so on every page.
package console
