// Package authzen tests the AuthZEN Authorization API 1.0 endpoints of the real service
// (server/authzen, mounted on --http-addr) with real HTTP requests: the Todo interoperability scenario
// on bundles/authzen-todo for every user and rule, singly and as evaluations under all three
// semantics, each answer found in the audit log and the log verified; the 400, 401, 403, 413 and 429
// answers with a callers file; HTTPS with client certificates; the default pack answering its own actions; and the throughput of
// AuthZEN over HTTP against gRPC Decide on the same requests (BenchmarkAuthZENvsGRPC).
package authzen
